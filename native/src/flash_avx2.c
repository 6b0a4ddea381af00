/*
 * flash_avx2.c - the block kernels of attn4j_flash_attention_f32 for AVX2 + FMA,
 * compiled with -mavx2 -mfma; only called after cpu.c has checked the CPU. The
 * layout and each kernel's job are in flash.h: a block row is br = 32 or 64
 * lanes, four or eight 8-lane vectors.
 *
 * The products are register-tiled as in flash_avx512.c, but with 16 registers a
 * tile is R = 6 rows by NV = 2 vectors (12 accumulators, 2 loads, 1 broadcast);
 * a block row takes br / 16 such lane groups, one after the other. The softmax's
 * exp is v8_exp_nonpos, the twin of the AVX-512 path's (same results).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "flash.h"
#include "vmath_avx2.h"

#define W 8
#define NV 2 /* vectors per lane group */
#define G (NV * W)
#define R_MAX 6

#if ATTN4J_FLASH_BR_SHORT % G != 0 || ATTN4J_FLASH_BR_LONG % G != 0
#error "block rows must be a multiple of 16 lanes"
#endif

/* st[r][g..g+16) = sum_p k[r * ldk + p] * qt[p][g..g+16) for r < R. */
ALWAYS_INLINE void scores_tile(const float *k, int64_t ldk, const float *qt, int64_t d, float *st, int64_t BR,
                               const int R_)
{
    const int R = R_ < R_MAX ? R_ : R_MAX; /* see ATTN4J_FLASH_TILES */
    __m256 acc[R_MAX][NV];
    for (int r = 0; r < R; ++r)
        for (int x = 0; x < NV; ++x)
            acc[r][x] = _mm256_setzero_ps();
    for (int64_t p = 0; p < d; ++p) {
        __m256 b[NV];
        for (int x = 0; x < NV; ++x)
            b[x] = _mm256_load_ps(qt + p * BR + x * W);
        for (int r = 0; r < R; ++r) {
            const __m256 a = _mm256_broadcast_ss(k + r * ldk + p);
            for (int x = 0; x < NV; ++x)
                acc[r][x] = _mm256_fmadd_ps(a, b[x], acc[r][x]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int x = 0; x < NV; ++x)
            _mm256_store_ps(st + r * BR + x * W, acc[r][x]);
}

void attn4j_flash_scores_avx2(const float *k, int64_t ldk, int64_t nk, const float *qt, int64_t d, float *st,
                              int64_t br)
{
    for (int g = 0; g < br; g += G) {
#define SCORES_TILE(j, R) scores_tile(k + (j) * ldk, ldk, qt + g, d, st + (j) * br + g, br, R)
        ATTN4J_FLASH_TILES(nk, R_MAX, SCORES_TILE);
#undef SCORES_TILE
    }
}

/* ot[r][g..g+16) = (first ? 0 : alpha * ot[r][..]) + sum_j v[j * ldv + r] * st[j][g..g+16). */
ALWAYS_INLINE void pv_tile(const float *v, int64_t ldv, int64_t nk, const float *st, const float *alpha,
                           int32_t first, float *ot, int64_t BR, const int R_)
{
    const int R = R_ < R_MAX ? R_ : R_MAX;
    __m256 acc[R_MAX][NV];
    if (first) {
        for (int r = 0; r < R; ++r)
            for (int x = 0; x < NV; ++x)
                acc[r][x] = _mm256_setzero_ps();
    } else {
        for (int x = 0; x < NV; ++x) {
            const __m256 a = _mm256_load_ps(alpha + x * W);
            for (int r = 0; r < R; ++r)
                acc[r][x] = _mm256_mul_ps(a, _mm256_load_ps(ot + r * BR + x * W));
        }
    }
    for (int64_t j = 0; j < nk; ++j) {
        __m256 b[NV];
        for (int x = 0; x < NV; ++x)
            b[x] = _mm256_load_ps(st + j * BR + x * W);
        for (int r = 0; r < R; ++r) {
            const __m256 a = _mm256_broadcast_ss(v + j * ldv + r);
            for (int x = 0; x < NV; ++x)
                acc[r][x] = _mm256_fmadd_ps(a, b[x], acc[r][x]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int x = 0; x < NV; ++x)
            _mm256_store_ps(ot + r * BR + x * W, acc[r][x]);
}

void attn4j_flash_pv_avx2(const float *v, int64_t ldv, int64_t nk, const float *st, int64_t dv,
                          const float *alpha, int32_t first, float *ot, int64_t br)
{
    for (int g = 0; g < br; g += G) {
#define PV_TILE(c, R) pv_tile(v + (c), ldv, nk, st + g, alpha + g, first, ot + (c) * br + g, br, R)
        ATTN4J_FLASH_TILES(dv, R_MAX, PV_TILE);
#undef PV_TILE
    }
}

/* ---- Transposes: q into qt, ot out into o ----------------------------------------------- */

/* Transposes the 8 x 8 block r in place. */
ALWAYS_INLINE void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

void attn4j_flash_pack_avx2(const float *q, int64_t ldq, int64_t nq, int64_t d, const float *bias, float scale,
                            float *qt, int64_t br)
{
    const __m256 vs = _mm256_set1_ps(scale);
    for (int64_t p0 = 0; p0 < d; p0 += W) {
        const int64_t np = d - p0 < W ? d - p0 : W;
        const __m256i m = v8_lanes_below(np);
        const __m256 vb = bias == NULL ? _mm256_setzero_ps() : _mm256_maskload_ps(bias + p0, m);
        for (int64_t l0 = 0; l0 < br; l0 += W) {
            __m256 r[8];
            for (int i = 0; i < 8; ++i)
                r[i] = i < nq - l0 ? _mm256_add_ps(_mm256_maskload_ps(q + (l0 + i) * ldq + p0, m), vb)
                                   : _mm256_setzero_ps();
            transpose8(r);
            for (int64_t i = 0; i < np; ++i)
                _mm256_store_ps(qt + (p0 + i) * br + l0, _mm256_mul_ps(vs, r[i]));
        }
    }
}

void attn4j_flash_store_avx2(const float *ot, int64_t dv, const float *l, int64_t nq, float *o, int64_t ldo,
                             int64_t br)
{
    for (int64_t l0 = 0; l0 < nq; l0 += W) {
        const int64_t nl = nq - l0 < W ? nq - l0 : W;
        const __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_load_ps(l + l0));
        for (int64_t c0 = 0; c0 < dv; c0 += W) {
            const int64_t nc = dv - c0 < W ? dv - c0 : W;
            __m256 r[8];
            for (int i = 0; i < 8; ++i)
                r[i] = i < nc ? _mm256_mul_ps(_mm256_load_ps(ot + (c0 + i) * br + l0), inv) : _mm256_setzero_ps();
            transpose8(r);
            for (int64_t i = 0; i < nl; ++i) {
                if (nc == W)
                    _mm256_storeu_ps(o + (l0 + i) * ldo + c0, r[i]);
                else
                    v8_store_first(o + (l0 + i) * ldo + c0, r[i], nc);
            }
        }
    }
}

/* Score j of the lane vector x, with the masks applied (and stored) when `masking`. */
ALWAYS_INLINE __m256 masked_score(float *st, int64_t j, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                                  int64_t BR, int x, int masking)
{
    float *p = st + j * BR + x * W;
    __m256 s = _mm256_load_ps(p);
    if (masking) {
        if (key_ok != NULL && key_ok[j] == 0) {
            s = _mm256_set1_ps(-INFINITY);
            _mm256_store_ps(p, s);
        } else if (diagonal) {
            /* Lane ln keeps key j when ln >= j - x * 8 - diag. */
            const __m256 drop = _mm256_castsi256_ps(v8_lanes_below(j - x * W - diag));
            s = _mm256_blendv_ps(s, _mm256_set1_ps(-INFINITY), drop);
            _mm256_store_ps(p, s);
        }
    }
    return s;
}

/* One vector of lanes (the 8 at x * 8) of the online-softmax step; see
 * flash_avx512.c (the same operations in the same order). `masking` is a
 * constant at each call site. */
ALWAYS_INLINE void softmax_lanes(float *st, int64_t nk, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                                 float *m, float *l, float *alpha, int64_t BR, int x, int masking)
{
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    const __m256 m_old = _mm256_load_ps(m + x * W);
    __m256 mx0 = m_old, mx1 = neg_inf, mx2 = neg_inf, mx3 = neg_inf;
    int64_t j = 0;
    for (; j + 4 <= nk; j += 4) {
        mx0 = _mm256_max_ps(mx0, masked_score(st, j, key_ok, diagonal, diag, BR, x, masking));
        mx1 = _mm256_max_ps(mx1, masked_score(st, j + 1, key_ok, diagonal, diag, BR, x, masking));
        mx2 = _mm256_max_ps(mx2, masked_score(st, j + 2, key_ok, diagonal, diag, BR, x, masking));
        mx3 = _mm256_max_ps(mx3, masked_score(st, j + 3, key_ok, diagonal, diag, BR, x, masking));
    }
    for (; j < nk; ++j)
        mx0 = _mm256_max_ps(mx0, masked_score(st, j, key_ok, diagonal, diag, BR, x, masking));
    const __m256 mx = _mm256_max_ps(_mm256_max_ps(mx0, mx1), _mm256_max_ps(mx2, mx3));
    /* Lanes that kept nothing yet: subtract 0, not -inf (see flash_avx512.c). */
    const __m256 none = _mm256_cmp_ps(mx, neg_inf, _CMP_EQ_OQ);
    const __m256 mu = _mm256_blendv_ps(mx, _mm256_setzero_ps(), none);
    const __m256 a = v8_exp_nonpos(_mm256_sub_ps(m_old, mu));
    __m256 sum[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (j = 0; j + 4 <= nk; j += 4) {
        for (int u = 0; u < 4; ++u) {
            float *p = st + (j + u) * BR + x * W;
            const __m256 e = v8_exp_nonpos(_mm256_sub_ps(_mm256_load_ps(p), mu));
            _mm256_store_ps(p, e);
            sum[u] = _mm256_add_ps(sum[u], e);
        }
    }
    for (; j < nk; ++j) {
        float *p = st + j * BR + x * W;
        const __m256 e = v8_exp_nonpos(_mm256_sub_ps(_mm256_load_ps(p), mu));
        _mm256_store_ps(p, e);
        sum[0] = _mm256_add_ps(sum[0], e);
    }
    const __m256 total = _mm256_add_ps(_mm256_add_ps(sum[0], sum[1]), _mm256_add_ps(sum[2], sum[3]));
    const __m256 lv = _mm256_mul_ps(a, _mm256_load_ps(l + x * W));
    _mm256_store_ps(l + x * W, _mm256_add_ps(lv, total));
    _mm256_store_ps(m + x * W, mx);
    _mm256_store_ps(alpha + x * W, a);
}

void attn4j_flash_softmax_avx2(float *st, int64_t nk, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                               float *m, float *l, float *alpha, int64_t br)
{
    for (int x = 0; x < br / W; ++x) {
        if (key_ok != NULL || diagonal)
            softmax_lanes(st, nk, key_ok, diagonal, diag, m, l, alpha, br, x, 1);
        else
            softmax_lanes(st, nk, NULL, 0, 0, m, l, alpha, br, x, 0);
    }
}

void attn4j_flash_exp_avx2(const float *x, float *y, int64_t n)
{
    int64_t k = 0;
    for (; k + W <= n; k += W)
        _mm256_storeu_ps(y + k, v8_exp_nonpos(_mm256_loadu_ps(x + k)));
    if (k < n) {
        const __m256i tail = v8_lanes_below(n - k);
        _mm256_maskstore_ps(y + k, tail, v8_exp_nonpos(_mm256_maskload_ps(x + k, tail)));
    }
}
