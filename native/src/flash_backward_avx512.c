/*
 * flash_backward_avx512.c - the two block kernels of the flash backward pass that
 * the forward has no kernel for (flash_backward.h), for AVX-512 (F, BW, VL, DQ),
 * compiled with the AVX-512 flags; only called after cpu.c has checked the CPU.
 *
 * tn is register-tiled like the forward's products (flash_avx512.c), with the
 * roles of the operands turned: R rows of dk or dv (keys) by NV vectors of their
 * columns, R * NV accumulators loaded from and stored back to dk / dv; per query
 * lane l, NV aligned loads of the packed row qr[l] / dor[l] and, per key row, one
 * broadcast of st[j][l] / dpt[j][l] feeding NV FMAs. NV is 4 (64 columns, R <= 6)
 * but on a last chunk of fewer columns, whose last vector is masked.
 * grad is lane-wise, with v16_exp_nonpos of vmath_avx512.h (the forward's exp).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "flash_backward.h"
#include "vmath_avx512.h"

#define W 16
/* Accumulator registers of a tile: R * NV <= ACC. */
#define ACC 24
#define NV_MAX 4

/* ---- grad ------------------------------------------------------------------------------- */

/* One vector of lanes (x) of the block; `masking` is a constant at each call site,
 * so the unmasked block (the usual one) has no mask work at all. */
ALWAYS_INLINE void grad_lanes(float *st, float *dpt, int64_t nk, const uint8_t *key_ok, int32_t diagonal,
                              int64_t diag, const float *lse, const float *dd, float scale, int64_t br, int x,
                              int masking)
{
    const __m512 lv = _mm512_load_ps(lse + x * W);
    const __m512 dv = _mm512_load_ps(dd + x * W);
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t j = 0; j < nk; ++j) {
        float *ps = st + j * br + x * W, *pg = dpt + j * br + x * W;
        __m512 p = v16_exp_nonpos(_mm512_sub_ps(_mm512_load_ps(ps), lv));
        if (masking) {
            __mmask16 keep = key_ok != NULL && key_ok[j] == 0 ? 0 : 0xFFFF;
            /* Lane ln (query x * 16 + ln) keeps key j when ln >= j - x * 16 - diag. */
            if (diagonal)
                keep &= (__mmask16)~v16_lanes_below(j - x * W - diag);
            p = _mm512_maskz_mov_ps(keep, p);
        }
        /* p != 0 (true for NaN): elsewhere dS is exactly 0. */
        const __mmask16 nz = _mm512_cmp_ps_mask(p, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        const __m512 g = _mm512_mul_ps(p, _mm512_sub_ps(_mm512_load_ps(pg), dv));
        _mm512_store_ps(ps, p);
        _mm512_store_ps(pg, _mm512_maskz_mul_ps(nz, sc, g));
    }
}

void attn4j_flash_grad_avx512(float *st, float *dpt, int64_t nk, const uint8_t *key_ok, int32_t diagonal,
                              int64_t diag, const float *lse, const float *dd, float scale, int64_t br)
{
    for (int x = 0; x < br / W; ++x) {
        if (key_ok != NULL || diagonal)
            grad_lanes(st, dpt, nk, key_ok, diagonal, diag, lse, dd, scale, br, x, 1);
        else
            grad_lanes(st, dpt, nk, NULL, 0, 0, lse, dd, scale, br, x, 0);
    }
}

/* ---- tn --------------------------------------------------------------------------------- */

/* c[r][0 .. NV * 16) += sum_{l < nl} at[r * br + l] * b[l * ldb + ..] for r < R; only the
 * first `tail` lanes of the last vector are read and written. */
ALWAYS_INLINE void tn_tile(const float *at, int64_t br, int64_t nl, const float *b, int64_t ldb, float *c,
                           int64_t ldc, int64_t tail, const int R_, const int NV)
{
    const int R = R_ < ACC / NV ? R_ : ACC / NV; /* see ATTN4J_FLASH_TILES */
    const __mmask16 m = v16_lanes_below(tail);
    __m512 acc[ACC / 2][NV_MAX];
    for (int r = 0; r < R; ++r)
        for (int x = 0; x < NV; ++x)
            acc[r][x] = x < NV - 1 ? _mm512_loadu_ps(c + r * ldc + x * W)
                                   : _mm512_maskz_loadu_ps(m, c + r * ldc + x * W);
    for (int64_t l = 0; l < nl; ++l) {
        __m512 bv[NV_MAX];
        for (int x = 0; x < NV; ++x)
            bv[x] = _mm512_load_ps(b + l * ldb + x * W);
        for (int r = 0; r < R; ++r) {
            const __m512 a = _mm512_set1_ps(at[r * br + l]);
            for (int x = 0; x < NV; ++x)
                acc[r][x] = _mm512_fmadd_ps(a, bv[x], acc[r][x]);
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int x = 0; x < NV; ++x) {
            float *p = c + r * ldc + x * W;
            if (x < NV - 1 || tail == W)
                _mm512_storeu_ps(p, acc[r][x]);
            else
                v16_store_first(p, acc[r][x], tail);
        }
    }
}

void attn4j_flash_tn_avx512(const float *at, int64_t br, int64_t nk, int64_t nl, const float *b, int64_t ldb,
                            int64_t n, float *c, int64_t ldc)
{
    for (int64_t c0 = 0; c0 < n; c0 += NV_MAX * W) {
        const int64_t nc = n - c0 < NV_MAX * W ? n - c0 : NV_MAX * W;
        const int nv = (int)((nc + W - 1) / W);
        const int64_t tail = nc - (int64_t)(nv - 1) * W;
        const float *bc = b + c0;
        float *cc = c + c0;
#define TN_TILE(j, R, NV) tn_tile(at + (j) * br, br, nl, bc, ldb, cc + (j) * ldc, ldc, tail, R, NV)
#define TN_TILE4(j, R) TN_TILE(j, R, 4)
#define TN_TILE3(j, R) TN_TILE(j, R, 3)
#define TN_TILE2(j, R) TN_TILE(j, R, 2)
#define TN_TILE1(j, R) TN_TILE(j, R, 1)
        switch (nv) {
        case 4: ATTN4J_FLASH_TILES(nk, ACC / 4, TN_TILE4); break;
        case 3: ATTN4J_FLASH_TILES(nk, ACC / 3, TN_TILE3); break;
        case 2: ATTN4J_FLASH_TILES(nk, 12, TN_TILE2); break;
        default: ATTN4J_FLASH_TILES(nk, 12, TN_TILE1); break;
        }
#undef TN_TILE1
#undef TN_TILE2
#undef TN_TILE3
#undef TN_TILE4
#undef TN_TILE
    }
}
