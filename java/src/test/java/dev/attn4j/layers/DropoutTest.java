package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Training-mode dropout of the single-head layers (Keras: scores are post-dropout). */
class DropoutTest {
    private static final int B = 4, TQ = 64, TV = 64, D = 8;

    private static AttentionResult call(AttentionLayer layer, Arena arena, float[] q, float[] v, boolean training) {
        return layer.call(arena, CallArgs.of(Tensor.of(arena, q, B, TQ, D), Tensor.of(arena, v, B, TV, D))
                .withTraining(training).withReturnAttentionScores(true));
    }

    @Test
    void dropsAtTheRateScalesKeptWeightsAndIsReproducible() {
        NativeTests.requireNative();
        SplittableRandom r = new SplittableRandom(5);
        float[] q = TestData.floats(r, B * TQ * D, -1, 1);
        float[] v = TestData.floats(r, B * TV * D, -1, 1);
        double rate = 0.3;
        try (Arena arena = Arena.ofConfined();
             Attention layer = Attention.builder().dropout(rate).seed(123L).build();
             Attention twin = Attention.builder().dropout(rate).seed(123L).build();
             Attention other = Attention.builder().dropout(rate).seed(124L).build()) {
            float[] inference = call(layer, arena, q, v, false).attentionScores().toFloatArray();
            AttentionResult first = call(layer, arena, q, v, true);
            float[] dropped = first.attentionScores().toFloatArray();

            // Rate: the number dropped is Binomial(n, rate); allow 5 standard deviations.
            int n = dropped.length;
            int zeros = 0;
            float keep = (float) (1 - rate);
            for (int i = 0; i < n; i++) {
                if (dropped[i] == 0f) {
                    zeros++;
                } else {
                    assertEquals(inference[i] / keep, dropped[i], Math.ulp(dropped[i]) * 2,
                            "kept weights are scaled by 1/(1 - rate)");
                }
            }
            double sd = Math.sqrt(n * rate * (1 - rate));
            int z = zeros;
            assertTrue(Math.abs(zeros - n * rate) < 5 * sd, () -> z + " of " + n + " dropped at rate " + rate);

            // The output is computed from the dropped weights: output == scores . value.
            float[] out = first.output().toFloatArray();
            for (int b = 0; b < B; b++) {
                for (int i = 0; i < TQ; i++) {
                    for (int y = 0; y < D; y++) {
                        double o = 0;
                        for (int j = 0; j < TV; j++) {
                            o += (double) dropped[(b * TQ + i) * TV + j] * v[(b * TV + j) * D + y];
                        }
                        assertEquals(o, out[(b * TQ + i) * D + y], 1e-5);
                    }
                }
            }

            // Same seed and call sequence: same masks. The second call draws afresh.
            AttentionResult twinFirst = call(twin, arena, q, v, true);
            assertArrayEquals(dropped, twinFirst.attentionScores().toFloatArray());
            float[] second = call(layer, arena, q, v, true).attentionScores().toFloatArray();
            assertFalse(Arrays.equals(dropped, second), "each training call draws a new mask");
            assertArrayEquals(second, call(twin, arena, q, v, true).attentionScores().toFloatArray());
            assertFalse(Arrays.equals(dropped, call(other, arena, q, v, true).attentionScores().toFloatArray()),
                    "another seed, another mask");

            // Inference is the identity.
            assertArrayEquals(inference, call(layer, arena, q, v, false).attentionScores().toFloatArray());
        }
    }

    @Test
    void additiveDropsToo() {
        NativeTests.requireNative();
        SplittableRandom r = new SplittableRandom(6);
        float[] q = TestData.floats(r, B * TQ * D, -1, 1);
        float[] v = TestData.floats(r, B * TV * D, -1, 1);
        try (Arena arena = Arena.ofConfined();
             AdditiveAttention layer = AdditiveAttention.builder().dropout(0.5).seed(1L).build()) {
            float[] s = call(layer, arena, q, v, true).attentionScores().toFloatArray();
            long zeros = 0;
            for (float x : s) {
                zeros += x == 0f ? 1 : 0;
            }
            double sd = Math.sqrt(s.length * 0.25);
            long zz = zeros;
            assertTrue(Math.abs(zeros - s.length * 0.5) < 5 * sd, () -> zz + " of " + s.length);
        }
    }
}
