package dev.attn4j.internal.backend;

import dev.attn4j.MaskConvention;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The one seam between the layers and the code that computes: what a layer needs
 * computed, over off-heap float32 memory. Two implementations: {@link NativeBackend}
 * (OpenBLAS + libattn4j) and {@link ReferenceBackend} (plain Java, the independent
 * truth the tests compare against).
 *
 * <p>Arguments are validated by the public API before they get here; implementations
 * may assume they are in range (dimensions >= 1, offsets within the segments,
 * products counted in {@code int} without overflow).
 */
public interface Backend {

    /** A short name for diagnostics: "native" or "java". */
    String name();

    /**
     * A batch of row-major products {@code C_p = alpha * op(A_p) * op(B_p) + beta * C_p}
     * for {@code p = o * inner + h}, {@code o < outer}, {@code h < inner}, where
     * {@code op(X)} is X or its transpose and the operands start at these element
     * offsets of their segments:
     * <pre>
     *   A_p at o * aOuter + h * aInner
     *   B_p at o * bOuter + (h / bRepeat) * bInner   (bRepeat > 1: heads share B, as
     *                                                 grouped-query attention shares K/V)
     *   C_p at o * cOuter + h * cInner
     * </pre>
     * op(A) is m x k, op(B) is k x n, C is m x n; lda, ldb, ldc are the row strides (in
     * elements) of A, B and C as stored.
     *
     * @param route a preference; the backend may take another route when the preferred
     *              one is unavailable or unsafe for these shapes
     */
    void sgemmBatched(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      MemorySegment a, int lda, long aOuter, long aInner,
                      MemorySegment b, int ldb, long bOuter, long bInner, int bRepeat,
                      float beta, MemorySegment c, int ldc, long cOuter, long cInner,
                      int outer, int inner, GemmRoute route);

    /**
     * In-place masked softmax over {@code scores} laid out (batch, tq, tv), with the
     * semantics of {@code attn4j_masked_softmax_f32} in {@code native/include/attn4j.h}:
     * {@code x = scale * s}; position (b, i, j) is kept when the mask byte at
     * {@code (b / maskBatchDiv) * maskBatchStride + i * maskRowStride + j} is non-zero
     * (or {@code mask} is {@link MemorySegment#NULL}) and, if {@code causal}, j <= i.
     */
    default void maskedSoftmax(MemorySegment scores, long batch, int tq, int tv, float scale,
                               MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                               boolean causal, MaskConvention convention) {
        maskedSoftmax(scores, batch, tq, tv, scale, mask, maskBatchStride, maskRowStride, maskBatchDiv,
                MemorySegment.NULL, MemorySegment.NULL, 1, causal, 0, convention);
    }

    /**
     * The softmax above with every mask source the multi-head layers AND together
     * ({@code attn4j_masked_softmax_ex_f32}): additionally a row (query padding) mask
     * byte at {@code (b / padBatchDiv) * tq + i}, a column (key padding) mask byte at
     * {@code (b / padBatchDiv) * tv + j} (either may be {@link MemorySegment#NULL}), and
     * a symmetric window {@code |i - j| < window} when {@code window > 0}.
     */
    void maskedSoftmax(MemorySegment scores, long batch, int tq, int tv, float scale,
                       MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                       MemorySegment rowMask, MemorySegment colMask, long padBatchDiv,
                       boolean causal, long window, MaskConvention convention);

    /**
     * Fused scaled dot-product attention without a score matrix, with the semantics of
     * {@code attn4j_flash_attention_f32} in {@code native/include/attn4j.h}: for each of
     * {@code batchHeads} problems {@code bh = o * inner + h}, query row i and value
     * channel c,
     * <pre>
     *   x_j = scale * q_i . k_j;  kept_j = colMask byte at (bh / colMaskDiv) * tk + j != 0
     *                                      (or colMask is NULL) and (!causal || j <= i)
     *   out[i, c] = sum_kept softmax(x)_j v[j, c]       (no key kept: mean_j v[j, c] over all tk)
     * </pre>
     * Keras's ops.dot_product_attention (the {@link MaskConvention#REPLACE} convention).
     * Matrices start at these element offsets of their segments, rows strided by
     * {@code ld*} elements:
     * <pre>
     *   q_bh   at o * qOuter + h * qInner                 (tq, d)
     *   k_bh   at o * kOuter + (h / kvRepeat) * kInner    (tk, d)
     *   v_bh   at o * vOuter + (h / kvRepeat) * vInner    (tk, dv)
     *   out_bh at o * oOuter + h * oInner                 (tq, dv)
     * </pre>
     * {@code qBias} ({@link MemorySegment#NULL}: none) holds inner rows of d floats: row
     * {@code h} is added to the queries of q_bh first (the float sum), as the query
     * projection's bias. {@code threads} is the number of threads the call may use (>= 1);
     * the result does not depend on it. {@code lse} ({@link MemorySegment#NULL}: not
     * wanted) receives batchHeads * tq floats, the log-sum-exp of each row's kept logits
     * ({@code attn4j_flash_attention_lse_f32}; +inf for a fully masked row), which
     * {@link #flashAttentionBackward} reads instead of recomputing. Sizes are >= 1; {@code batchHeads % inner == 0},
     * {@code inner % kvRepeat == 0}.
     */
    void flashAttention(MemorySegment q, long ldq, long qOuter, long qInner,
                        MemorySegment k, long ldk, long kOuter, long kInner,
                        MemorySegment v, long ldv, long vOuter, long vInner,
                        MemorySegment out, long ldo, long oOuter, long oInner,
                        long batchHeads, long inner, long kvRepeat, long tq, long tk, long d, long dv,
                        float scale, MemorySegment qBias, MemorySegment colMask, long colMaskDiv,
                        boolean causal, MemorySegment lse, int threads);

    /**
     * One query position per head against a key/value cache read in place
     * ({@code attn4j_decode_attention_f32}): for batch row b and head h (key/value head
     * g = h / kvRepeat), q at {@code b qOuter + h qInner} (d floats), key j at
     * {@code b kOuter + g kInner + j ldk}, value j likewise, output at
     * {@code b oOuter + h oInner} (dv floats); row b attends to the keys
     * [keyBegin[b], keyEnd[b]) (int32 each, NULL: 0 and tk). Elements, not bytes.
     */
    void decodeAttention(MemorySegment q, long qOuter, long qInner,
                         MemorySegment k, long ldk, long kOuter, long kInner,
                         MemorySegment v, long ldv, long vOuter, long vInner,
                         MemorySegment out, long oOuter, long oInner,
                         long batch, long heads, long kvRepeat, long tk, long d, long dv, float scale,
                         MemorySegment keyBegin, MemorySegment keyEnd, int threads);

    // ---- gradients --------------------------------------------------------------------

    /**
     * The gradient through {@link #maskedSoftmax} ({@code attn4j_softmax_backward_f32}),
     * in place: on entry {@code dp} holds dL/dP for the probabilities {@code p} the forward
     * produced (same layout, same mask arguments); on return {@code dp[b, i, j] =
     * scale * p * (dp - sum_j p dp)} where the forward kept (b, i, j), and +0 where it
     * masked under REPLACE and REPLACE_THEN_ZERO (there the logit is a constant); under
     * SUBTRACT nothing is masked (Keras's {@code s - 1e9} has derivative 1).
     */
    void softmaxBackward(MemorySegment p, MemorySegment dp, long batch, int tq, int tv, float scale,
                         MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                         MemorySegment rowMask, MemorySegment colMask, long padBatchDiv,
                         boolean causal, long window, MaskConvention convention);

    /**
     * The gradients of {@link #tanhScores} ({@code attn4j_tanh_scores_backward_f32}) given
     * {@code ds} = dL/dscores: dq (batch, tq, dim) and dk (batch, tv, dim) written; dw (dim;
     * {@link MemorySegment#NULL}: skipped) = dL/dweights; dscalars (2 floats; NULL:
     * skipped) = dL/d inner and dL/d outer.
     */
    void tanhScoresBackward(MemorySegment q, MemorySegment k, MemorySegment ds, MemorySegment dq, MemorySegment dk,
                            MemorySegment dw, MemorySegment dscalars, long batch, int tq, int tv, int dim,
                            MemorySegment weights, float inner, float outer);

    /**
     * The gradient through {@code y = a * gate} with {@code gate = sigmoid(z)}
     * ({@code attn4j_gate_backward_f32}): {@code dz = dy * a * gate * (1 - gate)} written,
     * {@code dy *= gate} in place (then dL/da).
     */
    void gateBackward(MemorySegment a, MemorySegment gate, MemorySegment dy, MemorySegment dz, long n);

    /**
     * The gradients of {@link #flashAttention} without a (tq, tk) matrix
     * ({@code attn4j_flash_attention_backward_f32}; qBias none: q is the biased query):
     * given the forward's output {@code o} and {@code dout} = dL/do (both addressed like
     * the forward's out), writes dq (addressed like q), dk (like k) and dv (like v); the
     * dk / dv rows of a shared key/value head sum over its kvRepeat query heads. A fully
     * masked row passes do / tk to every dv row and nothing to dq, dk. {@code lse}: the
     * forward's statistics, or {@link MemorySegment#NULL} to recompute them.
     */
    void flashAttentionBackward(MemorySegment q, long ldq, long qOuter, long qInner,
                                MemorySegment k, long ldk, long kOuter, long kInner,
                                MemorySegment v, long ldv, long vOuter, long vInner,
                                MemorySegment o, MemorySegment dout, long ldo, long oOuter, long oInner,
                                MemorySegment dq, MemorySegment dk, MemorySegment dv,
                                long batchHeads, long inner, long kvRepeat, long tq, long tk, long d, long dvDim,
                                float scale, MemorySegment colMask, long colMaskDiv, boolean causal,
                                MemorySegment lse, int threads);

    /** The most rows {@link #smallGemm} takes. */
    int SMALL_GEMM_MAX_ROWS = 8;

    /**
     * {@code y (m, n) = x (m, k) w (k, n) + bias} (bias {@link MemorySegment#NULL}: none)
     * for 1 <= m <= {@link #SMALL_GEMM_MAX_ROWS}, all dense row-major
     * ({@code attn4j_small_gemm_f32}): w streamed once for all rows, the shape of a
     * decode step's projections, where OpenBLAS's sgemm is slow for m = 2..8 and its
     * sgemv a little slower for m = 1. Each element is a float32 multiply-add chain in k
     * order, then the bias.
     */
    void smallGemm(MemorySegment x, int m, int k, MemorySegment w, int n, MemorySegment bias, MemorySegment y);

    /** Activations of {@link #biasAct}, the ATTN4J_ACT_* constants of attn4j.h. */
    enum Activation { LINEAR, SIGMOID, RELU, TANH, GELU, SILU }

    /** {@code x[r, c] = act(x[r, c] + bias[c])} over x (rows, cols); bias may be {@link MemorySegment#NULL}. */
    void biasAct(MemorySegment x, long rows, int cols, MemorySegment bias, Activation activation);

    /** {@code y[i] += x[i]} for i < n (a gradient's second share; linear, so plain Java). */
    default void add(MemorySegment x, MemorySegment y, long n) {
        for (long i = 0; i < n; i++) {
            y.setAtIndex(ValueLayout.JAVA_FLOAT, i, y.getAtIndex(ValueLayout.JAVA_FLOAT, i)
                    + x.getAtIndex(ValueLayout.JAVA_FLOAT, i));
        }
    }

    /** {@code x[i] *= y[i]} for i < n. */
    void mul(MemorySegment x, MemorySegment y, long n);

    /**
     * A bool mask from a float one: {@code m != 0} ({@code greaterThanHalf} false, a cast
     * to bool) or {@code m > 0.5} (keras.layers.Softmax's rule for float masks).
     */
    void maskFromFloat(MemorySegment m, MemorySegment out, long n, boolean greaterThanHalf);

    /**
     * Additive-style scores, {@code attn4j_tanh_scores_f32}: for q (batch, tq, dim) and
     * k (batch, tv, dim), {@code scores[b,i,j] = outer * sum_d w_d * tanh(inner * (q[b,i,d] + k[b,j,d]))}
     * with {@code w_d = 1} when {@code weights} is {@link MemorySegment#NULL}.
     */
    void tanhScores(MemorySegment q, MemorySegment k, MemorySegment scores, long batch, int tq, int tv, int dim,
                    MemorySegment weights, float inner, float outer);

    /**
     * Inverted dropout in place over {@code n} floats: element i is kept when the
     * uniform drawn from (seed, stream, i) is >= rate, and then divided by
     * {@code 1 - rate}; otherwise set to 0. See {@link Dropout} for the exact draw.
     */
    void dropout(MemorySegment x, long n, float rate, long seed, long stream);

    /** {@code x[r, :] *= 0} for every row r of x (rows, cols) whose mask byte is 0 (a multiply: NaN stays NaN). */
    void mulRowMask(MemorySegment x, long rows, int cols, MemorySegment rowMask);
}
