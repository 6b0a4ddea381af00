/*
 * decode_avx512.c - the work item of attn4j_decode_attention_f32 for AVX-512
 * (F, BW, VL, DQ), compiled with the AVX-512 flags; only called after cpu.c has
 * checked the CPU. The item and its workspace are described in decode.h.
 *
 * Logits: per key, its row is loaded once (d / 16 vectors) and dotted with the
 * R <= 8 scaled query rows of a tile (one accumulator each, reduced at the end):
 * the r heads that share the key/value head read each key once. Softmax: row max,
 * v16_exp_nonpos of x - max (the arguments are <= 0), the sum in 16 lanes.
 * Output: channel chunks of 64 (4 vectors, the tail masked) by tiles of R <= 6
 * rows, 24 accumulators; per key, 4 loads of the value row and one broadcast of
 * each row's probability feeding 4 FMAs. Each chunk of a value row is a distinct
 * 256-byte span, so the chunks together read every value row once per row tile.
 * Both passes prefetch PREFETCH rows ahead in software.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "decode.h"
#include "vmath_avx512.h"

#define W 16
#define LOGIT_ROWS 8
#define OUT_ROWS 6
#define OUT_NV 4
/* Key (value) rows ahead of the one in use that are prefetched, every line of them:
 * on Zen 5, one step of MHA over a 4097-position cache (16.8 MB of keys and values)
 * took 640 us without and 358-376 us with 8, 16 or 32 rows (26 -> 46 GB/s). A
 * prefetch past the end of the range is harmless (it never faults). */
#define PREFETCH 32

/* x[ii * ldx] = qs_ii . kj for ii < R (R a literal at each call site). */
ALWAYS_INLINE void logits_tile(const float *kj, const float *qs, int64_t dp, int64_t d, float *x, int64_t ldx,
                               const int R)
{
    __m512 acc[LOGIT_ROWS];
    for (int ii = 0; ii < R; ++ii)
        acc[ii] = _mm512_setzero_ps();
    for (int64_t p0 = 0; p0 < dp; p0 += W) {
        const __m512 kv = _mm512_maskz_loadu_ps(v16_lanes_below(d - p0), kj + p0);
        for (int ii = 0; ii < R; ++ii)
            acc[ii] = _mm512_fmadd_ps(_mm512_load_ps(qs + ii * dp + p0), kv, acc[ii]);
    }
    for (int ii = 0; ii < R; ++ii)
        x[ii * ldx] = _mm512_reduce_add_ps(acc[ii]);
}

/* Rows ii < R of the output chunk [c0, c0 + 64): o_ii = inv[ii] * sum_j x[ii][j] v_j. */
ALWAYS_INLINE void output_tile(const float *v, int64_t ldv, int64_t n, int64_t dv, int64_t c0, const float *x,
                               int64_t ldx, const float *inv, float *o, int64_t o_step, const int R)
{
    __m512 acc[OUT_ROWS][OUT_NV];
    __mmask16 lanes[OUT_NV];
    for (int cv = 0; cv < OUT_NV; ++cv)
        lanes[cv] = v16_lanes_below(dv - c0 - cv * W);
    for (int ii = 0; ii < R; ++ii)
        for (int cv = 0; cv < OUT_NV; ++cv)
            acc[ii][cv] = _mm512_setzero_ps();
    const float *vj = v + c0;
    for (int64_t j = 0; j < n; ++j, vj += ldv) {
        for (int cv = 0; cv < OUT_NV; ++cv)
            if (cv * W < dv - c0)
                _mm_prefetch((const char *)(vj + PREFETCH * ldv + cv * W), _MM_HINT_T0);
        __m512 vv[OUT_NV];
        for (int cv = 0; cv < OUT_NV; ++cv)
            vv[cv] = _mm512_maskz_loadu_ps(lanes[cv], vj + cv * W);
        for (int ii = 0; ii < R; ++ii) {
            const __m512 e = _mm512_set1_ps(x[ii * ldx + j]);
            for (int cv = 0; cv < OUT_NV; ++cv)
                acc[ii][cv] = _mm512_fmadd_ps(e, vv[cv], acc[ii][cv]);
        }
    }
    for (int ii = 0; ii < R; ++ii) {
        const __m512 s = _mm512_set1_ps(inv[ii]);
        for (int cv = 0; cv < OUT_NV; ++cv)
            _mm512_mask_storeu_ps(o + ii * o_step + c0 + cv * W, lanes[cv], _mm512_mul_ps(acc[ii][cv], s));
    }
}

void attn4j_decode_item_avx512(const float *q, int64_t q_step, int64_t r, const float *k, int64_t ldk,
                               const float *v, int64_t ldv, int64_t n, int64_t d, int64_t dv, float scale,
                               float *qs, float *x, int64_t ldx, float *o, int64_t o_step)
{
    const int64_t dp = attn4j_decode_pad(d);
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < r; ++i)
        for (int64_t p0 = 0; p0 < dp; p0 += W)
            _mm512_store_ps(qs + i * dp + p0,
                            _mm512_mul_ps(_mm512_maskz_loadu_ps(v16_lanes_below(d - p0), q + i * q_step + p0), sc));

    /* Logits, key by key; the row tiles of one key reuse its row from L1. */
    const float *kj = k;
    for (int64_t j = 0; j < n; ++j, kj += ldk) {
        for (int64_t p0 = 0; p0 < d; p0 += W)
            _mm_prefetch((const char *)(kj + PREFETCH * ldk + p0), _MM_HINT_T0);
        for (int64_t i0 = 0; i0 < r; i0 += LOGIT_ROWS) {
            const int64_t rows = r - i0 < LOGIT_ROWS ? r - i0 : LOGIT_ROWS;
            const float *qt = qs + i0 * dp;
            float *xt = x + i0 * ldx + j;
            switch (rows) {
            case 8: logits_tile(kj, qt, dp, d, xt, ldx, 8); break;
            case 7: logits_tile(kj, qt, dp, d, xt, ldx, 7); break;
            case 6: logits_tile(kj, qt, dp, d, xt, ldx, 6); break;
            case 5: logits_tile(kj, qt, dp, d, xt, ldx, 5); break;
            case 4: logits_tile(kj, qt, dp, d, xt, ldx, 4); break;
            case 3: logits_tile(kj, qt, dp, d, xt, ldx, 3); break;
            case 2: logits_tile(kj, qt, dp, d, xt, ldx, 2); break;
            default: logits_tile(kj, qt, dp, d, xt, ldx, 1); break;
            }
        }
    }

    /* Softmax numerators in place, and the reciprocal of each row's sum. */
    float inv[OUT_ROWS];
    for (int64_t i0 = 0; i0 < r; i0 += OUT_ROWS) {
        const int64_t rows = r - i0 < OUT_ROWS ? r - i0 : OUT_ROWS;
        for (int64_t ii = 0; ii < rows; ++ii) {
            float *xi = x + (i0 + ii) * ldx;
            __m512 mx = _mm512_set1_ps(-INFINITY);
            for (int64_t j = 0; j < n; j += W)
                mx = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), v16_lanes_below(n - j), xi + j),
                                   mx);
            const __m512 mu = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
            __m512 sum = _mm512_setzero_ps();
            for (int64_t j = 0; j < n; j += W) {
                const __mmask16 m = v16_lanes_below(n - j);
                const __m512 e = _mm512_maskz_mov_ps(m, v16_exp_nonpos(_mm512_sub_ps(_mm512_loadu_ps(xi + j), mu)));
                _mm512_storeu_ps(xi + j, e); /* within the row's ldx floats */
                sum = _mm512_add_ps(sum, e);
            }
            inv[ii] = 1.0f / _mm512_reduce_add_ps(sum);
        }
        const float *xt = x + i0 * ldx;
        float *ot = o + i0 * o_step;
        for (int64_t c0 = 0; c0 < dv; c0 += OUT_NV * W) {
            switch (rows) {
            case 6: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 6); break;
            case 5: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 5); break;
            case 4: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 4); break;
            case 3: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 3); break;
            case 2: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 2); break;
            default: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 1); break;
            }
        }
    }
}
