/*
 * elementwise_avx512.c - dropout for AVX-512 (F, BW, VL, DQ): the hash of
 * internal.h on 8 uint64 lanes (vpmullq is AVX-512DQ), two hash vectors per 16
 * floats. Same decision and the same float32 division as attn4j_dropout_scalar,
 * so the result is bit-identical; the tail runs under a lane mask.
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE __m512i mix8(__m512i z)
{
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 30));
    z = _mm512_mullo_epi64(z, _mm512_set1_epi64((long long)ATTN4J_DROPOUT_M1));
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 27));
    z = _mm512_mullo_epi64(z, _mm512_set1_epi64((long long)ATTN4J_DROPOUT_M2));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/* The 8 uniforms of counters (stream * golden + i) in `counter`: h >> 40 has 24
 * bits, so its low 32-bit half converts to float exactly. */
ALWAYS_INLINE __m256 uniform8(__m512i counter, __m512i seed)
{
    const __m512i h = mix8(_mm512_xor_si512(seed, mix8(counter)));
    const __m256i bits = _mm512_cvtepi64_epi32(_mm512_srli_epi64(h, 40));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(bits), _mm256_set1_ps(0x1.0p-24f));
}

void attn4j_dropout_avx512(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream)
{
    const __m512 vrate = _mm512_set1_ps(rate);
    const __m512 keep_prob = _mm512_set1_ps(1.0f - rate);
    const __m512i vseed = _mm512_set1_epi64((long long)seed);
    const __m512i eight = _mm512_set1_epi64(8);
    const __m512i sixteen = _mm512_set1_epi64(16);
    /* Lane l of `lo` holds the counter of element i + l, of `hi` of i + 8 + l. */
    __m512i lo = _mm512_add_epi64(_mm512_set1_epi64((long long)(stream * ATTN4J_DROPOUT_GOLDEN)),
                                  _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    __m512i hi = _mm512_add_epi64(lo, eight);

    for (int64_t i = 0; i < n; i += 16) {
        const __m512 u = _mm512_insertf32x8(_mm512_castps256_ps512(uniform8(lo, vseed)),
                                            uniform8(hi, vseed), 1);
        const __mmask16 valid = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __mmask16 keep = _mm512_mask_cmp_ps_mask(valid, u, vrate, _CMP_GE_OQ);
        /* Dropped lanes: +0 (maskz), whatever x held. */
        const __m512 y = _mm512_maskz_div_ps(keep, _mm512_maskz_loadu_ps(valid, x + i), keep_prob);
        _mm512_mask_storeu_ps(x + i, valid, y);
        lo = _mm512_add_epi64(lo, sixteen);
        hi = _mm512_add_epi64(hi, sixteen);
    }
}
