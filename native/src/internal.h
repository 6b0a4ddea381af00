/*
 * internal.h - what the translation units of libattn4j share and nothing else
 * sees: the per-ISA row kernels, the CPU dispatch and the constants both vector
 * paths must agree on. Nothing here is exported (-fvisibility=hidden); the unit
 * tests reach it by linking the objects directly.
 *
 * The *_avx2.c and *_avx512.c units are compiled with their own -m flags. Keep
 * every helper shared between translation units a macro or a `static inline`
 * function: a plain (extern) inline function could be emitted by several units
 * and the linker could keep the copy compiled with -mavx512f, which would then
 * run on a CPU that does not have it. The vector math the units of one ISA share
 * lives in vmath_avx2.h / vmath_avx512.h, which only those units include.
 */
#ifndef ATTN4J_INTERNAL_H
#define ATTN4J_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "attn4j.h"

/* ---- Masked logits (see ATTN4J_MASK_* in attn4j.h) ---------------------------- */

/* SUBTRACT: Keras Attention does `scores -= 1e9 * (1 - mask)` in float32, so a
 * masked logit is fl32(x - 1e9f) and a kept one is x - 0 = x. */
#define ATTN4J_SUBTRACT_BIAS 1e9f
/* REPLACE_ZERO: keras.layers.Softmax puts -1e9 at masked positions. */
#define ATTN4J_REPLACE_ZERO_LOGIT (-1e9f)
/* REPLACE: ops.dot_product_attention puts -0.7 * finfo(float32).max at masked
 * positions. fl32(-0.7f * FLT_MAX) and fl32(-0.7 * (double)FLT_MAX) are the same
 * float, written out here so no compiler evaluation mode can change it. */
#define ATTN4J_REPLACE_LOGIT (-0x1.666664p+127f)

/* ---- Vector exp constants (shared by the AVX2 and AVX-512 paths) --------------
 *
 * exp(x) = 2^n * exp(r), n = rint(x * log2(e)), r = x - n*ln2 with ln2 split in
 * two floats (Cody-Waite; the FMA makes n*ln2_hi exact), then
 * exp(r) ~ 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4) on |r| <= 0.351.
 * c2..c6 are a weighted least-squares fit iterated towards minimax (Lawson) of the
 * relative error on [-0.3506, 0.3506], rounded to float: relative error 5.2e-9,
 * i.e. ~0.04 ulp, so the result is within 1 ulp of exp (see test/test_exp.c).
 *
 * Inputs are clamped to [ATTN4J_EXP_LO, ATTN4J_EXP_HI] first (NaN passes the
 * clamp unchanged): below -150 ln2 = -103.972 the result rounds to +0, above
 * 128 ln2 = 88.723 it overflows to +inf, and the clamp keeps n within [-150, 128]
 * so that 2^n can be built from exponent bits without integer overflow.
 */
#define ATTN4J_EXP_LO (-104.0f)
#define ATTN4J_EXP_HI 88.8f
/* Below this, v16_exp_nonpos / v8_exp_nonpos give +0 (exp(-86) = 4.4e-38). */
#define ATTN4J_EXP_NONPOS_LO (-86.0f)
#define ATTN4J_LOG2E 0x1.715476p+0f
#define ATTN4J_LN2_HI 0x1.62e430p-1f
#define ATTN4J_LN2_LO (-0x1.05c610p-29f)
#define ATTN4J_EXP_C2 0x1.fffffcp-2f
#define ATTN4J_EXP_C3 0x1.555488p-3f
#define ATTN4J_EXP_C4 0x1.55591cp-5f
#define ATTN4J_EXP_C5 0x1.1240bep-7f
#define ATTN4J_EXP_C6 0x1.6a18d6p-10f

/* ---- Softmax rows (softmax.c) ------------------------------------------------
 *
 * attn4j_masked_softmax_ex_f32 plans each row in softmax.c (which columns can be
 * kept at all, which masked columns need no pass) and hands the columns that need
 * one to the row kernel of the instruction set:
 *
 *   x[0..n), n >= 1, holds scores. Column j is kept when lo <= j < hi and
 *   (m1 == NULL || m1[j] != 0) && (m2 == NULL || m2[j] != 0) (m2 only with m1);
 *   the others are masked (masked() of `convention`). n_const >= 0 more columns,
 *   not in x, have the constant masked logit of REPLACE / REPLACE_ZERO (n_const is
 *   0 under SUBTRACT): they take part in the max and in the sum as n_const equal
 *   terms. x becomes the softmax (REPLACE_ZERO: +0 at its masked columns), and the
 *   function returns the probability of each of the n_const columns (REPLACE_ZERO:
 *   +0), for the caller to store.
 *
 * The scalar kernel (softmax.c) is the reference: the vector kernels do the same
 * float operations per element and differ only in exp and in the order of the
 * double sum.
 */
typedef float (*attn4j_softmax_row_fn)(float *x, const uint8_t *m1, const uint8_t *m2, int64_t n,
                                       int64_t lo, int64_t hi, int64_t n_const, float scale,
                                       int32_t convention);

float attn4j_softmax_row_scalar(float *x, const uint8_t *m1, const uint8_t *m2, int64_t n, int64_t lo,
                                int64_t hi, int64_t n_const, float scale, int32_t convention);

/* ---- keep(b, i, j) of a softmax (softmax.c, backward.c) ---------------------------
 *
 * The mask arguments of attn4j_masked_softmax_ex_f32, read the same way by the
 * forward and by attn4j_softmax_backward_f32: causality and the window keep a
 * column range [lo, hi), a row padding byte of 0 keeps none, and inside the range
 * the attention mask row (m1) and the column padding mask (m2) decide per column.
 */
struct attn4j_softmax_masks {
    const uint8_t *mask;
    int64_t mask_batch_stride, mask_row_stride, mask_batch_div;
    const uint8_t *row_mask, *col_mask;
    int64_t pad_batch_div;
    int32_t causal;
    int64_t window;
};

/* The argument checks of attn4j_masked_softmax_ex_f32 other than its pointer. */
static inline int attn4j_softmax_args_ok(int64_t batch, int64_t tq, int64_t tv, const struct attn4j_softmax_masks *m,
                                         int32_t convention)
{
    if (batch < 1 || tq < 1 || tv < 1 || m->mask_batch_stride < 0 || m->mask_row_stride < 0 ||
        m->mask_batch_div < 1 || m->pad_batch_div < 1 || m->window < 0)
        return 0;
    if (convention != ATTN4J_MASK_SUBTRACT && convention != ATTN4J_MASK_REPLACE_ZERO &&
        convention != ATTN4J_MASK_REPLACE)
        return 0;
    /* A (batch, tq, tv) no address space can hold: refuse it rather than let the
     * row offsets overflow. */
    return tq <= PTRDIFF_MAX / (int64_t)sizeof(float) / tv &&
           batch <= PTRDIFF_MAX / (int64_t)sizeof(float) / tv / tq;
}

/* The mask bytes of score batch b (NULL where that mask is absent). */
struct attn4j_softmax_batch {
    const uint8_t *mask, *rows, *cols;
};

static inline struct attn4j_softmax_batch attn4j_softmax_batch_masks(const struct attn4j_softmax_masks *m,
                                                                     int64_t tq, int64_t tv, int64_t b)
{
    /* Strides are only multiplied out for a mask that exists: with mask == NULL
     * they may be anything >= 0. */
    const int64_t pad_b = b / m->pad_batch_div;
    struct attn4j_softmax_batch r;
    r.mask = m->mask == NULL ? NULL : m->mask + (b / m->mask_batch_div) * m->mask_batch_stride;
    r.rows = m->row_mask == NULL ? NULL : m->row_mask + pad_b * tq;
    r.cols = m->col_mask == NULL ? NULL : m->col_mask + pad_b * tv;
    return r;
}

/* Row i of a batch: column j is kept when lo <= j < hi && (m1 == NULL || m1[j] != 0)
 * && (m2 == NULL || m2[j] != 0); m2 is set only with m1. A row that keeps no
 * column at all has lo = hi = 0 and m1 = m2 = NULL, so it reads no mask byte. */
struct attn4j_softmax_row_plan {
    int64_t lo, hi;
    const uint8_t *m1, *m2;
};

static inline struct attn4j_softmax_row_plan attn4j_softmax_plan_row(const struct attn4j_softmax_masks *m,
                                                                     const struct attn4j_softmax_batch *bm,
                                                                     int64_t tv, int64_t i)
{
    /* Causal (top-left: j <= i) and window (|i - j| < window) as a column range;
     * written so that no sum can overflow for any window. */
    struct attn4j_softmax_row_plan p = {0, tv, NULL, NULL};
    if (m->causal && i + 1 < p.hi)
        p.hi = i + 1;
    if (m->window > 0) {
        if (i >= m->window)
            p.lo = i - m->window + 1;
        if (m->window < p.hi - i)
            p.hi = i + m->window;
    }
    if (p.lo >= p.hi || (bm->rows != NULL && bm->rows[i] == 0)) {
        p.lo = p.hi = 0;
        return p;
    }
    /* Pack the byte masks: m1 is the first present, m2 the second. */
    const uint8_t *m_row = bm->mask == NULL ? NULL : bm->mask + i * m->mask_row_stride;
    p.m1 = m_row != NULL ? m_row : bm->cols;
    p.m2 = m_row != NULL ? bm->cols : NULL;
    return p;
}

/* ---- Vector tanh constants (shared by the AVX2 and AVX-512 paths) -------------
 *
 * tanh is odd, so both paths work on a = |x| and put the sign of x back at the end
 * (tanh(-0) = -0, NaN stays NaN):
 *  - a < ATTN4J_TANH_SMALL: tanh(a) = a + a^3 P(a^2), P of degree 6 in a^2.
 *    C3..C15 are a weighted least-squares fit iterated towards minimax (Lawson) of
 *    the relative error of tanh on [0, 0.875], each rounded to float before the
 *    next was refitted: relative error 7.5e-10 (~0.01 ulp). a is exact and
 *    a^3 P < a/4, so rounding the correction costs well under 1 ulp.
 *  - otherwise: tanh(a) = 1 - 2 / (exp(2a) + 1), with the vector exp of the
 *    softmax (constants above) on 2a in [1.75, 20]. y = 2/(e+1) carries ~2 ulp of
 *    relative error (from e and e + 1); 1 - y keeps it in absolute terms, so it
 *    costs about y / tanh(a) of that in ulps of the result: the reason for the
 *    threshold, where y <= 0.30 and tanh(a) >= 0.70. (At 0.5625, with a degree-4
 *    P, the exp branch reached 2 ulp next to the threshold.)
 *    a is clamped to ATTN4J_TANH_CLAMP first, so exp never overflows: above
 *    ~9.01, 2/(e+1) < 2^-25 and 1 - 2/(e+1) rounds to exactly 1, so the
 *    saturation at +-1 (and tanh(+-inf) = +-1) needs no special case.
 * Measured over all 2^31 non-negative floats (the negative ones mirror them):
 * at most 1 ulp from tanh (0.09% of inputs off by one); glibc 2.36's tanhf is
 * 2 ulp. See test/test_tanh.c.
 */
#define ATTN4J_TANH_SMALL 0.875f
#define ATTN4J_TANH_CLAMP 10.0f
#define ATTN4J_TANH_C3 (-0x1.555550p-2f)
#define ATTN4J_TANH_C5 0x1.110fa8p-3f
#define ATTN4J_TANH_C7 (-0x1.b9da52p-5f)
#define ATTN4J_TANH_C9 0x1.6376eep-6f
#define ATTN4J_TANH_C11 (-0x1.110230p-7f)
#define ATTN4J_TANH_C13 0x1.5b6d5ap-9f
#define ATTN4J_TANH_C15 (-0x1.f9b7d6p-12f)

/* ---- Tanh scores (scores.c) ----------------------------------------------------
 *
 * One batch of attn4j_tanh_scores_f32: q (tq, dim), k (tv, dim), scores (tq, tv),
 * arguments already validated. weights may be NULL (no multiply).
 */
typedef void (*attn4j_tanh_scores_fn)(const float *q, const float *k, float *scores, int64_t tq,
                                      int64_t tv, int64_t dim, const float *weights, float inner,
                                      float outer);

void attn4j_tanh_scores_scalar(const float *q, const float *k, float *scores, int64_t tq,
                               int64_t tv, int64_t dim, const float *weights, float inner,
                               float outer);

/* The vector paths transpose a block of k rows into a stack buffer of
 * ATTN4J_KT_MAX_DIM x (vector width) floats (16 KiB for AVX-512) and vectorise
 * over the key positions j; a larger dim vectorises over d instead. */
#define ATTN4J_KT_MAX_DIM 256

/* ---- Dropout (elementwise.c) ----------------------------------------------------
 *
 * The keep decision of attn4j_dropout_f32, exactly as attn4j.h defines it. static
 * inline: the vector units use it for their scalar tails.
 */
#define ATTN4J_DROPOUT_GOLDEN UINT64_C(0x9E3779B97F4A7C15)
#define ATTN4J_DROPOUT_M1 UINT64_C(0xBF58476D1CE4E5B9)
#define ATTN4J_DROPOUT_M2 UINT64_C(0x94D049BB133111EB)

static inline uint64_t attn4j_dropout_mix(uint64_t z)
{
    z ^= z >> 30;
    z *= ATTN4J_DROPOUT_M1;
    z ^= z >> 27;
    z *= ATTN4J_DROPOUT_M2;
    z ^= z >> 31;
    return z;
}

/* u in [0, 1), a multiple of 2^-24; element i is kept when u >= rate. */
static inline float attn4j_dropout_uniform(uint64_t seed, uint64_t stream, uint64_t i)
{
    const uint64_t h = attn4j_dropout_mix(seed ^ attn4j_dropout_mix(stream * ATTN4J_DROPOUT_GOLDEN + i));
    return (float)(h >> 40) * 0x1.0p-24f;
}

/* x[0..n) of one call; 0 < rate < 1 and n >= 1, already validated. */
typedef void (*attn4j_dropout_fn)(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream);

void attn4j_dropout_scalar(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream);

/* ---- Bias and activation (activation.c) ---------------------------------------
 *
 * Rows of attn4j_bias_act_f32, arguments already validated; bias may be NULL.
 * `activation` is one of ATTN4J_ACT_* other than ATTN4J_ACT_GELU, which always
 * runs the scalar kernel (erf in double per element, the same on every ISA).
 */
typedef void (*attn4j_bias_act_fn)(float *x, int64_t rows, int64_t cols, const float *bias,
                                   int32_t activation);

void attn4j_bias_act_scalar(float *x, int64_t rows, int64_t cols, const float *bias,
                            int32_t activation);

/* ---- Backward passes (backward.c) -----------------------------------------------
 *
 * attn4j_softmax_backward_f32 takes two kernels per row, with the column range
 * and the zeros outside it handled by backward.c:
 *   dot:  sum_j a[j] * b[j] over n >= 0 columns, the exact products summed in
 *         double (in an unspecified order);
 *   grad: g[j] = keep(j) ? scale * p[j] * (g[j] - r) : +0 for j < n, n >= 1, as
 *         float32 operations in that order (no FMA), keep(j) = (m1 == NULL ||
 *         m1[j] != 0) && (m2 == NULL || m2[j] != 0) (m2 only with m1). The
 *         vector kernels compute the same floats as the scalar one.
 */
typedef double (*attn4j_dot_f64_fn)(const float *a, const float *b, int64_t n);
typedef void (*attn4j_softmax_grad_fn)(const float *p, float *g, int64_t n, float r, float scale,
                                       const uint8_t *m1, const uint8_t *m2);

double attn4j_dot_f64_scalar(const float *a, const float *b, int64_t n);
void attn4j_softmax_grad_scalar(const float *p, float *g, int64_t n, float r, float scale, const uint8_t *m1,
                                const uint8_t *m2);

/*
 * attn4j_tanh_scores_backward_f32 works on ATTN4J_TB_LANES consecutive d at a
 * time (lanes l < dc <= ATTN4J_TB_LANES, d = d0 + l), over the rows of two
 * tensors x (nx rows) and y (ny rows) of one batch, both (rows, dim): either
 * x = q, y = k, or x = k, y = q (ds then read transposed). For every row pair
 * (a, b), s = ds[a * ds_x + b * ds_y], and every lane, in float32:
 *     t = x[a, d] + y[b, d];  u = tanh(inner * t);  e = (1 - u) * (1 + u);
 *     c = (s * outer) * e
 * and, in double (sums in a then b order, one per lane):
 *     dx[a * dim + d] = (float)(dx_scale[l] * sum_b c)      (dx_scale = inner * w_d)
 *     sy[b * ATTN4J_TB_LANES + l] += c                       (sy != NULL)
 *     stats[l] += c * t,  stats[ATTN4J_TB_LANES + l] += s * u (stats != NULL)
 * The lanes l >= dc of sy and stats hold garbage the caller ignores.
 */
#define ATTN4J_TB_LANES 16
typedef void (*attn4j_tanh_backward_fn)(const float *x, int64_t nx, const float *y, int64_t ny, int64_t dim,
                                        const float *ds, int64_t ds_x, int64_t ds_y, int64_t d0, int64_t dc,
                                        float inner, float outer, const double *dx_scale, float *dx, double *sy,
                                        double *stats);

void attn4j_tanh_backward_scalar(const float *x, int64_t nx, const float *y, int64_t ny, int64_t dim,
                                 const float *ds, int64_t ds_x, int64_t ds_y, int64_t d0, int64_t dc, float inner,
                                 float outer, const double *dx_scale, float *dx, double *sy, double *stats);

#if defined(ATTN4J_HAVE_X86)
/* backward_avx2.c / backward_avx512.c. */
double attn4j_dot_f64_avx2(const float *a, const float *b, int64_t n);
void attn4j_softmax_grad_avx2(const float *p, float *g, int64_t n, float r, float scale, const uint8_t *m1,
                              const uint8_t *m2);
void attn4j_tanh_backward_avx2(const float *x, int64_t nx, const float *y, int64_t ny, int64_t dim,
                               const float *ds, int64_t ds_x, int64_t ds_y, int64_t d0, int64_t dc, float inner,
                               float outer, const double *dx_scale, float *dx, double *sy, double *stats);
double attn4j_dot_f64_avx512(const float *a, const float *b, int64_t n);
void attn4j_softmax_grad_avx512(const float *p, float *g, int64_t n, float r, float scale, const uint8_t *m1,
                                const uint8_t *m2);
void attn4j_tanh_backward_avx512(const float *x, int64_t nx, const float *y, int64_t ny, int64_t dim,
                                 const float *ds, int64_t ds_x, int64_t ds_y, int64_t d0, int64_t dc, float inner,
                                 float outer, const double *dx_scale, float *dx, double *sy, double *stats);
#endif

/* ---- Small GEMM (gemm.c) ----------------------------------------------------------
 *
 * attn4j_small_gemm_f32 after its checks: 1 <= m <= ATTN4J_GEMM_MAX_ROWS, k, n >= 1,
 * bias may be NULL. Every path computes each y[r, j] in the same order (attn4j.h):
 * per chunk of ATTN4J_GEMM_CHUNK consecutive i, a chain of fmaf in i order from
 * +0; the chunks' sums added in order with float adds; then the bias.
 */
#define ATTN4J_GEMM_MAX_ROWS 8
#define ATTN4J_GEMM_CHUNK 32 /* the C of the contract in attn4j.h: changing it changes results */
typedef void (*attn4j_gemm_fn)(const float *x, int64_t m, int64_t k, const float *w, int64_t n,
                               const float *bias, float *y);

void attn4j_gemm_scalar(const float *x, int64_t m, int64_t k, const float *w, int64_t n, const float *bias,
                        float *y);

#if defined(ATTN4J_HAVE_X86)
/* gemm_avx2.c / gemm_avx512.c. */
void attn4j_gemm_avx2(const float *x, int64_t m, int64_t k, const float *w, int64_t n, const float *bias,
                      float *y);
void attn4j_gemm_avx512(const float *x, int64_t m, int64_t k, const float *w, int64_t n, const float *bias,
                        float *y);
#endif

/* ---- CPU dispatch (cpu.c) ------------------------------------------------------ */

enum attn4j_isa_level { ATTN4J_ISA_SCALAR = 0, ATTN4J_ISA_AVX2 = 1, ATTN4J_ISA_AVX512 = 2 };

/* The level in use: resolved once (thread-safe), read-only afterwards. */
enum attn4j_isa_level attn4j_isa_level(void);

/* The best level this CPU and OS support, ignoring ATTN4J_ISA. */
enum attn4j_isa_level attn4j_isa_detect(void);

/* *acc += a * b for a, b >= 0; 0 (and *acc unchanged) when the result would exceed lim. */
static inline int attn4j_add_mul(int64_t *acc, int64_t a, int64_t b, int64_t lim)
{
    if (a != 0 && b > (lim - *acc) / a)
        return 0;
    *acc += a * b;
    return 1;
}

/* The floats a tensor addressed as base + o * outer + i * inner + j * ld + c
 * (o < n_outer, i < n_inner, j < rows, c < cols; all sizes >= 1, strides >= 0) spans
 * fit a ptrdiff_t: the argument check of the strided kernels (flash, decode). */
static inline int attn4j_extent_ok(int64_t n_outer, int64_t outer, int64_t n_inner, int64_t inner, int64_t rows,
                                   int64_t ld, int64_t cols)
{
    const int64_t lim = PTRDIFF_MAX / (int64_t)sizeof(float);
    int64_t end = cols;
    return end <= lim && attn4j_add_mul(&end, n_outer - 1, outer, lim) &&
           attn4j_add_mul(&end, n_inner - 1, inner, lim) && attn4j_add_mul(&end, rows - 1, ld, lim);
}

/* A dense (a, b, c) float32 tensor fits a ptrdiff_t (a, b, c >= 1): the argument
 * check of the (batch, rows, cols) kernels (scores, backward). */
static inline int attn4j_dense_fits(int64_t a, int64_t b, int64_t c)
{
    return b <= PTRDIFF_MAX / (int64_t)sizeof(float) / c && a <= PTRDIFF_MAX / (int64_t)sizeof(float) / c / b;
}

/* [a, a + na) and [b, b + nb) (bytes) share a byte. */
static inline int attn4j_overlaps(const void *a, size_t na, const void *b, size_t nb)
{
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return na > 0 && nb > 0 && x < y + nb && y < x + na;
}

#if defined(ATTN4J_HAVE_X86)
/* softmax_avx2.c: needs AVX2 + FMA. */
float attn4j_softmax_row_avx2(float *x, const uint8_t *m1, const uint8_t *m2, int64_t n, int64_t lo,
                              int64_t hi, int64_t n_const, float scale, int32_t convention);
/* y[k] = exp(x[k]) with the vector exp of the softmax; for the tests. */
void attn4j_exp_avx2(const float *x, float *y, int64_t n);

/* softmax_avx512.c: needs AVX-512 F, BW, VL, DQ (+ FMA). */
float attn4j_softmax_row_avx512(float *x, const uint8_t *m1, const uint8_t *m2, int64_t n, int64_t lo,
                                int64_t hi, int64_t n_const, float scale, int32_t convention);
void attn4j_exp_avx512(const float *x, float *y, int64_t n);

/* scores_avx2.c / scores_avx512.c: the tanh scores of one batch, and the vector
 * tanh on its own (y[k] = tanh(x[k])) for the tests. */
void attn4j_tanh_scores_avx2(const float *q, const float *k, float *scores, int64_t tq, int64_t tv,
                             int64_t dim, const float *weights, float inner, float outer);
void attn4j_tanh_avx2(const float *x, float *y, int64_t n);
void attn4j_tanh_scores_avx512(const float *q, const float *k, float *scores, int64_t tq,
                               int64_t tv, int64_t dim, const float *weights, float inner,
                               float outer);
void attn4j_tanh_avx512(const float *x, float *y, int64_t n);

/* elementwise_avx2.c / elementwise_avx512.c: dropout, 64-bit hash lanes. */
void attn4j_dropout_avx2(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream);
void attn4j_dropout_avx512(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream);

/* activation_avx2.c / activation_avx512.c: bias and activation (not GELU). */
void attn4j_bias_act_avx2(float *x, int64_t rows, int64_t cols, const float *bias, int32_t activation);
void attn4j_bias_act_avx512(float *x, int64_t rows, int64_t cols, const float *bias, int32_t activation);
#endif

#endif /* ATTN4J_INTERNAL_H */
