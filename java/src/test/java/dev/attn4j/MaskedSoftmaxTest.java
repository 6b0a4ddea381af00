package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.internal.backend.ReferenceBackend;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The fused masked softmax through {@link Ops#maskedSoftmax}, against the plain Java
 * {@link ReferenceBackend} on random inputs for every mask layout and convention, and
 * against hand-computed values.
 */
class MaskedSoftmaxTest {

    /** Mask layouts, as shapes relative to scores (lead..., tq, tv). */
    enum Layout { NONE, PER_KEY, PER_KEY_FULL_RANK, FULL, BROADCAST_ALL, BROADCAST_HEADS }

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        int[][] sizes = {{1, 1}, {3, 7}, {5, 8}, {4, 9}, {16, 15}, {17, 16}, {2, 17}, {9, 33}, {40, 31}, {3, 100}};
        long seed = 1;
        for (MaskConvention c : MaskConvention.values()) {
            for (Layout layout : Layout.values()) {
                for (int[] s : sizes) {
                    for (boolean causal : new boolean[] {false, true}) {
                        list.add(Arguments.of(c, layout, s[0], s[1], causal, seed++));
                    }
                }
            }
        }
        return list.stream();
    }

    @ParameterizedTest(name = "{0} {1} tq={2} tv={3} causal={4} seed={5}")
    @MethodSource("cases")
    void matchesReference(MaskConvention convention, Layout layout, int tq, int tv, boolean causal, long seed) {
        NativeTests.requireNative();
        SplittableRandom random = new SplittableRandom(seed);
        int b = 2, n = 3; // scores (b, n, tq, tv)
        float scale = 0.7f;
        float[] s = TestData.floats(random, b * n * tq * tv, -6, 6);
        long[] maskShape = switch (layout) {
            case NONE -> null;
            case PER_KEY -> new long[] {b, n, tv};
            case PER_KEY_FULL_RANK -> new long[] {b, n, 1, tv};
            case FULL -> new long[] {b, n, tq, tv};
            case BROADCAST_ALL -> new long[] {1, 1, tq, tv};
            case BROADCAST_HEADS -> new long[] {b, 1, tq, tv};
        };
        try (Arena arena = Arena.ofConfined()) {
            Tensor scores = Tensor.of(arena, s, b, n, tq, tv);
            Tensor mask = null;
            boolean[] m = null;
            if (maskShape != null) {
                int count = 1;
                for (long d : maskShape) {
                    count *= (int) d;
                }
                // Sparse masks so that fully masked rows happen too.
                m = TestData.booleans(random, count, 0.6);
                mask = Tensor.ofMask(arena, m, maskShape);
            }
            Ops.maskedSoftmax(scores, scale, mask, causal, convention);
            float[] expected = reference(s, b * n, tq, tv, scale, m, layout, n, causal, convention);
            double err = TestData.maxRelError(scores.toFloatArray(), expected);
            // Each probability is one exp, a sum and a division in float32: a few ulp.
            assertTrue(err < 2e-6, () -> "max error " + err);
        }
    }

    /** The plain Java reference with the strides this layout implies, worked out independently here. */
    private static float[] reference(float[] s, int batch, int tq, int tv, float scale, boolean[] m, Layout layout,
                                     int heads, boolean causal, MaskConvention convention) {
        float[] out = s.clone();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment scores = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_FLOAT, out);
            MemorySegment mask = MemorySegment.NULL;
            if (m != null) {
                mask = arena.allocate(m.length);
                for (int i = 0; i < m.length; i++) {
                    mask.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (m[i] ? 1 : 0));
                }
            }
            long batchStride = switch (layout) {
                case NONE, BROADCAST_ALL -> 0;
                case PER_KEY, PER_KEY_FULL_RANK -> tv;
                case FULL, BROADCAST_HEADS -> (long) tq * tv;
            };
            long rowStride = switch (layout) {
                case NONE, PER_KEY, PER_KEY_FULL_RANK -> 0;
                default -> tv;
            };
            long div = layout == Layout.BROADCAST_HEADS ? heads : 1;
            new ReferenceBackend().maskedSoftmax(scores, batch, tq, tv, scale, mask, batchStride, rowStride, div,
                    causal, convention);
            return scores.toArray(java.lang.foreign.ValueLayout.JAVA_FLOAT);
        }
    }

    @Test
    void handComputedValues() {
        NativeTests.requireNative();
        try (Arena arena = Arena.ofConfined()) {
            // softmax([1, 2, 3]) = e^k / (e + e^2 + e^3)
            Tensor t = Tensor.of(arena, new float[] {1, 2, 3}, 1, 3);
            Ops.maskedSoftmax(t, 1f, null, false, MaskConvention.SUBTRACT);
            double z = Math.exp(1) + Math.exp(2) + Math.exp(3);
            assertArrayEquals(new float[] {(float) (Math.exp(1) / z), (float) (Math.exp(2) / z),
                    (float) (Math.exp(3) / z)}, t.toFloatArray(), 1e-7f);

            // Causal 2x2 with scale 2: row 0 keeps only j = 0; row 1: softmax([2, 4]).
            Tensor c = Tensor.of(arena, new float[] {5, 9, 1, 2}, 2, 2);
            Ops.maskedSoftmax(c, 2f, null, true, MaskConvention.REPLACE);
            double e = Math.exp(2) + Math.exp(4);
            assertArrayEquals(new float[] {1, 0, (float) (Math.exp(2) / e), (float) (Math.exp(4) / e)},
                    c.toFloatArray(), 1e-7f);
        }
    }

    @Test
    void fullyMaskedRowsFollowEachKerasConvention() {
        NativeTests.requireNative();
        try (Arena arena = Arena.ofConfined()) {
            float[] small = {0.5f, -1f, 2f, 0.25f};
            Tensor noneKept = Tensor.ofMask(arena, new boolean[4], 1, 4);

            Tensor sub = Tensor.of(arena, small, 1, 4);
            Ops.maskedSoftmax(sub, 1f, noneKept, false, MaskConvention.SUBTRACT);
            // s - 1e9 rounds to -1e9 for every small s: uniform, as in Keras Attention.
            assertArrayEquals(new float[] {0.25f, 0.25f, 0.25f, 0.25f}, sub.toFloatArray());

            Tensor zero = Tensor.of(arena, small, 1, 4);
            Ops.maskedSoftmax(zero, 1f, noneKept, false, MaskConvention.REPLACE_THEN_ZERO);
            assertArrayEquals(new float[4], zero.toFloatArray()); // Keras MHA slow path: all zeros

            Tensor replace = Tensor.of(arena, small, 1, 4);
            Ops.maskedSoftmax(replace, 1f, noneKept, false, MaskConvention.REPLACE);
            assertArrayEquals(new float[] {0.25f, 0.25f, 0.25f, 0.25f}, replace.toFloatArray());

            // Large logits: fl32(s - 1e9) keeps steps of 64 (the float32 ulp at 1e9), so
            // 40 and 100 land on different values: exactly what Keras returns.
            Tensor large = Tensor.of(arena, new float[] {40f, 100f}, 1, 2);
            Ops.maskedSoftmax(large, 1f, Tensor.ofMask(arena, new boolean[2], 1, 2), false, MaskConvention.SUBTRACT);
            float l0 = 40f - 1e9f;
            float l1 = 100f - 1e9f;
            assertEquals(64f, l1 - l0); // the quantisation this case is about
            double p1 = 1 / (1 + Math.exp(l0 - l1));
            assertArrayEquals(new float[] {(float) (1 - p1), (float) p1}, large.toFloatArray(), 1e-7f);
        }
    }

    @Test
    void finiteInputNeverGivesNaN() {
        NativeTests.requireNative();
        SplittableRandom random = new SplittableRandom(9);
        try (Arena arena = Arena.ofConfined()) {
            float[] s = TestData.floats(random, 4 * 5 * 37, -3e4, 3e4);
            for (MaskConvention c : MaskConvention.values()) {
                Tensor t = Tensor.of(arena, s, 4, 5, 37);
                Ops.maskedSoftmax(t, 1000f, Tensor.ofMask(arena, TestData.booleans(random, 4 * 37, 0.3), 4, 37),
                        true, c);
                for (float v : t.toFloatArray()) {
                    assertTrue(Float.isFinite(v) && v >= 0 && v <= 1, () -> c + " gave " + v);
                }
            }
        }
    }

    @Test
    void nanPropagatesAsInKeras() {
        NativeTests.requireNative();
        try (Arena arena = Arena.ofConfined()) {
            Tensor keepFirstTwo = Tensor.ofMask(arena, new boolean[] {true, true, false}, 1, 3);
            for (MaskConvention c : MaskConvention.values()) {
                // A kept NaN makes the row NaN; keras.layers.Softmax then writes 0 at masked
                // positions with where(mask, p, 0), so those stay 0 under REPLACE_THEN_ZERO.
                Tensor kept = Tensor.of(arena, new float[] {Float.NaN, 1f, 2f}, 1, 3);
                Ops.maskedSoftmax(kept, 1f, keepFirstTwo, false, c);
                float[] k = kept.toFloatArray();
                assertTrue(Float.isNaN(k[0]) && Float.isNaN(k[1]), c.toString());
                if (c == MaskConvention.REPLACE_THEN_ZERO) {
                    assertEquals(0f, k[2], c.toString());
                } else {
                    assertTrue(Float.isNaN(k[2]), c + ": kept NaN gave " + k[2]);
                }
                // A masked NaN: s - 1e9 is NaN under SUBTRACT; replaced (harmless) otherwise.
                Tensor masked = Tensor.of(arena, new float[] {1f, 2f, Float.NaN}, 1, 3);
                Ops.maskedSoftmax(masked, 1f, keepFirstTwo, false, c);
                float[] got = masked.toFloatArray();
                if (c == MaskConvention.SUBTRACT) {
                    assertTrue(Float.isNaN(got[0]) && Float.isNaN(got[1]) && Float.isNaN(got[2]), c.toString());
                } else {
                    double z = Math.exp(1) + Math.exp(2);
                    assertArrayEquals(new float[] {(float) (Math.exp(1) / z), (float) (Math.exp(2) / z), 0f}, got,
                            1e-7f, c.toString());
                }
            }
        }
    }

    @Test
    void badMasksAreRejected() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor scores = Tensor.allocate(arena, 2, 3, 4, 5);
            var e = assertThrows(IllegalArgumentException.class, () -> Ops.maskedSoftmax(scores, 1f,
                    Tensor.allocate(arena, 2, 3, 4, 5), false, MaskConvention.SUBTRACT));
            assertTrue(e.getMessage().contains("mask must be a bool tensor"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.maskedSoftmax(scores, 1f,
                    Tensor.allocateMask(arena, 2, 3, 4, 6), false, MaskConvention.SUBTRACT));
            assertTrue(e.getMessage().contains("last axis must be Tv = 5"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.maskedSoftmax(scores, 1f,
                    Tensor.allocateMask(arena, 1, 3, 4, 5), false, MaskConvention.SUBTRACT));
            assertTrue(e.getMessage().contains("cannot broadcast to scores [2, 3, 4, 5]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.maskedSoftmax(scores, 1f,
                    Tensor.allocateMask(arena, 5), false, MaskConvention.SUBTRACT));
            assertTrue(e.getMessage().contains("mask must have rank 4"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.maskedSoftmax(Tensor.allocate(arena, 5), 1f,
                    null, false, MaskConvention.SUBTRACT));
            assertTrue(e.getMessage().contains("scores must have rank >= 2"), e.getMessage());
            assertThrows(NullPointerException.class, () -> Ops.maskedSoftmax(scores, 1f, null, false, null));
        }
    }
}
