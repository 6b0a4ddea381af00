/*
 * gemm_avx2.c - attn4j_small_gemm_f32 for AVX2 + FMA, compiled with the AVX2
 * flags; only called after cpu.c has checked the CPU. The plan of gemm_avx512.c
 * (column blocks outer, m x NV accumulators held over the whole of k, w streamed
 * once, software prefetch) with 8 lanes and 16 registers: NV = 8 vectors for one
 * row down to 2 for six. A block of 3 vectors (96 bytes) shares a 64-byte line
 * with the next block, which finds it in L1.
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"
#include "vmath_avx2.h"

#define W 8
/* Rows of w ahead that are prefetched (see gemm_avx512.c). */
#ifndef PREFETCH
#define PREFETCH 8
#endif

/* Vectors per column block for m rows: m * NV accumulators and NV loaded
 * vectors within 16 registers (for m = 4, 12 + 3 + the broadcast). Seven and
 * eight rows run as 4 + 3 and 4 + 4, the second group over each block right
 * after the first (see gemm_rows). Measured on Zen 5 under ATTN4J_ISA=avx2:
 * m = 2 with NV = 6 vs 4, m = 3 with 4 vs 3: 10-30% faster; m = 8 as 4 + 4
 * vs one group of NV = 1: ~10% faster at n = 512. */
#define NV_MAX 8
#ifndef NV_R1
#define NV_R1 8
#endif
#ifndef NV_R2
#define NV_R2 6
#endif
#ifndef NV_R3
#define NV_R3 4
#endif
#ifndef NV_R4
#define NV_R4 3
#endif
#ifndef NV_R5
#define NV_R5 2
#endif
#ifndef NV_R6
#define NV_R6 2
#endif
_Static_assert(NV_R1 <= NV_MAX && NV_R2 <= NV_MAX && NV_R3 <= NV_MAX && NV_R4 <= NV_MAX && NV_R5 <= NV_MAX &&
                   NV_R6 <= NV_MAX,
               "NV_R* <= NV_MAX");

/*
 * Rows r < R, columns [j0, j0 + NV W) of y (R, NV, tail literals at each call
 * site). tail: the block is the last one and holds n - j0 < NV W columns, read
 * and written under lane masks. pf_next: the offset in w of the next block's
 * first column, or -1 for the last block.
 */
ALWAYS_INLINE void column_block(const float *x, int64_t k, const float *w, int64_t n, int64_t j0,
                                int64_t pf_next, const float *bias, float *y, const int R, const int NV,
                                const int tail)
{
    const int64_t live = n - j0;
    __m256i lanes[NV_MAX];
    int64_t off[NV_MAX]; /* a dead vector of the tail block addresses column j0: no pointer past w */
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) {
        lanes[c] = v8_lanes_below(tail ? live - c * W : W);
        off[c] = !tail || c * W < live ? c * W : 0;
    }
    /* Prefetch offsets: rows PREFETCH.. of this block, then (from pf_switch on)
     * rows 0.. of the next; none for k <= PREFETCH. */
    const int64_t pf_switch = k - PREFETCH;
    const int64_t pf_stop = k <= PREFETCH ? 0 : pf_next < 0 ? pf_switch : k;
    int64_t pf = pf_stop > 0 ? PREFETCH * n + j0 : 0; /* k > PREFETCH: within w */
    const float *wi = w + j0;
    /* Chunks of ATTN4J_GEMM_CHUNK rows of w, running totals in y (see gemm_avx512.c). */
    for (int64_t i0 = 0; i0 < k; i0 += ATTN4J_GEMM_CHUNK) {
        const int64_t i1 = k - i0 <= ATTN4J_GEMM_CHUNK ? k : i0 + ATTN4J_GEMM_CHUNK;
        __m256 acc[ATTN4J_GEMM_MAX_ROWS][NV_MAX];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
            for (int c = 0; c < NV; ++c)
                acc[r][c] = _mm256_setzero_ps();
        for (int64_t i = i0; i < i1; ++i, wi += n) {
            if (i < pf_stop) {
                if (i == pf_switch)
                    pf = pf_next;
#pragma GCC unroll 8
                for (int c = 0; c < NV; c += 2) /* one per 64-byte line */
                    if (!tail || off[c] == c * W)
                        _mm_prefetch((const char *)(w + pf + off[c]), _MM_HINT_T0);
                pf += n;
            }
            __m256 wv[NV_MAX];
#pragma GCC unroll 8
            for (int c = 0; c < NV; ++c)
                wv[c] = tail ? _mm256_maskload_ps(wi + off[c], lanes[c]) : _mm256_loadu_ps(wi + c * W);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m256 b = _mm256_broadcast_ss(x + r * k + i);
#pragma GCC unroll 8
                for (int c = 0; c < NV; ++c)
                    acc[r][c] = _mm256_fmadd_ps(b, wv[c], acc[r][c]);
            }
        }

        /* total = chunk (the first), total + chunk (the others); + bias after the last. */
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            float *yr = y + r * n + j0;
#pragma GCC unroll 8
            for (int c = 0; c < NV; ++c) {
                if (tail && off[c] != c * W)
                    continue;
                __m256 v = acc[r][c];
                if (i0 > 0)
                    v = _mm256_add_ps(tail ? _mm256_maskload_ps(yr + c * W, lanes[c]) : _mm256_loadu_ps(yr + c * W),
                                      v);
                if (bias != NULL && i1 == k)
                    v = _mm256_add_ps(v, tail ? _mm256_maskload_ps(bias + j0 + c * W, lanes[c])
                                              : _mm256_loadu_ps(bias + j0 + c * W));
                if (tail)
                    _mm256_maskstore_ps(yr + c * W, lanes[c], v);
                else
                    _mm256_storeu_ps(yr + c * W, v);
            }
        }
    }
}

/* R rows, and when R2 > 0 R2 more rows in a second pass over each block, which
 * finds the block's lines in L1 / L2 (x and y of those rows R rows further on). */
ALWAYS_INLINE void gemm_rows(const float *x, int64_t k, const float *w, int64_t n, const float *bias, float *y,
                             const int R, const int R2, const int NV)
{
    const int64_t step = NV * W;
    int64_t j0 = 0;
    for (; j0 + step <= n; j0 += step) {
        column_block(x, k, w, n, j0, j0 + step < n ? j0 + step : -1, bias, y, R, NV, 0);
        if (R2 > 0)
            column_block(x + R * k, k, w, n, j0, -1, bias, y + R * n, R2, NV, 0);
    }
    if (j0 < n) {
        column_block(x, k, w, n, j0, -1, bias, y, R, NV, 1);
        if (R2 > 0)
            column_block(x + R * k, k, w, n, j0, -1, bias, y + R * n, R2, NV, 1);
    }
}

void attn4j_gemm_avx2(const float *x, int64_t m, int64_t k, const float *w, int64_t n, const float *bias,
                      float *y)
{
    switch (m) {
    case 1: gemm_rows(x, k, w, n, bias, y, 1, 0, NV_R1); break;
    case 2: gemm_rows(x, k, w, n, bias, y, 2, 0, NV_R2); break;
    case 3: gemm_rows(x, k, w, n, bias, y, 3, 0, NV_R3); break;
    case 4: gemm_rows(x, k, w, n, bias, y, 4, 0, NV_R4); break;
    case 5: gemm_rows(x, k, w, n, bias, y, 5, 0, NV_R5); break;
    case 6: gemm_rows(x, k, w, n, bias, y, 6, 0, NV_R6); break;
    case 7: gemm_rows(x, k, w, n, bias, y, 4, 3, NV_R4); break;
    default: gemm_rows(x, k, w, n, bias, y, 4, 4, NV_R4); break;
    }
}
