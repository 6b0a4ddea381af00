/*
 * flash_backward.c - attn4j_flash_attention_backward_f32 and
 * attn4j_flash_backward_workspace_bytes: argument checks, the workspace plan, the
 * split over threads, the loop over blocks, and the scalar kernels of the two
 * block operations the forward has no kernel for (flash_backward.h).
 *
 * Work items are (batch, key/value head) groups: the kv_repeat query heads that
 * share one k and v row set also share its dk and dv, so one thread owns a group
 * from the zeroing of its dk, dv to the last accumulation, and no two threads
 * write the same float. Within a group the order is fixed (head, query block, key
 * block), so the result does not depend on the thread count.
 *
 * The loop is query-block outer, as the forward's: a block's q and do are packed
 * once (qt, dot, qr, dor: flash_backward.h), its dQ stays in the workspace (dqt)
 * over all key blocks, and dk, dv are accumulated in place, a key block at a time.
 * The key blocks a query block visits, and those it skips, are the forward's
 * (causal range, fully padded blocks), so with lse == NULL the statistics that
 * the first pass recomputes with the forward's own kernels are bit for bit those
 * attn4j_flash_attention_lse_f32 writes on the same instruction set.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flash_backward.h"
#include "internal.h"

#define BC ATTN4J_FLASH_BC
#define ALIGN ATTN4J_FLASH_ALIGN
#define PAD ATTN4J_FLASH_BWD_PAD

/* ---- Scalar kernels (see flash_backward.h) ---------------------------------------------- */

static void flash_grad_scalar(float *st, float *dpt, int64_t nk, const uint8_t *key_ok, int32_t diagonal,
                              int64_t diag, const float *lse, const float *dd, float scale, int64_t br)
{
    for (int64_t j = 0; j < nk; ++j) {
        const int key_masked = key_ok != NULL && key_ok[j] == 0;
        for (int64_t ln = 0; ln < br; ++ln) {
            float *s = st + j * br + ln, *g = dpt + j * br + ln;
            const float p =
                key_masked || (diagonal && j - ln > diag) ? 0.0f : attn4j_flash_exp_clamped(*s - lse[ln]);
            *s = p;
            *g = p == 0.0f ? 0.0f : scale * (p * (*g - dd[ln]));
        }
    }
}

static void flash_tn_scalar(const float *at, int64_t br, int64_t nk, int64_t nl, const float *b, int64_t ldb,
                            int64_t n, float *c, int64_t ldc)
{
    for (int64_t j = 0; j < nk; ++j) {
        float *row = c + j * ldc;
        for (int64_t ln = 0; ln < nl; ++ln) {
            const float a = at[j * br + ln];
            const float *x = b + ln * ldb;
            for (int64_t e = 0; e < n; ++e)
                row[e] += a * x[e];
        }
    }
}

struct flash_bwd_kernels {
    struct attn4j_flash_kernels fw; /* pack, scores, softmax (statistics), pv (dQ), store (dQ) */
    attn4j_flash_grad_fn grad;
    attn4j_flash_tn_fn tn;
};

static struct flash_bwd_kernels select_kernels(void)
{
    struct flash_bwd_kernels kn;
    kn.fw = attn4j_flash_select_kernels();
    kn.grad = flash_grad_scalar;
    kn.tn = flash_tn_scalar;
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        kn.grad = attn4j_flash_grad_avx512;
        kn.tn = attn4j_flash_tn_avx512;
        break;
    case ATTN4J_ISA_AVX2:
        kn.grad = attn4j_flash_grad_avx2;
        kn.tn = attn4j_flash_tn_avx2;
        break;
#endif
    default:
        break;
    }
    return kn;
}

/* ---- Workspace plan -------------------------------------------------------------------- */

static int64_t padded(int64_t n)
{
    return (n + PAD - 1) / PAD * PAD;
}

/* Bytes of one thread's slice for blocks of br rows: qt, dot, qr, dor, st, dpt, dqt
 * (flash_backward.h), six br-float vectors (lse, D, the statistics m, l, alpha of
 * the recomputing pass, and ones) and dv doubles (the summed do of fully masked
 * rows), each region 64-byte aligned; -1 when d or dv is too large to fit. */
static int64_t slice_bytes(int64_t d, int64_t dv, int64_t br)
{
    const int64_t lim = (INT64_MAX / 16 - 32 * ALIGN) / (int64_t)sizeof(float) / br - PAD;
    if (d > lim || dv > lim)
        return -1;
    return 2 * attn4j_flash_round_up(d * br * 4) + attn4j_flash_round_up(dv * br * 4) +
           attn4j_flash_round_up(padded(d) * br * 4) + attn4j_flash_round_up(padded(dv) * br * 4) +
           2 * attn4j_flash_round_up(BC * br * 4) + 6 * attn4j_flash_round_up(br * 4) +
           attn4j_flash_round_up(dv * (int64_t)sizeof(double));
}

ATTN4J_API int64_t attn4j_flash_backward_workspace_bytes(int64_t tq, int64_t tk, int64_t d, int64_t dv,
                                                         int32_t nthreads)
{
    if (tq < 1 || tk < 1 || d < 1 || dv < 1 || nthreads < 1 || nthreads > ATTN4J_FLASH_MAX_THREADS)
        return ATTN4J_EINVAL;
    const int64_t slice = slice_bytes(d, dv, attn4j_flash_block_rows(tq));
    if (slice < 0 || slice > (INT64_MAX / 2) / nthreads)
        return ATTN4J_EINVAL;
    /* + ALIGN: the caller's pointer is aligned up to 64 bytes first. */
    return slice * nthreads + ALIGN;
}

/* ---- The work --------------------------------------------------------------------------- */

struct bwd_call {
    const float *q, *k, *v, *o, *dout, *lse;
    float *dq, *dk, *dv;
    int64_t ldq, q_outer, q_inner, ldk, k_outer, k_inner, ldv, v_outer, v_inner, ldo, o_outer, o_inner;
    int64_t inner, kv_repeat, n_kv, tq, tk, d, dv_dim;
    float scale;
    const uint8_t *col_mask;
    int64_t col_mask_div;
    int32_t causal;
    struct flash_bwd_kernels kn;
    int64_t br, n_qblocks, n_groups;
    char *workspace; /* aligned */
    int64_t slice;
    atomic_llong next; /* the next group, nthreads > 1 only */
};

struct bwd_slice {
    float *qt, *dot, *qr, *dor, *st, *dpt, *dqt, *lse, *dd, *m, *l, *alpha, *ones;
    double *uniform;
    int64_t dp, dvp; /* row strides of qr and dor */
};

static struct bwd_slice carve(const struct bwd_call *c, int64_t t)
{
    char *p = c->workspace + t * c->slice;
    const int64_t br = c->br;
    struct bwd_slice s;
    s.dp = padded(c->d);
    s.dvp = padded(c->dv_dim);
#define TAKE(field, bytes)                                                                                        \
    do {                                                                                                          \
        s.field = (void *)p;                                                                                      \
        p += attn4j_flash_round_up(bytes);                                                                        \
    } while (0)
    TAKE(qt, c->d * br * 4);
    TAKE(dqt, c->d * br * 4);
    TAKE(dot, c->dv_dim * br * 4);
    TAKE(qr, s.dp * br * 4);
    TAKE(dor, s.dvp * br * 4);
    TAKE(st, BC * br * 4);
    TAKE(dpt, BC * br * 4);
    TAKE(lse, br * 4);
    TAKE(dd, br * 4);
    TAKE(m, br * 4);
    TAKE(l, br * 4);
    TAKE(alpha, br * 4);
    TAKE(ones, br * 4);
    TAKE(uniform, c->dv_dim * (int64_t)sizeof(double));
#undef TAKE
    for (int64_t ln = 0; ln < br; ++ln)
        s.ones[ln] = 1.0f;
    return s;
}

/* rows x width floats of src (row stride lds) into dst (row stride ldd >= width),
 * zeros in the columns past width and in the rows from rows to br; so are the rows
 * whose lse is +inf (fully masked: P = 0 in the block products, whatever do holds;
 * lse NULL: none). */
static void pack_rows(const float *src, int64_t lds, int64_t rows, int64_t width, const float *lse, float *dst,
                      int64_t ldd, int64_t br)
{
    for (int64_t r = 0; r < br; ++r) {
        float *row = dst + r * ldd;
        if (r < rows && (lse == NULL || lse[r] != INFINITY)) {
            memcpy(row, src + r * lds, (size_t)width * sizeof(float));
            memset(row + width, 0, (size_t)(ldd - width) * sizeof(float));
        } else {
            memset(row, 0, (size_t)ldd * sizeof(float));
        }
    }
}

/* sum_e a[e] b[e] in double, in eight independent partial sums: one chain of
 * dependent adds made D ~10% of a 256 x 256 x 64 head (4 cycles per element). */
static double dot_double(const float *a, const float *b, int64_t n)
{
    double part[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    int64_t e = 0;
    for (; e + 8 <= n; e += 8)
        for (int u = 0; u < 8; ++u)
            part[u] += (double)a[e + u] * (double)b[e + u];
    for (; e < n; ++e)
        part[0] += (double)a[e] * (double)b[e];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

/* The statistics of rows i0.. i0 + nq of one head, as the forward computes them:
 * the same key blocks, the same kernels (flash.h). */
static void recompute_lse(const struct bwd_call *c, const struct bwd_slice *s, const float *k,
                          const uint8_t *key_ok, int64_t i0, int64_t nq)
{
    const int64_t br = c->br;
    for (int64_t ln = 0; ln < br; ++ln) {
        s->m[ln] = -INFINITY;
        s->l[ln] = 0.0f;
    }
    const int64_t kend = attn4j_flash_key_end(c->causal, i0, nq, c->tk);
    for (int64_t j0 = 0; j0 < kend; j0 += BC) {
        const int64_t nk = kend - j0 < BC ? kend - j0 : BC;
        const uint8_t *ok = key_ok == NULL ? NULL : key_ok + j0;
        if (ok != NULL && attn4j_flash_all_zero(ok, nk))
            continue;
        c->kn.fw.scores(k + j0 * c->ldk, c->ldk, nk, s->qt, c->d, s->st, br);
        const int32_t diagonal = c->causal && j0 + nk - 1 > i0;
        c->kn.fw.softmax(s->st, nk, ok, diagonal, i0 - j0, s->m, s->l, s->alpha, br);
    }
    for (int64_t ln = 0; ln < nq; ++ln)
        s->lse[ln] = attn4j_flash_lse(s->m[ln], s->l[ln]);
}

/* One query block (rows i0 .. i0 + nq) of head bh; returns 1 when some of its rows
 * are fully masked (their do summed into s->uniform). */
static int run_block(const struct bwd_call *c, const struct bwd_slice *s, int64_t bh, int64_t i0, int64_t nq,
                     const float *k, const float *v, float *dk, float *dv)
{
    const int64_t outer = bh / c->inner, h = bh % c->inner;
    const int64_t br = c->br, d = c->d, dvd = c->dv_dim;
    const float *q = c->q + outer * c->q_outer + h * c->q_inner + i0 * c->ldq;
    const float *o = c->o + outer * c->o_outer + h * c->o_inner + i0 * c->ldo;
    const float *dout = c->dout + outer * c->o_outer + h * c->o_inner + i0 * c->ldo;
    float *dq = c->dq + outer * c->q_outer + h * c->q_inner + i0 * c->ldq;
    const uint8_t *key_ok = c->col_mask == NULL ? NULL : c->col_mask + (bh / c->col_mask_div) * c->tk;

    c->kn.fw.pack(q, c->ldq, nq, d, NULL, c->scale, s->qt, br);
    if (c->lse != NULL)
        memcpy(s->lse, c->lse + bh * c->tq + i0, (size_t)nq * sizeof(float));
    else
        recompute_lse(c, s, k, key_ok, i0, nq);

    /* D_i = do_i . o_i (in double, rounded once); fully masked rows (lse = +inf)
     * take no part below: their uniform P goes into dv at the end of the group. */
    int masked = 0, live = 0;
    for (int64_t ln = 0; ln < br; ++ln) {
        if (ln >= nq) {
            s->lse[ln] = INFINITY;
            s->dd[ln] = 0.0f;
            continue;
        }
        const float *dorow = dout + ln * c->ldo, *orow = o + ln * c->ldo;
        s->dd[ln] = (float)dot_double(dorow, orow, dvd);
        if (s->lse[ln] == INFINITY) {
            masked = 1;
            for (int64_t e = 0; e < dvd; ++e)
                s->uniform[e] += (double)dorow[e];
        } else {
            live = 1;
        }
    }

    int32_t first = 1;
    if (live) {
        c->kn.fw.pack(dout, c->ldo, nq, dvd, NULL, 1.0f, s->dot, br);
        pack_rows(q, c->ldq, nq, d, NULL, s->qr, s->dp, br);
        pack_rows(dout, c->ldo, nq, dvd, s->lse, s->dor, s->dvp, br);
        /* The forward's key range (flash.c): causal rows see no key past the block's
         * last query; fully padded key blocks are skipped. */
        const int64_t kend = attn4j_flash_key_end(c->causal, i0, nq, c->tk);
        for (int64_t j0 = 0; j0 < kend; j0 += BC) {
            const int64_t nk = kend - j0 < BC ? kend - j0 : BC;
            const uint8_t *ok = key_ok == NULL ? NULL : key_ok + j0;
            if (ok != NULL && attn4j_flash_all_zero(ok, nk))
                continue;
            const float *kb = k + j0 * c->ldk, *vb = v + j0 * c->ldv;
            c->kn.fw.scores(kb, c->ldk, nk, s->qt, d, s->st, br);
            c->kn.fw.scores(vb, c->ldv, nk, s->dot, dvd, s->dpt, br);
            const int32_t diagonal = c->causal && j0 + nk - 1 > i0;
            c->kn.grad(s->st, s->dpt, nk, ok, diagonal, i0 - j0, s->lse, s->dd, c->scale, br);
            c->kn.tn(s->st, br, nk, nq, s->dor, s->dvp, dvd, dv + j0 * c->ldv, c->ldv);
            c->kn.tn(s->dpt, br, nk, nq, s->qr, s->dp, d, dk + j0 * c->ldk, c->ldk);
            c->kn.fw.pv(kb, c->ldk, nk, s->dpt, d, s->ones, first, s->dqt, br);
            first = 0;
        }
    }
    if (!first) {
        c->kn.fw.store(s->dqt, d, s->ones, nq, dq, c->ldq, br);
    } else {
        for (int64_t ln = 0; ln < nq; ++ln)
            memset(dq + ln * c->ldq, 0, (size_t)d * sizeof(float));
    }
    return masked;
}

static void run_group(const struct bwd_call *c, const struct bwd_slice *s, int64_t group)
{
    const int64_t outer = group / c->n_kv, g = group % c->n_kv;
    const float *k = c->k + outer * c->k_outer + g * c->k_inner;
    const float *v = c->v + outer * c->v_outer + g * c->v_inner;
    float *dk = c->dk + outer * c->k_outer + g * c->k_inner;
    float *dv = c->dv + outer * c->v_outer + g * c->v_inner;
    for (int64_t j = 0; j < c->tk; ++j) {
        memset(dk + j * c->ldk, 0, (size_t)c->d * sizeof(float));
        memset(dv + j * c->ldv, 0, (size_t)c->dv_dim * sizeof(float));
    }
    for (int64_t e = 0; e < c->dv_dim; ++e)
        s->uniform[e] = 0.0;
    int masked = 0;
    for (int64_t r = 0; r < c->kv_repeat; ++r) {
        const int64_t bh = outer * c->inner + g * c->kv_repeat + r;
        for (int64_t qb = 0; qb < c->n_qblocks; ++qb) {
            const int64_t i0 = qb * c->br;
            const int64_t nq = c->tq - i0 < c->br ? c->tq - i0 : c->br;
            masked |= run_block(c, s, bh, i0, nq, k, v, dk, dv);
        }
    }
    /* A fully masked row is uniform over all tk keys in the forward (flash.c): P =
     * 1 / tk everywhere, so every dv row gains its do / tk; its logits are
     * constants, so it adds nothing to dq (zero above) or dk. */
    if (masked) {
        for (int64_t e = 0; e < c->dv_dim; ++e)
            s->uniform[e] /= (double)c->tk;
        for (int64_t j = 0; j < c->tk; ++j)
            for (int64_t e = 0; e < c->dv_dim; ++e)
                dv[j * c->ldv + e] += (float)s->uniform[e];
    }
}

static void worker_main(void *arg, int64_t t)
{
    struct bwd_call *c = arg;
    const struct bwd_slice s = carve(c, t);
    for (;;) {
        const int64_t group = (int64_t)atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
        if (group >= c->n_groups)
            break;
        run_group(c, &s, group);
    }
}

ATTN4J_API int attn4j_flash_attention_backward_f32(
        const float *q, int64_t ldq, int64_t q_outer, int64_t q_inner,
        const float *k, int64_t ldk, int64_t k_outer, int64_t k_inner,
        const float *v, int64_t ldv, int64_t v_outer, int64_t v_inner,
        const float *o, const float *do_, int64_t ldo, int64_t o_outer, int64_t o_inner,
        float *dq, float *dk, float *dv,
        int64_t batch_heads, int64_t inner, int64_t kv_repeat, int64_t tq, int64_t tk, int64_t d, int64_t dv_dim,
        float scale, const uint8_t *col_mask, int64_t col_mask_div, int32_t causal, const float *lse,
        void *workspace, int64_t workspace_bytes, int32_t nthreads)
{
    if (q == NULL || k == NULL || v == NULL || o == NULL || do_ == NULL || dq == NULL || dk == NULL ||
        dv == NULL || workspace == NULL)
        return ATTN4J_EINVAL;
    if (!attn4j_flash_shape_ok(ldq, q_outer, q_inner, ldk, k_outer, k_inner, ldv, v_outer, v_inner, ldo, o_outer,
                               o_inner, batch_heads, inner, kv_repeat, tq, tk, d, dv_dim, col_mask, col_mask_div,
                               nthreads))
        return ATTN4J_EINVAL;
    const int64_t need = attn4j_flash_backward_workspace_bytes(tq, tk, d, dv_dim, nthreads);
    if (need < 0 || workspace_bytes < need)
        return ATTN4J_EINVAL;
    if (lse != NULL && batch_heads > PTRDIFF_MAX / (int64_t)sizeof(float) / tq)
        return ATTN4J_EINVAL;
    /* A zero stride across problems is a broadcast the forward may read (k, v
     * shared by the batch), but its gradient would be a sum over the problems that
     * share it, and each group writes its own: two groups would write the same
     * floats. The general overlap of dq, dk, dv is the caller's to rule out. */
    const int64_t n_outer = batch_heads / inner, n_kv = inner / kv_repeat;
    if ((n_outer > 1 && (q_outer == 0 || k_outer == 0 || v_outer == 0)) || (inner > 1 && q_inner == 0) ||
        (n_kv > 1 && (k_inner == 0 || v_inner == 0)))
        return ATTN4J_EINVAL;

    struct bwd_call c;
    c.q = q;
    c.k = k;
    c.v = v;
    c.o = o;
    c.dout = do_;
    c.lse = lse;
    c.dq = dq;
    c.dk = dk;
    c.dv = dv;
    c.ldq = ldq;
    c.q_outer = q_outer;
    c.q_inner = q_inner;
    c.ldk = ldk;
    c.k_outer = k_outer;
    c.k_inner = k_inner;
    c.ldv = ldv;
    c.v_outer = v_outer;
    c.v_inner = v_inner;
    c.ldo = ldo;
    c.o_outer = o_outer;
    c.o_inner = o_inner;
    c.inner = inner;
    c.kv_repeat = kv_repeat;
    c.n_kv = n_kv;
    c.tq = tq;
    c.tk = tk;
    c.d = d;
    c.dv_dim = dv_dim;
    c.scale = scale;
    c.col_mask = col_mask;
    c.col_mask_div = col_mask_div;
    c.causal = causal != 0;
    c.kn = select_kernels();
    c.br = attn4j_flash_block_rows(tq);
    c.n_qblocks = (tq + c.br - 1) / c.br;
    c.n_groups = batch_heads / kv_repeat;
    c.slice = slice_bytes(d, dv_dim, c.br);
    c.workspace = (char *)workspace + (ALIGN - (uintptr_t)workspace % ALIGN) % ALIGN;
    atomic_init(&c.next, 0);

    /* Five products of tq x tk x (d or dv) per head, a sixth when the statistics
     * are recomputed; causal about half. */
    double flops = 2.0 * (double)batch_heads * (double)tq * (double)tk *
                   (double)(3 * d + 2 * dv_dim + (lse == NULL ? d : 0));
    if (c.causal)
        flops *= 0.5;
    const int64_t threads = attn4j_flash_thread_count(nthreads, c.n_groups, flops);
    if (threads == 1) {
        const struct bwd_slice s = carve(&c, 0);
        for (int64_t group = 0; group < c.n_groups; ++group)
            run_group(&c, &s, group);
        return ATTN4J_OK;
    }
    attn4j_flash_run_threads(threads, worker_main, &c);
    return ATTN4J_OK;
}
