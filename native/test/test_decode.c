/*
 * test_decode.c - attn4j_decode_attention_f32 and attn4j_decode_workspace_bytes
 * through the shared library, against a double-precision reference written here
 * from the contract in attn4j.h.
 *
 * Tolerance: as test_flash.c's bound for one query row. With p_j the exact
 * probabilities, L the largest |scale| sum_p |q[p] k_j[p]| over the row's keys
 * and M = sum_j p_j |v_j[c]|, the error is at most M (2 g(d + 1) L + 2 g(n) +
 * 4e-7), g(m) = m 2^-24.
 *
 * Covered: d and dv of 1, odd, 16-multiples and around the vector tiles (8 logit
 * rows, 6 / 4 output rows, 64 / 16 channel chunks), kv_repeat 1 to 9, key ranges
 * of one key, ragged and windowed rows, the (B, K, L, H) cache layout with rows past
 * the range filled with NaN (never read), gaps between output rows left untouched,
 * an unaligned workspace of exactly the documented size, nthreads 1, 2 and 3 giving
 * the same bits, special values, and every argument check. Runs under
 * ATTN4J_ISA=scalar|avx2|avx512.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn4j.h"
#include "test_util.h"

/* One call: a cache (B, K, L, d) / (B, K, L, dv), queries (B, N, d) with a gap of
 * `qgap` floats after each head, outputs (B, N, dv + ogap). */
struct call {
    int64_t batch, heads, rep, tk, d, dv, qgap, ogap;
    float scale;
    float *q, *k, *v;
    int32_t *begin, *end;
};

static int64_t q_inner(const struct call *c) { return c->d + c->qgap; }
static int64_t o_inner(const struct call *c) { return c->dv + c->ogap; }
static int64_t kvh(const struct call *c) { return c->heads / c->rep; }

static void make(struct call *c, float spread)
{
    const int64_t kv = kvh(c);
    c->q = malloc(sizeof(float) * (size_t)(c->batch * c->heads * q_inner(c)));
    c->k = malloc(sizeof(float) * (size_t)(c->batch * kv * c->tk * c->d));
    c->v = malloc(sizeof(float) * (size_t)(c->batch * kv * c->tk * c->dv));
    c->begin = malloc(sizeof(int32_t) * (size_t)c->batch);
    c->end = malloc(sizeof(int32_t) * (size_t)c->batch);
    fill_uniform(c->q, c->batch * c->heads * q_inner(c), -spread, spread);
    for (int64_t b = 0; b < c->batch; ++b) {
        const int64_t end = 1 + (int64_t)(rng_next() % (uint64_t)c->tk);
        const int64_t begin = rng_next() % 3 == 0 ? (int64_t)(rng_next() % (uint64_t)end) : 0;
        c->begin[b] = (int32_t)begin;
        c->end[b] = (int32_t)end;
        for (int64_t g = 0; g < kv; ++g) {
            for (int64_t j = 0; j < c->tk; ++j) {
                const int in = j >= begin && j < end;
                float *kr = c->k + ((b * kv + g) * c->tk + j) * c->d;
                float *vr = c->v + ((b * kv + g) * c->tk + j) * c->dv;
                for (int64_t p = 0; p < c->d; ++p)
                    kr[p] = in ? rng_uniform(-spread, spread) : NAN;
                for (int64_t p = 0; p < c->dv; ++p)
                    vr[p] = in ? rng_uniform(-1.0f, 1.0f) : NAN;
            }
        }
    }
}

static void unmake(struct call *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->begin);
    free(c->end);
}

static int run(const struct call *c, float *o, int32_t nthreads, int misalign)
{
    const int64_t kv = kvh(c);
    const int64_t bytes = attn4j_decode_workspace_bytes(c->rep, c->tk, c->d, nthreads);
    CHECK(bytes > 0);
    char *raw = malloc((size_t)bytes + 8);
    char *ws = raw + (misalign ? 4 : 0);
    const int rc = attn4j_decode_attention_f32(
        c->q, c->heads * q_inner(c), q_inner(c), c->k, c->d, kv * c->tk * c->d, c->tk * c->d, c->v, c->dv,
        kv * c->tk * c->dv, c->tk * c->dv, o, c->heads * o_inner(c), o_inner(c), c->batch, c->heads, c->rep,
        c->tk, c->d, c->dv, c->scale, c->begin, c->end, ws, bytes, nthreads);
    free(raw);
    return rc;
}

/* Checks o against the double reference and that the gaps kept their sentinel. */
static void verify(const struct call *c, const float *o, const char *what)
{
    const int64_t kv = kvh(c);
    for (int64_t b = 0; b < c->batch; ++b) {
        for (int64_t h = 0; h < c->heads; ++h) {
            const int64_t g = h / c->rep;
            const float *q = c->q + (b * c->heads + h) * q_inner(c);
            const int64_t begin = c->begin[b], end = c->end[b], n = end - begin;
            double *x = malloc(sizeof(double) * (size_t)n);
            double mx = -INFINITY, bigl = 0.0;
            for (int64_t j = 0; j < n; ++j) {
                const float *kr = c->k + ((b * kv + g) * c->tk + begin + j) * c->d;
                double s = 0.0, a = 0.0;
                for (int64_t p = 0; p < c->d; ++p) {
                    s += (double)(c->scale * q[p]) * kr[p];
                    a += fabs((double)c->scale * q[p] * kr[p]);
                }
                x[j] = s;
                mx = s > mx ? s : mx;
                bigl = a > bigl ? a : bigl;
            }
            double sum = 0.0;
            for (int64_t j = 0; j < n; ++j)
                sum += exp(x[j] - mx);
            const double gd = (double)(c->d + 1) * 0x1.0p-24, gn = (double)n * 0x1.0p-24;
            for (int64_t ch = 0; ch < c->dv; ++ch) {
                double want = 0.0, m = 0.0;
                for (int64_t j = 0; j < n; ++j) {
                    const double p = exp(x[j] - mx) / sum;
                    const double vv = c->v[((b * kv + g) * c->tk + begin + j) * c->dv + ch];
                    want += p * vv;
                    m += p * fabs(vv);
                }
                const double got = o[(b * c->heads + h) * o_inner(c) + ch];
                const double tol = m * (2 * gd * bigl + 2 * gn + 4e-7) + 1e-30;
                CHECK_MSG(fabs(got - want) <= tol, "%s: b %lld h %lld c %lld: got %.9g want %.9g (tol %.3g)", what,
                          (long long)b, (long long)h, (long long)ch, got, want, tol);
            }
            for (int64_t ch = c->dv; ch < o_inner(c); ++ch)
                CHECK_MSG(o[(b * c->heads + h) * o_inner(c) + ch] == -7.0f, "%s: gap overwritten", what);
            free(x);
        }
    }
}

static float *outputs(const struct call *c)
{
    const int64_t n = c->batch * c->heads * o_inner(c);
    float *o = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; ++i)
        o[i] = -7.0f;
    return o;
}

static void one(int64_t batch, int64_t heads, int64_t rep, int64_t tk, int64_t d, int64_t dv, float spread)
{
    struct call c = {batch, heads, rep, tk, d, dv, (int64_t)(rng_next() % 3), (int64_t)(rng_next() % 3),
                     1.0f / sqrtf((float)d), NULL, NULL, NULL, NULL, NULL};
    make(&c, spread);
    char what[128];
    snprintf(what, sizeof what, "B%lld N%lld r%lld tk%lld d%lld dv%lld", (long long)batch, (long long)heads,
             (long long)rep, (long long)tk, (long long)d, (long long)dv);
    float *o1 = outputs(&c);
    CHECK_INT_EQ(run(&c, o1, 1, 0), ATTN4J_OK);
    verify(&c, o1, what);
    /* Threads and an unaligned workspace: the same bits. */
    for (int32_t t = 2; t <= 3; ++t) {
        float *ot = outputs(&c);
        CHECK_INT_EQ(run(&c, ot, t, 1), ATTN4J_OK);
        CHECK_MSG(memcmp(o1, ot, sizeof(float) * (size_t)(batch * heads * o_inner(&c))) == 0,
                  "%s: nthreads %d differs", what, t);
        free(ot);
    }
    free(o1);
    unmake(&c);
}

static void test_sizes(void)
{
    const int64_t dims[] = {1, 3, 8, 15, 16, 17, 33, 64, 65, 100, 128};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; ++i)
        for (size_t jj = 0; jj < sizeof dims / sizeof dims[0]; jj += 2)
            one(2, 2, 1, 1 + (int64_t)(rng_next() % 70), dims[i], dims[jj], 1.0f);
    for (int64_t rep = 1; rep <= 9; ++rep)
        one(3, rep * 2, rep, 200, 64, 64, 1.0f);
    one(1, 8, 1, 1, 64, 64, 1.0f);       /* a cache of one key */
    one(2, 8, 4, 4097, 64, 64, 2.0f);    /* the benchmark's shape, GQA 8:2 */
    one(1, 8, 1, 3000, 64, 48, 3.0f);    /* peaked softmax */
    one(4, 6, 3, 513, 40, 72, 1.0f);
}

/* Large cache and many items: the thread split actually runs threads. */
static void test_threads_large(void)
{
    one(4, 16, 2, 6000, 64, 64, 1.0f);
}

static void test_special_values(void)
{
    struct call c = {1, 2, 1, 5, 4, 3, 0, 0, 1.0f, NULL, NULL, NULL, NULL, NULL};
    make(&c, 1.0f);
    c.begin[0] = 0;
    c.end[0] = 5;
    for (int64_t i = 0; i < 2 * 5 * 4; ++i)
        c.k[i] = 0.5f;
    for (int64_t i = 0; i < 2 * 5 * 3; ++i)
        c.v[i] = 1.0f;
    c.k[2 * 4] = NAN; /* head 0 (kv head 0), key 2: its row is NaN */
    c.q[4] = INFINITY; /* head 1: q . k is +inf for every key: NaN */
    float o[6];
    CHECK_INT_EQ(run(&c, o, 1, 0), ATTN4J_OK);
    for (int ch = 0; ch < 3; ++ch) {
        CHECK_MSG(isnan(o[ch]), "NaN logit: o[%d] = %g", ch, o[ch]);
        CHECK_MSG(isnan(o[3 + ch]), "inf logits: o[%d] = %g", 3 + ch, o[3 + ch]);
    }
    /* Huge equal logits: uniform weights, exactly the mean of v (all 1). */
    for (int64_t i = 0; i < 2 * 5 * 4; ++i)
        c.k[i] = 1e30f;
    for (int64_t i = 0; i < 2 * 4; ++i)
        c.q[i] = 1e-3f;
    CHECK_INT_EQ(run(&c, o, 1, 0), ATTN4J_OK);
    for (int ch = 0; ch < 6; ++ch)
        CHECK_MSG(fabsf(o[ch] - 1.0f) < 1e-6f, "equal logits: o[%d] = %g", ch, o[ch]);
    unmake(&c);
}

static void test_argument_checks(void)
{
    struct call c = {2, 4, 2, 10, 8, 8, 0, 0, 1.0f, NULL, NULL, NULL, NULL, NULL};
    make(&c, 1.0f);
    float o[2 * 4 * 8];
    for (int i = 0; i < 64; ++i)
        o[i] = -7.0f;
    const int64_t bytes = attn4j_decode_workspace_bytes(2, 10, 8, 1);
    char *ws = malloc((size_t)bytes);
    const float *q = c.q, *k = c.k, *v = c.v;
#define CALL(q_, qo, qi, k_, ldk, ko, ki, v_, ldv, vo, vi, o_, oo, oi, B, N, R, TK, D, DV, kb, ke, w, wb, t) \
    attn4j_decode_attention_f32(q_, qo, qi, k_, ldk, ko, ki, v_, ldv, vo, vi, o_, oo, oi, B, N, R, TK, D, DV,  \
                                1.0f, kb, ke, w, wb, t)
#define OK(kb, ke, w, wb, t) CALL(q, 32, 8, k, 8, 160, 80, v, 8, 160, 80, o, 32, 8, 2, 4, 2, 10, 8, 8, kb, ke, w, wb, t)
    int32_t bad_begin[2] = {0, 5}, bad_end[2] = {10, 5}, over[2] = {1, 11}, neg[2] = {-1, 0};
    CHECK_INT_EQ(CALL(NULL, 32, 8, k, 8, 160, 80, v, 8, 160, 80, o, 32, 8, 2, 4, 2, 10, 8, 8, NULL, NULL, ws, bytes, 1),
                 ATTN4J_EINVAL);
    CHECK_INT_EQ(CALL(q, 32, 8, k, 8, 160, 80, v, 8, 160, 80, NULL, 32, 8, 2, 4, 2, 10, 8, 8, NULL, NULL, ws, bytes, 1),
                 ATTN4J_EINVAL);
    CHECK_INT_EQ(OK(NULL, NULL, NULL, bytes, 1), ATTN4J_EINVAL);
    CHECK_INT_EQ(OK(NULL, NULL, ws, bytes - 1, 1), ATTN4J_EINVAL);
    CHECK_INT_EQ(OK(NULL, NULL, ws, bytes, 0), ATTN4J_EINVAL);
    CHECK_INT_EQ(OK(NULL, NULL, ws, bytes, 1025), ATTN4J_EINVAL);
    CHECK_INT_EQ(OK(bad_begin, bad_end, ws, bytes, 1), ATTN4J_EINVAL); /* empty range */
    CHECK_INT_EQ(OK(NULL, over, ws, bytes, 1), ATTN4J_EINVAL);         /* end > tk */
    CHECK_INT_EQ(OK(neg, NULL, ws, bytes, 1), ATTN4J_EINVAL);          /* begin < 0 */
    CHECK_INT_EQ(CALL(q, 32, 8, k, 8, 160, 80, v, 8, 160, 80, o, 32, 8, 2, 4, 3, 10, 8, 8, NULL, NULL, ws, bytes, 1),
                 ATTN4J_EINVAL); /* heads % kv_repeat */
    CHECK_INT_EQ(CALL(q, 32, 7, k, 8, 160, 80, v, 8, 160, 80, o, 32, 8, 2, 4, 2, 10, 8, 8, NULL, NULL, ws, bytes, 1),
                 ATTN4J_EINVAL); /* q_inner < d */
    CHECK_INT_EQ(CALL(q, 32, 8, k, 7, 160, 80, v, 8, 160, 80, o, 32, 8, 2, 4, 2, 10, 8, 8, NULL, NULL, ws, bytes, 1),
                 ATTN4J_EINVAL); /* ldk < d */
    CHECK_INT_EQ(CALL(q, 32, 8, k, 8, -1, 80, v, 8, 160, 80, o, 32, 8, 2, 4, 2, 10, 8, 8, NULL, NULL, ws, bytes, 1),
                 ATTN4J_EINVAL); /* negative stride */
    CHECK_INT_EQ(CALL(q, 32, 8, k, 8, INT64_MAX / 2, 80, v, 8, 160, 80, o, 32, 8, 2, 4, 2, 10, 8, 8, NULL, NULL, ws,
                      bytes, 1),
                 ATTN4J_EINVAL); /* span beyond PTRDIFF_MAX */
    CHECK_INT_EQ(CALL(q, 32, 8, k, 8, 160, 80, v, 8, 160, 80, o, 32, 8, 0, 4, 2, 10, 8, 8, NULL, NULL, ws, bytes, 1),
                 ATTN4J_EINVAL); /* batch 0 */
    for (int i = 0; i < 64; ++i)
        CHECK_MSG(o[i] == -7.0f, "o touched by a refused call at %d", i);
    /* The valid call: the whole cache refilled with finite values, then NULL ranges
     * (every key) must give the same bits as the explicit full ranges [0, tk). */
    for (int64_t b = 0; b < 2; ++b) {
        c.begin[b] = 0;
        c.end[b] = 10;
        for (int64_t i = 0; i < 2 * 10 * 8; ++i) {
            c.k[b * 160 + i] = rng_uniform(-1, 1);
            c.v[b * 160 + i] = rng_uniform(-1, 1);
        }
    }
    CHECK_INT_EQ(OK(NULL, NULL, ws, bytes, 1), ATTN4J_OK);
    float o2[64];
    CHECK_INT_EQ(CALL(q, 32, 8, k, 8, 160, 80, v, 8, 160, 80, o2, 32, 8, 2, 4, 2, 10, 8, 8, c.begin, c.end, ws, bytes,
                      1),
                 ATTN4J_OK);
    CHECK(memcmp(o, o2, sizeof o) == 0);
    c.qgap = c.ogap = 0;
    verify(&c, o2, "NULL ranges");
#undef OK
#undef CALL
    free(ws);
    unmake(&c);
}

static void test_workspace_bytes(void)
{
    CHECK(attn4j_decode_workspace_bytes(1, 1, 1, 1) >= 64 + 64 + 64);
    CHECK(attn4j_decode_workspace_bytes(4, 4097, 64, 2) >= 2 * 4 * (4112 + 64) * 4);
    CHECK(attn4j_decode_workspace_bytes(0, 1, 1, 1) < 0);
    CHECK(attn4j_decode_workspace_bytes(1, 0, 1, 1) < 0);
    CHECK(attn4j_decode_workspace_bytes(1, 1, 0, 1) < 0);
    CHECK(attn4j_decode_workspace_bytes(1, 1, 1, 0) < 0);
    CHECK(attn4j_decode_workspace_bytes(1, 1, 1, 1025) < 0);
    CHECK(attn4j_decode_workspace_bytes(INT64_MAX / 4, INT64_MAX / 4, 1, 1) < 0);
}

int main(void)
{
    rng_seed(0x243F6A8885A308D3u);
    if (test_should_skip("test_decode"))
        return 77;
    test_workspace_bytes();
    test_argument_checks();
    test_sizes();
    test_special_values();
    test_threads_large();
    return test_finish("test_decode");
}
