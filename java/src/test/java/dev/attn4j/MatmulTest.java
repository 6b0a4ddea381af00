package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.internal.backend.GemmRoute;
import dev.attn4j.internal.backend.NativeBackend;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * Batched matrix products through the public {@link Ops#matmul} path, against a
 * plain triple loop in double precision, on every GEMM route. The route counters
 * prove which OpenBLAS entry point actually ran.
 */
class MatmulTest {

    /** Plain reference: c[b] = op(a[b]) @ op(b[b]) in double. */
    static float[] reference(float[] a, boolean transA, float[] b, boolean transB, boolean bShared,
                             int batch, int m, int n, int k) {
        float[] c = new float[batch * m * n];
        for (int p = 0; p < batch; p++) {
            int offA = p * m * k;
            int offB = bShared ? 0 : p * k * n;
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int q = 0; q < k; q++) {
                        float x = transA ? a[offA + q * m + i] : a[offA + i * k + q];
                        float y = transB ? b[offB + j * k + q] : b[offB + q * n + j];
                        s += (double) x * y;
                    }
                    c[p * m * n + i * n + j] = (float) s;
                }
            }
        }
        return c;
    }

    /** float32 GEMM error grows with K; inputs in [-1, 1]: allow ~K ulp-sized steps. */
    static double tolerance(int k) {
        return 1e-6 * Math.max(8, k);
    }

    private static void check(GemmRoute preferred, GemmRoute expectedRoute, int batch, int m, int n, int k,
                              boolean transA, boolean transB, long seed) {
        NativeBackend nb = NativeTests.requireNative();
        SplittableRandom random = new SplittableRandom(seed);
        float[] a = TestData.floats(random, batch * m * k, -1, 1);
        float[] b = TestData.floats(random, batch * k * n, -1, 1);
        try (Arena arena = Arena.ofConfined()) {
            Tensor ta = Tensor.of(arena, a, batch, transA ? k : m, transA ? m : k);
            Tensor tb = Tensor.of(arena, b, batch, transB ? n : k, transB ? k : n);
            Tensor out = Tensor.allocate(arena, batch, m, n);
            long before = nb.routeCount(expectedRoute);
            Ops.matmul(ta, transA, tb, transB, out, preferred);
            assertEquals(before + 1, nb.routeCount(expectedRoute),
                    () -> "expected route " + expectedRoute + " for " + batch + " x " + m + "x" + n + "x" + k);
            float[] expected = reference(a, transA, b, transB, false, batch, m, n, k);
            double err = TestData.maxRelError(out.toFloatArray(), expected);
            assertTrue(err < tolerance(k), () -> "max error " + err + " (seed " + seed + ")");
        }
    }

    @ParameterizedTest(name = "batch {0}: {1}x{2}x{3} transA={4} transB={5}")
    @CsvSource({
        "3, 101, 101, 101, false, false",
        "4, 128, 96, 130, false, true",
        "5, 127, 129, 65, true, false",
        "2, 200, 150, 64, true, true",
    })
    void largeProductsThroughSgemmBatch(int batch, int m, int n, int k, boolean tA, boolean tB) {
        check(GemmRoute.BATCH, GemmRoute.BATCH, batch, m, n, k, tA, tB, 11L * m + n);
    }

    @ParameterizedTest(name = "batch {0}: {1}x{2}x{3} transA={4} transB={5}")
    @CsvSource({
        "3, 101, 101, 101, false, false",
        "4, 128, 96, 130, false, true",
        "6, 256, 256, 64, false, true",
        "2, 200, 150, 64, true, true",
    })
    void largeProductsThroughSgemmBatchStrided(int batch, int m, int n, int k, boolean tA, boolean tB) {
        check(GemmRoute.STRIDED, GemmRoute.STRIDED, batch, m, n, k, tA, tB, 13L * m + n);
    }

    /**
     * The upstream crash shapes (m * n * k <= 100^3) go through cblas_sgemm even when
     * a batch route is asked for: 3 products of 100x100x100 crash OpenBLAS 0.3.31's
     * batch calls. Reaching the assertions at all means the JVM survived.
     */
    @ParameterizedTest(name = "{0} preferred: batch {1}: {2}x{3}x{4}")
    @CsvSource({
        "AUTO, 3, 3, 4, 5",
        "BATCH, 3, 100, 100, 100",
        "STRIDED, 3, 100, 100, 100",
        "AUTO, 3, 100, 100, 100",
        "BATCH, 64, 32, 32, 64",
        "STRIDED, 8, 1, 1, 1",
        "AUTO, 7, 1, 17, 3",
    })
    void smallProductsTakeTheLoopRoute(GemmRoute preferred, int batch, int m, int n, int k) {
        check(preferred, GemmRoute.LOOP, batch, m, n, k, false, true, 17L * batch + m);
    }

    @Test
    void autoPrefersStridedForUniformLargeBatches() {
        check(GemmRoute.AUTO, GemmRoute.STRIDED, 4, 128, 128, 128, false, false, 5);
    }

    @Test
    void rankTwoRightOperandIsSharedByTheBatch() {
        NativeTests.requireNative();
        SplittableRandom random = new SplittableRandom(3);
        int batch = 3, m = 5, n = 4, k = 6;
        float[] a = TestData.floats(random, batch * m * k, -1, 1);
        float[] b = TestData.floats(random, k * n, -1, 1);
        try (Arena arena = Arena.ofConfined()) {
            Tensor out = Tensor.allocate(arena, batch, m, n);
            Ops.matmul(Tensor.of(arena, a, batch, m, k), Tensor.of(arena, b, k, n), out);
            double err = TestData.maxRelError(out.toFloatArray(), reference(a, false, b, false, true, batch, m, n, k));
            assertTrue(err < tolerance(k), () -> "max error " + err);
        }
    }

    @Test
    void handComputedProduct() {
        NativeTests.requireNative();
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.of(arena, new float[] {1, 2, 3, 4, 5, 6}, 1, 2, 3);
            Tensor b = Tensor.of(arena, new float[] {1, 0, 0, 1, 1, 1}, 1, 3, 2);
            Tensor out = Tensor.allocate(arena, 1, 2, 2);
            Ops.matmul(a, b, out);
            // [1 2 3] . [[1 0] [0 1] [1 1]] = [4 5]; [4 5 6] -> [10 11]
            assertArrayEquals(new float[] {4, 5, 10, 11}, out.toFloatArray());
        }
    }

    @Test
    void badShapesAreRejectedBeforeAnyNativeCall() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.allocate(arena, 2, 3, 4);
            Tensor b = Tensor.allocate(arena, 2, 5, 6);
            Tensor out = Tensor.allocate(arena, 2, 3, 6);
            var e = assertThrows(IllegalArgumentException.class, () -> Ops.matmul(a, b, out));
            assertTrue(e.getMessage().contains("a [2, 3, 4] gives K = 4, b [2, 5, 6] gives K = 5"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Ops.matmul(a, Tensor.allocate(arena, 2, 4, 6), Tensor.allocate(arena, 2, 3, 5)));
            assertTrue(e.getMessage().contains("out must have shape [2, 3, 6], but has [2, 3, 5]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Ops.matmul(a, Tensor.allocate(arena, 3, 4, 6), out));
            assertTrue(e.getMessage().contains("batch dimensions differ at axis 0"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Ops.matmul(Tensor.allocate(arena, 4), b, out));
            assertTrue(e.getMessage().contains("a must have rank >= 2"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Ops.matmul(Tensor.allocateMask(arena, 2, 3, 4), b, out));
            assertTrue(e.getMessage().contains("a must be float32"), e.getMessage());
            assertThrows(NullPointerException.class, () -> Ops.matmul(null, b, out));
        }
    }

    @Test
    void dimensionsBeyondInt32AreRejected() {
        try (Arena arena = Arena.ofConfined()) {
            // A view with a huge logical M over a tiny segment is impossible, so check
            // the message path with shapes whose product is small but one side is huge:
            // K = 2^31 with M = N = 0 allocates nothing.
            Tensor a = Tensor.allocate(arena, 0, 1L << 31);
            Tensor b = Tensor.allocate(arena, 1L << 31, 0);
            Tensor out = Tensor.allocate(arena, 0, 0);
            var e = assertThrows(IllegalArgumentException.class, () -> Ops.matmul(a, b, out));
            assertTrue(e.getMessage().contains("K = 2147483648 exceeds the 32-bit integer range"), e.getMessage());
        }
    }

    @Test
    void closedArenaIsAnIllegalStateException() {
        Tensor a;
        Tensor b;
        try (Arena arena = Arena.ofConfined()) {
            a = Tensor.allocate(arena, 1, 2, 2);
            b = Tensor.allocate(arena, 1, 2, 2);
        }
        try (Arena arena = Arena.ofConfined()) {
            Tensor out = Tensor.allocate(arena, 1, 2, 2);
            var e = assertThrows(IllegalStateException.class, () -> Ops.matmul(a, b, out));
            assertTrue(e.getMessage().contains("matmul (a): the arena of"), e.getMessage());
        }
    }
}
