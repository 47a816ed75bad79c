/* EQ_KERNEL(BUILTIN, symbol): one line per implemented builtin, grouped by the file family. */
/* boundary */
EQ_KERNEL(QUANTIZE, eq_kernel_quantize)
EQ_KERNEL(DEQUANTIZE, eq_kernel_dequantize)
/* matmul family */
/* convolution family */
/* elementwise binary and simple activations */
EQ_KERNEL(ADD, eq_kernel_add)
EQ_KERNEL(SUB, eq_kernel_sub)
/* transcendental activations (LUT / fixed-point) */
EQ_KERNEL(LOGISTIC, eq_kernel_logistic)
EQ_KERNEL(TANH, eq_kernel_tanh)
EQ_KERNEL(EXP, eq_kernel_exp)
EQ_KERNEL(GELU, eq_kernel_gelu)
EQ_KERNEL(ELU, eq_kernel_elu)
/* shape and data movement */
EQ_KERNEL(RESHAPE, eq_kernel_reshape)
/* pooling and reductions */
EQ_KERNEL(AVERAGE_POOL_2D, eq_kernel_average_pool_2d)
EQ_KERNEL(MAX_POOL_2D, eq_kernel_max_pool_2d)
EQ_KERNEL(MEAN, eq_kernel_mean)
EQ_KERNEL(SUM, eq_kernel_sum)
EQ_KERNEL(REDUCE_MAX, eq_kernel_reduce_max)
EQ_KERNEL(REDUCE_MIN, eq_kernel_reduce_min)
