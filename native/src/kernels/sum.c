/* SUM over constant axes: int8 / uint8 / int16 through LiteRT's reference QuantizedMeanOrSum with
 * compute_sum (see mean_sum.h), int32 / int64 as wrapping sums. */
#include "mean_sum.h"

static edgeq_status prepare(eq_context* ctx, eq_node* node) { return eq_mean_sum_prepare(ctx, node, 0); }

static edgeq_status invoke(eq_context* ctx, eq_node* node) { return eq_mean_sum_invoke(ctx, node, 0); }

const eq_kernel eq_kernel_sum = {prepare, invoke};
