/* attn_pv_impl.h: the blocking of attention's P x V product, shared by
 * attn_avx2.c and attn_avx512.c. Not a normal header: include it once, after
 * defining INL and the ISA's
 *   pv_block(R, p, ldp, v, ldv, nb, out, d)  (rows [0, R), the PV_D value
 *                                             rows from d (at v, ldv apart),
 *                                             one block of nb cells)
 * with ATTN_PV_NAME set to the function to define (attn_pv_avx2, ...), whose
 * contract is attn_simd.h's, PV_D (value rows per block; hd must be a
 * multiple of it) and PV_R (probability rows per block: 2 or 4). */
#if !defined(ATTN_PV_NAME) || !defined(PV_D) || !defined(PV_R)
#error "define ATTN_PV_NAME, PV_D and PV_R before including attn_pv_impl.h"
#endif

/* Rows [0, R) over all value rows, for one block of nb cells. */
INL void pv_rows(int R, const uint16_t *p, size_t ldp, const uint16_t *V,
                 size_t ldv, int hd, int nb, float *const *out) {
  for (int d = 0; d < hd; d += PV_D)
    pv_block(R, p, ldp, V + (size_t)d * ldv, ldv, nb, out, d);
}

#define PV_CB 256 /* cells per block: the block of V (hd rows) stays in L1 */

void ATTN_PV_NAME(const uint16_t *P, size_t ldp, int nq, const uint16_t *V,
                  size_t ldv, int hd, int nc, float *const *out) {
  for (int j0 = 0; j0 < nc; j0 += PV_CB) {
    int nb = nc - j0 < PV_CB ? nc - j0 : PV_CB;
    int r0 = 0;
    for (; r0 + PV_R <= nq; r0 += PV_R)
      pv_rows(PV_R, P + (size_t)r0 * ldp + j0, ldp, V + j0, ldv, hd, nb,
              out + r0);
    const uint16_t *pr = P + (size_t)r0 * ldp + j0;
    switch (nq - r0) {
#if PV_R > 2
    case 3:
      pv_rows(3, pr, ldp, V + j0, ldv, hd, nb, out + r0);
      break;
    case 2:
      pv_rows(2, pr, ldp, V + j0, ldv, hd, nb, out + r0);
      break;
#endif
    case 1:
      pv_rows(1, pr, ldp, V + j0, ldv, hd, nb, out + r0);
      break;
    }
  }
}
