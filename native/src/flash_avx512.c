/*
 * flash_avx512.c - the block kernels of attn4j_flash_attention_f32 for AVX-512
 * (F, BW, VL, DQ), compiled with the AVX-512 flags; only called after cpu.c has
 * checked the CPU. The layout and each kernel's job are in flash.h: a block row
 * is br = 32 or 64 lanes, NV = br / 16 = 2 or 4 vectors.
 *
 * The two products are register-tiled outer products: R rows (keys for the
 * scores, value channels for the output) by the NV vectors of a block row, R * NV
 * accumulators; per step, NV loads of the packed block and, per row, one
 * broadcast of the in-place k / v element (vbroadcastss from memory) feeding NV
 * FMAs. Rows per tile at most 24 / NV (12 or 6): 24 accumulators + NV loaded + 1
 * broadcast of the 32 registers. Each tile is compiled for both NV (a constant
 * at every call site).
 * The softmax is lane-wise throughout: the exp is v16_exp_nonpos of
 * vmath_avx512.h (its arguments are s - max <= 0). q is packed and the output
 * unpacked with 16 x 16 in-register transposes: done with scalar loops they cost
 * half the time of shape B (T = S = 32) and 10-15% of A.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "flash.h"
#include "vmath_avx512.h"

#define W 16
/* Accumulator registers of a tile: R * NV <= ACC. */
#define ACC 24
#define NV_MAX (ATTN4J_FLASH_BR_LONG / W)

#if ATTN4J_FLASH_BR_SHORT != 2 * W || ATTN4J_FLASH_BR_LONG != 4 * W
#error "the tiles below are instantiated for 2 and 4 vectors per block row"
#endif

/* st[r][:] = sum_p k[r * ldk + p] * qt[p][:] for r < R; rows of NV vectors. */
ALWAYS_INLINE void scores_tile(const float *k, int64_t ldk, const float *qt, int64_t d, float *st, const int R_,
                               const int NV)
{
    const int BR = NV * W;
    const int R = R_ < ACC / NV ? R_ : ACC / NV; /* see ATTN4J_FLASH_TILES */
    __m512 acc[ACC / 2][NV_MAX];
    for (int r = 0; r < R; ++r)
        for (int x = 0; x < NV; ++x)
            acc[r][x] = _mm512_setzero_ps();
    for (int64_t p = 0; p < d; ++p) {
        __m512 b[NV_MAX];
        for (int x = 0; x < NV; ++x)
            b[x] = _mm512_load_ps(qt + p * BR + x * W);
        for (int r = 0; r < R; ++r) {
            const __m512 a = _mm512_set1_ps(k[r * ldk + p]);
            for (int x = 0; x < NV; ++x)
                acc[r][x] = _mm512_fmadd_ps(a, b[x], acc[r][x]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int x = 0; x < NV; ++x)
            _mm512_store_ps(st + r * BR + x * W, acc[r][x]);
}

void attn4j_flash_scores_avx512(const float *k, int64_t ldk, int64_t nk, const float *qt, int64_t d, float *st,
                                int64_t br)
{
    if (br == ATTN4J_FLASH_BR_LONG) {
#define SCORES_TILE(j, R) scores_tile(k + (j) * ldk, ldk, qt, d, st + (j) * ATTN4J_FLASH_BR_LONG, R, 4)
        ATTN4J_FLASH_TILES(nk, ACC / 4, SCORES_TILE);
#undef SCORES_TILE
    } else {
#define SCORES_TILE(j, R) scores_tile(k + (j) * ldk, ldk, qt, d, st + (j) * ATTN4J_FLASH_BR_SHORT, R, 2)
        ATTN4J_FLASH_TILES(nk, ACC / 2, SCORES_TILE);
#undef SCORES_TILE
    }
}

/* ot[r][:] = (first ? 0 : alpha * ot[r][:]) + sum_j v[j * ldv + r] * st[j][:] for r < R. */
ALWAYS_INLINE void pv_tile(const float *v, int64_t ldv, int64_t nk, const float *st, const float *alpha,
                           int32_t first, float *ot, const int R_, const int NV)
{
    const int BR = NV * W;
    const int R = R_ < ACC / NV ? R_ : ACC / NV;
    __m512 acc[ACC / 2][NV_MAX];
    if (first) {
        for (int r = 0; r < R; ++r)
            for (int x = 0; x < NV; ++x)
                acc[r][x] = _mm512_setzero_ps();
    } else {
        for (int x = 0; x < NV; ++x) {
            const __m512 a = _mm512_load_ps(alpha + x * W);
            for (int r = 0; r < R; ++r)
                acc[r][x] = _mm512_mul_ps(a, _mm512_load_ps(ot + r * BR + x * W));
        }
    }
    for (int64_t j = 0; j < nk; ++j) {
        __m512 b[NV_MAX];
        for (int x = 0; x < NV; ++x)
            b[x] = _mm512_load_ps(st + j * BR + x * W);
        for (int r = 0; r < R; ++r) {
            const __m512 a = _mm512_set1_ps(v[j * ldv + r]);
            for (int x = 0; x < NV; ++x)
                acc[r][x] = _mm512_fmadd_ps(a, b[x], acc[r][x]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int x = 0; x < NV; ++x)
            _mm512_store_ps(ot + r * BR + x * W, acc[r][x]);
}

void attn4j_flash_pv_avx512(const float *v, int64_t ldv, int64_t nk, const float *st, int64_t dv,
                            const float *alpha, int32_t first, float *ot, int64_t br)
{
    if (br == ATTN4J_FLASH_BR_LONG) {
#define PV_TILE(c, R) pv_tile(v + (c), ldv, nk, st, alpha, first, ot + (c) * ATTN4J_FLASH_BR_LONG, R, 4)
        ATTN4J_FLASH_TILES(dv, ACC / 4, PV_TILE);
#undef PV_TILE
    } else {
#define PV_TILE(c, R) pv_tile(v + (c), ldv, nk, st, alpha, first, ot + (c) * ATTN4J_FLASH_BR_SHORT, R, 2)
        ATTN4J_FLASH_TILES(dv, ACC / 2, PV_TILE);
#undef PV_TILE
    }
}

/* ---- Transposes: q into qt, ot out into o ----------------------------------------------- */

/* Transposes the 16 x 16 block r in place: r[i] lane j becomes r[j] lane i. */
ALWAYS_INLINE void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 8; ++i) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
}

/* r[i] = the first `cols` floats of src row i for i < rows, zero elsewhere. */
ALWAYS_INLINE void load_block(__m512 r[16], const float *src, int64_t lds, int64_t rows, int64_t cols)
{
    const __mmask16 m = v16_lanes_below(cols);
    for (int i = 0; i < 16; ++i)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(m, src + i * lds) : _mm512_setzero_ps();
}

void attn4j_flash_pack_avx512(const float *q, int64_t ldq, int64_t nq, int64_t d, const float *bias, float scale,
                              float *qt, int64_t br)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int64_t p0 = 0; p0 < d; p0 += W) {
        const int64_t np = d - p0 < W ? d - p0 : W;
        const __m512 vb = bias == NULL ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(v16_lanes_below(np), bias + p0);
        for (int64_t l0 = 0; l0 < br; l0 += W) {
            __m512 r[16];
            load_block(r, q + l0 * ldq + p0, ldq, nq - l0, np);
            if (bias != NULL)
                for (int64_t i = 0; i < W && i < nq - l0; ++i)
                    r[i] = _mm512_add_ps(r[i], vb); /* rows past nq stay 0 */
            transpose16(r);
            for (int64_t i = 0; i < np; ++i)
                _mm512_store_ps(qt + (p0 + i) * br + l0, _mm512_mul_ps(vs, r[i]));
        }
    }
}

void attn4j_flash_store_avx512(const float *ot, int64_t dv, const float *l, int64_t nq, float *o, int64_t ldo,
                               int64_t br)
{
    for (int64_t l0 = 0; l0 < nq; l0 += W) {
        const int64_t nl = nq - l0 < W ? nq - l0 : W;
        const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_load_ps(l + l0));
        for (int64_t c0 = 0; c0 < dv; c0 += W) {
            const int64_t nc = dv - c0 < W ? dv - c0 : W;
            __m512 r[16];
            for (int i = 0; i < 16; ++i)
                r[i] = i < nc ? _mm512_mul_ps(_mm512_load_ps(ot + (c0 + i) * br + l0), inv) : _mm512_setzero_ps();
            transpose16(r);
            const __mmask16 m = v16_lanes_below(nc);
            for (int64_t i = 0; i < nl; ++i) {
                if (nc == W)
                    _mm512_storeu_ps(o + (l0 + i) * ldo + c0, r[i]);
                else
                    _mm512_mask_storeu_ps(o + (l0 + i) * ldo + c0, m, r[i]);
            }
        }
    }
}

/* One vector of lanes (x) of the online-softmax step; `masking` is a constant at
 * each call site, so the unmasked block (the usual one) has no mask work at all. */
/* Score j of the lane vector x, with the masks applied (and stored) when `masking`. */
ALWAYS_INLINE __m512 masked_score(float *st, int64_t j, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                                  int64_t BR, int x, int masking)
{
    float *p = st + j * BR + x * W;
    __m512 s = _mm512_load_ps(p);
    if (masking) {
        __mmask16 keep = key_ok != NULL && key_ok[j] == 0 ? 0 : 0xFFFF;
        /* Lane ln (query x * 16 + ln) keeps key j when j - (x * 16 + ln) <= diag,
         * i.e. ln >= j - x * 16 - diag. */
        if (diagonal)
            keep &= (__mmask16)~v16_lanes_below(j - x * W - diag);
        if (keep != 0xFFFF) {
            s = _mm512_mask_blend_ps(keep, _mm512_set1_ps(-INFINITY), s);
            _mm512_store_ps(p, s);
        }
    }
    return s;
}

/* One vector of lanes (x) of the online-softmax step; `masking` is a constant at
 * each call site, so the unmasked block (the usual one) has no mask work at all.
 * The max and the sum run as four independent chains: one chain is bound by the
 * 4-cycle latency of each max / add (measured 11-12 cycles per vector with one
 * max and two sum chains). */
ALWAYS_INLINE void softmax_lanes(float *st, int64_t nk, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                                 float *m, float *l, float *alpha, int64_t BR, int x, int masking)
{
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
    const __m512 m_old = _mm512_load_ps(m + x * W);
    __m512 mx0 = m_old, mx1 = neg_inf, mx2 = neg_inf, mx3 = neg_inf;
    int64_t j = 0;
    for (; j + 4 <= nk; j += 4) {
        mx0 = _mm512_max_ps(mx0, masked_score(st, j, key_ok, diagonal, diag, BR, x, masking));
        mx1 = _mm512_max_ps(mx1, masked_score(st, j + 1, key_ok, diagonal, diag, BR, x, masking));
        mx2 = _mm512_max_ps(mx2, masked_score(st, j + 2, key_ok, diagonal, diag, BR, x, masking));
        mx3 = _mm512_max_ps(mx3, masked_score(st, j + 3, key_ok, diagonal, diag, BR, x, masking));
    }
    for (; j < nk; ++j)
        mx0 = _mm512_max_ps(mx0, masked_score(st, j, key_ok, diagonal, diag, BR, x, masking));
    /* A NaN score may or may not survive the max; its exp is NaN either way, and
     * so is its row. */
    const __m512 mx = _mm512_max_ps(_mm512_max_ps(mx0, mx1), _mm512_max_ps(mx2, mx3));
    /* Lanes that kept nothing yet have mx = -inf: subtract 0 there instead, so the
     * exp sees -inf (giving 0), not -inf - -inf = NaN. */
    const __mmask16 none = _mm512_cmp_ps_mask(mx, neg_inf, _CMP_EQ_OQ);
    const __m512 mu = _mm512_mask_blend_ps(none, mx, _mm512_setzero_ps());
    const __m512 a = v16_exp_nonpos(_mm512_sub_ps(m_old, mu));
    __m512 sum[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (j = 0; j + 4 <= nk; j += 4) {
        for (int u = 0; u < 4; ++u) {
            float *p = st + (j + u) * BR + x * W;
            const __m512 e = v16_exp_nonpos(_mm512_sub_ps(_mm512_load_ps(p), mu));
            _mm512_store_ps(p, e);
            sum[u] = _mm512_add_ps(sum[u], e);
        }
    }
    for (; j < nk; ++j) {
        float *p = st + j * BR + x * W;
        const __m512 e = v16_exp_nonpos(_mm512_sub_ps(_mm512_load_ps(p), mu));
        _mm512_store_ps(p, e);
        sum[0] = _mm512_add_ps(sum[0], e);
    }
    const __m512 total = _mm512_add_ps(_mm512_add_ps(sum[0], sum[1]), _mm512_add_ps(sum[2], sum[3]));
    const __m512 lv = _mm512_mul_ps(a, _mm512_load_ps(l + x * W));
    _mm512_store_ps(l + x * W, _mm512_add_ps(lv, total));
    _mm512_store_ps(m + x * W, mx);
    _mm512_store_ps(alpha + x * W, a);
}

void attn4j_flash_softmax_avx512(float *st, int64_t nk, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                                 float *m, float *l, float *alpha, int64_t br)
{
    for (int x = 0; x < br / W; ++x) {
        if (key_ok != NULL || diagonal)
            softmax_lanes(st, nk, key_ok, diagonal, diag, m, l, alpha, br, x, 1);
        else
            softmax_lanes(st, nk, NULL, 0, 0, m, l, alpha, br, x, 0);
    }
}

void attn4j_flash_exp_avx512(const float *x, float *y, int64_t n)
{
    int64_t k = 0;
    for (; k + W <= n; k += W)
        _mm512_storeu_ps(y + k, v16_exp_nonpos(_mm512_loadu_ps(x + k)));
    if (k < n) {
        const __mmask16 tail = v16_lanes_below(n - k);
        _mm512_mask_storeu_ps(y + k, tail, v16_exp_nonpos(_mm512_maskz_loadu_ps(tail, x + k)));
    }
}
