/*
 * flash_backward_avx2.c - the two block kernels of the flash backward pass that
 * the forward has no kernel for (flash_backward.h), for AVX2 + FMA, compiled with
 * -mavx2 -mfma; only called after cpu.c has checked the CPU.
 *
 * As in flash_backward_avx512.c, with the 16 registers of AVX2: a tn tile is
 * R <= 6 rows of dk / dv by NV = 2 vectors (16 columns; 12 accumulators, 2 loads,
 * 1 broadcast), NV = 1 for a last chunk of at most 8 columns, the last vector of a
 * chunk masked when the columns end inside it. grad uses v8_exp_nonpos, the twin
 * of the AVX-512 path's exp (same results).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "flash_backward.h"
#include "vmath_avx2.h"

#define W 8
#define NV_MAX 2
#define R_MAX 6

/* ---- grad ------------------------------------------------------------------------------- */

/* One vector of lanes (x) of the block; `masking` is a constant at each call site. */
ALWAYS_INLINE void grad_lanes(float *st, float *dpt, int64_t nk, const uint8_t *key_ok, int32_t diagonal,
                              int64_t diag, const float *lse, const float *dd, float scale, int64_t br, int x,
                              int masking)
{
    const __m256 lv = _mm256_load_ps(lse + x * W);
    const __m256 dv = _mm256_load_ps(dd + x * W);
    const __m256 sc = _mm256_set1_ps(scale);
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t j = 0; j < nk; ++j) {
        float *ps = st + j * br + x * W, *pg = dpt + j * br + x * W;
        __m256 p = v8_exp_nonpos(_mm256_sub_ps(_mm256_load_ps(ps), lv));
        if (masking) {
            if (key_ok != NULL && key_ok[j] == 0) {
                p = zero;
            } else if (diagonal) {
                /* Lane ln keeps key j when ln >= j - x * 8 - diag. */
                const __m256 drop = _mm256_castsi256_ps(v8_lanes_below(j - x * W - diag));
                p = _mm256_andnot_ps(drop, p);
            }
        }
        /* p != 0 (true for NaN): elsewhere dS is exactly 0. */
        const __m256 nz = _mm256_cmp_ps(p, zero, _CMP_NEQ_UQ);
        const __m256 g = _mm256_mul_ps(sc, _mm256_mul_ps(p, _mm256_sub_ps(_mm256_load_ps(pg), dv)));
        _mm256_store_ps(ps, p);
        _mm256_store_ps(pg, _mm256_and_ps(nz, g));
    }
}

void attn4j_flash_grad_avx2(float *st, float *dpt, int64_t nk, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                            const float *lse, const float *dd, float scale, int64_t br)
{
    for (int x = 0; x < br / W; ++x) {
        if (key_ok != NULL || diagonal)
            grad_lanes(st, dpt, nk, key_ok, diagonal, diag, lse, dd, scale, br, x, 1);
        else
            grad_lanes(st, dpt, nk, NULL, 0, 0, lse, dd, scale, br, x, 0);
    }
}

/* ---- tn --------------------------------------------------------------------------------- */

/* c[r][0 .. NV * 8) += sum_{l < nl} at[r * br + l] * b[l * ldb + ..] for r < R; only the
 * first `tail` lanes of the last vector are read and written. */
ALWAYS_INLINE void tn_tile(const float *at, int64_t br, int64_t nl, const float *b, int64_t ldb, float *c,
                           int64_t ldc, int64_t tail, const int R_, const int NV)
{
    const int R = R_ < R_MAX ? R_ : R_MAX; /* see ATTN4J_FLASH_TILES */
    const __m256i m = v8_lanes_below(tail);
    __m256 acc[R_MAX][NV_MAX];
    for (int r = 0; r < R; ++r)
        for (int x = 0; x < NV; ++x)
            acc[r][x] = x < NV - 1 ? _mm256_loadu_ps(c + r * ldc + x * W) : _mm256_maskload_ps(c + r * ldc + x * W, m);
    for (int64_t l = 0; l < nl; ++l) {
        __m256 bv[NV_MAX];
        for (int x = 0; x < NV; ++x)
            bv[x] = _mm256_load_ps(b + l * ldb + x * W);
        for (int r = 0; r < R; ++r) {
            const __m256 a = _mm256_broadcast_ss(at + r * br + l);
            for (int x = 0; x < NV; ++x)
                acc[r][x] = _mm256_fmadd_ps(a, bv[x], acc[r][x]);
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int x = 0; x < NV; ++x) {
            float *p = c + r * ldc + x * W;
            if (x < NV - 1 || tail == W)
                _mm256_storeu_ps(p, acc[r][x]);
            else
                v8_store_first(p, acc[r][x], tail);
        }
    }
}

void attn4j_flash_tn_avx2(const float *at, int64_t br, int64_t nk, int64_t nl, const float *b, int64_t ldb,
                          int64_t n, float *c, int64_t ldc)
{
    for (int64_t c0 = 0; c0 < n; c0 += NV_MAX * W) {
        const int64_t nc = n - c0 < NV_MAX * W ? n - c0 : NV_MAX * W;
        const float *bc = b + c0;
        float *cc = c + c0;
#define TN_TILE(j, R, NV) tn_tile(at + (j) * br, br, nl, bc, ldb, cc + (j) * ldc, ldc, tail, R, NV)
#define TN_TILE2(j, R) TN_TILE(j, R, 2)
#define TN_TILE1(j, R) TN_TILE(j, R, 1)
        if (nc > W) {
            const int64_t tail = nc - W;
            ATTN4J_FLASH_TILES(nk, R_MAX, TN_TILE2);
        } else {
            const int64_t tail = nc;
            ATTN4J_FLASH_TILES(nk, R_MAX, TN_TILE1);
        }
#undef TN_TILE1
#undef TN_TILE2
#undef TN_TILE
    }
}
