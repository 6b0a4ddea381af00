/*
 * backward_avx2.c - the backward kernels for AVX2 + FMA, 8 floats per step.
 * Compiled with -mavx2 -mfma; only called after cpu.c has checked the CPU.
 *
 * Same float operations as the scalar kernels in backward.c (see internal.h),
 * with v8_tanh of vmath_avx2.h instead of tanhf. The double sums use FMA, which
 * changes nothing: a product of two floats is exact in double.
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"
#include "vmath_avx2.h"

#define W 8 /* floats per vector */

ALWAYS_INLINE __m256d lo_pd(__m256 v)
{
    return _mm256_cvtps_pd(_mm256_castps256_ps128(v));
}

ALWAYS_INLINE __m256d hi_pd(__m256 v)
{
    return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
}

/* ---- Softmax ---------------------------------------------------------------------- */

double attn4j_dot_f64_avx2(const float *a, const float *b, int64_t n)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    __m256d s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 2 * W <= n; j += 2 * W) {
        const __m256 a0 = _mm256_loadu_ps(a + j), b0 = _mm256_loadu_ps(b + j);
        const __m256 a1 = _mm256_loadu_ps(a + j + W), b1 = _mm256_loadu_ps(b + j + W);
        s0 = _mm256_fmadd_pd(lo_pd(a0), lo_pd(b0), s0);
        s1 = _mm256_fmadd_pd(hi_pd(a0), hi_pd(b0), s1);
        s2 = _mm256_fmadd_pd(lo_pd(a1), lo_pd(b1), s2);
        s3 = _mm256_fmadd_pd(hi_pd(a1), hi_pd(b1), s3);
    }
    if (j + W <= n) {
        const __m256 a0 = _mm256_loadu_ps(a + j), b0 = _mm256_loadu_ps(b + j);
        s0 = _mm256_fmadd_pd(lo_pd(a0), lo_pd(b0), s0);
        s1 = _mm256_fmadd_pd(hi_pd(a0), hi_pd(b0), s1);
        j += W;
    }
    const __m256d s = _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3));
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; j < n; ++j)
        sum += (double)a[j] * (double)b[j];
    return sum;
}

/* All-ones in the lanes of the 8 columns at j whose mask bytes are 0. */
ALWAYS_INLINE __m256 masked8(const uint8_t *m1, const uint8_t *m2, int64_t j, int nmasks)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i z = _mm_cmpeq_epi8(_mm_loadl_epi64((const __m128i *)(const void *)(m1 + j)), zero);
    if (nmasks == 2)
        z = _mm_or_si128(z, _mm_cmpeq_epi8(_mm_loadl_epi64((const __m128i *)(const void *)(m2 + j)), zero));
    return _mm256_castsi256_ps(_mm256_cvtepi8_epi32(z));
}

ALWAYS_INLINE void grad_row(const float *p, float *g, int64_t n, float r, float scale, const uint8_t *m1,
                            const uint8_t *m2, int nmasks)
{
    const __m256 vr = _mm256_set1_ps(r), vscale = _mm256_set1_ps(scale);
    int64_t j = 0;
    for (; j + W <= n; j += W) {
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(vscale, _mm256_loadu_ps(p + j)),
                                 _mm256_sub_ps(_mm256_loadu_ps(g + j), vr));
        if (nmasks > 0) /* +0 where masked, whatever p and g hold */
            v = _mm256_andnot_ps(masked8(m1, m2, j, nmasks), v);
        _mm256_storeu_ps(g + j, v);
    }
    for (; j < n; ++j) {
        const int keep = nmasks == 0 || (m1[j] != 0 && (nmasks == 1 || m2[j] != 0));
        g[j] = keep ? scale * p[j] * (g[j] - r) : 0.0f;
    }
}

void attn4j_softmax_grad_avx2(const float *p, float *g, int64_t n, float r, float scale, const uint8_t *m1,
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

/* One chunk of ATTN4J_TB_LANES = 16 d as `nvec` vectors of 8 (1 when dc <= 8).
 * `nvec`, `with_sy` and `with_stats` are constants at each call site. */
ALWAYS_INLINE void tanh_backward(const float *x, int64_t nx, const float *y, int64_t ny, int64_t dim,
                                 const float *ds, int64_t ds_x, int64_t ds_y, int64_t d0, int64_t dc,
                                 float inner, float outer, const double *dx_scale, float *dx, double *sy,
                                 double *stats, int nvec, int with_sy, int with_stats)
{
    __m256i valid[2];
    __m256d scale[4], ct[4], su[4];
    for (int h = 0; h < nvec; ++h) {
        valid[h] = v8_lanes_below(dc - h * W);
        for (int q = 0; q < 2; ++q) {
            const int k = 2 * h + q;
            scale[k] = _mm256_loadu_pd(dx_scale + 4 * k);
            ct[k] = with_stats ? _mm256_loadu_pd(stats + 4 * k) : _mm256_setzero_pd();
            su[k] = with_stats ? _mm256_loadu_pd(stats + ATTN4J_TB_LANES + 4 * k) : _mm256_setzero_pd();
        }
    }
    const __m256 vinner = _mm256_set1_ps(inner), one = _mm256_set1_ps(1.0f);
    for (int64_t a = 0; a < nx; ++a) {
        const float *xa = x + a * dim + d0;
        __m256 xv[2];
        __m256d sx[4];
        for (int h = 0; h < nvec; ++h) {
            xv[h] = _mm256_maskload_ps(xa + h * W, valid[h]);
            sx[2 * h] = sx[2 * h + 1] = _mm256_setzero_pd();
        }
        for (int64_t b = 0; b < ny; ++b) {
            const float s = ds[a * ds_x + b * ds_y];
            const __m256 vg = _mm256_set1_ps(s * outer);
            const __m256d vs = _mm256_set1_pd((double)s);
            const float *yb = y + b * dim + d0;
            double *syb = with_sy ? sy + b * ATTN4J_TB_LANES : NULL;
            for (int h = 0; h < nvec; ++h) {
                const __m256 t = _mm256_add_ps(xv[h], _mm256_maskload_ps(yb + h * W, valid[h]));
                const __m256 u = v8_tanh(_mm256_mul_ps(vinner, t));
                const __m256 e = _mm256_mul_ps(_mm256_sub_ps(one, u), _mm256_add_ps(one, u));
                const __m256 c = _mm256_mul_ps(vg, e);
                const __m256d c_lo = lo_pd(c), c_hi = hi_pd(c);
                sx[2 * h] = _mm256_add_pd(sx[2 * h], c_lo);
                sx[2 * h + 1] = _mm256_add_pd(sx[2 * h + 1], c_hi);
                if (with_sy) {
                    double *p = syb + h * W;
                    _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), c_lo));
                    _mm256_storeu_pd(p + 4, _mm256_add_pd(_mm256_loadu_pd(p + 4), c_hi));
                }
                if (with_stats) {
                    ct[2 * h] = _mm256_fmadd_pd(c_lo, lo_pd(t), ct[2 * h]);
                    ct[2 * h + 1] = _mm256_fmadd_pd(c_hi, hi_pd(t), ct[2 * h + 1]);
                    su[2 * h] = _mm256_fmadd_pd(vs, lo_pd(u), su[2 * h]);
                    su[2 * h + 1] = _mm256_fmadd_pd(vs, hi_pd(u), su[2 * h + 1]);
                }
            }
        }
        for (int h = 0; h < nvec; ++h) {
            const __m128 lo = _mm256_cvtpd_ps(_mm256_mul_pd(scale[2 * h], sx[2 * h]));
            const __m128 hi = _mm256_cvtpd_ps(_mm256_mul_pd(scale[2 * h + 1], sx[2 * h + 1]));
            _mm256_maskstore_ps(dx + a * dim + d0 + h * W, valid[h], _mm256_set_m128(hi, lo));
        }
    }
    if (with_stats) {
        for (int k = 0; k < 2 * nvec; ++k) {
            _mm256_storeu_pd(stats + 4 * k, ct[k]);
            _mm256_storeu_pd(stats + ATTN4J_TB_LANES + 4 * k, su[k]);
        }
    }
}

#define TANH_BACKWARD(nvec, with_sy, with_stats)                                                             \
    tanh_backward(x, nx, y, ny, dim, ds, ds_x, ds_y, d0, dc, inner, outer, dx_scale, dx, sy, stats, nvec, \
                  with_sy, with_stats)

void attn4j_tanh_backward_avx2(const float *x, int64_t nx, const float *y, int64_t ny, int64_t dim,
                               const float *ds, int64_t ds_x, int64_t ds_y, int64_t d0, int64_t dc, float inner,
                               float outer, const double *dx_scale, float *dx, double *sy, double *stats)
{
    const int mode = (sy != NULL) * 2 + (stats != NULL);
    if (dc > W) {
        switch (mode) {
        case 3: TANH_BACKWARD(2, 1, 1); break;
        case 2: TANH_BACKWARD(2, 1, 0); break;
        case 1: TANH_BACKWARD(2, 0, 1); break;
        default: TANH_BACKWARD(2, 0, 0); break;
        }
    } else {
        switch (mode) {
        case 3: TANH_BACKWARD(1, 1, 1); break;
        case 2: TANH_BACKWARD(1, 1, 0); break;
        case 1: TANH_BACKWARD(1, 0, 1); break;
        default: TANH_BACKWARD(1, 0, 0); break;
        }
    }
}
