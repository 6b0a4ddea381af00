/*
 * gemm_avx512.c - attn4j_small_gemm_f32 for AVX-512 (F, BW, VL, DQ), compiled
 * with the AVX-512 flags; only called after cpu.c has checked the CPU.
 *
 * Column blocks outer: for a block of NV vectors (16 NV columns) and all m rows,
 * the m x NV accumulators stay in registers for the whole of k; per row i of w,
 * NV loads of its block segment and, for each row r, one broadcast of x[r, i]
 * feeding NV fused multiply-adds. The segments of different blocks are different
 * 64-byte lines (but at block edges when rows are not 64-byte aligned), so w is
 * streamed once for all rows. NV shrinks as m grows to keep the m NV accumulators
 * and the NV loaded vectors within the 32 registers (for m = 1 the loads fold
 * into the FMAs). The columns past the last full block run the same loop under
 * lane masks.
 *
 * Measured on Zen 5 with w (512 x 1536) in L3, m = 1: this order (NV = 16) reads
 * w at the speed of a plain read loop (~110 GB/s); an i-outer order over blocks
 * of 32 rows, the accumulators reloaded from y per block, reached ~100 GB/s, and
 * NV = 4 (4 accumulator chains for the 4-cycle FMA latency) ~80 GB/s. From m = 5
 * on the fused multiply-adds (2 per cycle) take longer than the stream.
 *
 * Software prefetch, PREFETCH rows ahead in the block's own lines; in the last
 * PREFETCH rows of a block, the first rows of the next block, so a block starts
 * with its lines on the way. The block walks down w with a stride of n floats,
 * which the hardware prefetchers follow less eagerly than a sequential stream.
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"
#include "vmath_avx512.h"

#define W 16
/* Rows of w ahead that are prefetched. On Zen 5 (w in L3, m = 1 and 3), 4 to 12
 * rows are alike; 32 rows were 30% slower for m = 3, no prefetch 10-25% slower. */
#ifndef PREFETCH
#define PREFETCH 8
#endif

/* Vectors per column block for m rows: m * NV accumulators. Measured on Zen 5
 * (w in L3): m = 8 with NV = 3 took 26% less time than with 2 (and 4 than 3);
 * m = 3 with 8 16% less than with 6; m = 2 with 8 or 12 15% less than with 16. */
#define NV_MAX 16
#ifndef NV_R1
#define NV_R1 16
#endif
#ifndef NV_R2
#define NV_R2 8
#endif
#ifndef NV_R3
#define NV_R3 8
#endif
#ifndef NV_R4
#define NV_R4 6
#endif
#ifndef NV_R5
#define NV_R5 4
#endif
#ifndef NV_R6
#define NV_R6 4
#endif
#ifndef NV_R7
#define NV_R7 3
#endif
#ifndef NV_R8
#define NV_R8 3
#endif
_Static_assert(NV_R1 <= NV_MAX && NV_R2 <= NV_MAX && NV_R3 <= NV_MAX && NV_R4 <= NV_MAX && NV_R5 <= NV_MAX &&
                   NV_R6 <= NV_MAX && NV_R7 <= NV_MAX && NV_R8 <= NV_MAX,
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
    __mmask16 lanes[NV_MAX];
    int64_t off[NV_MAX]; /* a dead vector of the tail block addresses column j0: no pointer past w */
#pragma GCC unroll 16
    for (int c = 0; c < NV; ++c) {
        lanes[c] = tail ? v16_lanes_below(live - c * W) : (__mmask16)0xFFFF;
        off[c] = !tail || c * W < live ? c * W : 0;
    }
    /* Prefetch offsets: rows PREFETCH.. of this block, then (from pf_switch on)
     * rows 0.. of the next; none for k <= PREFETCH. */
    const int64_t pf_switch = k - PREFETCH;
    const int64_t pf_stop = k <= PREFETCH ? 0 : pf_next < 0 ? pf_switch : k;
    int64_t pf = pf_stop > 0 ? PREFETCH * n + j0 : 0; /* k > PREFETCH: within w */
    const float *wi = w + j0;
    /* Chunks of ATTN4J_GEMM_CHUNK rows of w: a chunk's sums start from +0 in
     * registers; the running totals are kept in y (L1), where each finished
     * chunk is added. */
    for (int64_t i0 = 0; i0 < k; i0 += ATTN4J_GEMM_CHUNK) {
        const int64_t i1 = k - i0 <= ATTN4J_GEMM_CHUNK ? k : i0 + ATTN4J_GEMM_CHUNK;
        __m512 acc[ATTN4J_GEMM_MAX_ROWS][NV_MAX];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
            for (int c = 0; c < NV; ++c)
                acc[r][c] = _mm512_setzero_ps();
        for (int64_t i = i0; i < i1; ++i, wi += n) {
            if (i < pf_stop) {
                if (i == pf_switch)
                    pf = pf_next;
#pragma GCC unroll 16
                for (int c = 0; c < NV; ++c)
                    if (!tail || off[c] == c * W)
                        _mm_prefetch((const char *)(w + pf + off[c]), _MM_HINT_T0);
                pf += n;
            }
            __m512 wv[NV_MAX];
#pragma GCC unroll 16
            for (int c = 0; c < NV; ++c)
                wv[c] = tail ? _mm512_maskz_loadu_ps(lanes[c], wi + off[c]) : _mm512_loadu_ps(wi + c * W);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m512 b = _mm512_set1_ps(x[r * k + i]);
#pragma GCC unroll 16
                for (int c = 0; c < NV; ++c)
                    acc[r][c] = _mm512_fmadd_ps(b, wv[c], acc[r][c]);
            }
        }

        /* total = chunk (the first), total + chunk (the others); + bias after the last. */
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            float *yr = y + r * n + j0;
#pragma GCC unroll 16
            for (int c = 0; c < NV; ++c) {
                if (tail && off[c] != c * W)
                    continue;
                __m512 v = acc[r][c];
                if (i0 > 0)
                    v = _mm512_add_ps(tail ? _mm512_maskz_loadu_ps(lanes[c], yr + c * W) : _mm512_loadu_ps(yr + c * W),
                                      v);
                if (bias != NULL && i1 == k)
                    v = _mm512_add_ps(v, tail ? _mm512_maskz_loadu_ps(lanes[c], bias + j0 + c * W)
                                              : _mm512_loadu_ps(bias + j0 + c * W));
                if (tail)
                    _mm512_mask_storeu_ps(yr + c * W, lanes[c], v);
                else
                    _mm512_storeu_ps(yr + c * W, v);
            }
        }
    }
}

ALWAYS_INLINE void gemm_rows(const float *x, int64_t k, const float *w, int64_t n, const float *bias, float *y,
                             const int R, const int NV)
{
    const int64_t step = NV * W;
    int64_t j0 = 0;
    for (; j0 + step <= n; j0 += step)
        column_block(x, k, w, n, j0, j0 + step < n ? j0 + step : -1, bias, y, R, NV, 0);
    if (j0 < n)
        column_block(x, k, w, n, j0, -1, bias, y, R, NV, 1);
}

void attn4j_gemm_avx512(const float *x, int64_t m, int64_t k, const float *w, int64_t n, const float *bias,
                        float *y)
{
    switch (m) {
    case 1: gemm_rows(x, k, w, n, bias, y, 1, NV_R1); break;
    case 2: gemm_rows(x, k, w, n, bias, y, 2, NV_R2); break;
    case 3: gemm_rows(x, k, w, n, bias, y, 3, NV_R3); break;
    case 4: gemm_rows(x, k, w, n, bias, y, 4, NV_R4); break;
    case 5: gemm_rows(x, k, w, n, bias, y, 5, NV_R5); break;
    case 6: gemm_rows(x, k, w, n, bias, y, 6, NV_R6); break;
    case 7: gemm_rows(x, k, w, n, bias, y, 7, NV_R7); break;
    default: gemm_rows(x, k, w, n, bias, y, 8, NV_R8); break;
    }
}
