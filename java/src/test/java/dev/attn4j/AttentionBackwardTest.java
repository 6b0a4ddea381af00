package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.internal.backend.ReferenceBackend;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link Ops#attentionBackward} (the fused kernel's backward) and the row statistics of
 * {@link Ops#attention(Tensor, Tensor, Tensor, Tensor, float, boolean, Tensor)}, against
 * the plain Java backend (double accumulation, the softmax recomputed per row) over odd
 * sizes around the kernel's 64-row blocks, causal and not.
 */
class AttentionBackwardTest {

    @Test
    void matchesThePlainJavaBackwardWithAndWithoutSavedStatistics() {
        NativeTests.requireNative();
        ReferenceBackend ref = new ReferenceBackend();
        int[][] shapes = {{1, 1, 1, 1, 1}, {2, 5, 7, 3, 4}, {3, 64, 64, 16, 16}, {2, 65, 33, 8, 5},
                {1, 130, 129, 64, 64}, {4, 31, 100, 17, 9}};
        SplittableRandom r = new SplittableRandom(42);
        for (int[] sh : shapes) {
            int b = sh[0], t = sh[1], s = sh[2], d = sh[3], dv = sh[4];
            for (boolean causal : new boolean[] {false, true}) {
                String what = "b " + b + " t " + t + " s " + s + " d " + d + " dv " + dv + " causal " + causal;
                try (Arena arena = Arena.ofConfined()) {
                    Tensor q = Tensor.of(arena, TestData.floats(r, b * t * d, -1, 1), b, t, d);
                    Tensor k = Tensor.of(arena, TestData.floats(r, b * s * d, -1, 1), b, s, d);
                    Tensor v = Tensor.of(arena, TestData.floats(r, b * s * dv, -1, 1), b, s, dv);
                    Tensor dOut = Tensor.of(arena, TestData.floats(r, b * t * dv, -1, 1), b, t, dv);
                    Tensor out = Tensor.allocate(arena, b, t, dv);
                    Tensor plainOut = Tensor.allocate(arena, b, t, dv);
                    Tensor lse = Tensor.allocate(arena, b, t);
                    float scale = (float) (1 / Math.sqrt(d));
                    Ops.attention(q, k, v, out, scale, causal, lse);
                    Ops.attention(q, k, v, plainOut, scale, causal);
                    assertArrayEquals(plainOut.toFloatArray(), out.toFloatArray(), what + ": the same output");

                    Tensor refOut = Tensor.allocate(arena, b, t, dv);
                    Tensor refLse = Tensor.allocate(arena, b, t);
                    ref.flashAttention(q.segment(), d, (long) t * d, 0, k.segment(), d, (long) s * d, 0, v.segment(),
                            dv, (long) s * dv, 0, refOut.segment(), dv, (long) t * dv, 0, b, 1, 1, t, s, d, dv, scale,
                            MemorySegment.NULL, MemorySegment.NULL, 1, causal, refLse.segment(), 1);
                    assertArrayEquals(refLse.toFloatArray(), lse.toFloatArray(), 1e-5f, what + ": lse");

                    Tensor[] saved = grads(arena, b, t, s, d, dv);
                    Tensor[] recomputed = grads(arena, b, t, s, d, dv);
                    Tensor[] want = grads(arena, b, t, s, d, dv);
                    // out and lse are only read: read-only views of them are fine.
                    Ops.attentionBackward(q, k, v, Tensor.wrap(out.segment().asReadOnly(), out.shape()), dOut,
                            saved[0], saved[1], saved[2], scale, causal,
                            Tensor.wrap(lse.segment().asReadOnly(), lse.shape()));
                    Ops.attentionBackward(q, k, v, out, dOut, recomputed[0], recomputed[1], recomputed[2], scale,
                            causal);
                    ref.flashAttentionBackward(q.segment(), d, (long) t * d, 0, k.segment(), d, (long) s * d, 0,
                            v.segment(), dv, (long) s * dv, 0, out.segment(), dOut.segment(), dv, (long) t * dv, 0,
                            want[0].segment(), want[1].segment(), want[2].segment(), b, 1, 1, t, s, d, dv, scale,
                            MemorySegment.NULL, 1, causal, MemorySegment.NULL, 1);
                    String[] names = {"dq", "dk", "dv"};
                    for (int i = 0; i < 3; i++) {
                        assertArrayEquals(saved[i].toFloatArray(), recomputed[i].toFloatArray(),
                                what + ": " + names[i] + " with and without the saved statistics");
                        double err = TestData.maxRelError(saved[i].toFloatArray(), want[i].toFloatArray());
                        assertTrue(err < 1e-4, what + ": " + names[i] + " error " + err);
                    }
                }
            }
        }
    }

    /**
     * Causal with T = S: the last key is seen by the last query only, so with dOut zero
     * except on row 0, which sees key 0 alone (P = 1), every key's and value's gradient
     * but key 0's value is exactly 0.
     */
    @Test
    void causalRowZeroReachesKeyZeroOnly() {
        NativeTests.requireNative();
        try (Arena arena = Arena.ofConfined()) {
            SplittableRandom r = new SplittableRandom(7);
            Tensor q = Tensor.of(arena, TestData.floats(r, 70 * 8, -1, 1), 1, 70, 8);
            Tensor k = Tensor.of(arena, TestData.floats(r, 70 * 8, -1, 1), 1, 70, 8);
            Tensor v = Tensor.of(arena, TestData.floats(r, 70 * 8, -1, 1), 1, 70, 8);
            Tensor out = Tensor.allocate(arena, 1, 70, 8);
            Ops.attention(q, k, v, out, 0.35f, true);
            float[] d = new float[70 * 8];
            for (int c = 0; c < 8; c++) {
                d[c] = 1f;
            }
            Tensor[] g = grads(arena, 1, 70, 70, 8, 8);
            Ops.attentionBackward(q, k, v, out, Tensor.of(arena, d, 1, 70, 8), g[0], g[1], g[2], 0.35f, true);
            float[] dv = g[2].toFloatArray();
            for (int c = 0; c < 8; c++) {
                assertEquals(1f, dv[c], 1e-6f, "P(0, 0) = 1");
            }
            for (int i = 8; i < dv.length; i++) {
                assertEquals(0f, dv[i], "value " + i / 8 + " is never read by row 0");
            }
            for (float x : g[1].toFloatArray()) {
                assertEquals(0f, x, 1e-6f, "no key gradient: row 0's one kept key has P = 1");
            }
        }
    }

    private static Tensor[] grads(Arena arena, int b, int t, int s, int d, int dv) {
        return new Tensor[] {Tensor.allocate(arena, b, t, d), Tensor.allocate(arena, b, s, d),
                Tensor.allocate(arena, b, s, dv)};
    }
}
