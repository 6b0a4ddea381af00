package dev.attn4j.internal.ffm;

import dev.attn4j.internal.ffm.generated.openblas.OpenBlasBindings;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;

/**
 * Thin wrapper over the jextract-generated OpenBLAS binding: loads the library once,
 * probes which GEMM entry points it has, and forwards calls. No argument checking
 * here: callers (the native backend) pass only validated, in-range values.
 *
 * <p>{@code cblas_sgemm_batch} exists from OpenBLAS 0.3.28 and
 * {@code cblas_sgemm_batch_strided} from 0.3.31; a library without them (Debian's
 * 0.3.21, say) is still usable through {@code cblas_sgemm} in a loop.
 */
public final class OpenBlas {
    private final Path file;
    private final String origin;
    private final String config;
    private final String coreName;
    private final boolean hasBatch;
    private final boolean hasStrided;
    private final boolean hasThreadControl;

    private OpenBlas(NativeLibraries.Loaded loaded) throws IOException {
        SymbolLookup symbols = loaded.symbols();
        if (symbols.find("cblas_sgemm").isEmpty()) {
            throw new IOException(loaded.file() + " (from " + loaded.origin() + ") has no cblas_sgemm: not a CBLAS library");
        }
        this.file = loaded.file();
        this.origin = loaded.origin();
        this.hasBatch = symbols.find("cblas_sgemm_batch").isPresent();
        this.hasStrided = symbols.find("cblas_sgemm_batch_strided").isPresent();
        this.hasThreadControl = symbols.find("openblas_set_num_threads").isPresent()
                && symbols.find("openblas_get_num_threads").isPresent();
        this.config = symbols.find("openblas_get_config").isPresent()
                ? cString(OpenBlasBindings.openblas_get_config()) : "(not OpenBLAS: no openblas_get_config)";
        this.coreName = symbols.find("openblas_get_corename").isPresent()
                ? cString(OpenBlasBindings.openblas_get_corename()) : "unknown";
    }

    /** Loads the OpenBLAS chosen by {@link NativeLibraries#loadOpenBlas()}. */
    public static OpenBlas load() throws IOException {
        return new OpenBlas(NativeLibraries.loadOpenBlas());
    }

    static String cString(MemorySegment pointer) {
        if (pointer.equals(MemorySegment.NULL)) {
            return "";
        }
        // A C string of unknown length: widen the zero-length segment, read to NUL.
        return pointer.reinterpret(Long.MAX_VALUE).getString(0);
    }

    public Path file() { return file; }
    public String origin() { return origin; }
    public String config() { return config; }
    public String coreName() { return coreName; }
    public boolean hasBatch() { return hasBatch; }
    public boolean hasStrided() { return hasStrided; }

    /** OpenBLAS's thread count, a process-wide setting; 1 if the library cannot tell. */
    public int threads() {
        return hasThreadControl ? OpenBlasBindings.openblas_get_num_threads() : 1;
    }

    /** Sets OpenBLAS's process-wide thread count (a no-op for a library without the call). */
    public void setThreads(int threads) {
        if (hasThreadControl) {
            OpenBlasBindings.openblas_set_num_threads(threads);
        }
    }

    private static int trans(boolean transpose) {
        return transpose ? OpenBlasBindings.CblasTrans() : OpenBlasBindings.CblasNoTrans();
    }

    /**
     * Row-major {@code cblas_sgemm} on the matrices at these byte offsets of a, b and c.
     * The operands reach the downcall as segments, not raw addresses, so their arenas
     * stay alive until it returns. No Java heap: at offsets 0 (a single product) the
     * segments go as they are; otherwise see {@link SgemmAt}.
     */
    /**
     * The single-row product c (1, n) = alpha * a (1, k) @ op(b) + beta * c as
     * {@code cblas_sgemv} (op(b) = b (k, n), or b^T with b (n, k) when transB); the row of a
     * has element stride incA. Same result as sgemm with m = 1 (measured on Zen 5 over a
     * 512 x 512 kernel: sgemm 19.2 us, 55 GB/s; sgemv 14.3 us, 73 GB/s). With beta = 0 c is
     * zeroed first, so that nothing in it (a NaN) can reach the result, whatever the BLAS's
     * beta = 0 handling.
     */
    public void sgemv(boolean transB, int n, int k, float alpha, MemorySegment a, int incA, MemorySegment b,
                      int ldb, float beta, MemorySegment c) {
        if (beta == 0f) {
            long bytes = (long) n * Float.BYTES;
            (c.byteSize() == bytes ? c : c.asSlice(0, bytes)).fill((byte) 0); // no slice in the usual case
        }
        // Row-major: b (k, n) read transposed gives b^T a; b (n, k) as is gives b a.
        if (transB) {
            OpenBlasBindings.cblas_sgemv(OpenBlasBindings.CblasRowMajor(), trans(false), n, k, alpha, b, ldb,
                    a, incA, beta, c, 1);
        } else {
            OpenBlasBindings.cblas_sgemv(OpenBlasBindings.CblasRowMajor(), trans(true), k, n, alpha, b, ldb,
                    a, incA, beta, c, 1);
        }
    }

    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      MemorySegment a, long aOffset, int lda, MemorySegment b, long bOffset, int ldb,
                      float beta, MemorySegment c, long cOffset, int ldc) {
        if ((aOffset | bOffset | cOffset) == 0) {
            OpenBlasBindings.cblas_sgemm(OpenBlasBindings.CblasRowMajor(), trans(transA), trans(transB),
                    m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        try {
            SgemmAt.HANDLE.invokeExact(OpenBlasBindings.CblasRowMajor(), trans(transA), trans(transB),
                    m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("cblas_sgemm threw a checked exception", e);
        }
    }

    /**
     * The generated {@code cblas_sgemm} handle with each matrix argument taken as
     * (segment, byte offset) and sliced inside the handle. A batch of small products
     * calls this once per product, and a slice is a new object (about 40 bytes): made
     * inside the method handle, it sits in one inline tree with the downcall stub (both
     * are force-inlined wherever the constant handle is invoked), which only reads its
     * address and scope, so escape analysis removes it. Made through the generated
     * wrapper method instead, the slices escape whenever the JIT has compiled that
     * wrapper on its own (too big to inline then). A holder class: the handle can only
     * be made once OpenBLAS is loaded.
     */
    private static final class SgemmAt {
        static final MethodHandle HANDLE = adapt(OpenBlasBindings.cblas_sgemm$handle());

        private static MethodHandle adapt(MethodHandle sgemm) {
            // (order, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc): A, B, C
            // at 7, 9, 12; the last first, so that the earlier positions stay put.
            MethodHandle at;
            try {
                at = MethodHandles.lookup().findStatic(SgemmAt.class, "at",
                        MethodType.methodType(MemorySegment.class, MemorySegment.class, long.class));
            } catch (ReflectiveOperationException e) {
                throw new AssertionError(e);
            }
            MethodHandle h = MethodHandles.collectArguments(sgemm, 12, at);
            h = MethodHandles.collectArguments(h, 9, at);
            return MethodHandles.collectArguments(h, 7, at);
        }

        private static MemorySegment at(MemorySegment segment, long offset) {
            return segment.asSlice(offset);
        }
    }

    /** Row-major {@code cblas_sgemm_batch_strided}; strides in elements. */
    public void sgemmStrided(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             MemorySegment a, int lda, int strideA, MemorySegment b, int ldb, int strideB,
                             float beta, MemorySegment c, int ldc, int strideC, int count) {
        OpenBlasBindings.cblas_sgemm_batch_strided(OpenBlasBindings.CblasRowMajor(), trans(transA), trans(transB),
                m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, count);
    }

    /**
     * Row-major {@code cblas_sgemm_batch} with one group. {@code group} holds the
     * group's parameter arrays, laid out by {@link GemmBatchArgs}; {@code pointers}
     * holds the A, B and C pointer arrays of {@code count} entries each.
     */
    public void sgemmBatch(GemmBatchArgs args, int count) {
        OpenBlasBindings.cblas_sgemm_batch(OpenBlasBindings.CblasRowMajor(),
                args.transA(), args.transB(), args.m(), args.n(), args.k(), args.alpha(),
                args.aPointers(), args.lda(), args.bPointers(), args.ldb(), args.beta(),
                args.cPointers(), args.ldc(), 1, args.groupSize());
    }

    /** Fills the group parameters of a {@link GemmBatchArgs} for one call. */
    public static void setGroup(GemmBatchArgs args, boolean transA, boolean transB, int m, int n, int k,
                                float alpha, int lda, int ldb, float beta, int ldc, int count) {
        args.setGroup(trans(transA), trans(transB), m, n, k, alpha, lda, ldb, beta, ldc, count);
    }
}
