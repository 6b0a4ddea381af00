package dev.attn4j.internal.ffm;

import dev.attn4j.internal.ffm.generated.kernels.Attn4jBindings;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * Thin wrapper over the jextract-generated binding of {@code native/include/attn4j.h}.
 * Callers pass validated arguments; a non-zero return code therefore means a bug on
 * the Java side and becomes an {@link IllegalStateException}.
 */
public final class Kernels {
    /** The ATTN4J_ACT_* activation codes of attn4j.h. */
    public static final int ACT_LINEAR = Attn4jBindings.ATTN4J_ACT_LINEAR();
    public static final int ACT_SIGMOID = Attn4jBindings.ATTN4J_ACT_SIGMOID();
    public static final int ACT_RELU = Attn4jBindings.ATTN4J_ACT_RELU();
    public static final int ACT_TANH = Attn4jBindings.ATTN4J_ACT_TANH();
    public static final int ACT_GELU = Attn4jBindings.ATTN4J_ACT_GELU();
    public static final int ACT_SILU = Attn4jBindings.ATTN4J_ACT_SILU();

    private final Path file;
    private final String origin;
    private final String version;
    private final String isa;

    private Kernels(NativeLibraries.Loaded loaded) {
        this.file = loaded.file();
        this.origin = loaded.origin();
        this.version = OpenBlas.cString(Attn4jBindings.attn4j_version());
        this.isa = OpenBlas.cString(Attn4jBindings.attn4j_isa());
    }

    /** Loads libattn4j as chosen by {@link NativeLibraries#loadKernels()}. */
    public static Kernels load() throws IOException {
        return new Kernels(NativeLibraries.loadKernels());
    }

    public Path file() { return file; }
    public String origin() { return origin; }
    public String version() { return version; }
    /** The instruction set the kernels dispatch to: avx512, avx2 or scalar. */
    public String isa() { return isa; }

    /** Masking conventions, the ATTN4J_MASK_* constants of attn4j.h. */
    public static int maskSubtract() { return Attn4jBindings.ATTN4J_MASK_SUBTRACT(); }
    public static int maskReplaceZero() { return Attn4jBindings.ATTN4J_MASK_REPLACE_ZERO(); }
    public static int maskReplace() { return Attn4jBindings.ATTN4J_MASK_REPLACE(); }

    /** {@code attn4j_masked_softmax_ex_f32}; see attn4j.h for the contract. */
    public void maskedSoftmax(MemorySegment scores, long batch, long tq, long tv, float scale,
                              MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                              MemorySegment rowMask, MemorySegment colMask, long padBatchDiv,
                              boolean causal, long window, int convention) {
        check(Attn4jBindings.attn4j_masked_softmax_ex_f32(scores, batch, tq, tv, scale, mask, maskBatchStride,
                maskRowStride, maskBatchDiv, rowMask, colMask, padBatchDiv, causal ? 1 : 0, window, convention),
                "attn4j_masked_softmax_ex_f32");
    }

    /** {@code attn4j_bias_act_f32}; {@code activation} is an ATTN4J_ACT_* value. */
    public void biasAct(MemorySegment x, long rows, long cols, MemorySegment bias, int activation) {
        check(Attn4jBindings.attn4j_bias_act_f32(x, rows, cols, bias, activation), "attn4j_bias_act_f32");
    }

    /** {@code attn4j_mul_f32}. */
    public void mul(MemorySegment x, MemorySegment y, long n) {
        check(Attn4jBindings.attn4j_mul_f32(x, y, n), "attn4j_mul_f32");
    }

    /** {@code attn4j_mask_from_f32}: != 0, or > 0.5 when {@code greaterThanHalf}. */
    public void maskFromFloat(MemorySegment m, MemorySegment out, long n, boolean greaterThanHalf) {
        check(Attn4jBindings.attn4j_mask_from_f32(m, out, n, greaterThanHalf
                ? Attn4jBindings.ATTN4J_MASKCAST_GT_HALF() : Attn4jBindings.ATTN4J_MASKCAST_NONZERO()),
                "attn4j_mask_from_f32");
    }

    /** {@code attn4j_tanh_scores_f32}; see attn4j.h. */
    public void tanhScores(MemorySegment q, MemorySegment k, MemorySegment scores, long batch, long tq, long tv,
                           long dim, MemorySegment weights, float inner, float outer) {
        check(Attn4jBindings.attn4j_tanh_scores_f32(q, k, scores, batch, tq, tv, dim, weights, inner, outer),
                "attn4j_tanh_scores_f32");
    }

    /** {@code attn4j_dropout_f32}; see attn4j.h. */
    public void dropout(MemorySegment x, long n, float rate, long seed, long stream) {
        check(Attn4jBindings.attn4j_dropout_f32(x, n, rate, seed, stream), "attn4j_dropout_f32");
    }

    /** {@code attn4j_mul_row_mask_f32}; see attn4j.h. */
    public void mulRowMask(MemorySegment x, long rows, long cols, MemorySegment rowMask) {
        check(Attn4jBindings.attn4j_mul_row_mask_f32(x, rows, cols, rowMask), "attn4j_mul_row_mask_f32");
    }

    /**
     * {@code attn4j_flash_workspace_bytes}: the workspace bytes {@link #flashAttention} needs
     * for these sizes and {@code threads}; see attn4j.h.
     */
    public long flashWorkspaceBytes(long tq, long tk, long d, long dv, int threads) {
        long bytes = Attn4jBindings.attn4j_flash_workspace_bytes(tq, tk, d, dv, threads);
        if (bytes < 0) {
            throw new IllegalStateException("attn4j_flash_workspace_bytes(" + tq + ", " + tk + ", " + d + ", " + dv
                    + ", " + threads + ") returned " + bytes + ": the Java side passed arguments outside the native "
                    + "contract; this is a bug in attn4j");
        }
        return bytes;
    }

    /**
     * {@code attn4j_flash_attention_f32}: fused, tiled scaled dot-product attention; see
     * attn4j.h for the addressing (strides in elements), the masks and the workspace.
     */
    public void flashAttention(MemorySegment q, long ldq, long qOuter, long qInner,
                               MemorySegment k, long ldk, long kOuter, long kInner,
                               MemorySegment v, long ldv, long vOuter, long vInner,
                               MemorySegment o, long ldo, long oOuter, long oInner,
                               long batchHeads, long inner, long kvRepeat, long tq, long tk, long d, long dv,
                               float scale, MemorySegment qBias, MemorySegment colMask, long colMaskDiv,
                               boolean causal, MemorySegment lse,
                               MemorySegment workspace, int threads) {
        if (lse.equals(MemorySegment.NULL)) {
            check(Attn4jBindings.attn4j_flash_attention_f32(q, ldq, qOuter, qInner, k, ldk, kOuter, kInner,
                    v, ldv, vOuter, vInner, o, ldo, oOuter, oInner, batchHeads, inner, kvRepeat, tq, tk, d, dv,
                    scale, qBias, colMask, colMaskDiv, causal ? 1 : 0, workspace, workspace.byteSize(), threads),
                    "attn4j_flash_attention_f32");
        } else {
            check(Attn4jBindings.attn4j_flash_attention_lse_f32(q, ldq, qOuter, qInner, k, ldk, kOuter, kInner,
                    v, ldv, vOuter, vInner, o, ldo, oOuter, oInner, batchHeads, inner, kvRepeat, tq, tk, d, dv,
                    scale, qBias, colMask, colMaskDiv, causal ? 1 : 0, lse, workspace, workspace.byteSize(),
                    threads), "attn4j_flash_attention_lse_f32");
        }
    }

    /** {@code attn4j_flash_backward_workspace_bytes}: the workspace of {@link #flashAttentionBackward}. */
    public long flashBackwardWorkspaceBytes(long tq, long tk, long d, long dv, int threads) {
        long bytes = Attn4jBindings.attn4j_flash_backward_workspace_bytes(tq, tk, d, dv, threads);
        if (bytes < 0) {
            throw new IllegalStateException("attn4j_flash_backward_workspace_bytes(" + tq + ", " + tk + ", " + d
                    + ", " + dv + ", " + threads + ") returned " + bytes + ": the Java side passed arguments "
                    + "outside the native contract; this is a bug in attn4j");
        }
        return bytes;
    }

    /** {@code attn4j_flash_attention_backward_f32}; see attn4j.h. */
    public void flashAttentionBackward(MemorySegment q, long ldq, long qOuter, long qInner,
                                       MemorySegment k, long ldk, long kOuter, long kInner,
                                       MemorySegment v, long ldv, long vOuter, long vInner,
                                       MemorySegment o, MemorySegment dout, long ldo, long oOuter, long oInner,
                                       MemorySegment dq, MemorySegment dk, MemorySegment dv,
                                       long batchHeads, long inner, long kvRepeat, long tq, long tk, long d,
                                       long dvDim, float scale, MemorySegment colMask, long colMaskDiv,
                                       boolean causal, MemorySegment lse, MemorySegment workspace, int threads) {
        check(Attn4jBindings.attn4j_flash_attention_backward_f32(q, ldq, qOuter, qInner, k, ldk, kOuter, kInner,
                v, ldv, vOuter, vInner, o, dout, ldo, oOuter, oInner, dq, dk, dv, batchHeads, inner, kvRepeat,
                tq, tk, d, dvDim, scale, colMask, colMaskDiv, causal ? 1 : 0, lse, workspace,
                workspace.byteSize(), threads), "attn4j_flash_attention_backward_f32");
    }

    /** {@code attn4j_small_gemm_f32}: y (m, n) = x (m, k) w (k, n) (+ bias) for 1 <= m <= 8; see attn4j.h. */
    public void smallGemm(MemorySegment x, long m, long k, MemorySegment w, long n, MemorySegment bias,
                          MemorySegment y) {
        check(Attn4jBindings.attn4j_small_gemm_f32(x, m, k, w, n, bias, y), "attn4j_small_gemm_f32");
    }

    /** {@code attn4j_softmax_backward_f32}; see attn4j.h. */
    public void softmaxBackward(MemorySegment p, MemorySegment dp, long batch, long tq, long tv, float scale,
                                MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                                MemorySegment rowMask, MemorySegment colMask, long padBatchDiv,
                                boolean causal, long window, int convention) {
        check(Attn4jBindings.attn4j_softmax_backward_f32(p, dp, batch, tq, tv, scale, mask, maskBatchStride,
                maskRowStride, maskBatchDiv, rowMask, colMask, padBatchDiv, causal ? 1 : 0, window, convention),
                "attn4j_softmax_backward_f32");
    }

    /** {@code attn4j_tanh_scores_backward_f32}; see attn4j.h. */
    public void tanhScoresBackward(MemorySegment q, MemorySegment k, MemorySegment ds, MemorySegment dq,
                                   MemorySegment dk, MemorySegment dw, MemorySegment dscalars, long batch, long tq,
                                   long tv, long dim, MemorySegment weights, float inner, float outer) {
        check(Attn4jBindings.attn4j_tanh_scores_backward_f32(q, k, ds, dq, dk, dw, dscalars, batch, tq, tv, dim,
                weights, inner, outer), "attn4j_tanh_scores_backward_f32");
    }

    /** {@code attn4j_gate_backward_f32}; see attn4j.h. */
    public void gateBackward(MemorySegment a, MemorySegment gate, MemorySegment dy, MemorySegment dz, long n) {
        check(Attn4jBindings.attn4j_gate_backward_f32(a, gate, dy, dz, n), "attn4j_gate_backward_f32");
    }

    /** {@code attn4j_decode_workspace_bytes}: the workspace of one decode-attention call. */
    public long decodeWorkspaceBytes(long kvRepeat, long tk, long d, int threads) {
        long bytes = Attn4jBindings.attn4j_decode_workspace_bytes(kvRepeat, tk, d, threads);
        if (bytes < 0) {
            throw new IllegalStateException("attn4j_decode_workspace_bytes(" + kvRepeat + ", " + tk + ", " + d + ", "
                    + threads + ") returned " + bytes + ": the Java side passed arguments outside the native "
                    + "contract; this is a bug in attn4j");
        }
        return bytes;
    }

    /**
     * {@code attn4j_decode_attention_f32}: one query position per head against a key/value
     * cache read in place; see attn4j.h for the addressing and the key ranges (int32 per
     * batch row, {@link MemorySegment#NULL} for 0 and tk).
     */
    public void decodeAttention(MemorySegment q, long qOuter, long qInner,
                                MemorySegment k, long ldk, long kOuter, long kInner,
                                MemorySegment v, long ldv, long vOuter, long vInner,
                                MemorySegment o, long oOuter, long oInner,
                                long batch, long heads, long kvRepeat, long tk, long d, long dv, float scale,
                                MemorySegment keyBegin, MemorySegment keyEnd, MemorySegment workspace, int threads) {
        check(Attn4jBindings.attn4j_decode_attention_f32(q, qOuter, qInner, k, ldk, kOuter, kInner,
                v, ldv, vOuter, vInner, o, oOuter, oInner, batch, heads, kvRepeat, tk, d, dv, scale,
                keyBegin, keyEnd, workspace, workspace.byteSize(), threads), "attn4j_decode_attention_f32");
    }

    private static void check(int rc, String function) {
        if (rc != Attn4jBindings.ATTN4J_OK()) {
            throw new IllegalStateException(function + " returned " + rc + " (ATTN4J_EINVAL = "
                    + Attn4jBindings.ATTN4J_EINVAL() + "): the Java side passed arguments outside the "
                    + "native contract; this is a bug in attn4j");
        }
    }
}
