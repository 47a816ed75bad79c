/* The one place kernels are registered: each kernel file defines `const eq_kernel eq_kernel_<op>` and
 * lists.h names it here. */
#include "../builtin_ops.h"
#include "../internal.h"

#define EQ_KERNEL(op, symbol) extern const eq_kernel symbol;
#include "list.h"
#undef EQ_KERNEL

typedef struct registration {
  int32_t builtin;
  const eq_kernel* kernel;
} registration;

static const registration registry[] = {
#define EQ_KERNEL(op, symbol) {EQ_OP_##op, &symbol},
#include "list.h"
#undef EQ_KERNEL
};

const eq_kernel* eq_find_kernel(int32_t builtin) {
  for (size_t i = 0; i < sizeof registry / sizeof *registry; ++i) {
    if (registry[i].builtin == builtin) return registry[i].kernel;
  }
  return NULL;
}
