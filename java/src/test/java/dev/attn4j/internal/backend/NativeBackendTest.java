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
}
