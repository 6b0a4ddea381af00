package dev.attn4j.internal.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The backend seam itself: the (outer, inner, repeat) addressing that multi-head and
 * grouped-query attention use, native against the plain Java reference.
 */
class NativeBackendTest {

    /**
     * Grouped-query scores: Q laid out (B, T, N, H) as the projection writes it, K
     * (B, S, Nkv, H); product (b, u) reads K head u / r with no copy. Not a uniform
     * stride, so the native side must use cblas_sgemm_batch pointer arrays.
     */
    @Test
    void groupedHeadsSharingKeysMatchTheReference() {
        NativeBackend nb = NativeTests.requireNative();
        int b = 2, t = 70, s = 90, nq = 6, nkv = 2, h = 160, r = nq / nkv;
        SplittableRandom random = new SplittableRandom(21);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment q = arena.allocateFrom(ValueLayout.JAVA_FLOAT, TestData.floats(random, b * t * nq * h, -1, 1));
            MemorySegment k = arena.allocateFrom(ValueLayout.JAVA_FLOAT, TestData.floats(random, b * s * nkv * h, -1, 1));
            MemorySegment got = arena.allocate((long) b * nq * t * s * 4);
            MemorySegment want = arena.allocate((long) b * nq * t * s * 4);
            long before = nb.routeCount(GemmRoute.BATCH);
            for (Backend backend : new Backend[] {nb, new ReferenceBackend()}) {
                backend.sgemmBatched(false, true, t, s, h, 0.5f,
                        q, nq * h, (long) t * nq * h, h,
                        k, nkv * h, (long) s * nkv * h, h, r,
                        0f, backend == nb ? got : want, s, (long) nq * t * s, (long) t * s,
                        b, nq, GemmRoute.AUTO);
            }
            assertEquals(before + 1, nb.routeCount(GemmRoute.BATCH));
            double err = TestData.maxRelError(got.toArray(ValueLayout.JAVA_FLOAT), want.toArray(ValueLayout.JAVA_FLOAT));
            assertTrue(err < 1e-6 * h, () -> "max error " + err);
        }
    }

    @Test
    void betaAccumulatesIntoC() {
        NativeBackend nb = NativeTests.requireNative();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1, 2, 3, 4);
            MemorySegment bm = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1, 0, 0, 1);
            MemorySegment c = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 10, 10, 10, 10);
            nb.sgemmBatched(false, false, 2, 2, 2, 2f, a, 2, 4, 0, bm, 2, 4, 0, 1, 0.5f, c, 2, 4, 0, 1, 1,
                    GemmRoute.AUTO);
            // 2 * A + 0.5 * 10
            assertEquals(java.util.List.of(7f, 9f, 11f, 13f),
                    java.util.List.of(c.getAtIndex(ValueLayout.JAVA_FLOAT, 0), c.getAtIndex(ValueLayout.JAVA_FLOAT, 1),
                            c.getAtIndex(ValueLayout.JAVA_FLOAT, 2), c.getAtIndex(ValueLayout.JAVA_FLOAT, 3)));
        }
    }

    /**
     * One-row products (a decode step's projections) take cblas_sgemv: every transpose
     * combination, beta 0 over a c full of NaN (never read) and beta 0.5 (read), against
     * the reference.
     */
    @Test
    void singleRowProductsMatchTheReference() {
        NativeBackend nb = NativeTests.requireNative();
        ReferenceBackend ref = new ReferenceBackend();
        SplittableRandom random = new SplittableRandom(8);
        int n = 37;
        int k = 53;
        try (Arena arena = Arena.ofConfined()) {
            for (boolean transA : new boolean[] {false, true}) {
                for (boolean transB : new boolean[] {false, true}) {
                    for (float beta : new float[] {0f, 0.5f}) {
                        int lda = transA ? 3 : k; // a^T (k, 1) in a (k, 3) matrix: its column 0
                        MemorySegment a = arena.allocateFrom(ValueLayout.JAVA_FLOAT,
                                TestData.floats(random, transA ? k * 3 : k, -1, 1));
                        int ldb = transB ? k + 2 : n + 1;
                        MemorySegment b = arena.allocateFrom(ValueLayout.JAVA_FLOAT,
                                TestData.floats(random, transB ? n * ldb : k * ldb, -1, 1));
                        float[] start = beta == 0f ? new float[n] : TestData.floats(random, n, -1, 1);
                        if (beta == 0f) {
                            java.util.Arrays.fill(start, Float.NaN);
                        }
                        MemorySegment got = arena.allocateFrom(ValueLayout.JAVA_FLOAT, start);
                        MemorySegment want = arena.allocateFrom(ValueLayout.JAVA_FLOAT, beta == 0f ? new float[n] : start);
                        for (Backend backend : new Backend[] {nb, ref}) {
                            backend.sgemmBatched(transA, transB, 1, n, k, 1.5f, a, lda, 0, 0, b, ldb, 0, 0, 1,
                                    beta, backend == nb ? got : want, n, 0, 0, 1, 1, GemmRoute.AUTO);
                        }
                        float[] g = got.toArray(ValueLayout.JAVA_FLOAT);
                        double err = TestData.maxRelError(g, want.toArray(ValueLayout.JAVA_FLOAT));
                        String what = "transA " + transA + " transB " + transB + " beta " + beta;
                        assertTrue(err < 1e-5, () -> what + ": max error " + err);
                    }
                }
            }
        }
    }

    /** Products of a few rows (attn4j_small_gemm_f32), every row count it takes, odd sizes, bias or not. */
    @Test
    void smallRowProductsMatchTheReference() {
        NativeBackend nb = NativeTests.requireNative();
        ReferenceBackend ref = new ReferenceBackend();
        SplittableRandom random = new SplittableRandom(9);
        int[][] sizes = {{1, 1}, {7, 17}, {64, 65}, {512, 512}, {33, 1536}};
        try (Arena arena = Arena.ofConfined()) {
            for (int m = 1; m <= Backend.SMALL_GEMM_MAX_ROWS; m++) {
                for (int[] kn : sizes) {
                    int k = kn[0];
                    int n = kn[1];
                    MemorySegment x = arena.allocateFrom(ValueLayout.JAVA_FLOAT, TestData.floats(random, m * k, -1, 1));
                    MemorySegment w = arena.allocateFrom(ValueLayout.JAVA_FLOAT, TestData.floats(random, k * n, -1, 1));
                    for (boolean withBias : new boolean[] {false, true}) {
                        MemorySegment bias = withBias
                                ? arena.allocateFrom(ValueLayout.JAVA_FLOAT, TestData.floats(random, n, -1, 1))
                                : MemorySegment.NULL;
                        MemorySegment got = arena.allocate((long) m * n * 4);
                        MemorySegment want = arena.allocate((long) m * n * 4);
                        nb.smallGemm(x, m, k, w, n, bias, got);
                        ref.smallGemm(x, m, k, w, n, bias, want);
                        double err = TestData.maxRelError(got.toArray(ValueLayout.JAVA_FLOAT),
                                want.toArray(ValueLayout.JAVA_FLOAT));
                        String what = "m " + m + " k " + k + " n " + n + " bias " + withBias;
                        assertTrue(err < 1e-5, () -> what + ": max error " + err);
                    }
                }
            }
        }
    }
}
