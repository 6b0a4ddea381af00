/*
 * decode.c - attn4j_decode_attention_f32 and attn4j_decode_workspace_bytes:
 * argument checks, the workspace plan, the split of the work over threads, and
 * the scalar work item (the reference the vector ones follow, and the path for
 * CPUs without AVX2). The work item is described in decode.h.
 *
 * Work items are (batch row, key/value head) pairs, taken in order by one thread
 * or, with nthreads > 1, from a shared atomic counter by the calling thread and
 * up to nthreads - 1 threads created for the call (as in flash.c: no pool, no
 * state kept between calls). A decode step is bound by the bytes of cache it
 * streams, not by flops, so a thread is only started for at least
 * ATTN4J_DECODE_MIN_BYTES_PER_THREAD of keys and values.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "internal.h"

/* ~50 us of streaming from L3 per thread, a few times a thread's creation. */
#define ATTN4J_DECODE_MIN_BYTES_PER_THREAD (2.0 * 1024 * 1024)
#define ATTN4J_DECODE_MAX_THREADS 1024
#define ALIGN 64

/* ---- The scalar work item ------------------------------------------------------------- */

static void decode_item_scalar(const float *q, int64_t q_step, int64_t r, const float *k, int64_t ldk,
                               const float *v, int64_t ldv, int64_t n, int64_t d, int64_t dv, float scale,
                               float *qs, float *x, int64_t ldx, float *o, int64_t o_step)
{
    const int64_t dp = attn4j_decode_pad(d);
    for (int64_t i = 0; i < r; ++i)
        for (int64_t p = 0; p < d; ++p)
            qs[i * dp + p] = scale * q[i * q_step + p];
    for (int64_t i = 0; i < r; ++i) {
        float *xi = x + i * ldx;
        const float *qi = qs + i * dp;
        float mx = -INFINITY;
        int nan = 0;
        for (int64_t j = 0; j < n; ++j) {
            float s = 0.0f;
            for (int64_t p = 0; p < d; ++p)
                s += qi[p] * k[j * ldk + p];
            xi[j] = s;
            nan |= isnan(s);
            mx = s > mx ? s : mx;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < n; ++j) {
            const float z = xi[j] - mx; /* NaN for the +inf logits when mx = +inf */
            const float e = nan ? NAN : z < ATTN4J_EXP_LO ? 0.0f : expf(z);
            xi[j] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        float *oi = o + i * o_step;
        for (int64_t c = 0; c < dv; ++c)
            oi[c] = 0.0f;
        for (int64_t j = 0; j < n; ++j)
            for (int64_t c = 0; c < dv; ++c)
                oi[c] += xi[j] * v[j * ldv + c];
        for (int64_t c = 0; c < dv; ++c)
            oi[c] *= inv;
    }
}

static attn4j_decode_fn select_kernel(void)
{
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        return attn4j_decode_item_avx512;
    case ATTN4J_ISA_AVX2:
        return attn4j_decode_item_avx2;
#endif
    default:
        return decode_item_scalar;
    }
}

/* ---- Workspace plan -------------------------------------------------------------------- */

static int64_t round_up(int64_t bytes)
{
    return (bytes + ALIGN - 1) / ALIGN * ALIGN;
}

/* One thread's slice: qs (r, pad(d)) and x (r, pad(tk)); -1 if too large. */
static int64_t slice_bytes(int64_t kv_repeat, int64_t tk, int64_t d)
{
    const int64_t lim = INT64_MAX / 8;
    if (d > lim / 4 || tk > lim / 4)
        return -1;
    const int64_t row = attn4j_decode_pad(d) + attn4j_decode_pad(tk);
    if (kv_repeat > lim / 4 / row)
        return -1;
    return round_up(kv_repeat * attn4j_decode_pad(d) * 4) + round_up(kv_repeat * attn4j_decode_pad(tk) * 4);
}

ATTN4J_API int64_t attn4j_decode_workspace_bytes(int64_t kv_repeat, int64_t tk, int64_t d, int32_t nthreads)
{
    if (kv_repeat < 1 || tk < 1 || d < 1 || nthreads < 1 || nthreads > ATTN4J_DECODE_MAX_THREADS)
        return ATTN4J_EINVAL;
    const int64_t slice = slice_bytes(kv_repeat, tk, d);
    if (slice < 0 || slice > (INT64_MAX / 2) / nthreads)
        return ATTN4J_EINVAL;
    return slice * nthreads + ALIGN; /* + ALIGN: the pointer is aligned up first */
}

/* ---- The work --------------------------------------------------------------------------- */

struct decode_call {
    const float *q, *k, *v;
    float *o;
    int64_t q_outer, q_inner, ldk, k_outer, k_inner, ldv, v_outer, v_inner, o_outer, o_inner;
    int64_t kv_heads, kv_repeat, tk, d, dv;
    float scale;
    const int32_t *key_begin, *key_end;
    attn4j_decode_fn item;
    int64_t n_items;
    char *workspace; /* aligned */
    int64_t slice;
    atomic_llong next;
};

static void run_item(const struct decode_call *c, float *qs, float *x, int64_t item)
{
    const int64_t b = item / c->kv_heads, g = item % c->kv_heads;
    const int64_t begin = c->key_begin == NULL ? 0 : c->key_begin[b];
    const int64_t end = c->key_end == NULL ? c->tk : c->key_end[b];
    const int64_t h0 = g * c->kv_repeat;
    c->item(c->q + b * c->q_outer + h0 * c->q_inner, c->q_inner, c->kv_repeat,
            c->k + b * c->k_outer + g * c->k_inner + begin * c->ldk, c->ldk,
            c->v + b * c->v_outer + g * c->v_inner + begin * c->ldv, c->ldv, end - begin, c->d, c->dv, c->scale,
            qs, x, attn4j_decode_pad(c->tk), c->o + b * c->o_outer + h0 * c->o_inner, c->o_inner);
}

struct decode_worker {
    struct decode_call *call;
    int64_t index;
};

static void *worker_main(void *arg)
{
    struct decode_worker *w = arg;
    struct decode_call *c = w->call;
    char *p = c->workspace + w->index * c->slice;
    float *qs = (float *)(void *)p;
    float *x = (float *)(void *)(p + round_up(c->kv_repeat * attn4j_decode_pad(c->d) * 4));
    for (;;) {
        const int64_t item = (int64_t)atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
        if (item >= c->n_items)
            break;
        run_item(c, qs, x, item);
    }
    return NULL;
}

ATTN4J_API int attn4j_decode_attention_f32(const float *q, int64_t q_outer, int64_t q_inner, const float *k,
                                           int64_t ldk, int64_t k_outer, int64_t k_inner, const float *v,
                                           int64_t ldv, int64_t v_outer, int64_t v_inner, float *o,
                                           int64_t o_outer, int64_t o_inner, int64_t batch, int64_t heads,
                                           int64_t kv_repeat, int64_t tk, int64_t d, int64_t dv, float scale,
                                           const int32_t *key_begin, const int32_t *key_end, void *workspace,
                                           int64_t workspace_bytes, int32_t nthreads)
{
    if (q == NULL || k == NULL || v == NULL || o == NULL || workspace == NULL)
        return ATTN4J_EINVAL;
    if (batch < 1 || heads < 1 || kv_repeat < 1 || tk < 1 || d < 1 || dv < 1 || nthreads < 1 ||
        nthreads > ATTN4J_DECODE_MAX_THREADS || heads % kv_repeat != 0)
        return ATTN4J_EINVAL;
    if (q_inner < d || o_inner < dv || ldk < d || ldv < dv || q_outer < 0 || k_outer < 0 || k_inner < 0 ||
        v_outer < 0 || v_inner < 0 || o_outer < 0)
        return ATTN4J_EINVAL;
    const int64_t need = attn4j_decode_workspace_bytes(kv_repeat, tk, d, nthreads);
    if (need < 0 || workspace_bytes < need)
        return ATTN4J_EINVAL;
    const int64_t kv_heads = heads / kv_repeat;
    if (!attn4j_extent_ok(batch, q_outer, heads, q_inner, 1, d, d) ||
        !attn4j_extent_ok(batch, k_outer, kv_heads, k_inner, tk, ldk, d) ||
        !attn4j_extent_ok(batch, v_outer, kv_heads, v_inner, tk, ldv, dv) ||
        !attn4j_extent_ok(batch, o_outer, heads, o_inner, 1, dv, dv) || batch > INT64_MAX / heads)
        return ATTN4J_EINVAL;
    int64_t keys = 0; /* the key rows all items read, for the thread count */
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t begin = key_begin == NULL ? 0 : key_begin[b];
        const int64_t end = key_end == NULL ? tk : key_end[b];
        if (begin < 0 || end <= begin || end > tk)
            return ATTN4J_EINVAL;
        keys += end - begin;
    }

    struct decode_call c;
    c.q = q;
    c.k = k;
    c.v = v;
    c.o = o;
    c.q_outer = q_outer;
    c.q_inner = q_inner;
    c.ldk = ldk;
    c.k_outer = k_outer;
    c.k_inner = k_inner;
    c.ldv = ldv;
    c.v_outer = v_outer;
    c.v_inner = v_inner;
    c.o_outer = o_outer;
    c.o_inner = o_inner;
    c.kv_heads = kv_heads;
    c.kv_repeat = kv_repeat;
    c.tk = tk;
    c.d = d;
    c.dv = dv;
    c.scale = scale;
    c.key_begin = key_begin;
    c.key_end = key_end;
    c.item = select_kernel();
    c.n_items = batch * kv_heads;
    c.slice = slice_bytes(kv_repeat, tk, d);
    c.workspace = (char *)workspace + (ALIGN - (uintptr_t)workspace % ALIGN) % ALIGN;
    atomic_init(&c.next, 0);

    const double bytes = (double)keys * (double)kv_heads * (double)(d + dv) * 4.0;
    int64_t threads = nthreads < c.n_items ? nthreads : c.n_items;
    if ((double)threads * ATTN4J_DECODE_MIN_BYTES_PER_THREAD > bytes) {
        threads = (int64_t)(bytes / ATTN4J_DECODE_MIN_BYTES_PER_THREAD);
        if (threads < 1)
            threads = 1;
    }

    struct decode_worker first = {&c, 0};
    if (threads == 1) {
        atomic_store_explicit(&c.next, 0, memory_order_relaxed);
        worker_main(&first);
        return ATTN4J_OK;
    }
    pthread_t handles[ATTN4J_DECODE_MAX_THREADS];
    struct decode_worker workers[ATTN4J_DECODE_MAX_THREADS];
    int64_t started = 0;
    for (int64_t t = 1; t < threads; ++t) {
        workers[t].call = &c;
        workers[t].index = t;
        if (pthread_create(&handles[started], NULL, worker_main, &workers[t]) != 0)
            break; /* the others take its share from the counter */
        ++started;
    }
    worker_main(&first);
    for (int64_t t = 0; t < started; ++t)
        pthread_join(handles[t], NULL);
    return ATTN4J_OK;
}
