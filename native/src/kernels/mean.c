/* MEAN over constant axes: int8 / uint8 / int16 through LiteRT's reference QuantizedMeanOrSum (see
 * mean_sum.h), int32 / int64 as the plain reference Mean. */
#include "mean_sum.h"

static edgeq_status prepare(eq_context* ctx, eq_node* node) { return eq_mean_sum_prepare(ctx, node, 1); }

static edgeq_status invoke(eq_context* ctx, eq_node* node) { return eq_mean_sum_invoke(ctx, node, 1); }

const eq_kernel eq_kernel_mean = {prepare, invoke};
