/*
 * flash_backward.h - what the translation units of the flash backward family
 * share: flash_backward.c (argument checks, workspace, threads, the loop over
 * blocks, the scalar kernels) and the per-ISA kernels in flash_backward_avx2.c /
 * flash_backward_avx512.c. Same rules as flash.h and internal.h.
 *
 * The tiling follows the forward's (flash.h): for one batch-head and one block of
 * br query rows i0 <= i < i0 + br, the per-row quantities are held TRANSPOSED, one
 * query per vector lane, and one block of up to BC keys j0 <= j < j0 + nk at a
 * time is read where it is (k, v in place; dk, dv accumulated in place):
 *
 *   qt  (d,  br)   scale * q^T, as the forward packs it (flash pack kernel)
 *   dot (dv, br)   do^T (pack kernel, scale 1)
 *   qr  (br, dp)   q, row-major, unscaled, dp = d rounded up to 16 (zeros past d)
 *   dor (br, dvp)  do, row-major likewise
 *   st  (BC, br)   S^T = K qt (the forward's scores kernel: the same logits), then P^T
 *   dpt (BC, br)   dP^T = V dot (scores kernel again), then scale * dS^T
 *   dqt (d,  br)   dQ^T, accumulated over the key blocks (the forward's pv kernel)
 *
 * and per key block:
 *
 *   scores   st = K_blk qt,  dpt = V_blk dot
 *   grad     st = P = exp(st - lse) (0 where masked); dpt = scale * P * (dpt - D)
 *   tn       dv[j0 + j] += sum_l st[j][l] dor[l]     (dV += P^T dO)
 *            dk[j0 + j] += sum_l dpt[j][l] qr[l]     (dK += scale dS^T Q)
 *   pv       dqt += K_blk^T dpt                      (dQ += scale dS K)
 *
 * so two of the five products are the forward's kernels as they are, and the
 * third (pv) is the forward's output update with alpha = 1 (exact). Only tn, the
 * products contracted over the query lanes, and grad are new.
 */
#ifndef ATTN4J_FLASH_BACKWARD_H
#define ATTN4J_FLASH_BACKWARD_H

#include <stdint.h>

#include "flash.h"

/*
 * P and dS of one block, lane-wise, in place: for j < nk and l < br, with key j of
 * the block masked for lane l as in attn4j_flash_softmax_fn (key_ok, diagonal,
 * diag),
 *
 *     p = masked ? 0 : exp(st[j][l] - lse[l])
 *     st[j][l]  = p
 *     dpt[j][l] = p == 0 ? 0 : scale * (p * (dpt[j][l] - dd[l]))
 *
 * (p == 0 also where the exp underflows or lse is +inf: the dS of a zero
 * probability is exactly 0 even when dP is not finite; a NaN p stays NaN).
 * lse and dd hold br floats; lanes past the block's queries carry lse = +inf.
 */
typedef void (*attn4j_flash_grad_fn)(float *st, float *dpt, int64_t nk, const uint8_t *key_ok, int32_t diagonal,
                                     int64_t diag, const float *lse, const float *dd, float scale, int64_t br);

/*
 * c[j * ldc + x] += sum_{l < nl} at[j * br + l] * b[l * ldb + x] for j < nk, x < n:
 * a block product contracted over the query lanes, into nk rows of dk or dv in
 * place (only their first n floats are read and written). at holds nk rows of br
 * floats (st or dpt); b holds nl rows of ldb floats, ldb a multiple of 16 >= n,
 * 64-byte aligned, with the floats past n readable (zero) in each row.
 */
typedef void (*attn4j_flash_tn_fn)(const float *at, int64_t br, int64_t nk, int64_t nl, const float *b,
                                   int64_t ldb, int64_t n, float *c, int64_t ldc);

/* The padded width of the row-major blocks qr and dor. */
#define ATTN4J_FLASH_BWD_PAD 16

#if defined(ATTN4J_HAVE_X86)
void attn4j_flash_grad_avx2(float *st, float *dpt, int64_t nk, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                            const float *lse, const float *dd, float scale, int64_t br);
void attn4j_flash_tn_avx2(const float *at, int64_t br, int64_t nk, int64_t nl, const float *b, int64_t ldb,
                          int64_t n, float *c, int64_t ldc);
void attn4j_flash_grad_avx512(float *st, float *dpt, int64_t nk, const uint8_t *key_ok, int32_t diagonal,
                              int64_t diag, const float *lse, const float *dd, float scale, int64_t br);
void attn4j_flash_tn_avx512(const float *at, int64_t br, int64_t nk, int64_t nl, const float *b, int64_t ldb,
                            int64_t n, float *c, int64_t ldc);
#endif

#endif /* ATTN4J_FLASH_BACKWARD_H */
