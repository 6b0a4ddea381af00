/*
 * softmax_avx2.c - the row kernel for AVX2 + FMA, 8 floats per step. Compiled with
 * -mavx2 -mfma; only called after cpu.c has checked the CPU.
 *
 * Same three passes as attn4j_row_scalar in softmax.c, with the same float
 * operations in the same order per element; only exp (the vector exp below
 * instead of libm expf) and the order of the double-precision sum differ.
 *
 * The tail (tv % 8 columns) runs the same vector code under a lane mask
 * (vmaskmovps, which does not touch masked-out lanes' memory), so every element of
 * a row goes through the same exp. Keep masks are built with compares and blends:
 * no branch depends on the data or the mask.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define W 8 /* floats per vector */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* exp on 8 lanes, see the constants in internal.h. */
ALWAYS_INLINE __m256 exp8(__m256 x)
{
    /* Operand order matters: minps/maxps return the second operand when either is
     * NaN, so a NaN x passes through and comes out as NaN. */
    x = _mm256_max_ps(_mm256_set1_ps(ATTN4J_EXP_LO), _mm256_min_ps(_mm256_set1_ps(ATTN4J_EXP_HI), x));
    const __m256 nf = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(ATTN4J_LOG2E)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(ATTN4J_LN2_HI), x);
    r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(ATTN4J_LN2_LO), r);

    __m256 p = _mm256_set1_ps(ATTN4J_EXP_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ATTN4J_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ATTN4J_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ATTN4J_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ATTN4J_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));

    /* Scale by 2^n without ever computing a subnormal float: on x86 every
     * instruction that produces one (or underflows to 0) takes a microcode assist
     * costing ~100 cycles, and masked logits (x - max ~ -1e9) would hit it on every
     * chunk. So:
     *  - n >= -125 (normal result): p * 2^n as 2^(n>>1) * 2^(n - (n>>1)), each a
     *    normal float, the first product exact; n = 128 overflows to inf.
     *  - n <= -126 (result below 2^-126 * 1.42): the float's bit pattern is the
     *    integer round(p * 2^(n+149)) (units of 2^-149, the subnormal spacing;
     *    2^23 and above is exponent field 1, same spacing), and converting to
     *    integer rounds to nearest-even exactly as the subnormal result would.
     *    n = -150 gives round(p / 2) = 0: the underflow to +0.
     * Each branch's n is clamped into its own range so neither computes a
     * subnormal for the other's lanes. A NaN x has a NaN nf and p, so the
     * compare is false and the normal branch returns NaN. */
    const __m256i n = _mm256_cvtps_epi32(nf);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256i nn = _mm256_max_epi32(n, _mm256_set1_epi32(-125));
    const __m256i n1 = _mm256_srai_epi32(nn, 1);
    const __m256i n2 = _mm256_sub_epi32(nn, n1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    const __m256 normal = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);

    const __m256i ns = _mm256_add_epi32(_mm256_min_epi32(n, _mm256_set1_epi32(-126)), _mm256_set1_epi32(149));
    const __m256 s3 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ns, bias), 23));
    const __m256 tiny = _mm256_castsi256_ps(_mm256_cvtps_epi32(_mm256_mul_ps(p, s3)));

    const __m256 use_tiny = _mm256_cmp_ps(nf, _mm256_set1_ps(-125.5f), _CMP_LT_OQ);
    return _mm256_blendv_ps(normal, tiny, use_tiny);
}

/* All-ones in lanes k < n (n clamped to [0, 8]), zero elsewhere. */
ALWAYS_INLINE __m256i lanes_below(int64_t n)
{
    const int32_t c = (int32_t)(n < 0 ? 0 : n > W ? W : n);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* keep with the lanes whose mask byte (low 8 bytes of `bytes`) is 0 cleared. */
ALWAYS_INLINE __m256i and_mask_bytes(__m256i keep, __m128i bytes)
{
    const __m256i zero = _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_setzero_si256());
    return _mm256_andnot_si256(zero, keep);
}

/* The keep lanes of the chunk starting at column j; `n` valid columns (<= 8). The
 * tail copies its < 8 mask bytes into a zeroed buffer so no byte past the row is
 * read. */
ALWAYS_INLINE __m256i keep_lanes(const uint8_t *mask_row, int64_t j, int64_t n, int64_t keep_end,
                                 int has_mask)
{
    __m256i keep = lanes_below(keep_end - j);
    if (has_mask) {
        __m128i bytes;
        if (n == W) {
            bytes = _mm_loadl_epi64((const __m128i *)(const void *)(mask_row + j));
        } else {
            uint8_t buf[16] = {0};
            memcpy(buf, mask_row + j, (size_t)n);
            bytes = _mm_loadl_epi64((const __m128i *)(const void *)buf);
        }
        keep = and_mask_bytes(keep, bytes);
    }
    return keep;
}

ALWAYS_INLINE __m256 logit8(__m256 x, __m256i keep, int32_t convention)
{
    __m256 masked;
    if (convention == ATTN4J_MASK_REPLACE_ZERO)
        masked = _mm256_set1_ps(ATTN4J_REPLACE_ZERO_LOGIT);
    else if (convention == ATTN4J_MASK_REPLACE)
        masked = _mm256_set1_ps(ATTN4J_REPLACE_LOGIT);
    else
        masked = _mm256_sub_ps(x, _mm256_set1_ps(ATTN4J_SUBTRACT_BIAS));
    return _mm256_blendv_ps(masked, x, _mm256_castsi256_ps(keep));
}

ALWAYS_INLINE float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/* Pass 1: logits in place, returns their max. `convention` and `has_mask` are
 * constants at every call site, so each combination gets its own loop. */
ALWAYS_INLINE float pass_logits(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                                float scale, int32_t convention, int has_mask)
{
    const __m256 vscale = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + W <= tv; j += W) {
        const __m256i keep = keep_lanes(mask_row, j, W, keep_end, has_mask);
        const __m256 l = logit8(_mm256_mul_ps(_mm256_loadu_ps(row + j), vscale), keep, convention);
        _mm256_storeu_ps(row + j, l);
        vmax = _mm256_max_ps(vmax, l);
    }
    if (j < tv) {
        const __m256i tail = lanes_below(tv - j);
        const __m256i keep = keep_lanes(mask_row, j, tv - j, keep_end, has_mask);
        const __m256 l = logit8(_mm256_mul_ps(_mm256_maskload_ps(row + j, tail), vscale), keep, convention);
        _mm256_maskstore_ps(row + j, tail, l);
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), l, _mm256_castsi256_ps(tail)));
    }
    return hmax8(vmax);
}

ALWAYS_INLINE __m256d add_widened(__m256d acc, __m128 half)
{
    return _mm256_add_pd(acc, _mm256_cvtps_pd(half));
}

/* Pass 2: e = exp(logit - max) in place, returns sum(e) accumulated in double. */
ALWAYS_INLINE double pass_exp(float *row, int64_t tv, float mx)
{
    const __m256 vmx = _mm256_set1_ps(mx);
    __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + W <= tv; j += W) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), vmx));
        _mm256_storeu_ps(row + j, e);
        acc_lo = add_widened(acc_lo, _mm256_castps256_ps128(e));
        acc_hi = add_widened(acc_hi, _mm256_extractf128_ps(e, 1));
    }
    if (j < tv) {
        const __m256i tail = lanes_below(tv - j);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(row + j, tail), vmx));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
        _mm256_maskstore_ps(row + j, tail, e);
        acc_lo = add_widened(acc_lo, _mm256_castps256_ps128(e));
        acc_hi = add_widened(acc_hi, _mm256_extractf128_ps(e, 1));
    }
    const __m256d acc = _mm256_add_pd(acc_lo, acc_hi);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* Pass 3: e / sum in place; with `zero_masked` (REPLACE_ZERO) masked columns
 * become exactly +0. */
ALWAYS_INLINE void pass_normalise(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                                  float sum, int zero_masked, int has_mask)
{
    const __m256 vs = _mm256_set1_ps(sum);
    int64_t j = 0;
    for (; j + W <= tv; j += W) {
        __m256 y = _mm256_div_ps(_mm256_loadu_ps(row + j), vs);
        if (zero_masked)
            y = _mm256_and_ps(y, _mm256_castsi256_ps(keep_lanes(mask_row, j, W, keep_end, has_mask)));
        _mm256_storeu_ps(row + j, y);
    }
    if (j < tv) {
        const __m256i tail = lanes_below(tv - j);
        __m256 y = _mm256_div_ps(_mm256_maskload_ps(row + j, tail), vs);
        if (zero_masked)
            y = _mm256_and_ps(y, _mm256_castsi256_ps(keep_lanes(mask_row, j, tv - j, keep_end, has_mask)));
        _mm256_maskstore_ps(row + j, tail, y);
    }
}

void attn4j_row_avx2(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                     float scale, int32_t convention)
{
    float mx;
    if (mask_row != NULL) {
        if (convention == ATTN4J_MASK_REPLACE_ZERO)
            mx = pass_logits(row, mask_row, tv, keep_end, scale, ATTN4J_MASK_REPLACE_ZERO, 1);
        else if (convention == ATTN4J_MASK_REPLACE)
            mx = pass_logits(row, mask_row, tv, keep_end, scale, ATTN4J_MASK_REPLACE, 1);
        else
            mx = pass_logits(row, mask_row, tv, keep_end, scale, ATTN4J_MASK_SUBTRACT, 1);
    } else {
        if (convention == ATTN4J_MASK_REPLACE_ZERO)
            mx = pass_logits(row, NULL, tv, keep_end, scale, ATTN4J_MASK_REPLACE_ZERO, 0);
        else if (convention == ATTN4J_MASK_REPLACE)
            mx = pass_logits(row, NULL, tv, keep_end, scale, ATTN4J_MASK_REPLACE, 0);
        else
            mx = pass_logits(row, NULL, tv, keep_end, scale, ATTN4J_MASK_SUBTRACT, 0);
    }

    const float sum = (float)pass_exp(row, tv, mx);

    /* Keras zeroes masked probabilities by multiplying with the mask, so a row that
     * is NaN (sum is NaN) stays NaN at masked positions too: no zeroing then. */
    if (convention != ATTN4J_MASK_REPLACE_ZERO || sum != sum)
        pass_normalise(row, NULL, tv, keep_end, sum, 0, 0);
    else if (mask_row != NULL)
        pass_normalise(row, mask_row, tv, keep_end, sum, 1, 1);
    else
        pass_normalise(row, NULL, tv, keep_end, sum, 1, 0);
}

void attn4j_exp_avx2(const float *x, float *y, int64_t n)
{
    int64_t k = 0;
    for (; k + W <= n; k += W)
        _mm256_storeu_ps(y + k, exp8(_mm256_loadu_ps(x + k)));
    if (k < n) {
        const __m256i tail = lanes_below(n - k);
        _mm256_maskstore_ps(y + k, tail, exp8(_mm256_maskload_ps(x + k, tail)));
    }
}
