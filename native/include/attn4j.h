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
 * Masking conventions of attn4j_masked_softmax_f32 (argument `convention`). Keras
 * masks logits in three different ways and the difference shows on fully masked
 * rows, so the caller names the one it reproduces:
 *
 * ATTN4J_MASK_SUBTRACT (Keras Attention / AdditiveAttention):
 *     masked logit = fl32(scale * s - 1e9). The masked logits keep their order, so
 *     a fully masked row of small logits becomes uniform (all round to -1e9), and
 *     one of large logits (|s| > ~32) follows float32 rounding exactly as Keras.
 * ATTN4J_MASK_REPLACE_ZERO (keras.layers.Softmax, the MHA/GQA "slow path"):
 *     masked logit = -1e9, then masked probabilities are set to 0. A fully masked
 *     row is all zeros.
 * ATTN4J_MASK_REPLACE (ops.dot_product_attention, the MHA/GQA "fast path"):
 *     masked logit = -0.7 * FLT_MAX, no zeroing. A fully masked row is uniform.
 */
#define ATTN4J_MASK_SUBTRACT 0
#define ATTN4J_MASK_REPLACE_ZERO 1
#define ATTN4J_MASK_REPLACE 2

/*
 * attn4j_masked_softmax_f32: in-place, max-subtracted softmax over the last axis
 * of `scores`, laid out (batch, tq, tv) contiguously, fused with scaling and
 * masking. For every batch b, row i (query position) and column j (key position):
 *
 *     x = scale * scores[b, i, j]
 *     keep = mask_ok(b, i, j) && (!causal || j <= i)
 *     logit = keep ? x : masked(x)            (masked() depends on `convention`)
 *     scores[b, i, :] = exp(logit - max_j logit) / sum_j exp(logit - max_j logit)
 *     (ATTN4J_MASK_REPLACE_ZERO: then scores[b, i, j] *= keep, as Keras multiplies
 *      by the mask: 0 where !keep, except that a NaN row stays NaN)
 *
 * The causal mask is top-left aligned (j <= i) also when tq != tv, as Keras builds
 * it with a cumulative sum.
 *
 * The boolean mask is optional (mask == NULL: every position kept). It holds one
 * byte per element, 0 = masked, anything else = keep, contiguous along tv, and is
 * addressed with broadcasting strides (in elements):
 *
 *     mask_ok(b, i, j) = mask[(b / mask_batch_div) * mask_batch_stride
 *                             + i * mask_row_stride + j] != 0
 *
 * so that one call covers every layout Keras uses:
 *     (batch, tv)          mask_batch_stride = tv,      mask_row_stride = 0
 *     (batch, tq, tv)      mask_batch_stride = tq * tv, mask_row_stride = tv
 *     (tq, tv) for all b   mask_batch_stride = 0,       mask_row_stride = tv
 *     (B, tq, tv) shared by the N heads of scores (B*N, tq, tv): mask_batch_div = N
 * mask_batch_div must be >= 1 (1 when every score batch has its own mask batch).
 *
 * When every scale * s is finite the result is finite and NaN-free, also on fully
 * masked rows. NaN or infinite logits propagate as they do in Keras (a NaN or +inf
 * kept logit makes its row NaN); they never crash or hang.
 *
 * Requirements: scores != NULL; batch, tq, tv >= 1; strides >= 0;
 * mask_batch_div >= 1; convention one of ATTN4J_MASK_*; batch * tq * tv * 4 bytes
 * addressable (<= PTRDIFF_MAX). Strides are checked also when mask is NULL.
 * Otherwise ATTN4J_EINVAL and `scores` is untouched.
 *
 * ATTN4J_ISA values other than avx512, avx2 and scalar are ignored.
 */
ATTN4J_API int attn4j_masked_softmax_f32(float *scores, int64_t batch, int64_t tq, int64_t tv,
                                         float scale, const uint8_t *mask,
                                         int64_t mask_batch_stride, int64_t mask_row_stride,
                                         int64_t mask_batch_div, int32_t causal,
                                         int32_t convention);

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
