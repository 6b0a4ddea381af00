/*
 * flash.c - attn4j_flash_attention_f32, attn4j_flash_attention_lse_f32 and
 * attn4j_flash_workspace_bytes: argument checks, the workspace plan, the split of
 * the work over threads, the loop over query and key blocks, and the scalar block
 * kernels (the reference the vector kernels follow, and the path for CPUs without
 * AVX2). The tiling is described in flash.h.
 *
 * Work items are (batch-head, query block) pairs. One thread takes them in order;
 * with nthreads > 1 the calling thread and nthreads - 1 threads created for the
 * call take them from a shared atomic counter (causal blocks differ in cost, so a
 * static split would leave threads idle), each in its own slice of the workspace.
 * Calls smaller than ATTN4J_FLASH_MIN_FLOPS_PER_THREAD per thread run on fewer
 * threads (attn4j_flash_thread_count, shared with flash_backward.c).
 *
 * The statistics of attn4j_flash_attention_lse_f32 come from the state the online
 * softmax ends a row with (m, l), so writing them costs nq floats per block and
 * changes nothing else: the same call with lse == NULL is the plain forward.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flash.h"
#include "internal.h"

#define BC ATTN4J_FLASH_BC
#define ALIGN ATTN4J_FLASH_ALIGN

/* ---- Scalar kernels (see flash.h) ---------------------------------------------------- */

static void flash_scores_scalar(const float *k, int64_t ldk, int64_t nk, const float *qt, int64_t d, float *st,
                                int64_t br)
{
    for (int64_t j = 0; j < nk; ++j) {
        float *row = st + j * br;
        for (int64_t l = 0; l < br; ++l)
            row[l] = 0.0f;
        for (int64_t p = 0; p < d; ++p) {
            const float a = k[j * ldk + p];
            const float *b = qt + p * br;
            for (int64_t l = 0; l < br; ++l)
                row[l] += a * b[l];
        }
    }
}

static void flash_softmax_scalar(float *st, int64_t nk, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                                 float *m, float *l, float *alpha, int64_t br)
{
    for (int64_t ln = 0; ln < br; ++ln) {
        float mx = m[ln];
        for (int64_t j = 0; j < nk; ++j) {
            float *s = st + j * br + ln;
            if ((key_ok != NULL && key_ok[j] == 0) || (diagonal && j - ln > diag))
                *s = -INFINITY;
            /* NaN never wins, so mx may miss it; its exp is NaN and so is the row. */
            mx = *s > mx ? *s : mx;
        }
        const float mu = mx == -INFINITY ? 0.0f : mx;
        const float a = attn4j_flash_exp_clamped(m[ln] - mu);
        float sum = 0.0f;
        for (int64_t j = 0; j < nk; ++j) {
            float *s = st + j * br + ln;
            *s = attn4j_flash_exp_clamped(*s - mu);
            sum += *s;
        }
        l[ln] = a * l[ln] + sum;
        m[ln] = mx;
        alpha[ln] = a;
    }
}

static void flash_pv_scalar(const float *v, int64_t ldv, int64_t nk, const float *st, int64_t dv,
                            const float *alpha, int32_t first, float *ot, int64_t br)
{
    for (int64_t c = 0; c < dv; ++c) {
        float *row = ot + c * br;
        for (int64_t l = 0; l < br; ++l)
            row[l] = first ? 0.0f : alpha[l] * row[l];
        for (int64_t j = 0; j < nk; ++j) {
            const float a = v[j * ldv + c];
            const float *b = st + j * br;
            for (int64_t l = 0; l < br; ++l)
                row[l] += a * b[l];
        }
    }
}

static void flash_pack_scalar(const float *q, int64_t ldq, int64_t nq, int64_t d, const float *bias, float scale,
                              float *qt, int64_t br)
{
    for (int64_t p = 0; p < d; ++p) {
        float *row = qt + p * br;
        const float b = bias == NULL ? 0.0f : bias[p];
        for (int64_t ln = 0; ln < nq; ++ln)
            row[ln] = scale * (bias == NULL ? q[ln * ldq + p] : q[ln * ldq + p] + b);
        for (int64_t ln = nq; ln < br; ++ln)
            row[ln] = 0.0f;
    }
}

static void flash_store_scalar(const float *ot, int64_t dv, const float *l, int64_t nq, float *o, int64_t ldo,
                               int64_t br)
{
    for (int64_t ln = 0; ln < nq; ++ln) {
        const float inv = 1.0f / l[ln];
        for (int64_t c = 0; c < dv; ++c)
            o[ln * ldo + c] = ot[c * br + ln] * inv;
    }
}

struct attn4j_flash_kernels attn4j_flash_select_kernels(void)
{
    struct attn4j_flash_kernels kn = {flash_pack_scalar, flash_scores_scalar, flash_softmax_scalar,
                                      flash_pv_scalar, flash_store_scalar};
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        kn.pack = attn4j_flash_pack_avx512;
        kn.store = attn4j_flash_store_avx512;
        kn.scores = attn4j_flash_scores_avx512;
        kn.softmax = attn4j_flash_softmax_avx512;
        kn.pv = attn4j_flash_pv_avx512;
        break;
    case ATTN4J_ISA_AVX2:
        kn.pack = attn4j_flash_pack_avx2;
        kn.store = attn4j_flash_store_avx2;
        kn.scores = attn4j_flash_scores_avx2;
        kn.softmax = attn4j_flash_softmax_avx2;
        kn.pv = attn4j_flash_pv_avx2;
        break;
#endif
    default:
        break;
    }
    return kn;
}

/* ---- Workspace plan -------------------------------------------------------------------- */

/* Bytes of one thread's slice for blocks of br rows: qt, st, ot, m, l, alpha and
 * the mean of v (dv floats), each region 64-byte aligned; -1 when d or dv is so
 * large it does not fit. */
static int64_t slice_bytes(int64_t d, int64_t dv, int64_t br)
{
    const int64_t lim = (INT64_MAX / 4 - 16 * ALIGN) / (int64_t)sizeof(float) / br;
    if (d > lim || dv > lim || d + dv > lim - BC)
        return -1;
    return attn4j_flash_round_up(d * br * 4) + attn4j_flash_round_up(BC * br * 4) +
           attn4j_flash_round_up(dv * br * 4) + 3 * attn4j_flash_round_up(br * 4) + attn4j_flash_round_up(dv * 4);
}

ATTN4J_API int64_t attn4j_flash_workspace_bytes(int64_t tq, int64_t tk, int64_t d, int64_t dv, int32_t nthreads)
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

struct flash_call {
    const float *q, *k, *v;
    float *o;
    int64_t ldq, q_outer, q_inner, ldk, k_outer, k_inner, ldv, v_outer, v_inner, ldo, o_outer, o_inner;
    int64_t inner, kv_repeat, tq, tk, d, dv;
    float scale;
    const float *q_bias; /* NULL, or inner rows of d floats */
    const uint8_t *col_mask;
    int64_t col_mask_div;
    int32_t causal;
    float *lse; /* NULL, or batch_heads * tq floats */
    struct attn4j_flash_kernels kn;
    int64_t br; /* query rows per block, attn4j_flash_block_rows(tq) */
    int64_t n_qblocks, n_items;
    char *workspace; /* aligned */
    int64_t slice;
    atomic_llong next; /* the next work item, nthreads > 1 only */
};

/* One thread's slice of the workspace. */
struct flash_slice {
    float *qt, *st, *ot, *m, *l, *alpha, *mean;
    int64_t mean_of; /* the kv index (bh / inner, kv head) mean holds, or -1 */
};

static struct flash_slice carve(const struct flash_call *c, int64_t t)
{
    char *p = c->workspace + t * c->slice;
    struct flash_slice s;
    s.qt = (float *)(void *)p;
    p += attn4j_flash_round_up(c->d * c->br * 4);
    s.st = (float *)(void *)p;
    p += attn4j_flash_round_up(BC * c->br * 4);
    s.ot = (float *)(void *)p;
    p += attn4j_flash_round_up(c->dv * c->br * 4);
    s.m = (float *)(void *)p;
    p += attn4j_flash_round_up(c->br * 4);
    s.l = (float *)(void *)p;
    p += attn4j_flash_round_up(c->br * 4);
    s.alpha = (float *)(void *)p;
    p += attn4j_flash_round_up(c->br * 4);
    s.mean = (float *)(void *)p;
    s.mean_of = -1;
    return s;
}

/* What a fully masked row gets under ATTN4J_MASK_REPLACE: every one of the tk
 * logits is the same constant, so the softmax is uniform and the row is the mean
 * of all tk value rows (summed in double, rounded once). */
static void value_mean(const float *v, int64_t ldv, int64_t tk, int64_t dv, float *mean)
{
    for (int64_t c = 0; c < dv; ++c) {
        double sum = 0.0;
        for (int64_t j = 0; j < tk; ++j)
            sum += v[j * ldv + c];
        mean[c] = (float)(sum / (double)tk);
    }
}

static void run_item(const struct flash_call *c, struct flash_slice *s, int64_t item)
{
    const int64_t bh = item / c->n_qblocks;
    /* Causal: the later query blocks see more keys; take them first, so that the
     * cheap blocks fill in at the end of a threaded run. */
    const int64_t qb = c->causal ? c->n_qblocks - 1 - item % c->n_qblocks : item % c->n_qblocks;
    const int64_t outer = bh / c->inner, h = bh % c->inner, kvh = h / c->kv_repeat;
    const int64_t br = c->br;
    const int64_t i0 = qb * br;
    const int64_t nq = c->tq - i0 < br ? c->tq - i0 : br;

    const float *q = c->q + outer * c->q_outer + h * c->q_inner + i0 * c->ldq;
    const float *k = c->k + outer * c->k_outer + kvh * c->k_inner;
    const float *v = c->v + outer * c->v_outer + kvh * c->v_inner;
    float *o = c->o + outer * c->o_outer + h * c->o_inner + i0 * c->ldo;
    const uint8_t *key_ok = c->col_mask == NULL ? NULL : c->col_mask + (bh / c->col_mask_div) * c->tk;

    /* qt = scale * q^T, zero lanes past the last query (their results are never
     * stored; zeros keep them finite). */
    const float *bias = c->q_bias == NULL ? NULL : c->q_bias + h * c->d;
    c->kn.pack(q, c->ldq, nq, c->d, bias, c->scale, s->qt, br);
    for (int64_t ln = 0; ln < br; ++ln) {
        s->m[ln] = -INFINITY;
        s->l[ln] = 0.0f;
    }

    /* Causal (top-left, j <= i): no query of the block sees a key past its last
     * query, so the key range ends there. */
    const int64_t kend = attn4j_flash_key_end(c->causal, i0, nq, c->tk);
    int32_t first = 1;
    for (int64_t j0 = 0; j0 < kend; j0 += BC) {
        const int64_t nk = kend - j0 < BC ? kend - j0 : BC;
        const uint8_t *ok = key_ok == NULL ? NULL : key_ok + j0;
        if (ok != NULL && attn4j_flash_all_zero(ok, nk))
            continue; /* keys padded out: no row of the block keeps any */
        c->kn.scores(k + j0 * c->ldk, c->ldk, nk, s->qt, c->d, s->st, br);
        /* The diagonal crosses the block when its last key is after its first query. */
        const int32_t diagonal = c->causal && j0 + nk - 1 > i0;
        c->kn.softmax(s->st, nk, ok, diagonal, i0 - j0, s->m, s->l, s->alpha, br);
        c->kn.pv(v + j0 * c->ldv, c->ldv, nk, s->st, c->dv, s->alpha, first, s->ot, br);
        first = 0;
    }

    if (!first)
        c->kn.store(s->ot, c->dv, s->l, nq, o, c->ldo, br);
    if (c->lse != NULL) {
        float *lse = c->lse + bh * c->tq + i0;
        for (int64_t ln = 0; ln < nq; ++ln)
            lse[ln] = attn4j_flash_lse(s->m[ln], s->l[ln]);
    }
    /* l == 0 exactly when the row kept no key (a kept key contributes
     * exp(m - m) = 1; a NaN l is not 0, the row stays NaN): such rows, which
     * store() filled with inf or NaN, are the mean of v. */
    for (int64_t ln = 0; ln < nq; ++ln) {
        if (s->l[ln] == 0.0f) {
            const int64_t kv_index = outer * c->inner + kvh;
            if (s->mean_of != kv_index) {
                value_mean(v, c->ldv, c->tk, c->dv, s->mean);
                s->mean_of = kv_index;
            }
            memcpy(o + ln * c->ldo, s->mean, (size_t)c->dv * sizeof(float));
        }
    }
}

static void worker_main(void *arg, int64_t t)
{
    struct flash_call *c = arg;
    struct flash_slice s = carve(c, t);
    for (;;) {
        const int64_t item = (int64_t)atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
        if (item >= c->n_items)
            break;
        run_item(c, &s, item);
    }
}

/* ---- Threads (flash.h) ------------------------------------------------------------------ */

int64_t attn4j_flash_thread_count(int32_t nthreads, int64_t n_items, double flops)
{
    int64_t threads = nthreads;
    if (threads > n_items)
        threads = n_items;
    if ((double)threads * ATTN4J_FLASH_MIN_FLOPS_PER_THREAD > flops) {
        threads = (int64_t)(flops / ATTN4J_FLASH_MIN_FLOPS_PER_THREAD);
        if (threads < 1)
            threads = 1;
    }
    return threads;
}

struct flash_thread {
    attn4j_flash_thread_fn fn;
    void *ctx;
    int64_t index;
};

static void *thread_main(void *arg)
{
    const struct flash_thread *th = arg;
    th->fn(th->ctx, th->index);
    return NULL;
}

void attn4j_flash_run_threads(int64_t threads, attn4j_flash_thread_fn fn, void *ctx)
{
    pthread_t handles[ATTN4J_FLASH_MAX_THREADS];
    struct flash_thread args[ATTN4J_FLASH_MAX_THREADS];
    int64_t started = 0;
    for (int64_t t = 1; t < threads && t < ATTN4J_FLASH_MAX_THREADS; ++t) {
        args[started].fn = fn;
        args[started].ctx = ctx;
        args[started].index = t;
        /* A thread that cannot be created leaves its share to the others: the
         * caller's counter hands every item to whoever asks next. */
        if (pthread_create(&handles[started], NULL, thread_main, &args[started]) != 0)
            break;
        ++started;
    }
    fn(ctx, 0);
    for (int64_t t = 0; t < started; ++t)
        pthread_join(handles[t], NULL);
}

/* ---- Entry points ------------------------------------------------------------------------ */

int attn4j_flash_shape_ok(int64_t ldq, int64_t q_outer, int64_t q_inner, int64_t ldk, int64_t k_outer,
                          int64_t k_inner, int64_t ldv, int64_t v_outer, int64_t v_inner, int64_t ldo,
                          int64_t o_outer, int64_t o_inner, int64_t batch_heads, int64_t inner, int64_t kv_repeat,
                          int64_t tq, int64_t tk, int64_t d, int64_t dv, const uint8_t *col_mask,
                          int64_t col_mask_div, int32_t nthreads)
{
    if (batch_heads < 1 || inner < 1 || kv_repeat < 1 || tq < 1 || tk < 1 || d < 1 || dv < 1 ||
        col_mask_div < 1 || nthreads < 1 || nthreads > ATTN4J_FLASH_MAX_THREADS)
        return 0;
    if (batch_heads % inner != 0 || inner % kv_repeat != 0)
        return 0;
    if (ldq < d || ldk < d || ldv < dv || ldo < dv || q_outer < 0 || q_inner < 0 || k_outer < 0 ||
        k_inner < 0 || v_outer < 0 || v_inner < 0 || o_outer < 0 || o_inner < 0)
        return 0;
    const int64_t n_outer = batch_heads / inner, n_kv = inner / kv_repeat;
    if (!attn4j_extent_ok(n_outer, q_outer, inner, q_inner, tq, ldq, d) ||
        !attn4j_extent_ok(n_outer, k_outer, n_kv, k_inner, tk, ldk, d) ||
        !attn4j_extent_ok(n_outer, v_outer, n_kv, v_inner, tk, ldv, dv) ||
        !attn4j_extent_ok(n_outer, o_outer, inner, o_inner, tq, ldo, dv))
        return 0;
    if (col_mask != NULL && (batch_heads - 1) / col_mask_div + 1 > PTRDIFF_MAX / tk)
        return 0;
    return 1;
}

/* attn4j_flash_attention_f32 (lse == NULL) and attn4j_flash_attention_lse_f32. */
static int flash_forward(const float *q, int64_t ldq, int64_t q_outer, int64_t q_inner, const float *k, int64_t ldk,
                         int64_t k_outer, int64_t k_inner, const float *v, int64_t ldv, int64_t v_outer,
                         int64_t v_inner, float *o, int64_t ldo, int64_t o_outer, int64_t o_inner,
                         int64_t batch_heads, int64_t inner, int64_t kv_repeat, int64_t tq, int64_t tk, int64_t d,
                         int64_t dv, float scale, const float *q_bias, const uint8_t *col_mask,
                         int64_t col_mask_div, int32_t causal, float *lse, void *workspace,
                         int64_t workspace_bytes, int32_t nthreads)
{
    if (q == NULL || k == NULL || v == NULL || o == NULL || workspace == NULL)
        return ATTN4J_EINVAL;
    if (!attn4j_flash_shape_ok(ldq, q_outer, q_inner, ldk, k_outer, k_inner, ldv, v_outer, v_inner, ldo, o_outer,
                               o_inner, batch_heads, inner, kv_repeat, tq, tk, d, dv, col_mask, col_mask_div,
                               nthreads))
        return ATTN4J_EINVAL;
    const int64_t need = attn4j_flash_workspace_bytes(tq, tk, d, dv, nthreads);
    if (need < 0 || workspace_bytes < need)
        return ATTN4J_EINVAL;
    if (q_bias != NULL && inner > PTRDIFF_MAX / (int64_t)sizeof(float) / d)
        return ATTN4J_EINVAL;

    struct flash_call c;
    c.q = q;
    c.k = k;
    c.v = v;
    c.o = o;
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
    c.tq = tq;
    c.tk = tk;
    c.d = d;
    c.dv = dv;
    c.scale = scale;
    c.q_bias = q_bias;
    c.col_mask = col_mask;
    c.col_mask_div = col_mask_div;
    c.causal = causal != 0;
    c.lse = lse;
    c.kn = attn4j_flash_select_kernels();
    c.br = attn4j_flash_block_rows(tq);
    c.n_qblocks = (tq + c.br - 1) / c.br;
    c.n_items = batch_heads * c.n_qblocks;
    c.slice = slice_bytes(d, dv, c.br);
    c.workspace = (char *)workspace + (ALIGN - (uintptr_t)workspace % ALIGN) % ALIGN;
    atomic_init(&c.next, 0);

    /* Threads: at most one per work item, and only as many as the work pays for
     * (4 tq tk (d + dv) / 2 flops; causal about half). */
    double flops = 2.0 * (double)batch_heads * (double)tq * (double)tk * (double)(d + dv);
    if (c.causal)
        flops *= 0.5;
    const int64_t threads = attn4j_flash_thread_count(nthreads, c.n_items, flops);
    if (threads == 1) {
        struct flash_slice s = carve(&c, 0);
        for (int64_t item = 0; item < c.n_items; ++item)
            run_item(&c, &s, item);
        return ATTN4J_OK;
    }
    attn4j_flash_run_threads(threads, worker_main, &c);
    return ATTN4J_OK;
}

ATTN4J_API int attn4j_flash_attention_f32(const float *q, int64_t ldq, int64_t q_outer, int64_t q_inner,
                                          const float *k, int64_t ldk, int64_t k_outer, int64_t k_inner,
                                          const float *v, int64_t ldv, int64_t v_outer, int64_t v_inner,
                                          float *o, int64_t ldo, int64_t o_outer, int64_t o_inner,
                                          int64_t batch_heads, int64_t inner, int64_t kv_repeat, int64_t tq,
                                          int64_t tk, int64_t d, int64_t dv, float scale, const float *q_bias,
                                          const uint8_t *col_mask, int64_t col_mask_div, int32_t causal,
                                          void *workspace, int64_t workspace_bytes, int32_t nthreads)
{
    return flash_forward(q, ldq, q_outer, q_inner, k, ldk, k_outer, k_inner, v, ldv, v_outer, v_inner, o, ldo,
                         o_outer, o_inner, batch_heads, inner, kv_repeat, tq, tk, d, dv, scale, q_bias, col_mask,
                         col_mask_div, causal, NULL, workspace, workspace_bytes, nthreads);
}

ATTN4J_API int attn4j_flash_attention_lse_f32(const float *q, int64_t ldq, int64_t q_outer, int64_t q_inner,
                                              const float *k, int64_t ldk, int64_t k_outer, int64_t k_inner,
                                              const float *v, int64_t ldv, int64_t v_outer, int64_t v_inner,
                                              float *o, int64_t ldo, int64_t o_outer, int64_t o_inner,
                                              int64_t batch_heads, int64_t inner, int64_t kv_repeat, int64_t tq,
                                              int64_t tk, int64_t d, int64_t dv, float scale, const float *q_bias,
                                              const uint8_t *col_mask, int64_t col_mask_div, int32_t causal,
                                              float *lse, void *workspace, int64_t workspace_bytes,
                                              int32_t nthreads)
{
    /* batch_heads * tq floats; the sizes themselves are checked by flash_forward. */
    if (lse == NULL || (batch_heads >= 1 && tq >= 1 && batch_heads > PTRDIFF_MAX / (int64_t)sizeof(float) / tq))
        return ATTN4J_EINVAL;
    return flash_forward(q, ldq, q_outer, q_inner, k, ldk, k_outer, k_inner, v, ldv, v_outer, v_inner, o, ldo,
                         o_outer, o_inner, batch_heads, inner, kv_repeat, tq, tk, d, dv, scale, q_bias, col_mask,
                         col_mask_div, causal, lse, workspace, workspace_bytes, nthreads);
}
