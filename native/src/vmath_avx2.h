/*
 * vmath_avx2.h - the vector math of the AVX2 translation units (softmax_avx2.c,
 * scores_avx2.c, activation_avx2.c), 8 floats per vector: exp, tanh, sigmoid and
 * lane masks, written once so every unit computes them with the same operations.
 *
 * Include it only from a unit compiled with -mavx2 -mfma. Everything here is
 * `static inline` and always inlined, so each unit gets its own copy and no
 * out-of-line AVX2 code can be shared with a unit built for the baseline ISA
 * (see internal.h).
 */
#ifndef ATTN4J_VMATH_AVX2_H
#define ATTN4J_VMATH_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__)
#error "vmath_avx2.h needs -mavx2 -mfma"
#endif

#include <immintrin.h>
#include <stdint.h>

#include "internal.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* All-ones in lanes k < n (n clamped to [0, 8]), zero elsewhere. */
ALWAYS_INLINE __m256i v8_lanes_below(int64_t n)
{
    const int32_t c = (int32_t)(n < 0 ? 0 : n > 8 ? 8 : n);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Stores lanes [0, k) of v at p, 0 <= k < 8, with plain stores of 4, 2 and 1
 * lanes. For the tail of a row that more rows follow: the loads of the next row
 * that overlap the masked-out lanes of a vmaskmovps store wait until it reaches
 * the cache, which measured ~40 ns per row. */
ALWAYS_INLINE void v8_store_first(float *p, __m256 v, int64_t k)
{
    __m128 q = _mm256_castps256_ps128(v);
    if (k & 4) {
        _mm_storeu_ps(p, q);
        p += 4;
        q = _mm256_extractf128_ps(v, 1);
    }
    if (k & 2) {
        _mm_storel_epi64((__m128i *)(void *)p, _mm_castps_si128(q));
        p += 2;
        q = _mm_movehl_ps(q, q);
    }
    if (k & 1)
        _mm_store_ss(p, q);
}

/* The part of exp shared by v8_exp and v8_exp_pos (constants in internal.h):
 * *nf = rint(x log2(e)) and the polynomial p ~ exp(x - nf ln2), so that
 * exp(x) = p 2^nf. A NaN x gives NaN in both. */
ALWAYS_INLINE __m256 v8_exp_reduced(__m256 x, __m256 *nf)
{
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(ATTN4J_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(ATTN4J_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(ATTN4J_LN2_LO), r);

    __m256 p = _mm256_set1_ps(ATTN4J_EXP_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ATTN4J_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ATTN4J_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ATTN4J_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ATTN4J_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    *nf = n;
    return p;
}

/* exp on 8 lanes over the whole float range: +0 below -103.97, +inf above 88.72,
 * NaN for NaN. */
ALWAYS_INLINE __m256 v8_exp(__m256 x)
{
    /* Operand order matters: minps/maxps return the second operand when either is
     * NaN, so a NaN x passes through and comes out as NaN. */
    x = _mm256_max_ps(_mm256_set1_ps(ATTN4J_EXP_LO), _mm256_min_ps(_mm256_set1_ps(ATTN4J_EXP_HI), x));
    __m256 nf;
    const __m256 p = v8_exp_reduced(x, &nf);

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

/* exp(x) for x <= 0, -inf or NaN, see v16_exp_nonpos: the same operations, 2^n
 * made from its exponent bits (a normal float for n >= -125), then one exact
 * product. */
ALWAYS_INLINE __m256 v8_exp_nonpos(__m256 x)
{
    const __m256 drop = _mm256_cmp_ps(x, _mm256_set1_ps(ATTN4J_EXP_NONPOS_LO), _CMP_LT_OQ);
    __m256 nf;
    const __m256 p = v8_exp_reduced(x, &nf);
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nf), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(drop, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* exp(z) for z in [0, 20] or NaN (2|x| after the clamp in v8_tanh): v8_exp
 * without the clamp and the underflow handling, which these arguments never
 * need. n <= 29, so 2^n is built from exponent bits directly. A NaN z makes p
 * NaN, and NaN times whatever the bits of 2^n became is NaN. */
ALWAYS_INLINE __m256 v8_exp_pos(__m256 z)
{
    __m256 nf;
    const __m256 p = v8_exp_reduced(z, &nf);
    const __m256i biased = _mm256_add_epi32(_mm256_cvtps_epi32(nf), _mm256_set1_epi32(127));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23)));
}

/* tanh on 8 lanes, see the constants in internal.h. */
ALWAYS_INLINE __m256 v8_tanh(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, x);

    /* |x| < 0.875: a + a^3 P(a^2). */
    const __m256 s = _mm256_mul_ps(a, a);
    __m256 p = _mm256_set1_ps(ATTN4J_TANH_C15);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(ATTN4J_TANH_C13));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(ATTN4J_TANH_C11));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(ATTN4J_TANH_C9));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(ATTN4J_TANH_C7));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(ATTN4J_TANH_C5));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(ATTN4J_TANH_C3));
    const __m256 small = _mm256_fmadd_ps(p, _mm256_mul_ps(a, s), a);

    /* Otherwise 1 - 2 / (exp(2a) + 1). minps returns its second operand when
     * either is NaN, so a NaN a passes the clamp and comes out NaN. */
    const __m256 z = _mm256_min_ps(_mm256_set1_ps(ATTN4J_TANH_CLAMP), a);
    const __m256 e = v8_exp_pos(_mm256_add_ps(z, z));
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 large = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));

    /* False for NaN: the large branch carries the NaN. */
    const __m256 is_small = _mm256_cmp_ps(a, _mm256_set1_ps(ATTN4J_TANH_SMALL), _CMP_LT_OQ);
    const __m256 t = _mm256_blendv_ps(large, small, is_small);
    return _mm256_or_ps(t, _mm256_and_ps(x, sign));
}

/* Keras's sigmoid, 1 / (1 + exp(-x)) in float32, with v8_exp: exp(-x) = +inf
 * (x < -88.72) gives +0 and exp(-x) = 0 gives 1, NaN stays NaN. */
ALWAYS_INLINE __m256 v8_sigmoid(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 e = v8_exp(_mm256_xor_ps(x, _mm256_set1_ps(-0.0f)));
    return _mm256_div_ps(one, _mm256_add_ps(one, e));
}

#endif /* ATTN4J_VMATH_AVX2_H */
