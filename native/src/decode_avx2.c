/*
 * decode_avx2.c - the work item of attn4j_decode_attention_f32 for AVX2 + FMA,
 * compiled with the AVX2 flags; only called after cpu.c has checked the CPU. The
 * item and its workspace are described in decode.h; the plan is the AVX-512
 * one's (decode_avx512.c) with 8 lanes: logit tiles of R <= 8 query rows, output
 * chunks of 16 channels (2 vectors, one cache line of a value row) by tiles of
 * R <= 4 rows (8 accumulators of the 16 registers).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "decode.h"
#include "vmath_avx2.h"

#define W 8
#define LOGIT_ROWS 8
#define OUT_ROWS 4
#define OUT_NV 2
/* Keys ahead that the software prefetch asks for (see decode_avx512.c). */
#define PREFETCH 32

ALWAYS_INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

ALWAYS_INLINE float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* x[ii * ldx] = qs_ii . kj for ii < R (R a literal at each call site). */
ALWAYS_INLINE void logits_tile(const float *kj, const float *qs, int64_t dp, int64_t d, float *x, int64_t ldx,
                               const int R)
{
    __m256 acc[LOGIT_ROWS];
    for (int ii = 0; ii < R; ++ii)
        acc[ii] = _mm256_setzero_ps();
    for (int64_t p0 = 0; p0 < dp; p0 += W) {
        const __m256 kv = _mm256_maskload_ps(kj + p0, v8_lanes_below(d - p0));
        for (int ii = 0; ii < R; ++ii)
            acc[ii] = _mm256_fmadd_ps(_mm256_load_ps(qs + ii * dp + p0), kv, acc[ii]);
    }
    for (int ii = 0; ii < R; ++ii)
        x[ii * ldx] = hsum8(acc[ii]);
}

/* Rows ii < R of the output chunk [c0, c0 + 16): o_ii = inv[ii] * sum_j x[ii][j] v_j. */
ALWAYS_INLINE void output_tile(const float *v, int64_t ldv, int64_t n, int64_t dv, int64_t c0, const float *x,
                               int64_t ldx, const float *inv, float *o, int64_t o_step, const int R)
{
    __m256 acc[OUT_ROWS][OUT_NV];
    __m256i lanes[OUT_NV];
    for (int cv = 0; cv < OUT_NV; ++cv)
        lanes[cv] = v8_lanes_below(dv - c0 - cv * W);
    for (int ii = 0; ii < R; ++ii)
        for (int cv = 0; cv < OUT_NV; ++cv)
            acc[ii][cv] = _mm256_setzero_ps();
    const float *vj = v + c0;
    for (int64_t j = 0; j < n; ++j, vj += ldv) {
        _mm_prefetch((const char *)(vj + PREFETCH * ldv), _MM_HINT_T0);
        __m256 vv[OUT_NV];
        for (int cv = 0; cv < OUT_NV; ++cv)
            vv[cv] = _mm256_maskload_ps(vj + cv * W, lanes[cv]);
        for (int ii = 0; ii < R; ++ii) {
            const __m256 e = _mm256_broadcast_ss(x + ii * ldx + j);
            for (int cv = 0; cv < OUT_NV; ++cv)
                acc[ii][cv] = _mm256_fmadd_ps(e, vv[cv], acc[ii][cv]);
        }
    }
    for (int ii = 0; ii < R; ++ii) {
        const __m256 s = _mm256_set1_ps(inv[ii]);
        for (int cv = 0; cv < OUT_NV; ++cv)
            _mm256_maskstore_ps(o + ii * o_step + c0 + cv * W, lanes[cv], _mm256_mul_ps(acc[ii][cv], s));
    }
}

void attn4j_decode_item_avx2(const float *q, int64_t q_step, int64_t r, const float *k, int64_t ldk,
                             const float *v, int64_t ldv, int64_t n, int64_t d, int64_t dv, float scale,
                             float *qs, float *x, int64_t ldx, float *o, int64_t o_step)
{
    const int64_t dp = attn4j_decode_pad(d);
    const __m256 sc = _mm256_set1_ps(scale);
    for (int64_t i = 0; i < r; ++i)
        for (int64_t p0 = 0; p0 < dp; p0 += W)
            _mm256_store_ps(qs + i * dp + p0,
                            _mm256_mul_ps(_mm256_maskload_ps(q + i * q_step + p0, v8_lanes_below(d - p0)), sc));

    const float *kj = k;
    for (int64_t j = 0; j < n; ++j, kj += ldk) {
        for (int64_t p0 = 0; p0 < d; p0 += 16)
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

    float inv[OUT_ROWS];
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int64_t i0 = 0; i0 < r; i0 += OUT_ROWS) {
        const int64_t rows = r - i0 < OUT_ROWS ? r - i0 : OUT_ROWS;
        for (int64_t ii = 0; ii < rows; ++ii) {
            float *xi = x + (i0 + ii) * ldx;
            __m256 mx = ninf;
            for (int64_t j = 0; j < n; j += W) {
                const __m256 m = _mm256_castsi256_ps(v8_lanes_below(n - j));
                mx = _mm256_max_ps(_mm256_blendv_ps(ninf, _mm256_loadu_ps(xi + j), m), mx);
            }
            const __m256 mu = _mm256_set1_ps(hmax8(mx));
            __m256 sum = _mm256_setzero_ps();
            for (int64_t j = 0; j < n; j += W) {
                const __m256 m = _mm256_castsi256_ps(v8_lanes_below(n - j));
                const __m256 e = _mm256_and_ps(m, v8_exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(xi + j), mu)));
                _mm256_storeu_ps(xi + j, e); /* within the row's ldx floats */
                sum = _mm256_add_ps(sum, e);
            }
            inv[ii] = 1.0f / hsum8(sum);
        }
        const float *xt = x + i0 * ldx;
        float *ot = o + i0 * o_step;
        for (int64_t c0 = 0; c0 < dv; c0 += OUT_NV * W) {
            switch (rows) {
            case 4: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 4); break;
            case 3: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 3); break;
            case 2: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 2); break;
            default: output_tile(v, ldv, n, dv, c0, xt, ldx, inv, ot, o_step, 1); break;
            }
        }
    }
}
