/* EQ_KERNEL(BUILTIN, symbol): one line per implemented builtin, grouped by the file family. */
/* boundary */
EQ_KERNEL(QUANTIZE, eq_kernel_quantize)
EQ_KERNEL(DEQUANTIZE, eq_kernel_dequantize)
/* matmul family */
EQ_KERNEL(FULLY_CONNECTED, eq_kernel_fully_connected)
EQ_KERNEL(BATCH_MATMUL, eq_kernel_batch_matmul)
/* convolution family */
/* elementwise binary and simple activations */
EQ_KERNEL(ADD, eq_kernel_add)
EQ_KERNEL(SUB, eq_kernel_sub)
EQ_KERNEL(MUL, eq_kernel_mul)
EQ_KERNEL(SQUARED_DIFFERENCE, eq_kernel_squared_difference)
EQ_KERNEL(MAXIMUM, eq_kernel_maximum)
EQ_KERNEL(MINIMUM, eq_kernel_minimum)
EQ_KERNEL(RELU, eq_kernel_relu)
EQ_KERNEL(RELU6, eq_kernel_relu6)
EQ_KERNEL(RELU_N1_TO_1, eq_kernel_relu_n1_to_1)
EQ_KERNEL(RELU_0_TO_1, eq_kernel_relu_0_to_1)
EQ_KERNEL(LEAKY_RELU, eq_kernel_leaky_relu)
EQ_KERNEL(PRELU, eq_kernel_prelu)
EQ_KERNEL(NEG, eq_kernel_neg)
EQ_KERNEL(ABS, eq_kernel_abs)
/* transcendental activations (LUT / fixed-point) */
EQ_KERNEL(LOGISTIC, eq_kernel_logistic)
EQ_KERNEL(TANH, eq_kernel_tanh)
EQ_KERNEL(EXP, eq_kernel_exp)
EQ_KERNEL(GELU, eq_kernel_gelu)
EQ_KERNEL(ELU, eq_kernel_elu)
EQ_KERNEL(SOFTMAX, eq_kernel_softmax)
EQ_KERNEL(HARD_SWISH, eq_kernel_hard_swish)
EQ_KERNEL(SQRT, eq_kernel_sqrt)
EQ_KERNEL(RSQRT, eq_kernel_rsqrt)
/* shape and data movement */
EQ_KERNEL(RESHAPE, eq_kernel_reshape)
/* pooling and reductions */
EQ_KERNEL(AVERAGE_POOL_2D, eq_kernel_average_pool_2d)
EQ_KERNEL(MAX_POOL_2D, eq_kernel_max_pool_2d)
EQ_KERNEL(MEAN, eq_kernel_mean)
EQ_KERNEL(SUM, eq_kernel_sum)
EQ_KERNEL(REDUCE_MAX, eq_kernel_reduce_max)
EQ_KERNEL(REDUCE_MIN, eq_kernel_reduce_min)
