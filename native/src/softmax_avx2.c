/*
 * softmax_avx2.c - the softmax row kernel for AVX2 + FMA, 8 floats per step.
 * Compiled with -mavx2 -mfma; only called after cpu.c has checked the CPU.
 *
 * Same three passes as attn4j_softmax_row_scalar in softmax.c, with the same float
 * operations in the same order per element; only exp (v8_exp of vmath_avx2.h
 * instead of libm expf) and the order of the double-precision sum differ. Keep
 * masks are built with compares and blends: no branch depends on the data or the
 * mask.
 *
 * The tail (n % 8 columns) goes through the same vector code under a lane mask,
 * so every element of a row goes through the same exp; its vector stays in a
 * register from pass 1 to pass 3 and is stored once, at the end, with plain
 * stores (v8_store_first): the loads of the next row would wait for a vmaskmovps
 * store of the tail to reach the cache, ~40 ns per row.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "vmath_avx2.h"

#define W 8 /* floats per vector */

/* The mask bytes of the chunk at j, `n` valid (<= 8), in the low 8 bytes. The
 * tail copies its < 8 bytes into a zeroed buffer so no byte past the row is
 * read. */
ALWAYS_INLINE __m128i load_bytes(const uint8_t *m, int64_t j, int64_t n)
{
    if (n == W)
        return _mm_loadl_epi64((const __m128i *)(const void *)(m + j));
    uint8_t buf[16] = {0};
    memcpy(buf, m + j, (size_t)n);
    return _mm_loadl_epi64((const __m128i *)(const void *)buf);
}

/* All-ones in the lanes of the chunk at j (n valid columns) that are kept: inside
 * [lo, hi) and allowed by m1 (and, with nmasks == 2, m2): a byte of either that
 * is 0 masks its column. Only called when the row has some masking. */
ALWAYS_INLINE __m256i keep_lanes(const uint8_t *m1, const uint8_t *m2, int64_t j, int64_t n, int64_t lo,
                                 int64_t hi, int nmasks)
{
    __m256i keep = _mm256_andnot_si256(v8_lanes_below(lo - j), v8_lanes_below(hi - j));
    if (nmasks >= 1) {
        __m128i bytes = load_bytes(m1, j, n);
        if (nmasks == 2)
            bytes = _mm_min_epu8(bytes, load_bytes(m2, j, n));
        const __m256i zero = _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_setzero_si256());
        keep = _mm256_andnot_si256(zero, keep);
    }
    return keep;
}

ALWAYS_INLINE __m256 masked8(__m256 v, int32_t convention)
{
    if (convention == ATTN4J_MASK_REPLACE_ZERO)
        return _mm256_set1_ps(ATTN4J_REPLACE_ZERO_LOGIT);
    if (convention == ATTN4J_MASK_REPLACE)
        return _mm256_set1_ps(ATTN4J_REPLACE_LOGIT);
    return _mm256_sub_ps(v, _mm256_set1_ps(ATTN4J_SUBTRACT_BIAS));
}

/* The logits of the chunk at j from v = scale * scores. */
ALWAYS_INLINE __m256 logit8(__m256 v, const uint8_t *m1, const uint8_t *m2, int64_t j, int64_t n,
                            int64_t lo, int64_t hi, int32_t convention, int nmasks, int masking)
{
    if (!masking)
        return v;
    const __m256i keep = keep_lanes(m1, m2, j, n, lo, hi, nmasks);
    return _mm256_blendv_ps(masked8(v, convention), v, _mm256_castsi256_ps(keep));
}

/* e / s, and for REPLACE_ZERO +0 where the chunk is masked. */
ALWAYS_INLINE __m256 normalise8(__m256 e, __m256 vs, const uint8_t *m1, const uint8_t *m2, int64_t j,
                                int64_t n, int64_t lo, int64_t hi, int32_t convention, int nmasks,
                                int masking)
{
    const __m256 y = _mm256_div_ps(e, vs);
    if (convention == ATTN4J_MASK_REPLACE_ZERO && masking)
        return _mm256_and_ps(y, _mm256_castsi256_ps(keep_lanes(m1, m2, j, n, lo, hi, nmasks)));
    return y;
}

ALWAYS_INLINE float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

ALWAYS_INLINE __m256d add_widened(__m256d acc, __m128 half)
{
    return _mm256_add_pd(acc, _mm256_cvtps_pd(half));
}

/* The row kernel; `convention`, `nmasks` (byte masks present: 0, 1, 2) and
 * `masking` (any keep test at all: byte masks or a narrower range) are constants
 * at every call site, so each combination gets its own loops. */
ALWAYS_INLINE float row_impl(float *x, const uint8_t *m1, const uint8_t *m2, int64_t n, int64_t lo,
                             int64_t hi, int64_t n_const, float scale, int32_t convention, int nmasks,
                             int masking)
{
    const int64_t body = n - n % W, n_tail = n - body;
    const __m256i tail = v8_lanes_below(n_tail);

    /* Pass 1: logits, and their max. */
    const __m256 vscale = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (int64_t j = 0; j < body; j += W) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), vscale);
        const __m256 l = logit8(v, m1, m2, j, W, lo, hi, convention, nmasks, masking);
        _mm256_storeu_ps(x + j, l);
        vmax = _mm256_max_ps(vmax, l);
    }
    __m256 t = _mm256_setzero_ps(); /* the tail, kept in this register */
    if (n_tail > 0) {
        const __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + body, tail), vscale);
        t = logit8(v, m1, m2, body, n_tail, lo, hi, convention, nmasks, masking);
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), t, _mm256_castsi256_ps(tail)));
    }
    float mx = hmax8(vmax);
    const float c = convention == ATTN4J_MASK_REPLACE_ZERO ? ATTN4J_REPLACE_ZERO_LOGIT : ATTN4J_REPLACE_LOGIT;
    if (n_const > 0)
        mx = c > mx ? c : mx;

    /* Pass 2: e = exp(logit - max), summed in double. */
    const __m256 vmx = _mm256_set1_ps(mx);
    __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
    for (int64_t j = 0; j < body; j += W) {
        const __m256 e = v8_exp(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmx));
        _mm256_storeu_ps(x + j, e);
        acc_lo = add_widened(acc_lo, _mm256_castps256_ps128(e));
        acc_hi = add_widened(acc_hi, _mm256_extractf128_ps(e, 1));
    }
    if (n_tail > 0) {
        t = _mm256_and_ps(v8_exp(_mm256_sub_ps(t, vmx)), _mm256_castsi256_ps(tail));
        acc_lo = add_widened(acc_lo, _mm256_castps256_ps128(t));
        acc_hi = add_widened(acc_hi, _mm256_extractf128_ps(t, 1));
    }
    const __m256d acc = _mm256_add_pd(acc_lo, acc_hi);
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
    s2 = _mm_add_sd(s2, _mm_unpackhi_pd(s2, s2));
    double sum = _mm_cvtsd_f64(s2);
    float e_c = 0.0f;
    if (n_const > 0) {
        e_c = _mm256_cvtss_f32(v8_exp(_mm256_set1_ps(c - mx)));
        sum += (double)n_const * (double)e_c;
    }

    /* Pass 3: e / sum; the tail's only store. */
    const float s = (float)sum;
    const __m256 vs = _mm256_set1_ps(s);
    for (int64_t j = 0; j < body; j += W) {
        const __m256 y = normalise8(_mm256_loadu_ps(x + j), vs, m1, m2, j, W, lo, hi, convention, nmasks,
                                    masking);
        _mm256_storeu_ps(x + j, y);
    }
    if (n_tail > 0)
        v8_store_first(x + body, normalise8(t, vs, m1, m2, body, n_tail, lo, hi, convention, nmasks, masking),
                       n_tail);
    /* Divide only when there are such columns: the divider is pass 3's
     * bottleneck, and a row of one vector would pay for it. */
    return convention == ATTN4J_MASK_REPLACE_ZERO || n_const == 0 ? 0.0f : e_c / s;
}

#define ROW_CASES(conv)                                                                        \
    do {                                                                                       \
        if (!masking)                                                                          \
            return row_impl(x, NULL, NULL, n, lo, hi, n_const, scale, conv, 0, 0);             \
        if (m1 == NULL)                                                                        \
            return row_impl(x, NULL, NULL, n, lo, hi, n_const, scale, conv, 0, 1);             \
        if (m2 == NULL)                                                                        \
            return row_impl(x, m1, NULL, n, lo, hi, n_const, scale, conv, 1, 1);               \
        return row_impl(x, m1, m2, n, lo, hi, n_const, scale, conv, 2, 1);                     \
    } while (0)

float attn4j_softmax_row_avx2(float *x, const uint8_t *m1, const uint8_t *m2, int64_t n, int64_t lo,
                              int64_t hi, int64_t n_const, float scale, int32_t convention)
{
    const int masking = m1 != NULL || lo > 0 || hi < n;
    if (convention == ATTN4J_MASK_REPLACE_ZERO)
        ROW_CASES(ATTN4J_MASK_REPLACE_ZERO);
    if (convention == ATTN4J_MASK_REPLACE)
        ROW_CASES(ATTN4J_MASK_REPLACE);
    ROW_CASES(ATTN4J_MASK_SUBTRACT);
}

void attn4j_exp_avx2(const float *x, float *y, int64_t n)
{
    int64_t k = 0;
    for (; k + W <= n; k += W)
        _mm256_storeu_ps(y + k, v8_exp(_mm256_loadu_ps(x + k)));
    if (k < n) {
        const __m256i tail = v8_lanes_below(n - k);
        _mm256_maskstore_ps(y + k, tail, v8_exp(_mm256_maskload_ps(x + k, tail)));
    }
}
