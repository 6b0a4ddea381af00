/*
 * attn4j.h - the one public header of libattn4j, the fused kernels behind the
 * attn4j Java library.
 *
 * Conventions for every function below:
 *  - Every exported symbol starts with attn4j_ and kernels end in their element
 *    type (_f32).
 *  - Tensors are dense, row-major (C order) float32 unless a stride says otherwise.
 *  - Functions return ATTN4J_OK (0) on success and a negative ATTN4J_E* code when an
 *    argument is out of contract; they never abort and never write out of bounds
 *    for arguments within contract. The Java side validates everything before it
 *    calls, so an error code here means a bug in the caller, not bad user input.
 *  - Functions are reentrant and thread-safe: they keep no state between calls
 *    except the CPU-feature dispatch, which is resolved once and read-only after.
 */
#ifndef ATTN4J_H
#define ATTN4J_H

#include <stdint.h>

#if defined(_WIN32)
#define ATTN4J_API __declspec(dllexport)
#else
#define ATTN4J_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes. */
#define ATTN4J_OK 0
#define ATTN4J_EINVAL -1

/*
 * Masking conventions of attn4j_masked_softmax_f32 and attn4j_masked_softmax_ex_f32
 * (argument `convention`). Keras masks logits in three different ways and the
 * difference shows on fully masked rows, so the caller names the one it
 * reproduces:
 *
 * ATTN4J_MASK_SUBTRACT (Keras Attention / AdditiveAttention):
 *     masked logit = fl32(scale * s - 1e9). The masked logits keep their order, so
 *     a fully masked row of small logits becomes uniform (all round to -1e9), and
 *     one of large logits (|s| > ~32) follows float32 rounding exactly as Keras.
 * ATTN4J_MASK_REPLACE_ZERO (keras.layers.Softmax, the MHA/GQA "slow path"):
 *     masked logit = -1e9, then every masked probability is replaced by +0
 *     (Keras: where(mask, outputs, 0.0)). A fully masked row is all zeros.
 * ATTN4J_MASK_REPLACE (ops.dot_product_attention, the MHA/GQA "fast path"):
 *     masked logit = -0.7 * FLT_MAX, no zeroing. A fully masked row is uniform.
 */
#define ATTN4J_MASK_SUBTRACT 0
#define ATTN4J_MASK_REPLACE_ZERO 1
#define ATTN4J_MASK_REPLACE 2

/*
 * attn4j_masked_softmax_ex_f32: in-place, max-subtracted softmax over the last
 * axis of `scores`, laid out (batch, tq, tv) contiguously, fused with scaling and
 * with every mask source the Keras attention layers combine (they AND them), so
 * the caller never builds a combined (tq, tv) mask. For every batch b, row i
 * (query position) and column j (key position):
 *
 *     x = scale * scores[b, i, j]
 *     keep = mask_ok(b, i, j) && row_ok(b, i) && col_ok(b, j)
 *            && (!causal || j <= i) && (window <= 0 || |i - j| < window)
 *     logit = keep ? x : masked(x)            (masked() depends on `convention`)
 *     scores[b, i, :] = exp(logit - max_j logit) / sum_j exp(logit - max_j logit)
 *     (ATTN4J_MASK_REPLACE_ZERO: then scores[b, i, j] = keep ? scores[b, i, j] : +0,
 *      as Keras's where(mask, outputs, 0): a masked position is exactly +0 always,
 *      also in a row that is NaN)
 *
 * The causal mask is top-left aligned (j <= i) also when tq != tv, as Keras builds
 * it with a cumulative sum. The window keeps the 2 * window - 1 columns
 * i - window < j < i + window (with causal: window columns, i - window < j <= i);
 * window = 0 means no window.
 *
 * Every byte mask is optional (NULL: every position kept) and holds one byte per
 * element, 0 = masked, anything else = keep:
 *
 *  - mask: a boolean attention mask, contiguous along tv and addressed with
 *    broadcasting strides (in elements):
 *        mask_ok(b, i, j) = mask[(b / mask_batch_div) * mask_batch_stride
 *                                + i * mask_row_stride + j] != 0
 *    so that one call covers every layout Keras uses:
 *        (batch, tv)          mask_batch_stride = tv,      mask_row_stride = 0
 *        (batch, tq, tv)      mask_batch_stride = tq * tv, mask_row_stride = tv
 *        (tq, tv) for all b   mask_batch_stride = 0,       mask_row_stride = tv
 *        (B, tq, tv) shared by the N heads of scores (B*N, tq, tv): mask_batch_div = N
 *  - row_mask: the query padding mask, (batch / pad_batch_div, tq) dense:
 *        row_ok(b, i) = row_mask[(b / pad_batch_div) * tq + i] != 0
 *    A row whose byte is 0 is fully masked (every column).
 *  - col_mask: the key/value padding mask, (batch / pad_batch_div, tv) dense:
 *        col_ok(b, j) = col_mask[(b / pad_batch_div) * tv + j] != 0
 * mask_batch_div and pad_batch_div must be >= 1 (1 when every score batch has
 * its own mask batch; N for masks of B sequences shared by N heads). The masks are
 * read only (they may alias each other).
 *
 * When every scale * s is finite the result is finite and NaN-free, also on fully
 * masked rows. NaN or infinite logits propagate as they do in Keras (a NaN or +inf
 * kept logit makes its row NaN, at every column but the masked ones of
 * ATTN4J_MASK_REPLACE_ZERO, which are +0); they never crash or hang.
 *
 * Accuracy: the float32 operations above (scale * s, s - 1e9, logit - max) round
 * as in Keras; exp is within 2 ulp, the sum is accumulated in double (in an
 * unspecified order) and rounded to float once, and the division is a float32
 * division: every probability is within 4e-7 relative of the exact softmax of the
 * float32 logits, or a few subnormal ulps where it is below FLT_MIN.
 *
 * Cost: causality and the window are column ranges, not per-element tests; under
 * ATTN4J_MASK_REPLACE and ATTN4J_MASK_REPLACE_ZERO the columns outside the range
 * are not passed over at all (they share one value), so a causal row costs its
 * kept part. A NULL mask costs nothing per element.
 *
 * Requirements: scores != NULL; batch, tq, tv >= 1; mask_batch_stride,
 * mask_row_stride >= 0; mask_batch_div, pad_batch_div >= 1; window >= 0;
 * convention one of ATTN4J_MASK_*; batch * tq * tv * 4 bytes addressable
 * (<= PTRDIFF_MAX). Strides and divisors are checked also when the mask they
 * address is NULL. Otherwise ATTN4J_EINVAL and `scores` is untouched.
 *
 * ATTN4J_ISA values other than avx512, avx2 and scalar are ignored.
 */
ATTN4J_API int attn4j_masked_softmax_ex_f32(float *scores, int64_t batch, int64_t tq, int64_t tv,
                                            float scale, const uint8_t *mask,
                                            int64_t mask_batch_stride, int64_t mask_row_stride,
                                            int64_t mask_batch_div, const uint8_t *row_mask,
                                            const uint8_t *col_mask, int64_t pad_batch_div,
                                            int32_t causal, int64_t window, int32_t convention);

/*
 * attn4j_masked_softmax_f32: attn4j_masked_softmax_ex_f32 with only the boolean
 * attention mask and causality, i.e. exactly
 *
 *     attn4j_masked_softmax_ex_f32(scores, batch, tq, tv, scale, mask,
 *                                  mask_batch_stride, mask_row_stride, mask_batch_div,
 *                                  NULL, NULL, 1, causal, 0, convention)
 *
 * (same results bit for bit, same requirements).
 */
ATTN4J_API int attn4j_masked_softmax_f32(float *scores, int64_t batch, int64_t tq, int64_t tv,
                                         float scale, const uint8_t *mask,
                                         int64_t mask_batch_stride, int64_t mask_row_stride,
                                         int64_t mask_batch_div, int32_t causal,
                                         int32_t convention);

/*
 * attn4j_tanh_scores_f32: the scores of additive ("concat") attention. For q laid
 * out (batch, tq, dim), k (batch, tv, dim) and scores (batch, tq, tv), all dense
 * row-major, and every batch b, query position i and key position j:
 *
 *     scores[b, i, j] = outer * sum_{d < dim} w[d] * tanh(inner * (q[b, i, d] + k[b, j, d]))
 *
 * with w[d] = weights[d] (dim floats), or no multiply at all when weights == NULL.
 * This is Keras's
 *     Attention(score_mode="concat"): concat_score_weight * sum_d tanh(scale * (q_i + k_j))
 *         inner = scale (1 without use_scale), outer = concat_score_weight, weights = NULL
 *     AdditiveAttention: sum_d scale[d] * tanh(q_i + k_j)
 *         inner = 1, outer = 1, weights = scale (NULL without use_scale)
 *
 * Evaluation, per term in float32 and in this order (no fused multiply-add):
 *     t = q[b, i, d] + k[b, j, d];  u = inner * t;  th = tanh(u);
 *     p = weights ? weights[d] * th : th
 * then sum = the sum of the dim terms p, accumulated in double (in an unspecified
 * order) and rounded to float once, and scores[b, i, j] = outer * sum in float32.
 * Keras adds the terms in float32 (numpy: pairwise), which rounds more: results
 * differ from Keras in the last bits of the sum, and where a float32 partial sum
 * would overflow to inf the double sum can stay finite.
 *
 * tanh: within 2 ulp of the exact tanh over the whole float range on every path:
 * libm tanhf on the scalar path (glibc 2.36 measures 2 ulp), a vector tanh on the
 * AVX2 / AVX-512 paths (measured 1 ulp, identical on both). All of them give
 * exactly +-1 for |u| >= 9.02 (where tanh rounds to +-1 in float32), tanh(+-0) =
 * +-0, tanh(+-inf) = +-1, tanh(NaN) = NaN. So results may differ between
 * instruction sets in the last bits, never more.
 *
 * NaN and infinities follow IEEE float32 through the formula: an infinite u gives
 * th = +-1, a finite term; a NaN q[b, i, d] (k[b, j, d]) makes row i (column j)
 * of batch b NaN, as does inf + -inf in t or inner * t = 0 * inf for that (i, j);
 * a NaN inner, weight or outer makes every score NaN; +inf and -inf terms in the
 * same sum give NaN, infinite terms of one sign +-inf.
 *
 * Requirements: q, k, scores != NULL; batch, tq, tv, dim >= 1; each of q, k and
 * scores at most PTRDIFF_MAX bytes (batch * tq * dim * 4, batch * tv * dim * 4,
 * batch * tq * tv * 4). Otherwise ATTN4J_EINVAL and scores is untouched. scores
 * must not overlap q, k or weights. Allocates nothing; uses up to 16 KiB of stack.
 */
ATTN4J_API int attn4j_tanh_scores_f32(const float *q, const float *k, float *scores, int64_t batch,
                                      int64_t tq, int64_t tv, int64_t dim, const float *weights,
                                      float inner, float outer);

/*
 * attn4j_dropout_f32: Keras-style inverted dropout of the n floats of x, in place:
 *
 *     keep_prob = 1.0f - rate                        (float32)
 *     x[i] = keep(i) ? x[i] / keep_prob : +0.0f      (float32 division)
 *
 * A dropped element is +0 whatever it held, NaN and inf included (Keras:
 * where(mask, x / keep_prob, 0)). keep(i) is a pure function of (seed, stream, i),
 * so a mask is reproducible, independent of threads and instruction set, and
 * defined bit for bit as follows (uint64_t arithmetic, wrapping modulo 2^64; in
 * Java: long arithmetic with >>> for >>):
 *
 *     mix(z):  z ^= z >> 30;  z *= 0xBF58476D1CE4E5B9;
 *              z ^= z >> 27;  z *= 0x94D049BB133111EB;
 *              z ^= z >> 31;  return z;
 *     h = mix(seed ^ mix(stream * 0x9E3779B97F4A7C15 + (uint64_t)i))
 *     u = (float)(h >> 40) * 0x1.0p-24f     (exact: a multiple of 2^-24 in [0, 1))
 *     keep(i) = u >= rate                   (float32 comparison)
 *
 * i counts from 0 at x in every call, so a caller that drops one tensor in several
 * calls gives each call its own stream. Example: seed 1, stream 2, i 3 gives
 * h = 0xCAB05A444B8C80AF, h >> 40 = 13283418, u = 0.79175341 (kept for rate 0.5).
 *
 * rate == 0 (or -0) leaves x untouched (no pass over it); n == 0 is a no-op.
 *
 * Requirements: 0 <= rate < 1 (a NaN rate is out of contract); n >= 0;
 * x != NULL when n > 0; n * 4 <= PTRDIFF_MAX. Otherwise ATTN4J_EINVAL and x is
 * untouched.
 */
ATTN4J_API int attn4j_dropout_f32(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream);

/*
 * attn4j_mul_row_mask_f32: for x laid out (rows, cols), dense row-major, and every
 * row r with row_mask[r] == 0:
 *
 *     x[r, c] *= 0.0f        for every c < cols
 *
 * a float32 multiply, not a store of 0, as Keras's `output *= cast(query_mask)`:
 * finite values become +0 or -0 (the sign of x), NaN and +-inf become NaN. Rows
 * whose mask byte is non-zero are not touched (bit-identical, NaN payloads too).
 *
 * Requirements: x != NULL, row_mask != NULL (rows bytes); rows, cols >= 1;
 * rows * cols * 4 <= PTRDIFF_MAX. Otherwise ATTN4J_EINVAL and x is untouched.
 */
ATTN4J_API int attn4j_mul_row_mask_f32(float *x, int64_t rows, int64_t cols, const uint8_t *row_mask);

/*
 * Activations of attn4j_bias_act_f32, the Keras activations of a Dense /
 * EinsumDense layer, each the float32 formula of Keras 3's numpy backend:
 *
 * ATTN4J_ACT_LINEAR   y = v
 * ATTN4J_ACT_SIGMOID  y = 1 / (1 + exp(-v)): 1 for large v (exp(-v) = 0), +0 for
 *                     v < -88.72 (exp(-v) = +inf), so it never overflows.
 * ATTN4J_ACT_RELU     y = max(v, 0), NaN stays NaN, -0 becomes +0 (numpy's
 *                     maximum(v, 0)).
 * ATTN4J_ACT_TANH     y = tanh(v)
 * ATTN4J_ACT_GELU     the exact (erf) GELU, Keras 3's default
 *                     (keras.activations.gelu(x, approximate=False)), in the
 *                     numpy backend's float32 order:
 *                         t = v / fl32(sqrt(2)); e = fl32(erf(t)); y = (v * (e + 1)) / 2
 *                     with erf evaluated in double and rounded to float, as
 *                     scipy.special.erf does for float32.
 * ATTN4J_ACT_SILU     y = v * sigmoid(v) (Keras "silu" / "swish")
 */
#define ATTN4J_ACT_LINEAR 0
#define ATTN4J_ACT_SIGMOID 1
#define ATTN4J_ACT_RELU 2
#define ATTN4J_ACT_TANH 3
#define ATTN4J_ACT_GELU 4
#define ATTN4J_ACT_SILU 5

/*
 * attn4j_bias_act_f32: the tail of a Dense layer, in place. For x laid out
 * (rows, cols), dense row-major, and every r < rows, c < cols:
 *
 *     v = bias == NULL ? x[r, c] : x[r, c] + bias[c]     (float32 add)
 *     x[r, c] = act(v)                                   (ATTN4J_ACT_*, above)
 *
 * Accuracy: LINEAR, RELU and GELU are the formulas above exactly (GELU up to
 * libm's double erf, < 1 ulp in double before the rounding to float), the same
 * bits on every instruction set. TANH is within 2 ulp of tanh (libm tanhf on the
 * scalar path, the vector tanh of attn4j_tanh_scores_f32 on AVX2 / AVX-512).
 * SIGMOID and SILU are exactly their float32 formula evaluated with some value of
 * exp(-v) within 2 ulp (libm expf on the scalar path, the vector exp of
 * attn4j_masked_softmax_f32 on AVX2 / AVX-512). Keras's own float32 formula
 * magnifies that exp error where 1 + exp(-v) rounds coarsely (v < -16.6) and
 * where the sigmoid is subnormal before SILU multiplies it by v (v near -88): up
 * to 3 (SIGMOID) and 6 (SILU) ulp from the formula with a correctly rounded exp
 * there, as numpy's exp gives differences of the same size. The vector paths
 * agree with each other bit for bit, and may differ from the scalar path in the
 * last bits. NaN stays NaN; +-inf gives act(+-inf) as the formula does in IEEE
 * float32 (SILU and GELU: -inf * 0 = NaN).
 *
 * LINEAR without a bias leaves x untouched (no pass over it).
 *
 * Requirements: x != NULL; rows, cols >= 1; rows * cols * 4 <= PTRDIFF_MAX;
 * bias NULL or cols floats; activation one of ATTN4J_ACT_*. Otherwise
 * ATTN4J_EINVAL and x is untouched. bias must not overlap x.
 */
ATTN4J_API int attn4j_bias_act_f32(float *x, int64_t rows, int64_t cols, const float *bias,
                                   int32_t activation);

/*
 * attn4j_mul_f32: x[i] = x[i] * y[i] for every i < n, a float32 multiply (IEEE:
 * NaN propagates, 0 * inf = NaN, zeros keep the product's sign).
 *
 * Requirements: n >= 0; x, y != NULL when n > 0; n * 4 <= PTRDIFF_MAX; y is x
 * itself (squares) or does not overlap it. Otherwise ATTN4J_EINVAL and x is
 * untouched. n == 0 is a no-op.
 */
ATTN4J_API int attn4j_mul_f32(float *x, const float *y, int64_t n);

/*
 * Rules of attn4j_mask_from_f32, the two ways Keras turns a float mask into a
 * boolean one:
 *
 * ATTN4J_MASKCAST_NONZERO  keep = m != 0   (a cast to bool; NaN keeps, -0 masks)
 * ATTN4J_MASKCAST_GT_HALF  keep = m > 0.5  (keras.layers.Softmax; NaN masks)
 */
#define ATTN4J_MASKCAST_NONZERO 0
#define ATTN4J_MASKCAST_GT_HALF 1

/*
 * attn4j_mask_from_f32: out[i] = keep(m[i]) ? 1 : 0 for every i < n, with keep()
 * the rule `mode` names (ATTN4J_MASKCAST_*), float32 comparisons with numpy's
 * NaN semantics. The result is a byte mask for attn4j_masked_softmax_ex_f32.
 *
 * Requirements: n >= 0; m, out != NULL when n > 0; n * 4 <= PTRDIFF_MAX; mode one
 * of ATTN4J_MASKCAST_*; out does not overlap m. Otherwise ATTN4J_EINVAL and out is
 * untouched. n == 0 is a no-op.
 */
ATTN4J_API int attn4j_mask_from_f32(const float *m, uint8_t *out, int64_t n, int32_t mode);

/*
 * attn4j_flash_attention_f32: scaled dot-product attention, softmax(scale Q K^T) V,
 * fused and tiled ("flash attention" with an online softmax), so that the
 * (tq, tk) score matrix never exists: memory is O(workspace), not O(tq * tk).
 *
 * Shapes and addressing (strides in elements). There are batch_heads independent
 * problems bh = b * inner + h (b < batch_heads / inner, h < inner); in each, q is
 * (tq, d), k is (tk, d), v is (tk, dv) and o is (tq, dv), row-major with row
 * strides ldq, ldk, ldv, ldo (elements within a row are contiguous), starting at
 *
 *     q:  q + b * q_outer + h * q_inner
 *     k:  k + b * k_outer + (h / kv_repeat) * k_inner     (kv_repeat > 1: grouped-
 *     v:  v + b * v_outer + (h / kv_repeat) * v_inner      query attention, heads
 *     o:  o + b * o_outer + h * o_inner                    share k and v)
 *
 * the (outer, inner) addressing of the Java backend's batched GEMM, so that the
 * projections of a multi-head layer laid out (B, T, N, H) are read and written in
 * place: inner = N, q_outer = T * N * H, q_inner = H, ldq = N * H (and likewise
 * (B, S, N / kv_repeat, H) for k and v). Dense (BH, T, d) tensors are inner = 1,
 * q_outer = tq * d, ldq = d.
 *
 * For every bh, query i < tq and output channel c < dv, with qb[i, p] = q[i, p] +
 * q_bias[h * d + p] rounded to float (the query projection's bias, fused here
 * instead of a pass of its own; h = bh % inner) or q[i, p] when q_bias is NULL:
 *
 *     x_j = scale * sum_p qb[i, p] * k[j, p]                    (j < tk)
 *     keep_j = (col_mask == NULL || col_mask[(bh / col_mask_div) * tk + j] != 0)
 *              && (!causal || j <= i)
 *     o[i, c] = sum_{kept j} exp(x_j - max) v[j, c] / sum_{kept j} exp(x_j - max)
 *
 * with max over the kept x_j. This is Keras's ops.dot_product_attention (the
 * MHA / GQA "fast path", ATTN4J_MASK_REPLACE above): masked logits are
 * -0.7 * FLT_MAX there, so they get probability exactly 0 whenever a row keeps
 * some key (for kept logits above -1e38, i.e. always in practice), and
 *
 *   - a fully masked row (no key kept: every key padded out, or causal with the
 *     keys j <= i all padded out) is uniform over ALL tk keys, as in Keras:
 *     o[i, c] = sum_{j < tk} v[j, c] / tk (summed in double, rounded once).
 *
 * The causal mask is top-left aligned (j <= i) also when tq != tk, as Keras and
 * attn4j_masked_softmax_ex_f32 build it: with tq > tk the rows i >= tk keep every
 * key; with tq < tk the keys j > i are never seen by row i. col_mask is the key
 * (value) padding mask of attn4j_masked_softmax_ex_f32, one byte per key, 0 =
 * masked: (batch_heads / col_mask_div, tk) dense, col_mask_div = N for a (B, S)
 * mask shared by the N heads of each batch entry.
 *
 * Cost: 2 * batch_heads * tq * tk * (d + dv) flops (causal with tq = tk: about
 * half), in blocks of 32 query rows by 64 keys; key blocks that no query of a
 * block keeps (above the causal diagonal, or fully padded out) are skipped
 * unread. No allocation; the only memory touched beyond q, k, v, o and col_mask
 * is `workspace`.
 *
 * Accuracy: q is scaled first (scale * qb[i, p], rounded to float), the dot
 * products, the running sums of the softmax and of the output are float32
 * accumulations (in an unspecified order, with fused multiply-adds on the vector
 * paths), the exp is within 2 ulp, and the output is the accumulated sum times
 * the float reciprocal of the softmax sum. For inputs with |x_j| up to ~100 the result
 * is within a few 1e-6 of the exact softmax(QK^T) V relative to max_j |v[j, c]|
 * (test/test_flash.c checks that bound). The thread count never changes a
 * result (each (bh, block of 32 query rows) is computed by one thread, in a fixed
 * order); the instruction set does, in the last bits.
 *
 * Non-finite input: a NaN or +inf logit of a kept key makes its row NaN (as in
 * Keras); a -inf one has probability 0 (a row whose kept logits are all -inf
 * counts as fully masked). The logit of a masked key is replaced, never used, so
 * NaN or inf in the k row of a masked key has no effect. Non-finite values in the
 * v row of a key with probability 0 may or may not make the output row NaN
 * (Keras: NaN, 0 * inf), depending on whether its key block was skipped.
 *
 * Threads: nthreads >= 1 threads share the work, split by (bh, block of 32 query
 * rows): the calling thread and up to nthreads - 1 POSIX threads created for this
 * call and joined before it returns (no pool, no state kept between calls; a call
 * too small to pay for a thread creation, ~8 Mflop per thread, uses fewer). If a
 * thread cannot be created the others do its share. The result does not depend
 * on nthreads.
 *
 * Workspace: `workspace` must hold at least
 * attn4j_flash_workspace_bytes(tq, tk, d, dv, nthreads) bytes (any alignment; it
 * is aligned up to 64 bytes inside); its contents on entry and exit are
 * unspecified. It must not overlap q, k, v, o or col_mask.
 *
 * q_bias, when not NULL, holds inner * d floats (row h for every bh with bh % inner = h).
 *
 * Requirements: q, k, v, o, workspace != NULL; batch_heads, inner, kv_repeat, tq,
 * tk, d, dv, col_mask_div >= 1; batch_heads % inner == 0; inner % kv_repeat == 0;
 * ldq, ldk >= d; ldv, ldo >= dv; every outer / inner stride >= 0; 1 <= nthreads
 * <= 1024; workspace_bytes at least the size above; every tensor's span (the last
 * element it addresses) and the col_mask's within PTRDIFF_MAX bytes. Otherwise
 * ATTN4J_EINVAL and o is untouched. The rows of o (over every bh and i) must not
 * overlap each other, q, k, v or col_mask; q, k, v and col_mask may alias each
 * other (they are only read). scale may be any float (a NaN scale gives NaN rows).
 *
 * ATTN4J_ISA selects the kernels as for every function here.
 */
ATTN4J_API int attn4j_flash_attention_f32(const float *q, int64_t ldq, int64_t q_outer, int64_t q_inner,
                                          const float *k, int64_t ldk, int64_t k_outer, int64_t k_inner,
                                          const float *v, int64_t ldv, int64_t v_outer, int64_t v_inner,
                                          float *o, int64_t ldo, int64_t o_outer, int64_t o_inner,
                                          int64_t batch_heads, int64_t inner, int64_t kv_repeat, int64_t tq,
                                          int64_t tk, int64_t d, int64_t dv, float scale, const float *q_bias,
                                          const uint8_t *col_mask, int64_t col_mask_div, int32_t causal,
                                          void *workspace, int64_t workspace_bytes, int32_t nthreads);

/*
 * attn4j_flash_workspace_bytes: the bytes of `workspace` that
 * attn4j_flash_attention_f32 needs for these sizes and thread count: per thread,
 * a block of BR packed query rows (d floats each), the BR x 64 scores of one
 * block, the BR x dv output accumulator, three BR-float vectors and dv floats,
 * each 64-byte aligned; plus 64 bytes. BR, the query rows of a block, is 64 when
 * tq >= 64, else 32. It does not grow with tk, nor with tq beyond 64: for
 * d = dv = 64 it is 50,176 bytes per thread + 64 (25,216 + 64 when tq < 64).
 *
 * Returns ATTN4J_EINVAL (negative) unless tq, tk, d, dv >= 1 and
 * 1 <= nthreads <= 1024 and the size fits an int64_t.
 */
ATTN4J_API int64_t attn4j_flash_workspace_bytes(int64_t tq, int64_t tk, int64_t d, int64_t dv, int32_t nthreads);

/*
 * attn4j_decode_attention_f32: one query position per head against a key/value
 * cache, softmax(scale q K^T) V for every (batch row, head): the decode step of
 * incremental (KV-cached) attention, where each step reads the whole cached
 * prefix once. No score matrix beyond one row per head, no packing of the cache.
 *
 * Addressing (strides in elements): for batch row b < batch and head h < heads,
 * with g = h / kv_repeat its key/value head (heads % kv_repeat == 0; kv_repeat > 1
 * is grouped-query attention, the kv_repeat heads of a group read the group's
 * keys and values once together),
 *
 *     q_h:    q + b * q_outer + h * q_inner                      (d floats)
 *     key j:  k + b * k_outer + g * k_inner + j * ldk            (d floats)
 *     val j:  v + b * v_outer + g * v_inner + j * ldv            (dv floats)
 *     o_h:    o + b * o_outer + h * o_inner                      (dv floats)
 *
 * so a cache laid out (B, K, L, H) is read in place (k_outer = K L H, k_inner =
 * L H, ldk = H), and the projections of one new position (B, 1, N, H) are q and
 * o (q_outer = N H, q_inner = H). Row b attends to the keys begin_b <= j < end_b,
 * begin_b = key_begin[b] (key_begin NULL: 0) and end_b = key_end[b] (key_end
 * NULL: tk); a causal step over a cache of len_b positions plus the new one is
 * end_b = len_b + 1, a sliding window of w positions begin_b = max(0, end_b - w).
 *
 *     x_j = sum_p (scale * q_h[p]) k_j[p]       (scale * q_h rounded to float first)
 *     o_h[c] = sum_j exp(x_j - max) v_j[c] / sum_j exp(x_j - max)
 *
 * Accuracy: float32 dot products and sums in an unspecified order (fused
 * multiply-adds on the vector paths), the exp within 2 ulp (as the flash kernel's),
 * the output the sum times the float reciprocal of the softmax sum: within a few
 * 1e-6 of the exact result relative to max_j |v_j[c]| for logits up to ~100. A
 * NaN logit, a +inf one, or all logits -inf make the row NaN. The thread count
 * never changes a result.
 *
 * Threads: work items are (b, g) pairs, shared by the calling thread and up to
 * nthreads - 1 POSIX threads created for the call and joined before it returns,
 * only as many as the bytes of keys and values streamed pay for (~2 MiB each).
 *
 * Workspace: at least attn4j_decode_workspace_bytes(kv_repeat, tk, d, nthreads)
 * bytes, any alignment, not overlapping q, k, v, o, key_begin or key_end.
 *
 * Requirements: q, k, v, o, workspace != NULL; batch, heads, kv_repeat, tk, d, dv
 * >= 1; heads % kv_repeat == 0; q_inner >= d, o_inner >= dv, ldk >= d, ldv >= dv;
 * every other stride >= 0; 0 <= begin_b < end_b <= tk for every b; 1 <= nthreads
 * <= 1024; every span within PTRDIFF_MAX bytes. Otherwise ATTN4J_EINVAL and o is
 * untouched. The o rows must not overlap each other or the inputs.
 */
ATTN4J_API int attn4j_decode_attention_f32(const float *q, int64_t q_outer, int64_t q_inner, const float *k,
                                           int64_t ldk, int64_t k_outer, int64_t k_inner, const float *v,
                                           int64_t ldv, int64_t v_outer, int64_t v_inner, float *o,
                                           int64_t o_outer, int64_t o_inner, int64_t batch, int64_t heads,
                                           int64_t kv_repeat, int64_t tk, int64_t d, int64_t dv, float scale,
                                           const int32_t *key_begin, const int32_t *key_end, void *workspace,
                                           int64_t workspace_bytes, int32_t nthreads);

/*
 * attn4j_decode_workspace_bytes: the workspace attn4j_decode_attention_f32 needs:
 * per thread kv_repeat rows of d and of tk floats (each rounded up to 16), 64-byte
 * aligned, plus 64. ATTN4J_EINVAL (negative) for sizes < 1, nthreads outside
 * [1, 1024], or a total beyond INT64_MAX / 2.
 */
ATTN4J_API int64_t attn4j_decode_workspace_bytes(int64_t kv_repeat, int64_t tk, int64_t d, int32_t nthreads);

/*
 * attn4j_small_gemm_f32: y = x w (+ bias) for a few rows, the projections of a
 * decode step (Dense / EinsumDense on one or a few new positions). For x laid out
 * (m, k), w (k, n) and y (m, n), all dense row-major, and every r < m, j < n:
 *
 *     y[r, j] = sum_{i < k} x[r, i] * w[i, j]  (+ bias[j] when bias != NULL)
 *
 * w is read once, in place, for all m rows (no packing), so a call costs about
 * the time to stream k * n * 4 bytes of w from where it sits; with m = 8 the
 * multiply-adds take about as long as streaming w from L3.
 *
 * Accuracy: every path (scalar, AVX2, AVX-512) evaluates each element in the
 * same order, float32 fused multiply-adds over chunks of C = 32 consecutive i
 * (the last chunk holds the remaining k - 32 (Q - 1), Q = ceil(k / 32)), the
 * chunk sums added in order in float32, then the bias:
 *
 *     for q = 0, 1, ..., Q - 1:
 *         a = +0;  for i = 32 q, ..., min(32 q + 32, k) - 1:  a = fmaf(x[r, i], w[i, j], a)
 *         t = q == 0 ? a : t + a
 *     y[r, j] = bias == NULL ? t : t + bias[j]
 *
 * so the result is the same bits on every instruction set and for every m (a
 * row does not depend on the rows computed with it), in the default floating-
 * point environment (round to nearest, subnormals not flushed); for k <= 32 it
 * is the plain chain. Each product goes through at most min(k, 32) + Q - 1
 * roundings, so the error of t is at most (min(k, 32) + Q - 1) 2^-24
 * sum_i |x[r, i] w[i, j]| (to first order): 47 2^-24 for k = 512 and 79 2^-24
 * for k = 1536, where a single chain of k terms has k 2^-24. On random data
 * (x, w uniform in [-1, 1], m = 1..8, n = 512) the largest error measured,
 * |y - exact| / max(1, |exact|), was 3.3e-6 for k = 512 and 5.6e-6 for
 * k = 1536 (1.0e-5 and 3.6e-5 with a single chain). NaN and
 * infinities follow IEEE through the sums: a NaN x[r, i] makes row r NaN, a NaN
 * w[i, j] column j, inf * 0 gives NaN (zeros are not skipped); which NaN's
 * payload survives is unspecified.
 *
 * Requirements: x, w, y != NULL; 1 <= m <= 8; k, n >= 1; each of x, w, y within
 * PTRDIFF_MAX bytes; y does not overlap x, w or bias (bias, when not NULL, holds
 * n floats). Otherwise ATTN4J_EINVAL and y is untouched. Single-threaded;
 * allocates nothing.
 */
ATTN4J_API int attn4j_small_gemm_f32(const float *x, int64_t m, int64_t k, const float *w, int64_t n,
                                     const float *bias, float *y);

/* ---- Gradients (backward passes) ---------------------------------------------
 *
 * The kernels below are the backward passes of the ones above, for training and
 * sensitivity analysis. Each writes gradients of a scalar loss L given dL/d(output);
 * "written" means the output is overwritten (not accumulated into).
 */

/*
 * attn4j_softmax_backward_f32: the gradient through attn4j_masked_softmax_ex_f32,
 * in place over `dp`. On entry dp[b, i, j] = dL/dP[b, i, j], where P (`p`, laid out
 * (batch, tq, tv) like dp) holds the probabilities the forward call produced (with
 * ATTN4J_MASK_REPLACE_ZERO: after its zeroing). On return
 *
 *     dp[b, i, j] = keep'(b, i, j) ? scale * p[b, i, j] * (g[b, i, j] - r[b, i]) : +0
 *     g[b, i, j]  = dL/dP[b, i, j],   r[b, i] = sum_j p[b, i, j] * g[b, i, j]
 *                   (accumulated in double, rounded to float once)
 *
 * i.e. dL/ds for the raw scores s of x = scale * s (pass scale = 1 for dL/dx).
 * keep' is the forward's keep(b, i, j), from the same mask arguments as
 * attn4j_masked_softmax_ex_f32 (mask, strides, divisors, row_mask, col_mask,
 * causal, window), under ATTN4J_MASK_REPLACE and ATTN4J_MASK_REPLACE_ZERO: there a
 * masked logit is a constant, so its gradient is exactly +0, also on a fully
 * masked row (uniform under REPLACE, all zero under REPLACE_ZERO). Under
 * ATTN4J_MASK_SUBTRACT every position is kept (Keras's masked logit s - 1e9 has
 * derivative 1 in s), so a fully masked row passes its gradient on as if unmasked.
 * r sums over every column, masked ones too (their p is +0 under REPLACE_ZERO and
 * in partly masked rows, so a finite g there adds nothing); the product is the
 * float32 (scale * p) * (g - r). NaN and inf propagate through the formula as IEEE
 * float32 arithmetic does (a NaN or inf g at any column of a row, masked or not,
 * makes r, and so the row's kept entries, NaN or infinite); the +0 entries stay +0.
 *
 * Requirements: those of attn4j_masked_softmax_ex_f32 for the sizes, strides and
 * masks; p, dp != NULL; p must not overlap dp. Otherwise ATTN4J_EINVAL and dp is
 * untouched.
 */
ATTN4J_API int attn4j_softmax_backward_f32(const float *p, float *dp, int64_t batch, int64_t tq, int64_t tv,
                                           float scale, const uint8_t *mask, int64_t mask_batch_stride,
                                           int64_t mask_row_stride, int64_t mask_batch_div,
                                           const uint8_t *row_mask, const uint8_t *col_mask,
                                           int64_t pad_batch_div, int32_t causal, int64_t window,
                                           int32_t convention);

/*
 * attn4j_tanh_scores_backward_f32: the gradients of attn4j_tanh_scores_f32
 * (same q, k, batch, tq, tv, dim, weights, inner, outer) given ds = dL/dscores,
 * laid out (batch, tq, tv). With u = tanh(inner * (q[b, i, d] + k[b, j, d])) (the
 * float32 sum, then the product, as the forward evaluates it), w_d = weights[d]
 * (1 when weights == NULL) and g = ds[b, i, j] * outer:
 *
 *     dq[b, i, d] = sum_j g * w_d * (1 - u^2) * inner           (written)
 *     dk[b, j, d] = sum_i g * w_d * (1 - u^2) * inner           (written)
 *     dw[d]       = sum_{b, i, j} g * u                          (written; skipped when dw == NULL)
 *     dscalars[0] = sum_{b, i, j, d} g * w_d * (1 - u^2) * (q[b, i, d] + k[b, j, d])   (dL/d inner)
 *     dscalars[1] = sum_{b, i, j, d} ds[b, i, j] * w_d * u                              (dL/d outer)
 *                   (both written; skipped when dscalars == NULL)
 *
 * Sums over more than dim terms are accumulated in double and rounded once.
 * Evaluation: per term in float32, u exactly as the forward (its tanh, so results
 * may differ between instruction sets in the last bits), 1 - u^2 as
 * (1 - u) * (1 + u), and c = (ds[b, i, j] * outer) * (1 - u^2); the sums of c, of
 * c * (q + k) and of ds * u are taken in double, and the factors constant over a
 * sum (inner * w_d for dq and dk, w_d for dscalars, outer for dw) are applied to
 * it in double before the one rounding to float.
 * Cost: one tanh per term when tq <= 256 or tv <= 256, else two (one pass per
 * side). Allocates nothing; uses up to 33 KiB of stack.
 * Requirements: q, k, ds, dq, dk != NULL; batch, tq, tv, dim >= 1; every tensor
 * within PTRDIFF_MAX bytes; the outputs do not overlap each other or the inputs.
 * Otherwise ATTN4J_EINVAL and nothing is written.
 */
ATTN4J_API int attn4j_tanh_scores_backward_f32(const float *q, const float *k, const float *ds, float *dq,
                                               float *dk, float *dw, float *dscalars, int64_t batch, int64_t tq,
                                               int64_t tv, int64_t dim, const float *weights, float inner,
                                               float outer);

/*
 * attn4j_gate_backward_f32: the gradient through y = a * sigmoid(z), the gate of
 * Keras's MultiHeadAttention(use_gate=True), given the forward's a (the attention
 * output) and gate = sigmoid(z), for i < n:
 *
 *     dz[i]  = dy[i] * a[i] * gate[i] * (1 - gate[i])     (written)
 *     dy[i] <- dy[i] * gate[i]                            (in place: dL/da)
 *
 * Requirements: a, gate, dy, dz != NULL when n > 0; n >= 0; n * 4 <= PTRDIFF_MAX;
 * dz does not overlap the others. Otherwise ATTN4J_EINVAL and nothing is written.
 */
ATTN4J_API int attn4j_gate_backward_f32(const float *a, const float *gate, float *dy, float *dz, int64_t n);

/*
 * attn4j_flash_attention_lse_f32: attn4j_flash_attention_f32 (same arguments, same
 * results bit for bit) that also writes the softmax statistics the backward pass
 * needs, so that it never stores a (tq, tk) matrix: for every bh and query row i,
 *
 *     lse[bh * tq + i] = max_j x_j + log(sum_{kept j} exp(x_j - max_j x_j))
 *
 * over the kept logits x_j = scale * qb[i] . k[j] as the forward computes them
 * (float32: the forward's running max m and running sum l of its online softmax,
 * lse = m + logf(l)), and +INFINITY for a fully masked row (also one whose kept
 * logits are all -inf, which the forward treats as fully masked); a NaN row gives
 * NaN. Writing it costs tq floats per head, nothing else changes.
 * lse != NULL holds batch_heads * tq floats (within PTRDIFF_MAX bytes) and must
 * not overlap any other argument. Otherwise, and under the requirements of
 * attn4j_flash_attention_f32, ATTN4J_EINVAL and neither o nor lse is touched.
 */
ATTN4J_API int attn4j_flash_attention_lse_f32(const float *q, int64_t ldq, int64_t q_outer, int64_t q_inner,
                                              const float *k, int64_t ldk, int64_t k_outer, int64_t k_inner,
                                              const float *v, int64_t ldv, int64_t v_outer, int64_t v_inner,
                                              float *o, int64_t ldo, int64_t o_outer, int64_t o_inner,
                                              int64_t batch_heads, int64_t inner, int64_t kv_repeat, int64_t tq,
                                              int64_t tk, int64_t d, int64_t dv, float scale, const float *q_bias,
                                              const uint8_t *col_mask, int64_t col_mask_div, int32_t causal,
                                              float *lse, void *workspace, int64_t workspace_bytes,
                                              int32_t nthreads);

/*
 * attn4j_flash_attention_backward_f32: the gradients of attn4j_flash_attention_f32
 * (q_bias NULL: the caller passes the biased queries) without a (tq, tk) matrix:
 * memory is O(workspace). Given the forward's q, k, v, its output o and
 * do_ = dL/do (both addressed like o: ldo, o_outer, o_inner), writes
 *
 *     dq = dL/dq, addressed like q (ldq, q_outer, q_inner)
 *     dk = dL/dk, addressed like k (ldk, k_outer, k_inner)
 *     dv = dL/dv, addressed like v (ldv, v_outer, v_inner)
 *
 * (only the rows and the first d (dv) elements of each row the forward reads are
 * written; dk and dv of a key/value head sum over its kv_repeat query heads).
 * With P = softmax over the kept keys as in the forward and D_i = sum_c do[i, c] o[i, c]:
 *
 *     dv[j]   = sum_i P[i, j] do[i]
 *     dS[i,j] = P[i, j] (do[i] . v[j] - D_i)      (+0 where masked)
 *     dq[i]   = scale * sum_j dS[i, j] k[j],   dk[j] = scale * sum_i dS[i, j] q[i]
 *
 * P is recomputed from the forward's logits as exp(x_j - lse_i) (the forward's
 * scores kernel, the same floats), D_i in double and rounded to float once, and dS
 * is exactly +0 wherever the computed P is 0 (masked, or exp underflowed), even if
 * do[i] . v[j] is not finite.
 *
 * A fully masked row (uniform over all tk keys in the forward) gives dv[j] +=
 * do[i] / tk for every j, dS = 0 (its logits are constants) and so dq[i] = +0:
 * the do of a group's fully masked rows are summed in double, divided by tk and
 * rounded once, then added to every dv row of the group. A row is fully masked
 * exactly when its lse is +INFINITY.
 *
 * lse holds the forward's attn4j_flash_attention_lse_f32 statistics,
 * batch_heads * tq floats. With lse NULL the kernel recomputes them in a first
 * pass over the keys of each query block (one more Q K^T product, ~20% more time)
 * with the forward's own kernels and blocks: the result is then bit for bit the
 * one with the statistics attn4j_flash_attention_lse_f32 wrote for the same
 * inputs on the same instruction set (q here being the forward's biased queries
 * fl(q + q_bias)).
 *
 * Cost: 2 * batch_heads * tq * tk * (3 d + 2 dv) flops (causal with tq = tk: about
 * half), 2.5x the forward's; one thread on 256 x 256 x 64 heads measured 2.2x
 * the forward's time (AVX-512). Accuracy: float32 products and sums (fused
 * multiply-adds on the vector paths) over d, dv, tk (dq) and the group's
 * kv_repeat * tq rows (dk, dv); test/test_flash_backward.c states and checks the
 * resulting bound. The instruction set changes results in the last bits.
 *
 * Threads: work items are (batch, key/value head) groups, each computed by one
 * thread in a fixed order (zeroing its dk, dv, then every head and query block),
 * so no two threads write the same float and the result does not depend on
 * nthreads. The calling thread and up to nthreads - 1 POSIX threads created for
 * the call share them, at most one per group and only as many as the work pays
 * for (~8 Mflop each), as in attn4j_flash_attention_f32.
 *
 * Workspace: at least attn4j_flash_backward_workspace_bytes(tq, tk, d, dv,
 * nthreads) bytes (any alignment), not overlapping anything else. Requirements as
 * for attn4j_flash_attention_f32 (with dq, dk, dv in place of o), and: do_ != NULL;
 * the problems' gradients must not share floats, so a zero q_outer, k_outer or
 * v_outer with batch_heads > inner, a zero q_inner with inner > 1 and a zero
 * k_inner or v_inner with inner > kv_repeat (broadcasts the forward accepts) are
 * refused; lse NULL or batch_heads * tq floats within PTRDIFF_MAX bytes. dq, dk
 * and dv must not overlap q, k, v, o, do_, lse or the workspace, nor each other's
 * addressed elements; they may share one buffer when the elements they address
 * are disjoint (e.g. the column blocks of a packed (rows, N H + K H + K Hv)
 * matrix: the caller's duty, not checked); nothing outside them is written.
 * q, k, v, o, do_, lse and col_mask may alias each other (they are only read).
 * Otherwise ATTN4J_EINVAL and nothing is written.
 */
ATTN4J_API int attn4j_flash_attention_backward_f32(
        const float *q, int64_t ldq, int64_t q_outer, int64_t q_inner,
        const float *k, int64_t ldk, int64_t k_outer, int64_t k_inner,
        const float *v, int64_t ldv, int64_t v_outer, int64_t v_inner,
        const float *o, const float *do_, int64_t ldo, int64_t o_outer, int64_t o_inner,
        float *dq, float *dk, float *dv,
        int64_t batch_heads, int64_t inner, int64_t kv_repeat, int64_t tq, int64_t tk, int64_t d, int64_t dv_dim,
        float scale, const uint8_t *col_mask, int64_t col_mask_div, int32_t causal, const float *lse,
        void *workspace, int64_t workspace_bytes, int32_t nthreads);

/*
 * attn4j_flash_backward_workspace_bytes: the bytes of `workspace` that
 * attn4j_flash_attention_backward_f32 needs for these sizes and thread count: per
 * thread, for blocks of BR query rows (64 when tq >= 64, else 32, as the forward):
 * q^T and dQ^T (d x BR floats each), do^T (dv x BR), the block's q and do rows
 * padded to a multiple of 16 floats (BR x d', BR x dv'), two 64 x BR blocks (P,
 * dS), six BR-float vectors and dv doubles, each 64-byte aligned; plus 64 bytes.
 * It does not grow with tk, nor with tq beyond 64: for d = dv = 64 it is 116,736
 * bytes per thread + 64.
 *
 * Returns ATTN4J_EINVAL (negative) unless tq, tk, d, dv >= 1 and
 * 1 <= nthreads <= 1024 and the size fits an int64_t.
 */
ATTN4J_API int64_t attn4j_flash_backward_workspace_bytes(int64_t tq, int64_t tk, int64_t d, int64_t dv,
                                                         int32_t nthreads);

/* The library version, "MAJOR.MINOR.PATCH". Static storage; never freed. */
ATTN4J_API const char *attn4j_version(void);

/*
 * The instruction set the kernels dispatch to on this CPU: "avx512", "avx2" or
 * "scalar". Chosen once, at the first call into the library, from cpuid; the
 * environment variable ATTN4J_ISA (same names) can lower it (tests use it to run
 * every path), never raise it above what the CPU supports. Static storage.
 */
ATTN4J_API const char *attn4j_isa(void);

#ifdef __cplusplus
}
#endif

#endif /* ATTN4J_H */
