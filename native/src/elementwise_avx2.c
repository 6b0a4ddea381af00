/*
 * elementwise_avx2.c - dropout for AVX2: the hash of internal.h on 4 uint64 lanes,
 * two hash vectors per 8 floats. AVX2 has no 64-bit multiply, so mul64 builds the
 * low 64 bits of the product from three 32x32->64 multiplies (vpmuludq). Same
 * decision and the same float32 division as attn4j_dropout_scalar, so the result
 * is bit-identical; the last n % 8 elements take the scalar path.
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* a * c mod 2^64 per lane: with a = ah 2^32 + al and c = ch 2^32 + cl,
 * a c = al cl + 2^32 (ah cl + al ch) + 2^64 (...), the last term vanishes. */
ALWAYS_INLINE __m256i mul64(__m256i a, uint64_t c)
{
    const __m256i cl = _mm256_set1_epi64x((long long)(c & 0xFFFFFFFFu));
    const __m256i ch = _mm256_set1_epi64x((long long)(c >> 32));
    const __m256i low = _mm256_mul_epu32(a, cl);
    const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), cl),
                                           _mm256_mul_epu32(a, ch));
    return _mm256_add_epi64(low, _mm256_slli_epi64(cross, 32));
}

ALWAYS_INLINE __m256i mix4(__m256i z)
{
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 30));
    z = mul64(z, ATTN4J_DROPOUT_M1);
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 27));
    z = mul64(z, ATTN4J_DROPOUT_M2);
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

ALWAYS_INLINE __m256i hash4(__m256i counter, __m256i seed)
{
    return mix4(_mm256_xor_si256(seed, mix4(counter)));
}

void attn4j_dropout_avx2(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream)
{
    const __m256 vrate = _mm256_set1_ps(rate);
    const float keep_prob = 1.0f - rate;
    const __m256 vkeep_prob = _mm256_set1_ps(keep_prob);
    const __m256i vseed = _mm256_set1_epi64x((long long)seed);
    const __m256i eight = _mm256_set1_epi64x(8);
    /* Gathers the low dwords, a0 b0 a1 b1 ..., into a0 a1 a2 a3 b0 b1 b2 b3. */
    const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    /* Lane l of `lo` holds the counter of element i + l, of `hi` of i + 4 + l. */
    __m256i lo = _mm256_add_epi64(_mm256_set1_epi64x((long long)(stream * ATTN4J_DROPOUT_GOLDEN)),
                                  _mm256_setr_epi64x(0, 1, 2, 3));
    __m256i hi = _mm256_add_epi64(lo, _mm256_set1_epi64x(4));

    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        /* h >> 40 has 24 bits: a (non-negative) 32-bit integer, exact as a float. */
        const __m256i a = _mm256_srli_epi64(hash4(lo, vseed), 40);
        const __m256i b = _mm256_srli_epi64(hash4(hi, vseed), 40);
        const __m256i bits = _mm256_permutevar8x32_epi32(_mm256_or_si256(a, _mm256_slli_epi64(b, 32)), order);
        const __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(bits), _mm256_set1_ps(0x1.0p-24f));
        const __m256 keep = _mm256_cmp_ps(u, vrate, _CMP_GE_OQ);
        /* Dropped lanes: the AND makes them +0, whatever x held. */
        const __m256 y = _mm256_and_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), vkeep_prob), keep);
        _mm256_storeu_ps(x + i, y);
        lo = _mm256_add_epi64(lo, eight);
        hi = _mm256_add_epi64(hi, eight);
    }
    for (; i < n; ++i)
        x[i] = attn4j_dropout_uniform(seed, stream, (uint64_t)i) >= rate ? x[i] / keep_prob : 0.0f;
}
