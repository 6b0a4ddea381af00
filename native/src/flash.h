/*
 * flash.h - what the translation units of the flash-attention family share:
 * flash.c (argument checks, workspace, threads, the loop over blocks, the scalar
 * kernels) and the per-ISA block kernels in flash_avx2.c / flash_avx512.c. Kept
 * apart from internal.h so that the family is self-contained; the same rules
 * apply (nothing exported, shared helpers static inline only).
 *
 * The tiling ("flash attention" with an online softmax). For one batch-head and
 * one block of BR query rows, i0 <= i < i0 + BR, everything is held
 * TRANSPOSED, one query per vector lane, so that every per-row statistic (running
 * max m, running sum l, the rescale factor alpha) is a plain lane-wise vector and
 * the softmax needs no horizontal reduction at all:
 *
 *   qt  (d,  BR)  scale * q[i0 + l, p] at [p][l]; lanes past the last query are 0
 *   st  (BC, BR)  the scores of one key block, [j][l] = qt[:, l] . k[j0 + j, :],
 *                 turned in place into the unnormalised probabilities
 *                 p = exp(s - m_new) (0 where masked)
 *   ot  (dv, BR)  the unnormalised output, [c][l] = sum_j p[j][l] v[j, c]
 *
 * k and v are read where they are, one element broadcast to every lane: the
 * scores are st = K_blk qt, the output ot = V_blk^T st, two small GEMMs whose
 * "A" operand is k or v in place (row stride ldk / ldv) and whose "B" operand is
 * the packed block. Per key block j0 (ATTN4J_FLASH_BC keys, fewer at the end):
 *
 *   scores_fn   st[j][l] = sum_p k[j0 + j, p] * qt[p][l]
 *   softmax_fn  masks (causal, key padding) to -inf; m_new = max(m, max_j st);
 *               mu = m_new, or 0 where m_new = -inf (nothing kept yet, so no
 *               -inf - -inf); alpha = exp(m - mu); st = exp(st - mu);
 *               l = alpha * l + sum_j st; m = m_new
 *   pv_fn       ot[c][l] = alpha[l] * ot[c][l] + sum_j v[j0 + j, c] * st[j][l]
 *               (first block: no old ot; it is never read)
 *
 * and at the end o[i0 + l, c] = ot[c][l] * (1 / l[l]) (store_fn; flash.c puts the
 * mean of v in the rows that kept no key, and for attn4j_flash_attention_lse_f32
 * writes each row's m + log(l), attn4j_flash_lse). The backward pass
 * (flash_backward.h) reuses these kernels. qt is filled by pack_fn. Every array above is
 * 64-byte aligned and BR floats per row, whatever the ISA, so the workspace size
 * is the same on every path.
 *
 * BR, the lanes of a block row, is chosen per call (attn4j_flash_block_rows):
 * 64 once there are 64 queries, else 32, and handed to every kernel as `br`.
 * 64 lanes halve how often k and v stream through the cache per flop and, in
 * the AVX-512 tiles, load 4 vectors and broadcast 6 elements per 24 FMAs (32
 * lanes: 2 and 11 per 22); on 256 x 256 x 64 heads that measured 7-8% faster,
 * on 4096 x 4096 16%. Short sequences keep 32 lanes: T = 32 in 64 lanes would
 * compute half a block of padding (measured 1.7x slower).
 */
#ifndef ATTN4J_FLASH_H
#define ATTN4J_FLASH_H

#include <math.h>
#include <stdint.h>

#include "attn4j.h"
#include "internal.h"

/* Query rows per block, the lanes of the packed layout: ATTN4J_FLASH_BR_SHORT for
 * fewer than ATTN4J_FLASH_BR_LONG queries, else ATTN4J_FLASH_BR_LONG (two or four
 * AVX-512 vectors, four or eight AVX2 vectors). */
#define ATTN4J_FLASH_BR_SHORT 32
#define ATTN4J_FLASH_BR_LONG 64
/* The block height of a call with tq queries. */
static inline int64_t attn4j_flash_block_rows(int64_t tq)
{
    return tq >= ATTN4J_FLASH_BR_LONG ? ATTN4J_FLASH_BR_LONG : ATTN4J_FLASH_BR_SHORT;
}

/* Keys per block: st is BC x BR floats (8 or 16 KiB), small enough to stay in L1 with
 * qt and ot while the next block of k and v streams in. */
#define ATTN4J_FLASH_BC 64

/* Workspace regions are 64-byte aligned (one cache line: no false sharing between
 * the slices of two threads). */
#define ATTN4J_FLASH_ALIGN 64
static inline int64_t attn4j_flash_round_up(int64_t bytes)
{
    return (bytes + ATTN4J_FLASH_ALIGN - 1) / ATTN4J_FLASH_ALIGN * ATTN4J_FLASH_ALIGN;
}

/* Bounds the thread-handle array on the stack; far above any core count the
 * thread setting of the Java side makes sense for. */
#define ATTN4J_FLASH_MAX_THREADS 1024

/* The scalar kernels' exp: expf below -104 is +0 anyway, and expf would pay an
 * underflow (errno, a microcode assist) for every masked score. expf(NaN) is NaN. */
static inline float attn4j_flash_exp_clamped(float x)
{
    return x < ATTN4J_EXP_LO ? 0.0f : expf(x);
}

/* 1 when the n mask bytes are all 0: a key block no query keeps, skipped unread. */
static inline int attn4j_flash_all_zero(const uint8_t *b, int64_t n)
{
    for (int64_t j = 0; j < n; ++j)
        if (b[j] != 0)
            return 0;
    return 1;
}

/* The end of the key range of query rows i0 .. i0 + nq - 1: causal (top-left,
 * j <= i) rows see no key past the block's last query. The forward and the
 * backward (flash_backward.c) walk the same key blocks from it. */
static inline int64_t attn4j_flash_key_end(int32_t causal, int64_t i0, int64_t nq, int64_t tk)
{
    return causal && i0 + nq < tk ? i0 + nq : tk;
}

/* The log-sum-exp of a row from the final online-softmax state (running max m,
 * running sum l of exp(x - m)): m + log(l), and +inf for a row that kept no key
 * (l == 0; a kept key contributes exp(m - m) = 1). NaN stays NaN. The forward
 * (attn4j_flash_attention_lse_f32) and the backward (when it recomputes the
 * statistics) both finish their rows with it, so the two agree bit for bit. */
static inline float attn4j_flash_lse(float m, float l)
{
    return l == 0.0f ? INFINITY : m + logf(l);
}

/* st[j][l] = sum_{p < d} k[j * ldk + p] * qt[p * br + l], j < nk, l < br. */
typedef void (*attn4j_flash_scores_fn)(const float *k, int64_t ldk, int64_t nk, const float *qt, int64_t d,
                                       float *st, int64_t br);

/*
 * The online-softmax step over st (nk rows of br lanes). Key j of the block is
 * masked for every lane when key_ok != NULL and key_ok[j] == 0; with `diagonal`
 * set, lane l of row j is masked when j - l > diag (that is key j0 + j after query
 * i0 + l: diag = i0 - j0). m, l, alpha: br floats each; alpha is written.
 */
typedef void (*attn4j_flash_softmax_fn)(float *st, int64_t nk, const uint8_t *key_ok, int32_t diagonal,
                                        int64_t diag, float *m, float *l, float *alpha, int64_t br);

/* ot[c][l] = (first ? 0 : alpha[l] * ot[c][l]) + sum_{j < nk} v[j * ldv + c] * st[j][l],
 * c < dv, l < br. */
typedef void (*attn4j_flash_pv_fn)(const float *v, int64_t ldv, int64_t nk, const float *st, int64_t dv,
                                   const float *alpha, int32_t first, float *ot, int64_t br);

/* qt[p][l] = scale * (q[l * ldq + p] + bias[p]) for l < nq (bias NULL: no term;
 * the sum rounded to float first), 0 for nq <= l < br; p < d. */
typedef void (*attn4j_flash_pack_fn)(const float *q, int64_t ldq, int64_t nq, int64_t d, const float *bias,
                                     float scale, float *qt, int64_t br);

/* o[l * ldo + c] = ot[c][l] * (1 / l[l]) for l < nq, c < dv (the reciprocal
 * rounded to float, then one rounding of the product); ot rows are br floats. */
typedef void (*attn4j_flash_store_fn)(const float *ot, int64_t dv, const float *l, int64_t nq, float *o,
                                      int64_t ldo, int64_t br);

/*
 * The register-tiled products of the vector kernels cover n rows (keys, or value
 * channels) in tiles of at most `rmax` rows, as equal in height as possible (64
 * rows with rmax 12: 11, 11, 11, 11, 10, 10), so that no tile is left with a few
 * rows and too few accumulators to hide the FMA latency. TILE(r0, R) runs one
 * tile of R rows from row r0; R is a literal in each case, so each height gets
 * its own fully unrolled copy (the vector units clamp R to their own maximum,
 * which makes the cases above it dead code they never take).
 */
#define ATTN4J_FLASH_TILES(n, rmax, TILE)                                                              \
    do {                                                                                               \
        const int64_t tiles_ = ((n) + (rmax) - 1) / (rmax);                                            \
        const int64_t base_ = (n) / tiles_, extra_ = (n) % tiles_;                                     \
        int64_t r0_ = 0;                                                                               \
        for (int64_t t_ = 0; t_ < tiles_; ++t_) {                                                      \
            const int64_t h_ = base_ + (t_ < extra_);                                                  \
            switch (h_) {                                                                              \
            case 12: TILE(r0_, 12); break;                                                             \
            case 11: TILE(r0_, 11); break;                                                             \
            case 10: TILE(r0_, 10); break;                                                             \
            case 9: TILE(r0_, 9); break;                                                               \
            case 8: TILE(r0_, 8); break;                                                               \
            case 7: TILE(r0_, 7); break;                                                               \
            case 6: TILE(r0_, 6); break;                                                               \
            case 5: TILE(r0_, 5); break;                                                               \
            case 4: TILE(r0_, 4); break;                                                               \
            case 3: TILE(r0_, 3); break;                                                               \
            case 2: TILE(r0_, 2); break;                                                               \
            default: TILE(r0_, 1); break;                                                              \
            }                                                                                          \
            r0_ += h_;                                                                                 \
        }                                                                                              \
    } while (0)

struct attn4j_flash_kernels {
    attn4j_flash_pack_fn pack;
    attn4j_flash_scores_fn scores;
    attn4j_flash_softmax_fn softmax;
    attn4j_flash_pv_fn pv;
    attn4j_flash_store_fn store;
};

/* The block kernels of the instruction set in use (flash.c); the backward pass
 * (flash_backward.c) runs its scores, its output-like products and the
 * recomputed statistics through the same ones. */
struct attn4j_flash_kernels attn4j_flash_select_kernels(void);

/* The checks of attn4j_flash_attention_f32 on everything but the pointers, the
 * workspace and q_bias (flash.c): sizes, divisibility, strides, the spans of q, k,
 * v, o (and of the backward's dq, dk, dv, addressed alike) within PTRDIFF_MAX
 * bytes, the col_mask's too. 1 when they pass. */
int attn4j_flash_shape_ok(int64_t ldq, int64_t q_outer, int64_t q_inner, int64_t ldk, int64_t k_outer,
                          int64_t k_inner, int64_t ldv, int64_t v_outer, int64_t v_inner, int64_t ldo,
                          int64_t o_outer, int64_t o_inner, int64_t batch_heads, int64_t inner, int64_t kv_repeat,
                          int64_t tq, int64_t tk, int64_t d, int64_t dv, const uint8_t *col_mask,
                          int64_t col_mask_div, int32_t nthreads);

/* ---- Threads (flash.c), shared by the forward and the backward pass -------------------
 *
 * Threads are created per call, not kept in a pool: the library keeps no state
 * between calls (attn4j.h), and creating and joining a thread measured 17-27 us
 * here, under 1% of a call that is worth splitting. */

/* A thread is only worth its creation (~20 us) for at least this much work
 * (~100 us at the ~70 GFLOP/s one core reaches). */
#define ATTN4J_FLASH_MIN_FLOPS_PER_THREAD 8.0e6

/* The threads a call of `flops` with n_items independent work items runs on: at
 * most nthreads and n_items, and only as many as the work pays for; >= 1. */
int64_t attn4j_flash_thread_count(int32_t nthreads, int64_t n_items, double flops);

/* Runs fn(ctx, t) for every t < threads: t = 0 on the calling thread, the others on
 * POSIX threads created here and joined before it returns. A thread that cannot be
 * created is skipped, so fn must take its work from a shared counter (the others
 * then do that thread's share); t only selects the caller's slice of a workspace. */
typedef void (*attn4j_flash_thread_fn)(void *ctx, int64_t t);
void attn4j_flash_run_threads(int64_t threads, attn4j_flash_thread_fn fn, void *ctx);

#if defined(ATTN4J_HAVE_X86)
/* y[k] = exp(x[k]) for x[k] <= 0 with the softmax's exp (v8_exp_nonpos /
 * v16_exp_nonpos); for the tests. */
void attn4j_flash_exp_avx2(const float *x, float *y, int64_t n);
void attn4j_flash_exp_avx512(const float *x, float *y, int64_t n);

void attn4j_flash_pack_avx2(const float *q, int64_t ldq, int64_t nq, int64_t d, const float *bias, float scale, float *qt,
                            int64_t br);
void attn4j_flash_store_avx2(const float *ot, int64_t dv, const float *l, int64_t nq, float *o, int64_t ldo,
                             int64_t br);
void attn4j_flash_scores_avx2(const float *k, int64_t ldk, int64_t nk, const float *qt, int64_t d, float *st,
                              int64_t br);
void attn4j_flash_softmax_avx2(float *st, int64_t nk, const uint8_t *key_ok, int32_t diagonal, int64_t diag,
                               float *m, float *l, float *alpha, int64_t br);
void attn4j_flash_pv_avx2(const float *v, int64_t ldv, int64_t nk, const float *st, int64_t dv,
                          const float *alpha, int32_t first, float *ot, int64_t br);

void attn4j_flash_pack_avx512(const float *q, int64_t ldq, int64_t nq, int64_t d, const float *bias, float scale, float *qt,
                              int64_t br);
void attn4j_flash_store_avx512(const float *ot, int64_t dv, const float *l, int64_t nq, float *o, int64_t ldo,
                               int64_t br);
void attn4j_flash_scores_avx512(const float *k, int64_t ldk, int64_t nk, const float *qt, int64_t d,
                                float *st, int64_t br);
void attn4j_flash_softmax_avx512(float *st, int64_t nk, const uint8_t *key_ok, int32_t diagonal,
                                 int64_t diag, float *m, float *l, float *alpha, int64_t br);
void attn4j_flash_pv_avx512(const float *v, int64_t ldv, int64_t nk, const float *st, int64_t dv,
                            const float *alpha, int32_t first, float *ot, int64_t br);
#endif

#endif /* ATTN4J_FLASH_H */
