package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Attention and AdditiveAttention on random shapes (odd sizes, Tq != Tv, length-1
 * sequences, several leading batch axes, separate key with Dv != D, every mask and
 * causal) against the double-precision {@link AttentionReference}.
 */
class AttentionRandomTest {

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        SplittableRandom r = new SplittableRandom(2024);
        for (int n = 0; n < 60; n++) {
            list.add(Arguments.of(AttentionReference.Mode.values()[n % 3], 1000L + n));
        }
        return list.stream();
    }

    @ParameterizedTest(name = "{0} seed {1}")
    @MethodSource("cases")
    void matchesReference(AttentionReference.Mode mode, long seed) {
        NativeTests.requireNative();
        SplittableRandom r = new SplittableRandom(seed);
        int leadRank = 1 + r.nextInt(3);
        long[] lead = new long[leadRank];
        int b = 1;
        for (int i = 0; i < leadRank; i++) {
            lead[i] = 1 + r.nextInt(3);
            b *= (int) lead[i];
        }
        int[] sizes = {1, 2, 3, 5, 7, 8, 9, 16, 17, 31};
        int tq = sizes[r.nextInt(sizes.length)];
        int tv = sizes[r.nextInt(sizes.length)];
        int d = sizes[r.nextInt(sizes.length)];
        boolean withKey = r.nextBoolean();
        int dv = withKey ? sizes[r.nextInt(sizes.length)] : d;
        boolean useScale = r.nextBoolean();
        boolean causal = r.nextInt(3) == 0;
        boolean returnScores = r.nextInt(4) != 0;
        float[] q = TestData.floats(r, b * tq * d, -1, 1);
        float[] v = TestData.floats(r, b * tv * dv, -1, 1);
        float[] k = withKey ? TestData.floats(r, b * tv * d, -1, 1) : null;
        boolean[] qm = r.nextBoolean() ? TestData.booleans(r, b * tq, 0.7) : null;
        boolean[] vm = r.nextBoolean() ? TestData.booleans(r, b * tv, 0.7) : null;
        float scale = useScale ? (float) r.nextDouble(0.2, 1.5) : 1f;
        float concatWeight = (float) r.nextDouble(0.5, 1.5);
        float[] addScale = useScale ? TestData.floats(r, d, -1, 1) : null;

        AttentionLayer layer = switch (mode) {
            case DOT -> Attention.builder().useScale(useScale).build();
            case CONCAT -> Attention.builder().useScale(useScale).scoreMode("concat").build();
            case ADDITIVE -> AdditiveAttention.builder().useScale(useScale).build();
        };
        try (layer; Arena arena = Arena.ofConfined()) {
            Tensor tQ = Tensor.of(arena, q, concat(lead, tq, d));
            Tensor tV = Tensor.of(arena, v, concat(lead, tv, dv));
            Tensor tK = withKey ? Tensor.of(arena, k, concat(lead, tv, d)) : null;
            layer.build(tQ.shape(), tV.shape(), tK == null ? null : tK.shape());
            List<float[]> weights = new ArrayList<>();
            if (mode == AttentionReference.Mode.ADDITIVE) {
                if (useScale) {
                    weights.add(addScale);
                }
            } else {
                if (useScale) {
                    weights.add(new float[] {scale});
                }
                if (mode == AttentionReference.Mode.CONCAT) {
                    weights.add(new float[] {concatWeight});
                }
            }
            layer.setWeights(weights.toArray(float[][]::new));
            CallArgs args = CallArgs.of(tQ, tV).withKey(tK).withUseCausalMask(causal)
                    .withReturnAttentionScores(returnScores)
                    .withQueryMask(qm == null ? null : Tensor.ofMask(arena, qm, concat(lead, tq)))
                    .withValueMask(vm == null ? null : Tensor.ofMask(arena, vm, concat(lead, tv)));
            AttentionResult got = layer.call(arena, args);
            AttentionReference.Result want = AttentionReference.compute(mode, q, v, k, b, tq, tv, d, dv,
                    scale, concatWeight, addScale, qm, vm, causal);
            assertArrayEquals(concat(lead, tq, dv), got.output().shape());
            String what = mode + " lead " + Arrays.toString(lead) + " tq " + tq + " tv " + tv + " d " + d + " dv "
                    + dv + " key " + withKey + " scale " + useScale + " causal " + causal + " qm " + (qm != null)
                    + " vm " + (vm != null);
            double errOut = TestData.maxRelError(got.output().toFloatArray(), want.output());
            assertTrue(errOut < 2e-5, () -> what + ": output error " + errOut);
            if (returnScores) {
                assertArrayEquals(concat(lead, tq, tv), got.attentionScores().shape());
                double errScores = TestData.maxRelError(got.attentionScores().toFloatArray(), want.scores());
                assertTrue(errScores < 2e-5, () -> what + ": scores error " + errScores);
            } else {
                assertTrue(got.attentionScores() == null);
            }
        }
    }

    static long[] concat(long[] lead, long... tail) {
        long[] s = Arrays.copyOf(lead, lead.length + tail.length);
        System.arraycopy(tail, 0, s, lead.length, tail.length);
        return s;
    }
}
