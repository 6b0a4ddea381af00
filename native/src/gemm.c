/*
 * gemm.c - attn4j_small_gemm_f32: argument checks, dispatch, and the scalar kernel
 * (the reference the vector kernels of gemm_avx2.c / gemm_avx512.c follow, and
 * the path for CPUs without AVX2).
 *
 * The shape is a decode step's projection: a few rows of x against a weight
 * matrix that is read from cache (or memory) once per call. A general GEMM packs
 * w into panels first, which for m <= 8 costs as much as the product; these
 * kernels read w once, in place, for all m rows.
 *
 * Every path computes y[r, j] in the same order: for each chunk of
 * ATTN4J_GEMM_CHUNK consecutive i (internal.h), the chain fma(x[r, i], w[i, j],
 * acc) in i order from acc = +0; the chunk sums added in order (the first is the
 * running total, each later one is added to it in float); then the bias, in
 * float. fmaf here (glibc selects the FMA instruction on CPUs that have it),
 * _mm*_fmadd_ps there, so all instruction sets give the same bits
 * (-ffp-contract=off keeps the adds separate roundings). The chunks bound the
 * error by about (C + k / C) rather than k roundings (attn4j.h).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Columns per tile of the scalar kernel: its chunk sums, 8 x 64 floats (2 KiB), on the stack. */
#define SCALAR_TILE 64

void attn4j_gemm_scalar(const float *x, int64_t m, int64_t k, const float *w, int64_t n, const float *bias,
                        float *y)
{
    /* Per tile of columns and chunk of rows of w: i outer, the chunk sums of all
     * m rows in acc, so each row of w is read once for all m rows; the running
     * totals in y. */
    float acc[ATTN4J_GEMM_MAX_ROWS][SCALAR_TILE];
    for (int64_t j0 = 0; j0 < n; j0 += SCALAR_TILE) {
        const int64_t nj = n - j0 < SCALAR_TILE ? n - j0 : SCALAR_TILE;
        for (int64_t i0 = 0; i0 < k; i0 += ATTN4J_GEMM_CHUNK) {
            const int64_t i1 = k - i0 <= ATTN4J_GEMM_CHUNK ? k : i0 + ATTN4J_GEMM_CHUNK;
            for (int64_t r = 0; r < m; ++r)
                for (int64_t j = 0; j < nj; ++j)
                    acc[r][j] = 0.0f;
            for (int64_t i = i0; i < i1; ++i) {
                const float *wi = w + i * n + j0;
                for (int64_t r = 0; r < m; ++r) {
                    const float xri = x[r * k + i];
                    for (int64_t j = 0; j < nj; ++j)
                        acc[r][j] = fmaf(xri, wi[j], acc[r][j]);
                }
            }
            for (int64_t r = 0; r < m; ++r) {
                float *yr = y + r * n + j0;
                for (int64_t j = 0; j < nj; ++j) {
                    float v = i0 > 0 ? yr[j] + acc[r][j] : acc[r][j];
                    if (bias != NULL && i1 == k)
                        v = v + bias[j0 + j];
                    yr[j] = v;
                }
            }
        }
    }
}

static attn4j_gemm_fn select_gemm_fn(void)
{
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        return attn4j_gemm_avx512;
    case ATTN4J_ISA_AVX2:
        return attn4j_gemm_avx2;
#endif
    default:
        return attn4j_gemm_scalar;
    }
}

ATTN4J_API int attn4j_small_gemm_f32(const float *x, int64_t m, int64_t k, const float *w, int64_t n,
                                     const float *bias, float *y)
{
    if (x == NULL || w == NULL || y == NULL)
        return ATTN4J_EINVAL;
    if (m < 1 || m > ATTN4J_GEMM_MAX_ROWS || k < 1 || n < 1)
        return ATTN4J_EINVAL;
    /* m <= 8, so k * n within the limit bounds m * k and m * n only loosely: check all. */
    const int64_t lim = PTRDIFF_MAX / (int64_t)sizeof(float);
    if (k > lim / n || m > lim / k || m > lim / n)
        return ATTN4J_EINVAL;
    const size_t y_bytes = (size_t)(m * n) * sizeof(float);
    if (attn4j_overlaps(y, y_bytes, x, (size_t)(m * k) * sizeof(float)) ||
        attn4j_overlaps(y, y_bytes, w, (size_t)(k * n) * sizeof(float)) ||
        (bias != NULL && attn4j_overlaps(y, y_bytes, bias, (size_t)n * sizeof(float))))
        return ATTN4J_EINVAL;
    select_gemm_fn()(x, m, k, w, n, bias, y);
    return ATTN4J_OK;
}
