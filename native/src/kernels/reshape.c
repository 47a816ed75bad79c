/* RESHAPE: the same bytes under the output's stored shape (the shape input or option only has to agree
 * with the element count, which the stored shapes already fix). */
#include <string.h>

#include "../internal.h"

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (input == NULL || output == NULL || node->noutputs != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects an input and 1 output");
  }
  if (input->type != output->type || input->bytes != output->bytes) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input (%s, %zu bytes) and output (%s, %zu bytes) differ",
                    eq_type_name(input->type), input->bytes, eq_type_name(output->type), output->bytes);
  }
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (output->data != input->data) memmove(output->data, input->data, input->bytes);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_reshape = {prepare, invoke};
