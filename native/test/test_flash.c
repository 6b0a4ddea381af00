/*
 * test_flash.c - attn4j_flash_attention_f32 and attn4j_flash_workspace_bytes
 * through the shared library, against a double-precision reference written here
 * from the contract in attn4j.h.
 *
 * Tolerance. For output (bh, i, c) let p_j be the exact probabilities, L the
 * largest |scale| sum_p |q[i,p] k[j,p]| over the kept keys and M = sum_j p_j
 * |v[j,c]|. The kernel's logits are float dot products of d terms (plus the
 * rounding of scale * q): each is off by at most g(d + 1) L, g(n) = n 2^-24, so
 * every p_j is off by a factor within exp(+-2 g(d + 1) L); the exp adds 2 ulp; the
 * float sums over the tk keys (of p and of p v) add at most g(tk) each, the
 * final division one rounding. So
 *
 *     |got - want| <= M (2 g(d + 1) L + 2 g(tk) + 4e-7)
 *
 * a worst-case bound (the errors seen are far below it). Fully masked rows are a
 * mean summed in double: 4e-7 of the mean of |v|.
 *
 * Covered: sizes 1, odd and around the tiles (32 query rows, 64 keys, the 12- and
 * 6-row register tiles), tq != tk, causal with tq < tk and tq > tk, key padding
 * masks (shared by heads through col_mask_div), fully masked rows (all keys
 * padded; causal rows whose visible keys are all padded), grouped-query kv_repeat,
 * the (B, T, N, H) in-place layout with gaps between rows that must stay
 * untouched, a per-head query bias, an unaligned workspace of exactly the documented size, nthreads 1, 2
 * and 3 giving the same bits, special values, and every argument check. Runs
 * under ATTN4J_ISA=scalar|avx2|avx512.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn4j.h"
#include "test_util.h"
#include "test_flash_util.h"

/* ---- A call: shapes, layout, masks --------------------------------------------------- */

struct call {
    int64_t batch_heads, inner, kv_repeat, tq, tk, d, dv;
    int64_t ldq, q_outer, q_inner, ldk, k_outer, k_inner, ldv, v_outer, v_inner, ldo, o_outer, o_inner;
    float scale;
    const uint8_t *col_mask;
    int64_t col_mask_div;
    int32_t causal;
    const float *q, *k, *v;
    int64_t o_size; /* floats the o buffer holds */
    const float *q_bias; /* NULL, or inner rows of d floats added to q first */
};

/* (B, T, N, H)-style layout: problems bh = b * inner + h, rows strided by
 * `heads * width + gap`, so that `gap` floats after each row belong to no one. */
static void set_layout(int64_t *ld, int64_t *outer, int64_t *inner_stride, int64_t rows, int64_t heads,
                       int64_t width, int64_t gap)
{
    *ld = heads * width + gap;
    *outer = rows * *ld;
    *inner_stride = width;
}

static char case_name[320];

/* The contract, in double: want[(bh * tq + i) * dv + c] and the error bound. */
static void reference(const struct call *c, double *want, double *tol)
{
    double *x = malloc((size_t)c->tk * sizeof *x);
    double *mag = malloc((size_t)c->tk * sizeof *mag);
    int *kept = malloc((size_t)c->tk * sizeof *kept);
    const double g = 0x1.0p-24;
    for (int64_t bh = 0; bh < c->batch_heads; ++bh) {
        const int64_t ob = bh / c->inner, h = bh % c->inner, kvh = h / c->kv_repeat;
        const float *q = c->q + ob * c->q_outer + h * c->q_inner;
        const float *k = c->k + ob * c->k_outer + kvh * c->k_inner;
        const float *v = c->v + ob * c->v_outer + kvh * c->v_inner;
        const uint8_t *cm = c->col_mask == NULL ? NULL : c->col_mask + (bh / c->col_mask_div) * c->tk;
        for (int64_t i = 0; i < c->tq; ++i) {
            double mx = -INFINITY, lmax = 0.0;
            int any = 0;
            for (int64_t j = 0; j < c->tk; ++j) {
                double dot = 0.0, adot = 0.0;
                for (int64_t p = 0; p < c->d; ++p) {
                    /* With a bias, the query element is the float sum q + bias (as Keras's
                     * projection output), then exact from here on. */
                    const double qe = c->q_bias == NULL ? (double)q[i * c->ldq + p]
                                                        : (double)(q[i * c->ldq + p] + c->q_bias[h * c->d + p]);
                    dot += qe * (double)k[j * c->ldk + p];
                    adot += fabs(qe * (double)k[j * c->ldk + p]);
                }
                x[j] = (double)c->scale * dot;
                mag[j] = fabs((double)c->scale) * adot;
                kept[j] = (cm == NULL || cm[j] != 0) && (!c->causal || j <= i);
                if (kept[j]) {
                    any = 1;
                    mx = x[j] > mx ? x[j] : mx;
                    lmax = mag[j] > lmax ? mag[j] : lmax;
                }
            }
            double sum = 0.0;
            for (int64_t j = 0; j < c->tk; ++j)
                sum += kept[j] ? exp(x[j] - mx) : 0.0;
            for (int64_t ch = 0; ch < c->dv; ++ch) {
                double acc = 0.0, am = 0.0;
                for (int64_t j = 0; j < c->tk; ++j) {
                    const double pj = any ? (kept[j] ? exp(x[j] - mx) / sum : 0.0) : 1.0 / (double)c->tk;
                    acc += pj * (double)v[j * c->ldv + ch];
                    am += pj * fabs((double)v[j * c->ldv + ch]);
                }
                const int64_t at = (bh * c->tq + i) * c->dv + ch;
                want[at] = acc;
                tol[at] = any ? am * (2.0 * g * (double)(c->d + 1) * lmax + 2.0 * g * (double)c->tk + 4e-7)
                              : am * 4e-7;
                tol[at] += 1e-30;
            }
        }
    }
    free(x);
    free(mag);
    free(kept);
}

static float *o_at(const struct call *c, float *o, int64_t bh, int64_t i)
{
    return o + (bh / c->inner) * c->o_outer + (bh % c->inner) * c->o_inner + i * c->ldo;
}

static int run(const struct call *c, float *o, int32_t nthreads, int misalign)
{
    const int64_t bytes = attn4j_flash_workspace_bytes(c->tq, c->tk, c->d, c->dv, nthreads);
    CHECK_MSG(bytes > 0, "%s: workspace bytes %lld", case_name, (long long)bytes);
    /* Exactly the documented size (ASan sees any overrun), at an address that is
     * not 64-byte aligned when asked. */
    char *raw = malloc((size_t)bytes + 64);
    char *ws = raw + (misalign ? 4 : 0);
    const int rc = attn4j_flash_attention_f32(
        c->q, c->ldq, c->q_outer, c->q_inner, c->k, c->ldk, c->k_outer, c->k_inner, c->v, c->ldv, c->v_outer,
        c->v_inner, o, c->ldo, c->o_outer, c->o_inner, c->batch_heads, c->inner, c->kv_repeat, c->tq, c->tk, c->d,
        c->dv, c->scale, c->q_bias, c->col_mask, c->col_mask_div, c->causal, ws, bytes, nthreads);
    free(raw);
    return rc;
}

/* Runs c with 1, 2 and 3 threads, checks every output against the reference,
 * the thread counts against each other bit for bit, and that o's gaps are
 * untouched. Returns the max error / tolerance ratio. */
static double check_call(const struct call *c)
{
    const int64_t n = c->batch_heads * c->tq * c->dv;
    double *want = malloc((size_t)n * sizeof *want);
    double *tol = malloc((size_t)n * sizeof *tol);
    float *o1 = malloc((size_t)c->o_size * sizeof *o1);
    float *o2 = malloc((size_t)c->o_size * sizeof *o2);
    fill_sentinel(o1, c->o_size);
    reference(c, want, tol);
    CHECK_MSG(run(c, o1, 1, 0) == ATTN4J_OK, "%s: rc", case_name);
    double worst = 0.0;
    long shown = 0;
    for (int64_t bh = 0; bh < c->batch_heads; ++bh) {
        for (int64_t i = 0; i < c->tq; ++i) {
            const float *row = o_at(c, o1, bh, i);
            for (int64_t ch = 0; ch < c->dv; ++ch) {
                const int64_t at = (bh * c->tq + i) * c->dv + ch;
                const double err = fabs((double)row[ch] - want[at]);
                const double ratio = err / tol[at];
                worst = ratio > worst || isnan(ratio) ? ratio : worst;
                if (!(err <= tol[at]) && shown++ < 5)
                    CHECK_MSG(0, "%s: o[bh %lld, i %lld, c %lld] = %.9g, expected %.9g (error %.3g, allowed %.3g)",
                              case_name, (long long)bh, (long long)i, (long long)ch, (double)row[ch], want[at],
                              err, tol[at]);
                else
                    CHECK(1);
            }
        }
    }
    /* Everything outside the rows of o: untouched. */
    int64_t written = 0, sentinels = 0;
    for (int64_t e = 0; e < c->o_size; ++e)
        sentinels += o1[e] == SENTINEL;
    written = c->o_size - sentinels;
    CHECK_MSG(written <= n, "%s: %lld floats of o changed, %lld are outputs", case_name, (long long)written,
              (long long)n);

    for (int32_t t = 2; t <= 3; ++t) {
        fill_sentinel(o2, c->o_size);
        CHECK_MSG(run(c, o2, t, t == 3) == ATTN4J_OK, "%s: rc with %d threads", case_name, (int)t);
        CHECK_MSG(memcmp(o1, o2, (size_t)c->o_size * sizeof *o1) == 0,
                  "%s: nthreads %d differs from nthreads 1", case_name, (int)t);
    }
    free(want);
    free(tol);
    free(o1);
    free(o2);
    return worst;
}

/* Builds a call for (B, N heads of q, N / kv_repeat heads of k and v) in a
 * (B, T, N, H) layout (gap floats after each row) or dense (BH, T, d), random
 * data, optional key padding per batch entry, and checks it. */
struct spec {
    int64_t b, n, kv_repeat, tq, tk, d, dv;
    int32_t causal;
    int mha_layout;   /* 0: dense (BH, T, d); 1: (B, T, N, H) with gaps */
    int mask;         /* 0: none; 1: random padding; 2: one entry all padded; 3: leading keys padded */
    float scale;
    int q_bias;       /* 1: a random (N, d) bias added to q first */
};

static double check_spec(const struct spec *s)
{
    struct call c;
    memset(&c, 0, sizeof c);
    const int64_t nkv = s->n / s->kv_repeat;
    c.batch_heads = s->b * s->n;
    c.inner = s->n;
    c.kv_repeat = s->kv_repeat;
    c.tq = s->tq;
    c.tk = s->tk;
    c.d = s->d;
    c.dv = s->dv;
    c.scale = s->scale;
    c.causal = s->causal;
    int64_t q_size, k_size, v_size;
    if (s->mha_layout) {
        set_layout(&c.ldq, &c.q_outer, &c.q_inner, s->tq, s->n, s->d, 3);
        set_layout(&c.ldk, &c.k_outer, &c.k_inner, s->tk, nkv, s->d, 1);
        set_layout(&c.ldv, &c.v_outer, &c.v_inner, s->tk, nkv, s->dv, 2);
        set_layout(&c.ldo, &c.o_outer, &c.o_inner, s->tq, s->n, s->dv, 5);
        q_size = s->b * c.q_outer;
        k_size = s->b * c.k_outer;
        v_size = s->b * c.v_outer;
        c.o_size = s->b * c.o_outer;
    } else {
        /* Dense: one problem per (b, h) of q; k and v (B * Nkv, tk, .). With
         * inner = N the kv head of bh is (bh % N) / kv_repeat. */
        c.ldq = s->d;
        c.q_inner = s->tq * s->d;
        c.q_outer = s->n * c.q_inner;
        c.ldk = s->d;
        c.k_inner = s->tk * s->d;
        c.k_outer = nkv * c.k_inner;
        c.ldv = s->dv;
        c.v_inner = s->tk * s->dv;
        c.v_outer = nkv * c.v_inner;
        c.ldo = s->dv;
        c.o_inner = s->tq * s->dv;
        c.o_outer = s->n * c.o_inner;
        q_size = s->b * c.q_outer;
        k_size = s->b * c.k_outer;
        v_size = s->b * c.v_outer;
        c.o_size = s->b * c.o_outer;
    }
    float *q = malloc((size_t)q_size * sizeof *q);
    float *k = malloc((size_t)k_size * sizeof *k);
    float *v = malloc((size_t)v_size * sizeof *v);
    fill_uniform(q, q_size, -1.0f, 1.0f);
    fill_uniform(k, k_size, -1.0f, 1.0f);
    fill_uniform(v, v_size, -1.0f, 1.0f);
    float *bias = NULL;
    if (s->q_bias) {
        bias = malloc((size_t)(s->n * s->d) * sizeof *bias);
        fill_uniform(bias, s->n * s->d, -1.0f, 1.0f);
        c.q_bias = bias;
    }
    uint8_t *mask = key_padding(s->b, s->tk, s->mask);
    c.col_mask = mask;
    c.col_mask_div = mask != NULL ? s->n : 1;
    c.q = q;
    c.k = k;
    c.v = v;
    snprintf(case_name, sizeof case_name,
             "B %lld N %lld rep %lld tq %lld tk %lld d %lld dv %lld causal %d layout %s mask %d scale %g bias %d",
             (long long)s->b, (long long)s->n, (long long)s->kv_repeat, (long long)s->tq, (long long)s->tk,
             (long long)s->d, (long long)s->dv, (int)s->causal, s->mha_layout ? "BTNH" : "dense", s->mask,
             (double)s->scale, s->q_bias);
    const double worst = check_call(&c);
    free(q);
    free(k);
    free(v);
    free(mask);
    free(bias);
    return worst;
}

/* ---- The sweeps ------------------------------------------------------------------------ */

static void test_sizes(void)
{
    /* Every combination of these would be slow under ASan with the scalar
     * reference; pair each tq with every tk and draw d, dv from lists instead. */
    static const int64_t tqs[] = {1, 2, 5, 31, 32, 33, 63, 64, 65, 97, 128};
    static const int64_t tks[] = {1, 3, 11, 12, 13, 63, 64, 65, 129, 150};
    static const int64_t ds[] = {1, 2, 5, 12, 13, 16, 31, 64, 65};
    static const int64_t dvs[] = {1, 3, 6, 7, 11, 12, 13, 24, 25, 64};
    double worst = 0.0;
    for (size_t a = 0; a < sizeof tqs / sizeof tqs[0]; ++a) {
        for (size_t b = 0; b < sizeof tks / sizeof tks[0]; ++b) {
            for (int causal = 0; causal <= 1; ++causal) {
                struct spec s = {1, 2, 1, tqs[a], tks[b], ds[rng_int(9)], dvs[rng_int(10)], causal, 0, 0, 0.0f, 0};
                s.scale = 1.0f / sqrtf((float)s.d);
                const double w = check_spec(&s);
                worst = w > worst ? w : worst;
            }
        }
    }
    printf("test_sizes: worst error / bound %.3g\n", worst);
}

static void test_layouts_masks_gqa(void)
{
    double worst = 0.0;
    for (int rep = 0; rep < 60; ++rep) {
        struct spec s;
        s.b = 1 + rng_int(3);
        s.kv_repeat = 1 + rng_int(3);
        s.n = s.kv_repeat * (1 + rng_int(2));
        s.tq = 1 + rng_int(80);
        s.tk = 1 + rng_int(140);
        s.d = 1 + rng_int(70);
        s.dv = 1 + rng_int(40);
        s.causal = (int32_t)rng_int(2);
        s.mha_layout = (int)rng_int(2);
        s.mask = (int)rng_int(4);
        s.scale = rep % 5 == 0 ? 3.0f : 1.0f / sqrtf((float)s.d);
        s.q_bias = rep % 3 == 0;
        const double w = check_spec(&s);
        worst = w > worst ? w : worst;
    }
    printf("test_layouts_masks_gqa: worst error / bound %.3g\n", worst);
}

/* Causal with tq < tk and tq > tk, around the block edges. */
static void test_causal_shapes(void)
{
    static const int64_t pairs[][2] = {{1, 100}, {31, 200}, {33, 64}, {64, 65}, {100, 1}, {130, 64}, {97, 33},
                                       {70, 70}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; ++p) {
        for (int mask = 0; mask <= 3; mask += 3) {
            struct spec s = {2, 2, 2, pairs[p][0], pairs[p][1], 16, 9, 1, 1, mask, 0.25f, mask == 3};
            check_spec(&s);
        }
    }
}

/* Fully masked rows are the mean of v over every key, exactly computed here. */
static void test_fully_masked_values(void)
{
    enum { TQ = 40, TK = 70, D = 5, DV = 3 };
    float q[TQ * D], k[TK * D], v[TK * DV], o[TQ * DV];
    fill_uniform(q, TQ * D, -2.0f, 2.0f);
    fill_uniform(k, TK * D, -2.0f, 2.0f);
    for (int e = 0; e < TK * DV; ++e)
        v[e] = (float)(e % 7); /* small integers: the mean is exact to a rounding */
    uint8_t mask[TK];
    memset(mask, 0, sizeof mask);
    mask[50] = 1; /* causal: every row (i < 40 < 50) keeps nothing */
    const int64_t bytes = attn4j_flash_workspace_bytes(TQ, TK, D, DV, 1);
    void *ws = malloc((size_t)bytes);
    const int rc = attn4j_flash_attention_f32(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ + 0,
                                              TK, D, DV, 0.5f, NULL, mask, 1, 1, ws, bytes, 1);
    CHECK_INT_EQ(rc, ATTN4J_OK);
    for (int c = 0; c < DV; ++c) {
        double sum = 0.0;
        for (int j = 0; j < TK; ++j)
            sum += v[j * DV + c];
        const float mean = (float)(sum / TK);
        for (int i = 0; i < 40; ++i)
            CHECK_MSG(o[i * DV + c] == mean, "row %d c %d: %.9g, expected the mean %.9g", i, c,
                      (double)o[i * DV + c], (double)mean);
    }
    /* Not causal, same mask: every row keeps key 50 only. */
    CHECK_INT_EQ(attn4j_flash_attention_f32(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D,
                                            DV, 0.5f, NULL, mask, 1, 0, ws, bytes, 1),
                 ATTN4J_OK);
    for (int i = 0; i < TQ; ++i)
        for (int c = 0; c < DV; ++c)
            CHECK_MSG(o[i * DV + c] == v[50 * DV + c], "row %d c %d: %.9g, expected v[50] %.9g", i, c,
                      (double)o[i * DV + c], (double)v[50 * DV + c]);
    free(ws);
}

/* Large logits (softmax close to an argmax), a NaN query row, infinite values. */
static void test_special_values(void)
{
    enum { TQ = 35, TK = 67, D = 8, DV = 4 };
    float q[TQ * D], k[TK * D], v[TK * DV], o[TQ * DV];
    fill_uniform(q, TQ * D, -1.0f, 1.0f);
    fill_uniform(k, TK * D, -1.0f, 1.0f);
    fill_uniform(v, TK * DV, -1.0f, 1.0f);
    const int64_t bytes = attn4j_flash_workspace_bytes(TQ, TK, D, DV, 2);
    void *ws = malloc((size_t)bytes);

    /* scale 1000: logits up to ~8000, far past exp's range before the shift. */
    struct call c = {1, 1, 1, TQ, TK, D, DV, D, 0, 0, D, 0, 0, DV, 0, 0, DV, 0, 0, 1000.0f, NULL, 1, 0,
                     q, k, v, TQ * DV, NULL};
    snprintf(case_name, sizeof case_name, "scale 1000");
    check_call(&c);

    /* A NaN in query row 3: that row is NaN, every other row finite. */
    q[3 * D + 2] = NAN;
    CHECK_INT_EQ(attn4j_flash_attention_f32(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D,
                                            DV, 0.3f, NULL, NULL, 1, 0, ws, bytes, 2),
                 ATTN4J_OK);
    for (int i = 0; i < TQ; ++i)
        for (int ch = 0; ch < DV; ++ch)
            CHECK_MSG(i == 3 ? isnan(o[i * DV + ch]) : isfinite(o[i * DV + ch]), "NaN query: o[%d, %d] = %g", i,
                      ch, (double)o[i * DV + ch]);
    q[3 * D + 2] = 0.5f;

    /* An infinite key element makes every logit it meets +-inf or NaN; hidden
     * by causality (its block is never read) or by padding, it changes nothing. */
    k[60 * D + 1] = INFINITY;
    CHECK_INT_EQ(attn4j_flash_attention_f32(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D,
                                            DV, 0.3f, NULL, NULL, 1, 1, ws, bytes, 1),
                 ATTN4J_OK);
    for (int i = 0; i < TQ; ++i) /* causal, TQ = 35 < 60: no row sees key 60 */
        for (int ch = 0; ch < DV; ++ch)
            CHECK_MSG(isfinite(o[i * DV + ch]), "hidden inf key: o[%d, %d] = %g", i, ch, (double)o[i * DV + ch]);
    /* Masked out by padding instead: finite too. */
    uint8_t mask[TK];
    memset(mask, 1, sizeof mask);
    mask[60] = 0;
    CHECK_INT_EQ(attn4j_flash_attention_f32(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D,
                                            DV, 0.3f, NULL, mask, 1, 0, ws, bytes, 1),
                 ATTN4J_OK);
    for (int i = 0; i < TQ; ++i)
        for (int ch = 0; ch < DV; ++ch)
            CHECK_MSG(isfinite(o[i * DV + ch]), "padded inf key: o[%d, %d] = %g", i, ch, (double)o[i * DV + ch]);
    k[60 * D + 1] = 0.5f;
    free(ws);
}

/* ---- Arguments ------------------------------------------------------------------------- */

static void test_workspace_bytes(void)
{
    /* d = dv = 64, from 64 queries on: blocks of 64 rows, qt, st (64 keys), ot
     * 16 KiB each, m, l, alpha 256 B each, the mean of v 256 B; the 64 of
     * alignment slack once. The figure attn4j.h quotes. */
    const int64_t one = attn4j_flash_workspace_bytes(4096, 4096, 64, 64, 1);
    CHECK_INT_EQ(one, 3 * 16384 + 3 * 256 + 256 + 64);
    CHECK_INT_EQ(attn4j_flash_workspace_bytes(64, 1, 64, 64, 1), one);
    CHECK_INT_EQ(attn4j_flash_workspace_bytes(64, 100000, 64, 64, 1), one); /* not growing with tk */
    CHECK_INT_EQ(attn4j_flash_workspace_bytes(1000000, 1, 64, 64, 1), one); /* nor tq */
    /* Under 64 queries: blocks of 32 rows, 8 KiB regions, 128 B statistics. */
    const int64_t short_one = 3 * 8192 + 3 * 128 + 256;
    CHECK_INT_EQ(attn4j_flash_workspace_bytes(63, 4096, 64, 64, 1), short_one + 64);
    CHECK_INT_EQ(attn4j_flash_workspace_bytes(1, 1, 64, 64, 2), 2 * short_one + 64);
    CHECK(attn4j_flash_workspace_bytes(1, 1, 1, 1, 1) > 0);
    CHECK(attn4j_flash_workspace_bytes(0, 1, 1, 1, 1) < 0);
    CHECK(attn4j_flash_workspace_bytes(1, 0, 1, 1, 1) < 0);
    CHECK(attn4j_flash_workspace_bytes(1, 1, 0, 1, 1) < 0);
    CHECK(attn4j_flash_workspace_bytes(1, 1, 1, 0, 1) < 0);
    CHECK(attn4j_flash_workspace_bytes(1, 1, 1, 1, 0) < 0);
    CHECK(attn4j_flash_workspace_bytes(1, 1, 1, 1, 1025) < 0);
    CHECK(attn4j_flash_workspace_bytes(1, 1, 1, 1, 1024) > 0);
    CHECK(attn4j_flash_workspace_bytes(1, 1, INT64_MAX / 8, 1, 1) < 0);
    CHECK(attn4j_flash_workspace_bytes(1, 1, INT64_MAX / 400, 1, 1024) < 0);
}

static void test_argument_checks(void)
{
    enum { TQ = 3, TK = 4, D = 2, DV = 2 };
    float q[TQ * D] = {0}, k[TK * D] = {0}, v[TK * DV] = {0}, o[TQ * DV];
    const int64_t bytes = attn4j_flash_workspace_bytes(TQ, TK, D, DV, 2);
    void *ws = malloc((size_t)bytes);
    uint8_t mask[TK] = {1, 1, 1, 1};
/* A good call with one argument replaced. */
#define FA(Q, LDQ, QO, QI, K, LDK, KO, KI, V, LDV, VO, VI, O, LDO, OO, OI, BH, IN, REP, TQ_, TK_, D_, DV_, CM, \
           CMD, WS, WSB, NT)                                                                                      \
    attn4j_flash_attention_f32(Q, LDQ, QO, QI, K, LDK, KO, KI, V, LDV, VO, VI, O, LDO, OO, OI, BH, IN, REP, TQ_,  \
                               TK_, D_, DV_, 1.0f, NULL, CM, CMD, 0, WS, WSB, NT)
#define GOOD() FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2)
    fill_sentinel(o, TQ * DV);
    const int rcs[] = {
        FA(NULL, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, NULL, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, NULL, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, NULL, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, NULL, bytes, 2),
        FA(q, D - 1, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D - 1, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV - 1, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV - 1, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, -1, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, -1, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, -1, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, -1, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, -1, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, -1, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, -1, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, -1, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 0, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 0, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 0, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 3, 2, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 3, 3, 2, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, 0, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, 0, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, 0, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, 0, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 0, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes - 1, 2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 3),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 0),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, INT64_MAX, 1025),
        /* Spans past PTRDIFF_MAX bytes. */
        FA(q, INT64_MAX / 2, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes, 2),
        FA(q, D, 0, 0, k, D, INT64_MAX / 2, 0, v, DV, 0, 0, o, DV, 0, 0, 2, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes,
           2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, INT64_MAX / 4, o, DV, 0, 0, 2, 2, 1, TQ, TK, D, DV, mask, 1, ws, bytes,
           2),
        FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, INT64_MAX / 5, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, ws, bytes,
           2),
    };
    for (size_t e = 0; e < sizeof rcs / sizeof rcs[0]; ++e)
        CHECK_MSG(rcs[e] == ATTN4J_EINVAL, "bad argument case %zu returned %d", e, rcs[e]);
    for (int e = 0; e < TQ * DV; ++e)
        CHECK_MSG(o[e] == SENTINEL, "o[%d] written by a refused call", e);
    CHECK_INT_EQ(GOOD(), ATTN4J_OK);
    /* A col_mask NULL with any col_mask_div >= 1, and the 1024-thread limit. */
    CHECK_INT_EQ(FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, NULL, 7, ws, bytes, 2),
                 ATTN4J_OK);
    const int64_t big = attn4j_flash_workspace_bytes(TQ, TK, D, DV, 1024);
    void *wsbig = malloc((size_t)big);
    CHECK_INT_EQ(FA(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK, D, DV, mask, 1, wsbig, big,
                    1024),
                 ATTN4J_OK);
    free(wsbig);
#undef GOOD
#undef FA
    free(ws);
}

/* Enough work for the threads to really start (the call does not split below
 * ~8 Mflop per thread): 1, 2 and 3 threads, the same bits (check_call). */
static void test_threads_large(void)
{
    struct spec s = {2, 4, 2, 300, 257, 64, 64, 0, 1, 1, 0.125f, 1};
    check_spec(&s);
    s.causal = 1;
    check_spec(&s);
}

int main(void)
{
    rng_seed(0x452821E638D01377u);
    if (test_should_skip("test_flash"))
        return 77;
    test_workspace_bytes();
    test_argument_checks();
    test_sizes();
    test_causal_shapes();
    test_layouts_masks_gqa();
    test_fully_masked_values();
    test_special_values();
    test_threads_large();
    return test_finish("test_flash");
}
