/*
 * backward_avx512.c - the backward kernels for AVX-512 (F, BW, VL, DQ), 16 floats
 * per step. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma; only
 * called after cpu.c has checked the CPU.
 *
 * Same float operations as the scalar kernels in backward.c (see internal.h),
 * with v16_tanh of vmath_avx512.h instead of tanhf. The double sums use FMA,
 * which changes nothing: a product of two floats is exact in double.
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"
#include "vmath_avx512.h"

#define W 16 /* floats per vector */

ALWAYS_INLINE __m512d lo_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}

ALWAYS_INLINE __m512d hi_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
}

/* ---- Softmax ---------------------------------------------------------------------- */

double attn4j_dot_f64_avx512(const float *a, const float *b, int64_t n)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    __m512d s2 = _mm512_setzero_pd(), s3 = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + 2 * W <= n; j += 2 * W) {
        const __m512 a0 = _mm512_loadu_ps(a + j), b0 = _mm512_loadu_ps(b + j);
        const __m512 a1 = _mm512_loadu_ps(a + j + W), b1 = _mm512_loadu_ps(b + j + W);
        s0 = _mm512_fmadd_pd(lo_pd(a0), lo_pd(b0), s0);
        s1 = _mm512_fmadd_pd(hi_pd(a0), hi_pd(b0), s1);
        s2 = _mm512_fmadd_pd(lo_pd(a1), lo_pd(b1), s2);
        s3 = _mm512_fmadd_pd(hi_pd(a1), hi_pd(b1), s3);
    }
    for (; j < n; j += W) {
        const __mmask16 valid = v16_lanes_below(n - j);
        const __m512 a0 = _mm512_maskz_loadu_ps(valid, a + j), b0 = _mm512_maskz_loadu_ps(valid, b + j);
        s0 = _mm512_fmadd_pd(lo_pd(a0), lo_pd(b0), s0);
        s1 = _mm512_fmadd_pd(hi_pd(a0), hi_pd(b0), s1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
}

/* The lanes of the chunk at j (valid lanes `valid`) whose mask bytes are non-zero. */
ALWAYS_INLINE __mmask16 keep16(const uint8_t *m1, const uint8_t *m2, int64_t j, __mmask16 valid, int nmasks)
{
    const int full = valid == (__mmask16)0xFFFF;
    const __m128i b1 = full ? _mm_loadu_si128((const __m128i *)(const void *)(m1 + j))
                            : _mm_maskz_loadu_epi8(valid, m1 + j);
    __mmask16 keep = _mm_mask_test_epi8_mask(valid, b1, b1);
    if (nmasks == 2) {
        const __m128i b2 = full ? _mm_loadu_si128((const __m128i *)(const void *)(m2 + j))
                                : _mm_maskz_loadu_epi8(valid, m2 + j);
        keep = _mm_mask_test_epi8_mask(keep, b2, b2);
    }
    return keep;
}

/* scale * p * (g - r), +0 in the lanes masked by the bytes. */
ALWAYS_INLINE __m512 grad16(__m512 p, __m512 g, __m512 vr, __m512 vscale, const uint8_t *m1, const uint8_t *m2,
                            int64_t j, __mmask16 valid, int nmasks)
{
    const __m512 sp = _mm512_mul_ps(vscale, p);
    const __m512 d = _mm512_sub_ps(g, vr);
    if (nmasks == 0)
        return _mm512_mul_ps(sp, d);
    return _mm512_maskz_mul_ps(keep16(m1, m2, j, valid, nmasks), sp, d);
}

ALWAYS_INLINE void grad_row(const float *p, float *g, int64_t n, float r, float scale, const uint8_t *m1,
                            const uint8_t *m2, int nmasks)
{
    const __m512 vr = _mm512_set1_ps(r), vscale = _mm512_set1_ps(scale);
    int64_t j = 0;
    for (; j + W <= n; j += W)
        _mm512_storeu_ps(g + j, grad16(_mm512_loadu_ps(p + j), _mm512_loadu_ps(g + j), vr, vscale, m1, m2, j,
                                       (__mmask16)0xFFFF, nmasks));
    if (j < n) {
        const __mmask16 valid = v16_lanes_below(n - j);
        const __m512 v = grad16(_mm512_maskz_loadu_ps(valid, p + j), _mm512_maskz_loadu_ps(valid, g + j), vr,
                                vscale, m1, m2, j, valid, nmasks);
        /* Plain stores: the next row's loads would wait for a masked store. */
        v16_store_first(g + j, v, n - j);
    }
}

void attn4j_softmax_grad_avx512(const float *p, float *g, int64_t n, float r, float scale, const uint8_t *m1,
                                const uint8_t *m2)
{
    if (m1 == NULL)
        grad_row(p, g, n, r, scale, NULL, NULL, 0);
    else if (m2 == NULL)
        grad_row(p, g, n, r, scale, m1, NULL, 1);
    else
        grad_row(p, g, n, r, scale, m1, m2, 2);
}

/* ---- Tanh scores -------------------------------------------------------------------- */

/* One chunk of ATTN4J_TB_LANES = 16 d: one vector. `with_sy` and `with_stats` are
 * constants at each call site. */
ALWAYS_INLINE void tanh_backward(const float *x, int64_t nx, const float *y, int64_t ny, int64_t dim,
                                 const float *ds, int64_t ds_x, int64_t ds_y, int64_t d0, int64_t dc,
                                 float inner, float outer, const double *dx_scale, float *dx, double *sy,
                                 double *stats, int with_sy, int with_stats)
{
    const __mmask16 valid = v16_lanes_below(dc);
    const __m512 vinner = _mm512_set1_ps(inner), one = _mm512_set1_ps(1.0f);
    const __m512d scale_lo = _mm512_loadu_pd(dx_scale), scale_hi = _mm512_loadu_pd(dx_scale + 8);
    __m512d ct_lo = _mm512_setzero_pd(), ct_hi = _mm512_setzero_pd();
    __m512d su_lo = _mm512_setzero_pd(), su_hi = _mm512_setzero_pd();
    if (with_stats) {
        ct_lo = _mm512_loadu_pd(stats);
        ct_hi = _mm512_loadu_pd(stats + 8);
        su_lo = _mm512_loadu_pd(stats + W);
        su_hi = _mm512_loadu_pd(stats + W + 8);
    }
    for (int64_t a = 0; a < nx; ++a) {
        const __m512 xa = _mm512_maskz_loadu_ps(valid, x + a * dim + d0);
        __m512d sx_lo = _mm512_setzero_pd(), sx_hi = _mm512_setzero_pd();
        for (int64_t b = 0; b < ny; ++b) {
            const float s = ds[a * ds_x + b * ds_y];
            const __m512 t = _mm512_add_ps(xa, _mm512_maskz_loadu_ps(valid, y + b * dim + d0));
            const __m512 u = v16_tanh(_mm512_mul_ps(vinner, t));
            const __m512 e = _mm512_mul_ps(_mm512_sub_ps(one, u), _mm512_add_ps(one, u));
            const __m512 c = _mm512_mul_ps(_mm512_set1_ps(s * outer), e);
            const __m512d c_lo = lo_pd(c), c_hi = hi_pd(c);
            sx_lo = _mm512_add_pd(sx_lo, c_lo);
            sx_hi = _mm512_add_pd(sx_hi, c_hi);
            if (with_sy) {
                double *syb = sy + b * ATTN4J_TB_LANES;
                _mm512_storeu_pd(syb, _mm512_add_pd(_mm512_loadu_pd(syb), c_lo));
                _mm512_storeu_pd(syb + 8, _mm512_add_pd(_mm512_loadu_pd(syb + 8), c_hi));
            }
            if (with_stats) {
                const __m512d vs = _mm512_set1_pd((double)s);
                ct_lo = _mm512_fmadd_pd(c_lo, lo_pd(t), ct_lo);
                ct_hi = _mm512_fmadd_pd(c_hi, hi_pd(t), ct_hi);
                su_lo = _mm512_fmadd_pd(vs, lo_pd(u), su_lo);
                su_hi = _mm512_fmadd_pd(vs, hi_pd(u), su_hi);
            }
        }
        const __m512 out = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(_mm512_mul_pd(scale_lo, sx_lo))),
                                              _mm512_cvtpd_ps(_mm512_mul_pd(scale_hi, sx_hi)), 1);
        _mm512_mask_storeu_ps(dx + a * dim + d0, valid, out);
    }
    if (with_stats) {
        _mm512_storeu_pd(stats, ct_lo);
        _mm512_storeu_pd(stats + 8, ct_hi);
        _mm512_storeu_pd(stats + W, su_lo);
        _mm512_storeu_pd(stats + W + 8, su_hi);
    }
}

void attn4j_tanh_backward_avx512(const float *x, int64_t nx, const float *y, int64_t ny, int64_t dim,
                                 const float *ds, int64_t ds_x, int64_t ds_y, int64_t d0, int64_t dc, float inner,
                                 float outer, const double *dx_scale, float *dx, double *sy, double *stats)
{
    if (sy != NULL && stats != NULL)
        tanh_backward(x, nx, y, ny, dim, ds, ds_x, ds_y, d0, dc, inner, outer, dx_scale, dx, sy, stats, 1, 1);
    else if (stats != NULL)
        tanh_backward(x, nx, y, ny, dim, ds, ds_x, ds_y, d0, dc, inner, outer, dx_scale, dx, NULL, stats, 0, 1);
    else if (sy != NULL)
        tanh_backward(x, nx, y, ny, dim, ds, ds_x, ds_y, d0, dc, inner, outer, dx_scale, dx, sy, NULL, 1, 0);
    else
        tanh_backward(x, nx, y, ny, dim, ds, ds_x, ds_y, d0, dc, inner, outer, dx_scale, dx, NULL, NULL, 0, 0);
}
