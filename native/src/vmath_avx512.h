/*
 * vmath_avx512.h - the vector math of the AVX-512 translation units
 * (softmax_avx512.c, scores_avx512.c, activation_avx512.c), 16 floats per vector:
 * exp, tanh, sigmoid and lane masks, written once so every unit computes them
 * with the same operations. They do the same float operations as their 8-lane
 * twins in vmath_avx2.h (2^n by vscalefps instead of exponent bits, both exact),
 * so the two instruction sets agree bit for bit.
 *
 * Include it only from a unit compiled with the AVX-512 flags of
 * cmake/Attn4jCompilerFlags.cmake. Everything here is `static inline` and always
 * inlined (see internal.h for why).
 */
#ifndef ATTN4J_VMATH_AVX512_H
#define ATTN4J_VMATH_AVX512_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || \
    !defined(__AVX512DQ__) || !defined(__FMA__)
#error "vmath_avx512.h needs -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma"
#endif

#include <immintrin.h>
#include <stdint.h>

#include "internal.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Bits k < n set (n clamped to [0, 16]). */
ALWAYS_INLINE __mmask16 v16_lanes_below(int64_t n)
{
    const unsigned c = (unsigned)(n < 0 ? 0 : n > 16 ? 16 : n);
    return (__mmask16)((1u << c) - 1u);
}

/* Stores lanes [0, k) of v at p, 0 <= k < 16, with plain stores of 8, 4, 2 and 1
 * lanes. For the tail of a row that more rows follow: a masked store
 * (vmovups{k}) is as wide as the vector for the loads after it, so the next
 * row's loads that overlap its masked-out lanes wait until it reaches the cache,
 * which measured ~50 ns per row. */
ALWAYS_INLINE void v16_store_first(float *p, __m512 v, int64_t k)
{
    __m256 h = _mm512_castps512_ps256(v);
    if (k & 8) {
        _mm256_storeu_ps(p, h);
        p += 8;
        h = _mm512_extractf32x8_ps(v, 1);
    }
    __m128 q = _mm256_castps256_ps128(h);
    if (k & 4) {
        _mm_storeu_ps(p, q);
        p += 4;
        q = _mm256_extractf128_ps(h, 1);
    }
    if (k & 2) {
        _mm_storel_epi64((__m128i *)(void *)p, _mm_castps_si128(q));
        p += 2;
        q = _mm_movehl_ps(q, q);
    }
    if (k & 1)
        _mm_store_ss(p, q);
}

/* The part of exp shared by v16_exp and v16_exp_pos (constants in internal.h):
 * *nf = rint(x log2(e)) and the polynomial p ~ exp(x - nf ln2), so that
 * exp(x) = p 2^nf. A NaN x gives NaN in both. */
ALWAYS_INLINE __m512 v16_exp_reduced(__m512 x, __m512 *nf)
{
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(ATTN4J_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(ATTN4J_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(ATTN4J_LN2_LO), r);

    __m512 p = _mm512_set1_ps(ATTN4J_EXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    *nf = n;
    return p;
}

/* exp on 16 lanes over the whole float range, see v8_exp in vmath_avx2.h for the
 * scaling by 2^n, done here with vscalefps: normal results directly, results
 * below 2^-126 as the integer bit pattern round(p * 2^(n+149)), so no
 * instruction ever produces a subnormal float (a ~100-cycle microcode assist on
 * x86, which every masked logit would otherwise pay). */
ALWAYS_INLINE __m512 v16_exp(__m512 x)
{
    /* minps/maxps return the second operand when either is NaN: NaN passes. */
    x = _mm512_max_ps(_mm512_set1_ps(ATTN4J_EXP_LO), _mm512_min_ps(_mm512_set1_ps(ATTN4J_EXP_HI), x));
    __m512 nf;
    const __m512 p = v16_exp_reduced(x, &nf);

    const __m512 normal = _mm512_scalef_ps(p, _mm512_max_ps(_mm512_set1_ps(-125.0f), nf));
    const __m512 ns = _mm512_add_ps(_mm512_min_ps(_mm512_set1_ps(-126.0f), nf), _mm512_set1_ps(149.0f));
    const __m512 tiny = _mm512_castsi512_ps(_mm512_cvtps_epi32(_mm512_scalef_ps(p, ns)));
    /* False for NaN: the normal branch carries the NaN. */
    const __mmask16 use_tiny = _mm512_cmp_ps_mask(nf, _mm512_set1_ps(-125.5f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(use_tiny, normal, tiny);
}

/* exp(x) for x <= 0, -inf or NaN: the shifted logits x - max of a softmax. Lanes
 * below ATTN4J_EXP_NONPOS_LO (-86, where exp is under 2^-124) give +0 instead of
 * a tiny or subnormal number, so 2^n stays a normal float and one vscalefps
 * makes the result; there is no clamp and no subnormal branch (v16_exp's cost
 * in half). NaN gives NaN (the compare is false for it). */
ALWAYS_INLINE __m512 v16_exp_nonpos(__m512 x)
{
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(ATTN4J_EXP_NONPOS_LO), _CMP_NLT_UQ);
    __m512 nf;
    const __m512 p = v16_exp_reduced(x, &nf);
    return _mm512_maskz_scalef_ps(keep, p, nf);
}

/* exp(z) for z in [0, 20] or NaN (2|x| after the clamp in v16_tanh): v16_exp
 * without its clamp and underflow handling, which these arguments never need;
 * 2^n with n <= 29 is a plain vscalefps. */
ALWAYS_INLINE __m512 v16_exp_pos(__m512 z)
{
    __m512 nf;
    const __m512 p = v16_exp_reduced(z, &nf);
    return _mm512_scalef_ps(p, nf);
}

/* tanh on 16 lanes, see the constants in internal.h. */
ALWAYS_INLINE __m512 v16_tanh(__m512 x)
{
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512 a = _mm512_andnot_ps(sign, x);

    /* |x| < 0.875: a + a^3 P(a^2). */
    const __m512 s = _mm512_mul_ps(a, a);
    __m512 p = _mm512_set1_ps(ATTN4J_TANH_C15);
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C13));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C11));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C9));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C7));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C5));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C3));
    const __m512 small = _mm512_fmadd_ps(p, _mm512_mul_ps(a, s), a);

    /* Otherwise 1 - 2 / (exp(2a) + 1). minps returns its second operand when
     * either is NaN, so a NaN a passes the clamp and comes out NaN. */
    const __m512 z = _mm512_min_ps(_mm512_set1_ps(ATTN4J_TANH_CLAMP), a);
    const __m512 e = v16_exp_pos(_mm512_add_ps(z, z));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 large = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));

    /* False for NaN: the large branch carries the NaN. */
    const __mmask16 is_small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(ATTN4J_TANH_SMALL), _CMP_LT_OQ);
    const __m512 t = _mm512_mask_blend_ps(is_small, large, small);
    return _mm512_or_ps(t, _mm512_and_ps(x, sign));
}

/* Keras's sigmoid, 1 / (1 + exp(-x)) in float32, with v16_exp (see v8_sigmoid). */
ALWAYS_INLINE __m512 v16_sigmoid(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 e = v16_exp(_mm512_xor_ps(x, _mm512_set1_ps(-0.0f)));
    return _mm512_div_ps(one, _mm512_add_ps(one, e));
}

#endif /* ATTN4J_VMATH_AVX512_H */
