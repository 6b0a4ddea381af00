/*
 * test_flash_backward.c - attn4j_flash_attention_lse_f32,
 * attn4j_flash_attention_backward_f32 and attn4j_flash_backward_workspace_bytes
 * through the shared library, against a double-precision reference written here
 * from the contract in attn4j.h (the probabilities materialized), itself checked
 * against central finite differences of a double forward.
 *
 * Tolerance. Let g(n) = n 2^-24 and, for query row i, L_i the largest
 * |scale| sum_p |q[i,p] k[j,p]| over its kept keys. The kernel's logits are off by
 * at most g(d + 1) L_i (d products and the rounding of scale * q), its log-sum-exp
 * (max + log of a float sum of tk exps) by 3 g(d + 1) L_i + g(tk) + 2 ulp of the
 * exp + the roundings of log and of the sum, so P = exp(s - lse) is off by a factor
 * within 1 + e_i,
 *
 *     e_i = 4 g(d + 1) L_i + 2 g(tk) + 2^-23 (|lse_i| + log tk) + 6e-7.
 *
 * dP = do . v is a float dot product of dv terms (error g(dv) A_ij, A_ij =
 * sum_c |do[i,c] v[j,c]|), dS = P (dP - D) adds three roundings, and each gradient
 * is a float sum: of tk terms for dq, of the tq kv_repeat rows of a group for dk and
 * dv. With R = g(tq kv_repeat):
 *
 *     |dq err| <= sum_j |scale| P_ij (A_ij + |D_i|) |k[j,p]| (e_i + g(dv) + g(tk) + 4 2^-24)
 *     |dk err| <= sum_i |scale| P_ij (A_ij + |D_i|) |q[i,p]| (e_i + g(dv) + R + 4 2^-24)
 *     |dv err| <= sum_i P_ij |do[i,c]| (e_i + R + 2 2^-24)
 *
 * plus one rounding of the result: worst-case bounds built like test_flash.c's (the
 * errors seen are far below them; the run prints the largest error / bound).
 *
 * Covered: tq, tk in {1, 5, 31, 32, 33, 64, 65, 100} (every pair), d and dv from
 * 1 to 65, causal on and off, key padding (random, a batch entry all padded,
 * leading keys padded so that early causal rows keep nothing), kv_repeat 1 and 4,
 * dense (BH, T, d) and (B, T, N, H) layouts with gaps, q, k, v packed in one
 * (B, T, N H + K H + K Hv) buffer with dq, dk, dv in one such buffer (every float
 * the call does not address holds a sentinel that must survive), lse given and
 * NULL (the same bits), nthreads 1, 2, 3 (the same bits), the forward with lse
 * bit-identical to the plain forward, lse against the reference and +inf on fully
 * masked rows, the workspace size, and every argument check. Runs under
 * ATTN4J_ISA=scalar|avx2|avx512.
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

#define G24 0x1.0p-24

static char case_name[320];

/* ---- The reference, one head in double, dense row-major ------------------------------ */

struct head {
    int64_t tq, tk, d, dv;
    double scale;
    int causal;
    const uint8_t *key_ok; /* NULL: every key */
    const double *q, *k, *v;
};

/* P (tq x tk) as the forward defines it (a fully masked row uniform over all tk
 * keys), lse (+inf on fully masked rows) and e_i of the header comment. */
static void ref_probs(const struct head *h, double *P, double *lse, double *err)
{
    double *x = malloc((size_t)h->tk * sizeof *x);
    for (int64_t i = 0; i < h->tq; ++i) {
        double mx = -INFINITY, lmax = 0.0;
        int any = 0;
        for (int64_t j = 0; j < h->tk; ++j) {
            double dot = 0.0, adot = 0.0;
            for (int64_t p = 0; p < h->d; ++p) {
                dot += h->q[i * h->d + p] * h->k[j * h->d + p];
                adot += fabs(h->q[i * h->d + p] * h->k[j * h->d + p]);
            }
            x[j] = h->scale * dot;
            const int kept = (h->key_ok == NULL || h->key_ok[j] != 0) && (!h->causal || j <= i);
            P[i * h->tk + j] = kept; /* a flag until the row is done */
            if (kept) {
                any = 1;
                mx = x[j] > mx ? x[j] : mx;
                lmax = fabs(h->scale) * adot > lmax ? fabs(h->scale) * adot : lmax;
            }
        }
        if (!any) {
            for (int64_t j = 0; j < h->tk; ++j)
                P[i * h->tk + j] = 1.0 / (double)h->tk;
            lse[i] = INFINITY;
            err[i] = 0.0;
            continue;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < h->tk; ++j)
            sum += P[i * h->tk + j] != 0.0 ? exp(x[j] - mx) : 0.0;
        for (int64_t j = 0; j < h->tk; ++j)
            P[i * h->tk + j] = P[i * h->tk + j] != 0.0 ? exp(x[j] - mx) / sum : 0.0;
        lse[i] = mx + log(sum);
        err[i] = 4.0 * G24 * (double)(h->d + 1) * lmax + 2.0 * G24 * (double)h->tk +
                 2.0 * G24 * (fabs(lse[i]) + log((double)h->tk)) + 6e-7;
    }
    free(x);
}

/* o = P v. */
static void ref_forward(const struct head *h, const double *P, double *o)
{
    for (int64_t i = 0; i < h->tq; ++i)
        for (int64_t c = 0; c < h->dv; ++c) {
            double acc = 0.0;
            for (int64_t j = 0; j < h->tk; ++j)
                acc += P[i * h->tk + j] * h->v[j * h->dv + c];
            o[i * h->dv + c] = acc;
        }
}

/*
 * The contract's gradients of one head given o and dO: dq written, dk and dv
 * accumulated (a kv group sums its heads), and the error bounds of the header
 * comment likewise (tol_* may be NULL; rows_g = g(tq kv_repeat)).
 */
static void ref_backward(const struct head *h, const double *P, const double *lse, const double *err,
                         const double *o, const double *dO, double *dq, double *dk, double *dv, double *tol_q,
                         double *tol_k, double *tol_v, double rows_g)
{
    const int64_t tq = h->tq, tk = h->tk, d = h->d, nv = h->dv;
    for (int64_t e = 0; e < tq * d; ++e) {
        dq[e] = 0.0;
        if (tol_q != NULL)
            tol_q[e] = 0.0;
    }
    for (int64_t i = 0; i < tq; ++i) {
        const int masked = isinf(lse[i]);
        double D = 0.0;
        for (int64_t c = 0; c < nv; ++c)
            D += dO[i * nv + c] * o[i * nv + c];
        for (int64_t j = 0; j < tk; ++j) {
            const double p = P[i * tk + j];
            double dp = 0.0, a = 0.0;
            for (int64_t c = 0; c < nv; ++c) {
                dp += dO[i * nv + c] * h->v[j * nv + c];
                a += fabs(dO[i * nv + c] * h->v[j * nv + c]);
            }
            for (int64_t c = 0; c < nv; ++c) {
                dv[j * nv + c] += p * dO[i * nv + c];
                if (tol_v != NULL)
                    tol_v[j * nv + c] += p * fabs(dO[i * nv + c]) * (err[i] + rows_g + 2.0 * G24);
            }
            if (masked)
                continue; /* constant logits: dS = 0 */
            const double ds = p * (dp - D);
            const double mag = fabs(h->scale) * p * (a + fabs(D));
            for (int64_t e = 0; e < d; ++e) {
                dq[i * d + e] += h->scale * ds * h->k[j * d + e];
                dk[j * d + e] += h->scale * ds * h->q[i * d + e];
                if (tol_q != NULL) {
                    tol_q[i * d + e] +=
                        mag * fabs(h->k[j * d + e]) * (err[i] + G24 * (double)(nv + tk) + 4.0 * G24);
                    tol_k[j * d + e] += mag * fabs(h->q[i * d + e]) * (err[i] + G24 * (double)nv + rows_g + 4.0 * G24);
                }
            }
        }
    }
}

/* ---- A call: shapes, layout, masks --------------------------------------------------- */

/*
 * q, k, v live in one buffer `in` (at offsets q_off, k_off, v_off) and dq, dk, dv
 * at the same offsets in a buffer of the same size: separate regions for the
 * dense and (B, T, N, H) layouts, the column blocks of one packed matrix for the
 * packed layout. o and do share one layout.
 */
struct call {
    int64_t batch_heads, inner, kv_repeat, tq, tk, d, dv;
    int64_t ldq, q_outer, q_inner, ldk, k_outer, k_inner, ldv, v_outer, v_inner, ldo, o_outer, o_inner;
    int64_t q_off, k_off, v_off, in_size, o_size;
    float scale;
    const uint8_t *col_mask;
    int64_t col_mask_div;
    int32_t causal;
    float *in;
};

static int64_t q_at(const struct call *c, int64_t bh, int64_t i)
{
    return c->q_off + (bh / c->inner) * c->q_outer + (bh % c->inner) * c->q_inner + i * c->ldq;
}

static int64_t k_at(const struct call *c, int64_t bh, int64_t j)
{
    return c->k_off + (bh / c->inner) * c->k_outer + (bh % c->inner / c->kv_repeat) * c->k_inner + j * c->ldk;
}

static int64_t v_at(const struct call *c, int64_t bh, int64_t j)
{
    return c->v_off + (bh / c->inner) * c->v_outer + (bh % c->inner / c->kv_repeat) * c->v_inner + j * c->ldv;
}

static int64_t o_at(const struct call *c, int64_t bh, int64_t i)
{
    return (bh / c->inner) * c->o_outer + (bh % c->inner) * c->o_inner + i * c->ldo;
}

static int forward(const struct call *c, float *o, float *lse, int32_t nthreads)
{
    const int64_t bytes = attn4j_flash_workspace_bytes(c->tq, c->tk, c->d, c->dv, nthreads);
    void *ws = malloc((size_t)bytes);
    const float *in = c->in;
    const int rc =
        lse == NULL
            ? attn4j_flash_attention_f32(in + c->q_off, c->ldq, c->q_outer, c->q_inner, in + c->k_off, c->ldk,
                                         c->k_outer, c->k_inner, in + c->v_off, c->ldv, c->v_outer, c->v_inner, o,
                                         c->ldo, c->o_outer, c->o_inner, c->batch_heads, c->inner, c->kv_repeat,
                                         c->tq, c->tk, c->d, c->dv, c->scale, NULL, c->col_mask, c->col_mask_div,
                                         c->causal, ws, bytes, nthreads)
            : attn4j_flash_attention_lse_f32(in + c->q_off, c->ldq, c->q_outer, c->q_inner, in + c->k_off, c->ldk,
                                             c->k_outer, c->k_inner, in + c->v_off, c->ldv, c->v_outer, c->v_inner,
                                             o, c->ldo, c->o_outer, c->o_inner, c->batch_heads, c->inner,
                                             c->kv_repeat, c->tq, c->tk, c->d, c->dv, c->scale, NULL, c->col_mask,
                                             c->col_mask_div, c->causal, lse, ws, bytes, nthreads);
    free(ws);
    return rc;
}

/* The backward into grad (in_size floats, dq, dk, dv at the offsets of q, k, v);
 * the workspace exactly the documented size, at an address 4 bytes off 64-byte
 * alignment when asked. */
static int backward(const struct call *c, const float *o, const float *dout, const float *lse, float *grad,
                    int32_t nthreads, int misalign)
{
    const int64_t bytes = attn4j_flash_backward_workspace_bytes(c->tq, c->tk, c->d, c->dv, nthreads);
    CHECK_MSG(bytes > 0, "%s: workspace bytes %lld", case_name, (long long)bytes);
    char *raw = malloc((size_t)bytes + 64);
    char *ws = raw + (misalign ? 4 : 0);
    const float *in = c->in;
    const int rc = attn4j_flash_attention_backward_f32(
        in + c->q_off, c->ldq, c->q_outer, c->q_inner, in + c->k_off, c->ldk, c->k_outer, c->k_inner,
        in + c->v_off, c->ldv, c->v_outer, c->v_inner, o, dout, c->ldo, c->o_outer, c->o_inner, grad + c->q_off,
        grad + c->k_off, grad + c->v_off, c->batch_heads, c->inner, c->kv_repeat, c->tq, c->tk, c->d, c->dv,
        c->scale, c->col_mask, c->col_mask_div, c->causal, lse, ws, bytes, nthreads);
    free(raw);
    return rc;
}

/* Counts a comparison; prints the first few failures of a case. */
static void check_close(double got, double want, double tol, const char *what, long long a, long long b,
                        long long e, double *worst, long *shown)
{
    tol += 2.0 * G24 * fabs(want) + 1e-30; /* the final rounding */
    const double err = fabs(got - want);
    const double ratio = err / tol;
    *worst = ratio > *worst || isnan(ratio) ? ratio : *worst;
    if (!(err <= tol) && (*shown)++ < 5)
        CHECK_MSG(0, "%s: %s[%lld, %lld, %lld] = %.9g, expected %.9g (error %.3g, allowed %.3g)", case_name, what,
                  a, b, e, got, want, err, tol);
    else
        CHECK(1);
}

/* The whole check of one call (see the header comment); returns the largest
 * error / bound. */
static double check_call(const struct call *c)
{
    const int64_t bhn = c->batch_heads, tq = c->tq, tk = c->tk, d = c->d, nv = c->dv;
    const int64_t n_groups = bhn / c->kv_repeat;
    double worst = 0.0;
    long shown = 0;

    /* Forward: plain and with lse, the same bits. */
    float *o = malloc((size_t)c->o_size * sizeof *o);
    float *o2 = malloc((size_t)c->o_size * sizeof *o2);
    float *dout = malloc((size_t)c->o_size * sizeof *dout);
    float *lse = malloc((size_t)(bhn * tq) * sizeof *lse);
    fill_sentinel(o, c->o_size);
    fill_sentinel(o2, c->o_size);
    CHECK_MSG(forward(c, o, NULL, 1) == ATTN4J_OK, "%s: forward rc", case_name);
    CHECK_MSG(forward(c, o2, lse, 2) == ATTN4J_OK, "%s: forward lse rc", case_name);
    CHECK_MSG(memcmp(o, o2, (size_t)c->o_size * sizeof *o) == 0, "%s: forward with lse differs from without",
              case_name);
    fill_uniform(dout, c->o_size, -1.0f, 1.0f);

    /* The reference, head by head; dk, dv and their bounds summed per group. */
    double *wq = calloc((size_t)(bhn * tq * d), sizeof *wq), *tq_ = calloc((size_t)(bhn * tq * d), sizeof *tq_);
    double *wk = calloc((size_t)(n_groups * tk * d), sizeof *wk), *tk_ = calloc((size_t)(n_groups * tk * d), sizeof *tk_);
    double *wv = calloc((size_t)(n_groups * tk * nv), sizeof *wv), *tv_ = calloc((size_t)(n_groups * tk * nv), sizeof *tv_);
    double *hq = malloc((size_t)(tq * d) * sizeof *hq), *hk = malloc((size_t)(tk * d) * sizeof *hk);
    double *hv = malloc((size_t)(tk * nv) * sizeof *hv), *ho = malloc((size_t)(tq * nv) * sizeof *ho);
    double *hdo = malloc((size_t)(tq * nv) * sizeof *hdo), *P = malloc((size_t)(tq * tk) * sizeof *P);
    double *hl = malloc((size_t)tq * sizeof *hl), *herr = malloc((size_t)tq * sizeof *herr);
    const double rows_g = G24 * (double)(tq * c->kv_repeat);
    for (int64_t bh = 0; bh < bhn; ++bh) {
        const int64_t grp = (bh / c->inner) * (c->inner / c->kv_repeat) + bh % c->inner / c->kv_repeat;
        for (int64_t i = 0; i < tq; ++i) {
            for (int64_t p = 0; p < d; ++p)
                hq[i * d + p] = c->in[q_at(c, bh, i) + p];
            for (int64_t ch = 0; ch < nv; ++ch) {
                ho[i * nv + ch] = o[o_at(c, bh, i) + ch];
                hdo[i * nv + ch] = dout[o_at(c, bh, i) + ch];
            }
        }
        for (int64_t j = 0; j < tk; ++j) {
            for (int64_t p = 0; p < d; ++p)
                hk[j * d + p] = c->in[k_at(c, bh, j) + p];
            for (int64_t ch = 0; ch < nv; ++ch)
                hv[j * nv + ch] = c->in[v_at(c, bh, j) + ch];
        }
        const struct head h = {tq, tk, d, nv, (double)c->scale, c->causal,
                               c->col_mask == NULL ? NULL : c->col_mask + (bh / c->col_mask_div) * tk, hq, hk, hv};
        ref_probs(&h, P, hl, herr);
        /* lse: +inf exactly on fully masked rows, else within the bound. */
        for (int64_t i = 0; i < tq; ++i) {
            const float got = lse[bh * tq + i];
            if (isinf(hl[i])) {
                CHECK_MSG(got == INFINITY, "%s: lse[%lld, %lld] = %g on a fully masked row", case_name,
                          (long long)bh, (long long)i, (double)got);
            } else {
                const double tol = 0.75 * herr[i] + 1e-30;
                check_close(got, hl[i], tol, "lse", bh, i, 0, &worst, &shown);
            }
        }
        ref_backward(&h, P, hl, herr, ho, hdo, wq + bh * tq * d, wk + grp * tk * d, wv + grp * tk * nv,
                     tq_ + bh * tq * d, tk_ + grp * tk * d, tv_ + grp * tk * nv, rows_g);
    }

    /* The kernel: lse given, 1 thread; then NULL and more threads, the same bits. */
    float *g1 = malloc((size_t)c->in_size * sizeof *g1), *g2 = malloc((size_t)c->in_size * sizeof *g2);
    fill_sentinel(g1, c->in_size);
    CHECK_MSG(backward(c, o, dout, lse, g1, 1, 0) == ATTN4J_OK, "%s: backward rc", case_name);
    uint8_t *addressed = calloc((size_t)c->in_size, 1);
    for (int64_t bh = 0; bh < bhn; ++bh) {
        const int64_t grp = (bh / c->inner) * (c->inner / c->kv_repeat) + bh % c->inner / c->kv_repeat;
        for (int64_t i = 0; i < tq; ++i)
            for (int64_t p = 0; p < d; ++p) {
                const int64_t at = q_at(c, bh, i) + p, w = (bh * tq + i) * d + p;
                addressed[at] = 1;
                check_close(g1[at], wq[w], tq_[w], "dq", bh, i, p, &worst, &shown);
            }
        if (bh % c->kv_repeat != 0)
            continue; /* the group's dk, dv once */
        for (int64_t j = 0; j < tk; ++j) {
            for (int64_t p = 0; p < d; ++p) {
                const int64_t at = k_at(c, bh, j) + p, w = (grp * tk + j) * d + p;
                addressed[at] = 1;
                check_close(g1[at], wk[w], tk_[w], "dk", grp, j, p, &worst, &shown);
            }
            for (int64_t ch = 0; ch < nv; ++ch) {
                const int64_t at = v_at(c, bh, j) + ch, w = (grp * tk + j) * nv + ch;
                addressed[at] = 1;
                check_close(g1[at], wv[w], tv_[w], "dv", grp, j, ch, &worst, &shown);
            }
        }
    }
    int64_t touched = 0;
    for (int64_t e = 0; e < c->in_size; ++e)
        touched += !addressed[e] && g1[e] != SENTINEL;
    CHECK_MSG(touched == 0, "%s: %lld floats written outside dq, dk, dv", case_name, (long long)touched);

    const struct {
        int use_lse;
        int32_t threads;
        int misalign;
    } variants[] = {{0, 1, 0}, {1, 2, 1}, {0, 3, 0}, {1, 3, 1}};
    for (size_t e = 0; e < sizeof variants / sizeof variants[0]; ++e) {
        fill_sentinel(g2, c->in_size);
        CHECK_MSG(backward(c, o, dout, variants[e].use_lse ? lse : NULL, g2, variants[e].threads,
                           variants[e].misalign) == ATTN4J_OK,
                  "%s: backward rc", case_name);
        CHECK_MSG(memcmp(g1, g2, (size_t)c->in_size * sizeof *g1) == 0,
                  "%s: lse %s, %d threads differs from lse given, 1 thread", case_name,
                  variants[e].use_lse ? "given" : "NULL", (int)variants[e].threads);
    }

    free(o);
    free(o2);
    free(dout);
    free(lse);
    free(wq);
    free(tq_);
    free(wk);
    free(tk_);
    free(wv);
    free(tv_);
    free(hq);
    free(hk);
    free(hv);
    free(ho);
    free(hdo);
    free(P);
    free(hl);
    free(herr);
    free(g1);
    free(g2);
    free(addressed);
    return worst;
}

enum layout { DENSE, BTNH, PACKED };

struct spec {
    int64_t b, n, kv_repeat, tq, tk, d, dv;
    int32_t causal;
    enum layout layout; /* PACKED needs tq == tk (one row per position) */
    int mask;           /* 0: none; 1: random padding; 2: one entry all padded; 3: leading keys padded */
    float scale;
};

/* Builds the call of a spec over random data and checks it. */
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
    if (s->layout == DENSE) {
        /* (B, N, T, d), a gap of 3 floats between the three regions. */
        c.ldq = s->d;
        c.q_inner = s->tq * s->d;
        c.q_outer = s->n * c.q_inner;
        c.ldk = s->d;
        c.k_inner = s->tk * s->d;
        c.k_outer = nkv * c.k_inner;
        c.ldv = s->dv;
        c.v_inner = s->tk * s->dv;
        c.v_outer = nkv * c.v_inner;
        c.k_off = s->b * c.q_outer + 3;
        c.v_off = c.k_off + s->b * c.k_outer + 3;
        c.in_size = c.v_off + s->b * c.v_outer + 3;
        c.ldo = s->dv;
        c.o_inner = s->tq * s->dv;
        c.o_outer = s->n * c.o_inner;
    } else if (s->layout == BTNH || s->tq != s->tk) {
        /* (B, T, N, H) with gaps of 3, 1, 2 floats after each row. */
        c.ldq = s->n * s->d + 3;
        c.q_outer = s->tq * c.ldq;
        c.q_inner = s->d;
        c.ldk = nkv * s->d + 1;
        c.k_outer = s->tk * c.ldk;
        c.k_inner = s->d;
        c.ldv = nkv * s->dv + 2;
        c.v_outer = s->tk * c.ldv;
        c.v_inner = s->dv;
        c.k_off = s->b * c.q_outer;
        c.v_off = c.k_off + s->b * c.k_outer;
        c.in_size = c.v_off + s->b * c.v_outer;
        c.ldo = s->n * s->dv + 5;
        c.o_inner = s->dv;
        c.o_outer = s->tq * c.ldo;
    } else {
        /* One (B, T, N H + K H + K Hv + 2) matrix: q, k, v are its column blocks. */
        const int64_t width = s->n * s->d + nkv * s->d + nkv * s->dv + 2;
        c.ldq = c.ldk = c.ldv = width;
        c.q_outer = c.k_outer = c.v_outer = s->tq * width;
        c.q_inner = s->d;
        c.k_inner = s->d;
        c.v_inner = s->dv;
        c.k_off = s->n * s->d;
        c.v_off = c.k_off + nkv * s->d;
        c.in_size = s->b * c.q_outer;
        c.ldo = s->n * s->dv + 5;
        c.o_inner = s->dv;
        c.o_outer = s->tq * c.ldo;
    }
    c.o_size = s->b * c.o_outer;
    float *in = malloc((size_t)c.in_size * sizeof *in);
    fill_uniform(in, c.in_size, -1.0f, 1.0f);
    c.in = in;
    uint8_t *mask = key_padding(s->b, s->tk, s->mask);
    c.col_mask = mask;
    c.col_mask_div = mask != NULL ? s->n : 1;
    static const char *const names[] = {"dense", "BTNH", "packed"};
    snprintf(case_name, sizeof case_name,
             "B %lld N %lld rep %lld tq %lld tk %lld d %lld dv %lld causal %d layout %s mask %d scale %g",
             (long long)s->b, (long long)s->n, (long long)s->kv_repeat, (long long)s->tq, (long long)s->tk,
             (long long)s->d, (long long)s->dv, (int)s->causal,
             names[s->layout == PACKED && s->tq != s->tk ? BTNH : s->layout], s->mask, (double)s->scale);
    const double worst = check_call(&c);
    free(in);
    free(mask);
    return worst;
}

/* ---- The sweeps ------------------------------------------------------------------------ */

static void test_sizes(void)
{
    static const int64_t ts[] = {1, 5, 31, 32, 33, 64, 65, 100};
    static const int64_t ds[] = {1, 7, 16, 64, 65};
    const size_t nt = sizeof ts / sizeof ts[0];
    double worst = 0.0;
    for (size_t a = 0; a < nt; ++a) {
        for (size_t b = 0; b < nt; ++b) {
            for (int causal = 0; causal <= 1; ++causal) {
                struct spec s = {1, 2, 1, ts[a], ts[b], ds[rng_int(5)], ds[rng_int(5)], causal, DENSE,
                                 (int)rng_int(4), 0.0f};
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
    for (int rep = 0; rep < 48; ++rep) {
        struct spec s;
        s.b = 1 + rng_int(3);
        s.kv_repeat = rep % 2 == 0 ? 1 : 4;
        s.n = s.kv_repeat * (1 + rng_int(2));
        s.tq = 1 + rng_int(80);
        s.tk = rep % 3 == 0 ? s.tq : 1 + rng_int(110);
        s.d = 1 + rng_int(70);
        s.dv = 1 + rng_int(70);
        s.causal = (int32_t)rng_int(2);
        s.layout = (enum layout)(rep % 3);
        s.mask = (int)rng_int(4);
        s.scale = rep % 5 == 0 ? 3.0f : 1.0f / sqrtf((float)s.d);
        const double w = check_spec(&s);
        worst = w > worst ? w : worst;
    }
    printf("test_layouts_masks_gqa: worst error / bound %.3g\n", worst);
}

/* Causal with tq < tk and tq > tk, with and without leading padding, GQA, packed. */
static void test_causal_shapes(void)
{
    static const int64_t pairs[][2] = {{1, 100}, {31, 70}, {33, 64}, {64, 65}, {100, 1}, {100, 64}, {65, 33},
                                       {70, 70}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; ++p) {
        for (int mask = 0; mask <= 3; mask += 3) {
            struct spec s = {2, 4, 4, pairs[p][0], pairs[p][1], 16, 9, 1, PACKED, mask, 0.25f};
            check_spec(&s);
        }
    }
}

/* Enough work for the threads to start (the call does not split below ~8 Mflop
 * per thread): 1, 2 and 3 threads give the same bits (check_call). */
static void test_threads_large(void)
{
    struct spec s = {2, 4, 2, 200, 160, 64, 64, 0, BTNH, 1, 0.125f};
    check_spec(&s);
    s.causal = 1;
    s.layout = DENSE;
    s.tk = 200;
    check_spec(&s);
}

/* ---- The reference against finite differences ----------------------------------------- */

/* f = sum_{i,c} w[i,c] o[i,c] for the head h (o from the reference forward). */
static double objective(const struct head *h, const double *w)
{
    double *P = malloc((size_t)(h->tq * h->tk) * sizeof *P), *o = malloc((size_t)(h->tq * h->dv) * sizeof *o);
    double *lse = malloc((size_t)h->tq * sizeof *lse), *err = malloc((size_t)h->tq * sizeof *err);
    ref_probs(h, P, lse, err);
    ref_forward(h, P, o);
    double f = 0.0;
    for (int64_t e = 0; e < h->tq * h->dv; ++e)
        f += w[e] * o[e];
    free(P);
    free(o);
    free(lse);
    free(err);
    return f;
}

/* Central differences of the objective in every element of x against grad. */
static void check_fd(const struct head *h, double *x, int64_t n, const double *grad, const double *w,
                     const char *what)
{
    for (int64_t e = 0; e < n; ++e) {
        const double keep = x[e], step = 1e-5;
        x[e] = keep + step;
        const double up = objective(h, w);
        x[e] = keep - step;
        const double down = objective(h, w);
        x[e] = keep;
        const double fd = (up - down) / (2.0 * step);
        CHECK_MSG(fabs(fd - grad[e]) <= 1e-8 + 1e-7 * fabs(fd), "%s: d%s[%lld]: reference %.12g, differences %.12g",
                  case_name, what, (long long)e, grad[e], fd);
    }
}

static void test_reference_finite_differences(void)
{
    enum { TQ = 5, TK = 4, D = 3, DV = 2 };
    double q[TQ * D], k[TK * D], v[TK * DV], w[TQ * DV];
    for (int e = 0; e < TQ * D; ++e)
        q[e] = rng_uniform(-1.5f, 1.5f);
    for (int e = 0; e < TK * D; ++e)
        k[e] = rng_uniform(-1.5f, 1.5f);
    for (int e = 0; e < TK * DV; ++e)
        v[e] = rng_uniform(-1.0f, 1.0f);
    for (int e = 0; e < TQ * DV; ++e)
        w[e] = rng_uniform(-1.0f, 1.0f);
    /* Key 0 padded: with causality row 0 keeps nothing (uniform), the others some. */
    static const uint8_t padded[TK] = {0, 1, 1, 1};
    for (int variant = 0; variant < 2; ++variant) {
        const struct head h = {TQ, TK, D, DV, 0.7, variant, variant ? padded : NULL, q, k, v};
        snprintf(case_name, sizeof case_name, "finite differences, %s", variant ? "causal, key 0 padded" : "plain");
        double P[TQ * TK], lse[TQ], err[TQ], o[TQ * DV];
        double dq[TQ * D], dk[TK * D] = {0}, dv[TK * DV] = {0};
        ref_probs(&h, P, lse, err);
        ref_forward(&h, P, o);
        CHECK(variant == 0 || isinf(lse[0]));
        ref_backward(&h, P, lse, err, o, w, dq, dk, dv, NULL, NULL, NULL, 0.0);
        check_fd(&h, q, TQ * D, dq, w, "q");
        check_fd(&h, k, TK * D, dk, w, "k");
        check_fd(&h, v, TK * DV, dv, w, "v");
    }
}

/* ---- Special rows ----------------------------------------------------------------------- */

/* Every key padded: lse +inf everywhere, dq = dk = 0 exactly, dv[j] = sum_i do[i] / tk. */
static void test_all_masked(void)
{
    enum { TQ = 40, TK = 70, D = 5, DV = 3 };
    float q[TQ * D], k[TK * D], v[TK * DV], o[TQ * DV], dout[TQ * DV], lse[TQ];
    float dq[TQ * D], dk[TK * D], dv[TK * DV];
    fill_uniform(q, TQ * D, -2.0f, 2.0f);
    fill_uniform(k, TK * D, -2.0f, 2.0f);
    fill_uniform(v, TK * DV, -1.0f, 1.0f);
    for (int e = 0; e < TQ * DV; ++e)
        dout[e] = (float)(e % 5) - 2.0f; /* small integers: the sums are exact */
    uint8_t mask[TK];
    memset(mask, 0, sizeof mask);
    const int64_t fb = attn4j_flash_workspace_bytes(TQ, TK, D, DV, 1);
    const int64_t bb = attn4j_flash_backward_workspace_bytes(TQ, TK, D, DV, 1);
    void *fws = malloc((size_t)fb), *bws = malloc((size_t)bb);
    CHECK_INT_EQ(attn4j_flash_attention_lse_f32(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ, TK,
                                                D, DV, 0.5f, NULL, mask, 1, 0, lse, fws, fb, 1),
                 ATTN4J_OK);
    for (int i = 0; i < TQ; ++i)
        CHECK_MSG(lse[i] == INFINITY, "all masked: lse[%d] = %g", i, (double)lse[i]);
    for (int pass = 0; pass < 2; ++pass) {
        fill_sentinel(dq, TQ * D);
        fill_sentinel(dk, TK * D);
        fill_sentinel(dv, TK * DV);
        CHECK_INT_EQ(attn4j_flash_attention_backward_f32(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq,
                                                         dk, dv, 1, 1, 1, TQ, TK, D, DV, 0.5f, mask, 1, 0,
                                                         pass ? NULL : lse, bws, bb, 1),
                     ATTN4J_OK);
        for (int e = 0; e < TQ * D; ++e)
            CHECK_MSG(dq[e] == 0.0f && !signbit(dq[e]), "all masked: dq[%d] = %g", e, (double)dq[e]);
        for (int e = 0; e < TK * D; ++e)
            CHECK_MSG(dk[e] == 0.0f && !signbit(dk[e]), "all masked: dk[%d] = %g", e, (double)dk[e]);
        for (int ch = 0; ch < DV; ++ch) {
            double sum = 0.0;
            for (int i = 0; i < TQ; ++i)
                sum += dout[i * DV + ch];
            const float want = (float)(sum / TK);
            for (int j = 0; j < TK; ++j)
                CHECK_MSG(dv[j * DV + ch] == want, "all masked: dv[%d, %d] = %.9g, expected %.9g", j, ch,
                          (double)dv[j * DV + ch], (double)want);
        }
    }
    free(fws);
    free(bws);
}

/* ---- Arguments ------------------------------------------------------------------------- */

static void test_workspace_bytes(void)
{
    /* d = dv = 64 from 64 queries on (blocks of 64 rows): qt, dqt, dot, qr, dor,
     * st, dpt 16 KiB each, six 256-byte vectors, 64 doubles; 64 bytes of alignment
     * slack once. The figure attn4j.h quotes. */
    const int64_t one = attn4j_flash_backward_workspace_bytes(4096, 4096, 64, 64, 1);
    CHECK_INT_EQ(one, 7 * 16384 + 6 * 256 + 512 + 64);
    CHECK_INT_EQ(attn4j_flash_backward_workspace_bytes(64, 1, 64, 64, 1), one);
    CHECK_INT_EQ(attn4j_flash_backward_workspace_bytes(64, 100000, 64, 64, 1), one); /* not growing with tk */
    CHECK_INT_EQ(attn4j_flash_backward_workspace_bytes(1000000, 1, 64, 64, 1), one); /* nor tq */
    CHECK_INT_EQ(attn4j_flash_backward_workspace_bytes(64, 64, 64, 64, 3), 3 * (one - 64) + 64);
    /* Under 64 queries: blocks of 32 rows. */
    CHECK_INT_EQ(attn4j_flash_backward_workspace_bytes(63, 64, 64, 64, 1), 3 * 8192 + 4 * 8192 + 6 * 128 + 512 + 64);
    /* d = 65: padded rows of 80 floats in qr. */
    CHECK_INT_EQ(attn4j_flash_backward_workspace_bytes(64, 64, 65, 64, 1),
                 2 * 16640 + 16384 + 20480 + 16384 + 2 * 16384 + 6 * 256 + 512 + 64);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 1, 1, 1, 1) > 0);
    CHECK(attn4j_flash_backward_workspace_bytes(0, 1, 1, 1, 1) < 0);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 0, 1, 1, 1) < 0);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 1, 0, 1, 1) < 0);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 1, 1, 0, 1) < 0);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 1, 1, 1, 0) < 0);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 1, 1, 1, 1025) < 0);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 1, 1, 1, 1024) > 0);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 1, INT64_MAX / 8, 1, 1) < 0);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 1, 1, INT64_MAX / 8, 1) < 0);
    CHECK(attn4j_flash_backward_workspace_bytes(1, 1, INT64_MAX / 4000, 1, 1024) < 0);
}

static void test_lse_argument_checks(void)
{
    enum { TQ = 3, TK = 4, D = 2, DV = 2 };
    float q[TQ * D] = {0}, k[TK * D] = {0}, v[TK * DV] = {0}, o[TQ * DV], lse[TQ];
    const int64_t bytes = attn4j_flash_workspace_bytes(TQ, TK, D, DV, 1);
    void *ws = malloc((size_t)bytes);
    fill_sentinel(o, TQ * DV);
    fill_sentinel(lse, TQ);
#define LSE(L, TQ_, WSB)                                                                                          \
    attn4j_flash_attention_lse_f32(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, 1, 1, 1, TQ_, TK, D, DV, 1.0f, \
                                   NULL, NULL, 1, 0, L, ws, WSB, 1)
    CHECK_INT_EQ(LSE(NULL, TQ, bytes), ATTN4J_EINVAL);
    CHECK_INT_EQ(LSE(lse, 0, bytes), ATTN4J_EINVAL);
    CHECK_INT_EQ(LSE(lse, TQ, bytes - 1), ATTN4J_EINVAL);
    /* batch_heads * tq floats of lse beyond PTRDIFF_MAX bytes (o's span fits: o_outer = 0). */
    CHECK_INT_EQ(attn4j_flash_attention_lse_f32(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, DV, 0, 0, INT64_MAX / 8, 1,
                                                1, TQ, TK, D, DV, 1.0f, NULL, NULL, 1, 0, lse, ws, bytes, 1),
                 ATTN4J_EINVAL);
    for (int e = 0; e < TQ * DV; ++e)
        CHECK_MSG(o[e] == SENTINEL, "o[%d] written by a refused call", e);
    for (int e = 0; e < TQ; ++e)
        CHECK_MSG(lse[e] == SENTINEL, "lse[%d] written by a refused call", e);
    CHECK_INT_EQ(LSE(lse, TQ, bytes), ATTN4J_OK);
    for (int e = 0; e < TQ; ++e) /* all-zero q: every logit 0, lse = log(tk) */
        CHECK_MSG(fabsf(lse[e] - logf((float)TK)) <= 2e-7f, "lse[%d] = %.9g", e, (double)lse[e]);
#undef LSE
    free(ws);
}

static void test_backward_argument_checks(void)
{
    enum { TQ = 3, TK = 4, D = 2, DV = 2 };
    float q[TQ * D] = {0}, k[TK * D] = {0}, v[TK * DV] = {0}, o[TQ * DV] = {0}, dout[TQ * DV] = {0};
    float dq[TQ * D], dk[TK * D], dv[TK * DV];
    const float lse[TQ] = {1.0f, 1.0f, 1.0f};
    const int64_t bytes = attn4j_flash_backward_workspace_bytes(TQ, TK, D, DV, 2);
    void *ws = malloc((size_t)bytes);
    uint8_t mask[TK] = {1, 1, 1, 1};
    fill_sentinel(dq, TQ * D);
    fill_sentinel(dk, TK * D);
    fill_sentinel(dv, TK * DV);
/* A good call with one argument replaced. */
#define BW(...) BW_CALL(__VA_ARGS__) /* expands GOOD_ARGS before counting */
#define BW_CALL(Q, LDQ, QO, QI, K, LDK, KO, KI, V, LDV, VO, VI, O, DO, LDO, OO, OI, DQ, DK, DV_, BH, IN, REP, TQ_, \
                TK_, D_, DVD, CM, CMD, L, WS, WSB, NT)                                                            \
    attn4j_flash_attention_backward_f32(Q, LDQ, QO, QI, K, LDK, KO, KI, V, LDV, VO, VI, O, DO, LDO, OO, OI, DQ, DK, \
                                        DV_, BH, IN, REP, TQ_, TK_, D_, DVD, 1.0f, CM, CMD, 0, L, WS, WSB, NT)
#define GOOD_ARGS q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1
    const int rcs[] = {
        BW(NULL, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, NULL, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, NULL, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, NULL, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, NULL, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, NULL, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, NULL, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, NULL, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(GOOD_ARGS, lse, NULL, bytes, 2),
        BW(GOOD_ARGS, lse, ws, bytes - 1, 2),
        BW(GOOD_ARGS, lse, ws, bytes, 3),
        BW(GOOD_ARGS, lse, ws, bytes, 0),
        BW(GOOD_ARGS, lse, ws, INT64_MAX, 1025),
        BW(q, D - 1, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D - 1, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV - 1, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV - 1, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, -1, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, -1, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, -1, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, -1, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 0, 1, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 3, 2, 1, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 3, 3, 2, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 0, TQ, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, 0, TK, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, 0, D, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, 0, DV, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, 0, mask, 1, lse,
           ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask, 0, lse,
           ws, bytes, 2),
        /* Spans past PTRDIFF_MAX bytes. */
        BW(q, INT64_MAX / 2, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask,
           1, lse, ws, bytes, 2),
        BW(q, D, 0, 0, k, D, INT64_MAX / 2, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 2, 1, 1, TQ, TK, D, DV,
           mask, 1, lse, ws, bytes, 2),
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, INT64_MAX / 5, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, mask,
           1, lse, ws, bytes, 2),
        /* lse of batch_heads * tq floats beyond PTRDIFF_MAX bytes (the others' spans fit: strides 0). */
        BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, INT64_MAX / 8, 1, 1, TQ, TK, D, DV,
           NULL, 1, lse, ws, bytes, 2),
    };
    for (size_t e = 0; e < sizeof rcs / sizeof rcs[0]; ++e)
        CHECK_MSG(rcs[e] == ATTN4J_EINVAL, "bad argument case %zu returned %d", e, rcs[e]);
    for (int e = 0; e < TQ * D; ++e)
        CHECK_MSG(dq[e] == SENTINEL, "dq[%d] written by a refused call", e);
    for (int e = 0; e < TK * D; ++e)
        CHECK_MSG(dk[e] == SENTINEL, "dk[%d] written by a refused call", e);
    for (int e = 0; e < TK * DV; ++e)
        CHECK_MSG(dv[e] == SENTINEL, "dv[%d] written by a refused call", e);
    CHECK_INT_EQ(BW(GOOD_ARGS, lse, ws, bytes, 2), ATTN4J_OK);
    CHECK_INT_EQ(BW(GOOD_ARGS, NULL, ws, bytes, 2), ATTN4J_OK);
    /* col_mask NULL with any col_mask_div >= 1. */
    CHECK_INT_EQ(BW(q, D, 0, 0, k, D, 0, 0, v, DV, 0, 0, o, dout, DV, 0, 0, dq, dk, dv, 1, 1, 1, TQ, TK, D, DV, NULL,
                    7, lse, ws, bytes, 2),
                 ATTN4J_OK);
#undef GOOD_ARGS
#undef BW_CALL
#undef BW
    free(ws);
}

/* Zero strides across problems: fine for the forward's inputs (and for o, do_
 * here), refused where two problems' gradients would be the same floats. */
static void test_backward_broadcast_strides(void)
{
    enum { TQ = 3, TK = 4, D = 2, DV = 2 };
    float q[2 * TQ * D], k[2 * TK * D], v[2 * TK * DV], o[2 * TQ * DV], dout[2 * TQ * DV];
    float dq[2 * TQ * D], dk[2 * TK * D], dv[2 * TK * DV];
    fill_uniform(q, 2 * TQ * D, -1.0f, 1.0f);
    fill_uniform(k, 2 * TK * D, -1.0f, 1.0f);
    fill_uniform(v, 2 * TK * DV, -1.0f, 1.0f);
    for (int e = 0; e < 2 * TQ * DV; ++e)
        o[e] = dout[e] = rng_uniform(-1.0f, 1.0f);
    fill_sentinel(dq, 2 * TQ * D);
    fill_sentinel(dk, 2 * TK * D);
    fill_sentinel(dv, 2 * TK * DV);
    const int64_t bytes = attn4j_flash_backward_workspace_bytes(TQ, TK, D, DV, 1);
    void *ws = malloc((size_t)bytes);
/* Two problems, as (outer 2, inner 1) or (outer 1, inner 2, kv_repeat REP). */
#define BS(IN, REP, QS, KS, VS, OS)                                                                                 \
    attn4j_flash_attention_backward_f32(q, D, IN == 1 ? QS : 0, IN == 1 ? 0 : QS, k, D, IN == 1 ? KS : 0,          \
                                        IN == 1 ? 0 : KS, v, DV, IN == 1 ? VS : 0, IN == 1 ? 0 : VS, o, dout, DV,  \
                                        IN == 1 ? OS : 0, IN == 1 ? 0 : OS, dq, dk, dv, 2, IN, REP, TQ, TK, D, DV, \
                                        0.5f, NULL, 1, 0, NULL, ws, bytes, 1)
    CHECK_INT_EQ(BS(1, 1, 0, TK * D, TK * DV, TQ * DV), ATTN4J_EINVAL);
    CHECK_INT_EQ(BS(1, 1, TQ * D, 0, TK * DV, TQ * DV), ATTN4J_EINVAL);
    CHECK_INT_EQ(BS(1, 1, TQ * D, TK * D, 0, TQ * DV), ATTN4J_EINVAL);
    CHECK_INT_EQ(BS(2, 1, 0, TK * D, TK * DV, TQ * DV), ATTN4J_EINVAL);
    CHECK_INT_EQ(BS(2, 1, TQ * D, 0, TK * DV, TQ * DV), ATTN4J_EINVAL);
    CHECK_INT_EQ(BS(2, 1, TQ * D, TK * D, 0, TQ * DV), ATTN4J_EINVAL);
    for (int e = 0; e < 2 * TQ * D; ++e)
        CHECK_MSG(dq[e] == SENTINEL, "dq[%d] written by a refused call", e);
    for (int e = 0; e < 2 * TK * D; ++e)
        CHECK_MSG(dk[e] == SENTINEL, "dk[%d] written by a refused call", e);
    for (int e = 0; e < 2 * TK * DV; ++e)
        CHECK_MSG(dv[e] == SENTINEL, "dv[%d] written by a refused call", e);
    /* Accepted: o and do_ shared (read only); one k, v head for two query heads. */
    CHECK_INT_EQ(BS(1, 1, TQ * D, TK * D, TK * DV, 0), ATTN4J_OK);
    CHECK_INT_EQ(BS(2, 2, TQ * D, 0, 0, TQ * DV), ATTN4J_OK);
#undef BS
    free(ws);
}

int main(void)
{
    rng_seed(0x13198A2E03707344u);
    if (test_should_skip("test_flash_backward"))
        return 77;
    test_workspace_bytes();
    test_lse_argument_checks();
    test_backward_argument_checks();
    test_backward_broadcast_strides();
    test_reference_finite_differences();
    test_all_masked();
    test_sizes();
    test_causal_shapes();
    test_layouts_masks_gqa();
    test_threads_large();
    return test_finish("test_flash_backward");
}
