/*
 * decode.h - what the translation units of the decode-attention family share:
 * decode.c (argument checks, workspace, threads, the scalar kernel) and the
 * per-ISA kernels in decode_avx2.c / decode_avx512.c. Same rules as internal.h
 * (nothing exported, shared helpers static inline only).
 *
 * One work item is one (batch row b, key/value head g): the r = kv_repeat query
 * heads h = g r + i (i < r) that share the key/value head attend over the same
 * keys [begin_b, end_b) of the cache, so each key and value row is read once for
 * all r of them. Per item, n = end_b - begin_b keys:
 *
 *   qs  (r, dp)  scale * q_i, rounded to float, zero-padded to dp = d rounded up
 *                to 16 (one 64-byte row per 16 channels)
 *   x   (r, ldx) the logits x[i][j] = qs_i . k_j, then in place the
 *                unnormalised probabilities e = exp(x - max_i)
 *   o_i[c] = (sum_j e[i][j] v_j[c]) * (1 / sum_j e[i][j])
 *
 * ldx = tk rounded up to 16; both regions are 64-byte aligned.
 */
#ifndef ATTN4J_DECODE_H
#define ATTN4J_DECODE_H

#include <stdint.h>

#include "attn4j.h"

/* Floats of one row of qs (d channels) or x (tk keys): rounded up to 16. */
static inline int64_t attn4j_decode_pad(int64_t n)
{
    return (n + 15) / 16 * 16;
}

/*
 * One work item (see above): q row i at q + i * q_step (d floats), key j at
 * k + j * ldk, value j at v + j * ldv (j < n, n >= 1), output row i at
 * o + i * o_step (dv floats); qs and x are the item's workspace (r * dp and
 * r * ldx floats, 64-byte aligned).
 */
typedef void (*attn4j_decode_fn)(const float *q, int64_t q_step, int64_t r, const float *k, int64_t ldk,
                                 const float *v, int64_t ldv, int64_t n, int64_t d, int64_t dv, float scale,
                                 float *qs, float *x, int64_t ldx, float *o, int64_t o_step);

#if defined(ATTN4J_HAVE_X86)
void attn4j_decode_item_avx2(const float *q, int64_t q_step, int64_t r, const float *k, int64_t ldk,
                             const float *v, int64_t ldv, int64_t n, int64_t d, int64_t dv, float scale,
                             float *qs, float *x, int64_t ldx, float *o, int64_t o_step);
void attn4j_decode_item_avx512(const float *q, int64_t q_step, int64_t r, const float *k, int64_t ldk,
                               const float *v, int64_t ldv, int64_t n, int64_t d, int64_t dv, float scale,
                               float *qs, float *x, int64_t ldx, float *o, int64_t o_step);
#endif

#endif /* ATTN4J_DECODE_H */
