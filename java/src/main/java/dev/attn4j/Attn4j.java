package dev.attn4j;

import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.NativeBackend;
import dev.attn4j.internal.ffm.CoreType;
import dev.attn4j.internal.ffm.NativeLibraries;
import java.nio.file.Path;

/**
 * Library-wide settings and diagnostics.
 *
 * <p><b>Threads.</b> OpenBLAS uses one thread per call by default here (system property
 * {@code attn4j.threads}, or {@link #setNumThreads(int)}). That suits servers, which
 * already run one request per core: extra BLAS threads per call then only compete
 * with the other requests and add latency jitter. A process that runs one large
 * call at a time can raise it. The setting is process-wide (OpenBLAS keeps one
 * global thread pool).
 *
 * <p><b>Thread safety.</b> {@link #info()} and {@link #numThreads()} may be called from
 * any thread at any time. {@link #setNumThreads(int)} changes that process-wide pool:
 * call it when no attn4j call is running (at start-up, or between batches of work), as
 * OpenBLAS does not promise that resizing its pool is safe while other threads are
 * inside a BLAS call. Layers ({@link dev.attn4j.layers.AttentionLayer}), {@link Ops} and
 * {@link Tensor} state their own rules.
 */
public final class Attn4j {
    private Attn4j() {}

    /**
     * What attn4j is running on.
     *
     * @param backend         "native" or "java" (the plain Java fallback)
     * @param openblasFile    the OpenBLAS file loaded, or null without native
     * @param openblasOrigin  where that choice came from (the bytedeco jar, a property, ...)
     * @param openblasConfig  {@code openblas_get_config()}, e.g. "OpenBLAS 0.3.31 DYNAMIC_ARCH ..."
     * @param openblasCore    {@code openblas_get_corename()}, the kernel set in use
     * @param openblasCoreChoice how that core was chosen: by attn4j for an AVX-512 CPU, by
     *                        {@code OPENBLAS_CORETYPE}, by {@code -Dattn4j.openblas.coretype}, or
     *                        by OpenBLAS itself
     * @param threads         OpenBLAS's thread count
     * @param batchGemm       whether {@code cblas_sgemm_batch} is used
     * @param stridedGemm     whether {@code cblas_sgemm_batch_strided} is used
     * @param nativeLibrary   the libattn4j file loaded, or null without native
     * @param nativeVersion   libattn4j's version
     * @param nativeIsa       the instruction set libattn4j dispatches to (avx512, avx2, scalar)
     * @param nativeFailure   why native is not in use, or null
     */
    public record Info(String backend, Path openblasFile, String openblasOrigin, String openblasConfig,
                       String openblasCore, String openblasCoreChoice, int threads, boolean batchGemm,
                       boolean stridedGemm,
                       Path nativeLibrary, String nativeVersion, String nativeIsa, String nativeFailure) {
        @Override
        public String toString() {
            if (openblasFile == null) {
                return "attn4j backend: " + backend + System.lineSeparator()
                        + "native: not loaded: " + nativeFailure;
            }
            String nl = System.lineSeparator();
            return "attn4j backend:   " + backend + nl
                    + "OpenBLAS file:    " + openblasFile + " (" + openblasOrigin + ")" + nl
                    + "OpenBLAS config:  " + openblasConfig + nl
                    + "OpenBLAS core:    " + openblasCore + " (" + openblasCoreChoice + ")" + nl
                    + "OpenBLAS threads: " + threads + nl
                    + "GEMM batch:       " + (batchGemm ? "cblas_sgemm_batch" : "no (cblas_sgemm loop)") + nl
                    + "GEMM strided:     " + (stridedGemm ? "cblas_sgemm_batch_strided" : "no") + nl
                    + "libattn4j:        " + nativeLibrary + " (version " + nativeVersion + ", " + nativeIsa + ")";
        }
    }

    /** Reports the backend in use; loads the native libraries if that has not happened yet. */
    public static Info info() {
        Backends.Selection s = Backends.selection();
        NativeBackend nb = s.nativeBackend();
        String failure = s.failure() == null ? null : s.failure().getMessage();
        String backend = s.backend() == null ? "none" : s.backend().name();
        if (nb == null) {
            return new Info(backend, null, null, null, null, null, 0, false, false, null, null, null, failure);
        }
        return new Info(backend, nb.blas().file(), nb.blas().origin(), nb.blas().config(), nb.blas().coreName(),
                coreChoice(),
                nb.blas().threads(), nb.blas().hasBatch(), nb.blas().hasStrided(),
                nb.kernels().file(), nb.kernels().version(), nb.kernels().isa(), failure);
    }

    private static String coreChoice() {
        CoreType.Decision d = NativeLibraries.coreTypeDecision();
        return d == null ? "unknown" : d.reason();
    }

    /**
     * Sets the number of threads OpenBLAS uses for each call, process-wide.
     *
     * @throws IllegalArgumentException if {@code threads < 1}
     */
    public static void setNumThreads(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("setNumThreads: threads must be >= 1, but is " + threads);
        }
        NativeBackend nb = Backends.selection().nativeBackend();
        if (nb != null) {
            nb.blas().setThreads(threads);
        }
    }

    /** OpenBLAS's current thread count (1 on the plain Java backend). */
    public static int numThreads() {
        NativeBackend nb = Backends.selection().nativeBackend();
        return nb == null ? 1 : nb.blas().threads();
    }
}
