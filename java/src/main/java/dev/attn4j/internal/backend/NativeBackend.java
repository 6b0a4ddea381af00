package dev.attn4j.internal.backend;

import dev.attn4j.MaskConvention;
import dev.attn4j.internal.Scratch;
import dev.attn4j.internal.ffm.GemmBatchArgs;
import dev.attn4j.internal.ffm.Kernels;
import dev.attn4j.internal.ffm.OpenBlas;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * The native backend: matrix products through OpenBLAS, softmax and other fused
 * kernels through libattn4j.
 *
 * <p>Thread safety: every method may be called from many threads at once. The only
 * per-thread state is the argument block of {@code cblas_sgemm_batch}, kept in a
 * {@link ThreadLocal} and reused, so steady calls allocate no native memory.
 */
public final class NativeBackend implements Backend {

    /**
     * Products with m * n * k at or below this go through {@code cblas_sgemm}, never
     * through the batch calls: in OpenBLAS 0.3.28 to 0.3.31 DYNAMIC_ARCH builds (every
     * org.bytedeco jar) {@code cblas_sgemm_batch} and {@code cblas_sgemm_batch_strided}
     * crash the process with SIGSEGV for such products (fixed upstream by
     * OpenMathLib/OpenBLAS pull request 5980, after 0.3.31). Reproduced with three
     * 100x100x100 products (crash) against 101x101x101 (fine).
     */
    public static final long SMALL_PRODUCT_LIMIT = 100L * 100L * 100L;

    /** The most threads {@code attn4j_flash_attention_f32} accepts. */
    static final int MAX_FLASH_THREADS = 1024;

    private final OpenBlas blas;
    private final Kernels kernels;
    private final ThreadLocal<GemmBatchArgs> batchArgs = ThreadLocal.withInitial(() -> new GemmBatchArgs(64));
    private final Map<GemmRoute, LongAdder> routeCounts = new EnumMap<>(GemmRoute.class);

    private NativeBackend(OpenBlas blas, Kernels kernels) {
        this.blas = blas;
        this.kernels = kernels;
        for (GemmRoute r : GemmRoute.values()) {
            routeCounts.put(r, new LongAdder());
        }
    }

    /** Loads OpenBLAS, then libattn4j, and sets OpenBLAS to {@code threads} threads. */
    static NativeBackend load(int threads) throws IOException {
        OpenBlas blas = OpenBlas.load();
        Kernels kernels = Kernels.load();
        blas.setThreads(threads);
        return new NativeBackend(blas, kernels);
    }

    @Override
    public String name() {
        return "native";
    }

    public OpenBlas blas() {
        return blas;
    }

    public Kernels kernels() {
        return kernels;
    }

    /** How many batched-GEMM calls took each route so far (AUTO is never counted). */
    public long routeCount(GemmRoute route) {
        return routeCounts.get(route).sum();
    }

    /** The route {@link #sgemmBatched} takes for these arguments. */
    public GemmRoute resolveRoute(GemmRoute preferred, int m, int n, int k, int count, boolean uniform,
                                  long strideA, long strideB, long strideC) {
        if (count == 1 || (long) m * n * k <= SMALL_PRODUCT_LIMIT || preferred == GemmRoute.LOOP) {
            return GemmRoute.LOOP;
        }
        boolean stridedOk = blas.hasStrided() && uniform
                && strideA <= Integer.MAX_VALUE && strideB <= Integer.MAX_VALUE && strideC <= Integer.MAX_VALUE;
        if (preferred == GemmRoute.BATCH) {
            return blas.hasBatch() ? GemmRoute.BATCH : GemmRoute.LOOP;
        }
        if (stridedOk) {
            return GemmRoute.STRIDED;
        }
        return blas.hasBatch() ? GemmRoute.BATCH : GemmRoute.LOOP;
    }

    @Override
    public void sgemmBatched(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             MemorySegment a, int lda, long aOuter, long aInner,
                             MemorySegment b, int ldb, long bOuter, long bInner, int bRepeat,
                             float beta, MemorySegment c, int ldc, long cOuter, long cInner,
                             int outer, int inner, GemmRoute route) {
        int count = outer * inner;
        if (m == 1 && count == 1 && route == GemmRoute.AUTO) {
            // One row (a decode step's projections): OpenBLAS's gemv reads the matrix
            // faster than its gemm does for m = 1 (OpenBlas.sgemv).
            blas.sgemv(transB, n, k, alpha, a, transA ? lda : 1, b, ldb, beta, c);
            return;
        }
        // One uniform stride per operand when the (outer, inner) grid is a plain run.
        boolean uniform = bRepeat == 1
                && (inner == 1 || (aOuter == inner * aInner && bOuter == inner * bInner && cOuter == inner * cInner));
        long strideA = inner == 1 ? aOuter : aInner;
        long strideB = inner == 1 ? bOuter : bInner;
        long strideC = inner == 1 ? cOuter : cInner;
        GemmRoute chosen = resolveRoute(route, m, n, k, count, uniform, strideA, strideB, strideC);
        routeCounts.get(chosen).increment();
        switch (chosen) {
            case STRIDED -> blas.sgemmStrided(transA, transB, m, n, k, alpha, a, lda, (int) strideA,
                    b, ldb, (int) strideB, beta, c, ldc, (int) strideC, count);
            case BATCH -> {
                GemmBatchArgs args = batchArgs.get();
                args.ensureCapacity(count);
                OpenBlas.setGroup(args, transA, transB, m, n, k, alpha, lda, ldb, beta, ldc, count);
                long baseA = a.address();
                long baseB = b.address();
                long baseC = c.address();
                for (int o = 0, p = 0; o < outer; o++) {
                    for (int h = 0; h < inner; h++, p++) {
                        args.setPointers(p,
                                baseA + Float.BYTES * (o * aOuter + h * aInner),
                                baseB + Float.BYTES * (o * bOuter + (h / bRepeat) * bInner),
                                baseC + Float.BYTES * (o * cOuter + h * cInner));
                    }
                }
                blas.sgemmBatch(args, count);
            }
            default -> {
                for (int o = 0; o < outer; o++) {
                    for (int h = 0; h < inner; h++) {
                        blas.sgemm(transA, transB, m, n, k, alpha,
                                a, Float.BYTES * (o * aOuter + h * aInner), lda,
                                b, Float.BYTES * (o * bOuter + (h / bRepeat) * bInner), ldb,
                                beta, c, Float.BYTES * (o * cOuter + h * cInner), ldc);
                    }
                }
            }
        }
    }

    @Override
    public void maskedSoftmax(MemorySegment scores, long batch, int tq, int tv, float scale,
                              MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                              MemorySegment rowMask, MemorySegment colMask, long padBatchDiv,
                              boolean causal, long window, MaskConvention convention) {
        kernels.maskedSoftmax(scores, batch, tq, tv, scale, mask, maskBatchStride, maskRowStride, maskBatchDiv,
                rowMask, colMask, padBatchDiv, causal, window, code(convention));
    }

    private static int code(MaskConvention convention) {
        return switch (convention) {
            case SUBTRACT -> Kernels.maskSubtract();
            case REPLACE_THEN_ZERO -> Kernels.maskReplaceZero();
            case REPLACE -> Kernels.maskReplace();
        };
    }

    /**
     * The native kernel with its workspace from this thread's {@link Scratch#workspace}
     * block: no native memory per call once the block has grown to the largest size
     * this thread needed (25 KiB per thread for d = dv = 64, whatever tq and tk).
     */
    @Override
    public void decodeAttention(MemorySegment q, long qOuter, long qInner,
                                MemorySegment k, long ldk, long kOuter, long kInner,
                                MemorySegment v, long ldv, long vOuter, long vInner,
                                MemorySegment out, long oOuter, long oInner,
                                long batch, long heads, long kvRepeat, long tk, long d, long dv, float scale,
                                MemorySegment keyBegin, MemorySegment keyEnd, int threads) {
        int n = Math.min(threads, MAX_FLASH_THREADS);
        MemorySegment workspace = Scratch.workspace(kernels.decodeWorkspaceBytes(kvRepeat, tk, d, n));
        kernels.decodeAttention(q, qOuter, qInner, k, ldk, kOuter, kInner, v, ldv, vOuter, vInner, out, oOuter,
                oInner, batch, heads, kvRepeat, tk, d, dv, scale, keyBegin, keyEnd, workspace, n);
    }

    @Override
    public void flashAttention(MemorySegment q, long ldq, long qOuter, long qInner,
                               MemorySegment k, long ldk, long kOuter, long kInner,
                               MemorySegment v, long ldv, long vOuter, long vInner,
                               MemorySegment out, long ldo, long oOuter, long oInner,
                               long batchHeads, long inner, long kvRepeat, long tq, long tk, long d, long dv,
                               float scale, MemorySegment qBias, MemorySegment colMask, long colMaskDiv,
                               boolean causal, MemorySegment lse, int threads) {
        int n = Math.min(threads, MAX_FLASH_THREADS);
        MemorySegment workspace = Scratch.workspace(kernels.flashWorkspaceBytes(tq, tk, d, dv, n));
        kernels.flashAttention(q, ldq, qOuter, qInner, k, ldk, kOuter, kInner, v, ldv, vOuter, vInner,
                out, ldo, oOuter, oInner, batchHeads, inner, kvRepeat, tq, tk, d, dv, scale, qBias, colMask, colMaskDiv,
                causal, lse, workspace, n);
    }

    @Override
    public void flashAttentionBackward(MemorySegment q, long ldq, long qOuter, long qInner,
                                       MemorySegment k, long ldk, long kOuter, long kInner,
                                       MemorySegment v, long ldv, long vOuter, long vInner,
                                       MemorySegment o, MemorySegment dout, long ldo, long oOuter, long oInner,
                                       MemorySegment dq, MemorySegment dk, MemorySegment dv,
                                       long batchHeads, long inner, long kvRepeat, long tq, long tk, long d,
                                       long dvDim, float scale, MemorySegment colMask, long colMaskDiv,
                                       boolean causal, MemorySegment lse, int threads) {
        int n = Math.min(threads, MAX_FLASH_THREADS);
        MemorySegment workspace = Scratch.workspace(kernels.flashBackwardWorkspaceBytes(tq, tk, d, dvDim, n));
        kernels.flashAttentionBackward(q, ldq, qOuter, qInner, k, ldk, kOuter, kInner, v, ldv, vOuter, vInner,
                o, dout, ldo, oOuter, oInner, dq, dk, dv, batchHeads, inner, kvRepeat, tq, tk, d, dvDim, scale,
                colMask, colMaskDiv, causal, lse, workspace, n);
    }

    @Override
    public void smallGemm(MemorySegment x, int m, int k, MemorySegment w, int n, MemorySegment bias,
                          MemorySegment y) {
        kernels.smallGemm(x, m, k, w, n, bias, y);
    }

    @Override
    public void softmaxBackward(MemorySegment p, MemorySegment dp, long batch, int tq, int tv, float scale,
                                MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                                MemorySegment rowMask, MemorySegment colMask, long padBatchDiv,
                                boolean causal, long window, MaskConvention convention) {
        kernels.softmaxBackward(p, dp, batch, tq, tv, scale, mask, maskBatchStride, maskRowStride, maskBatchDiv,
                rowMask, colMask, padBatchDiv, causal, window, code(convention));
    }

    @Override
    public void tanhScoresBackward(MemorySegment q, MemorySegment k, MemorySegment ds, MemorySegment dq,
                                   MemorySegment dk, MemorySegment dw, MemorySegment dscalars, long batch, int tq,
                                   int tv, int dim, MemorySegment weights, float inner, float outer) {
        kernels.tanhScoresBackward(q, k, ds, dq, dk, dw, dscalars, batch, tq, tv, dim, weights, inner, outer);
    }

    @Override
    public void gateBackward(MemorySegment a, MemorySegment gate, MemorySegment dy, MemorySegment dz, long n) {
        kernels.gateBackward(a, gate, dy, dz, n);
    }

    @Override
    public void biasAct(MemorySegment x, long rows, int cols, MemorySegment bias, Activation activation) {
        int code = switch (activation) {
            case LINEAR -> Kernels.ACT_LINEAR;
            case SIGMOID -> Kernels.ACT_SIGMOID;
            case RELU -> Kernels.ACT_RELU;
            case TANH -> Kernels.ACT_TANH;
            case GELU -> Kernels.ACT_GELU;
            case SILU -> Kernels.ACT_SILU;
        };
        kernels.biasAct(x, rows, cols, bias, code);
    }

    @Override
    public void mul(MemorySegment x, MemorySegment y, long n) {
        kernels.mul(x, y, n);
    }

    @Override
    public void maskFromFloat(MemorySegment m, MemorySegment out, long n, boolean greaterThanHalf) {
        kernels.maskFromFloat(m, out, n, greaterThanHalf);
    }

    @Override
    public void tanhScores(MemorySegment q, MemorySegment k, MemorySegment scores, long batch, int tq, int tv,
                           int dim, MemorySegment weights, float inner, float outer) {
        kernels.tanhScores(q, k, scores, batch, tq, tv, dim, weights, inner, outer);
    }

    @Override
    public void dropout(MemorySegment x, long n, float rate, long seed, long stream) {
        kernels.dropout(x, n, rate, seed, stream);
    }

    @Override
    public void mulRowMask(MemorySegment x, long rows, int cols, MemorySegment rowMask) {
        kernels.mulRowMask(x, rows, cols, rowMask);
    }
}
