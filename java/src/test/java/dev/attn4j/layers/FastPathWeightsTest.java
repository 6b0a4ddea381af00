package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.Tensor;
import dev.attn4j.TestData;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The multi-head fast path's derived weights and folded biases against the plain
 * double-precision restatement of Keras ({@link MultiHeadReference}): self-attention
 * (query, value and key one tensor) runs one GEMM over the packed query/key/value
 * kernel, the key bias is left out (the softmax cancels it), the value bias joins the
 * output bias, the query bias is added inside the flash kernel. Each case also runs on
 * copies of the input (three distinct tensors: no fused GEMM), and the packed kernel and
 * folded bias must follow setWeights and applyConstraints.
 */
class FastPathWeightsTest {
    private static final double TOLERANCE = 1e-5;

    /** A layer, its weights (random, biases large enough to matter) and a 3-D input. */
    private record Case(MultiHeadBase layer, MultiHeadReference.Call call) {}

    private static Case build(boolean gqa, boolean useBias, boolean useGate, int n, int kv, int h, int hv, long b,
                              long t, int d, boolean causal, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        MultiHeadReference.Call c = new MultiHeadReference.Call();
        c.qShape = new long[] {b, t, d};
        c.vShape = c.qShape;
        c.dk = d;
        c.n = n;
        c.kv = kv;
        c.h = h;
        c.hv = hv;
        c.out = new long[] {d};
        c.axes = new int[] {1};
        c.useBias = useBias;
        c.useGate = useGate;
        c.causal = causal;
        c.fastPath = true;
        c.q = TestData.floats(r, (int) (b * t * d), -1, 1);
        c.v = c.q;
        MultiHeadBase layer = gqa
                ? GroupQueryAttention.builder().headDim(h).numQueryHeads(n).numKeyValueHeads(kv).useBias(useBias)
                        .useGate(useGate).build()
                : MultiHeadAttention.builder().numHeads(n).keyDim(h).valueDim(hv).useBias(useBias).useGate(useGate)
                        .build();
        layer.build(c.qShape, c.vShape, null);
        c.w = randomWeights(layer, r);
        layer.setWeights(c.w);
        return new Case(layer, c);
    }

    /** Kernels in [-0.7, 0.7]; biases in [-3, 3], so that a dropped or misplaced one shows. */
    private static float[][] randomWeights(AttentionLayer layer, SplittableRandom r) {
        List<float[]> w = new ArrayList<>();
        for (Weight x : layer.weights()) {
            double bound = x.name().equals("bias") ? 3 : 0.7;
            w.add(TestData.floats(r, (int) x.size(), -bound, bound));
        }
        return w.toArray(float[][]::new);
    }

    /** Self-attention through one tensor, and through three distinct copies: both match the reference. */
    private static void check(Case k, String what) {
        MultiHeadReference.Call c = k.call();
        float[] want = MultiHeadReference.compute(c).output();
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.of(arena, c.q, c.qShape);
            CallArgs self = CallArgs.of(x, x).withUseCausalMask(c.causal);
            float[] fused = k.layer().call(arena, self).output().toFloatArray();
            Tensor q = Tensor.of(arena, c.q, c.qShape);
            Tensor v = Tensor.of(arena, c.q, c.qShape);
            Tensor key = Tensor.of(arena, c.q, c.qShape);
            float[] apart = k.layer().call(arena, CallArgs.of(q, v).withKey(key).withUseCausalMask(c.causal))
                    .output().toFloatArray();
            double e1 = TestData.maxRelError(fused, want);
            double e2 = TestData.maxRelError(apart, want);
            assertTrue(e1 < TOLERANCE, () -> what + ": self-attention (one GEMM) vs reference, error " + e1);
            assertTrue(e2 < TOLERANCE, () -> what + ": three tensors vs reference, error " + e2);
        }
    }

    @Test
    void selfAttentionMatchesTheReference() {
        NativeTests.requireNative();
        long seed = 1;
        for (boolean gqa : new boolean[] {false, true}) {
            for (boolean useBias : new boolean[] {true, false}) {
                for (boolean useGate : new boolean[] {false, true}) {
                    for (boolean causal : new boolean[] {false, true}) {
                        int n = 4;
                        int kv = gqa ? 2 : 4;
                        int h = 8;
                        int hv = gqa ? 8 : 6;
                        Case k = build(gqa, useBias, useGate, n, kv, h, hv, 2, 37, 12, causal, seed++);
                        try (MultiHeadBase layer = k.layer()) {
                            check(k, (gqa ? "GQA" : "MHA") + " bias " + useBias + " gate " + useGate + " causal "
                                    + causal);
                        }
                    }
                }
            }
        }
    }

    /** Larger logits: the key bias's q . bk is a big per-row shift the softmax must cancel. */
    @Test
    void largeKeyBiasCancels() {
        NativeTests.requireNative();
        Case k = build(false, true, false, 2, 2, 16, 16, 1, 70, 32, false, 9);
        try (MultiHeadBase layer = k.layer()) {
            float[][] w = k.call().w;
            for (int i = 0; i < w[3].length; i++) {
                w[3][i] = i % 2 == 0 ? 8f : -8f; // key/bias
            }
            layer.setWeights(w);
            check(k, "key bias +-8");
        }
    }

    /** New weights reach the packed kernel and the folded bias (the layer was called before). */
    @Test
    void setWeightsRefreshesTheDerivedWeights() {
        NativeTests.requireNative();
        for (boolean gqa : new boolean[] {false, true}) {
            Case k = build(gqa, true, false, 4, gqa ? 1 : 4, 8, 8, 1, 20, 10, false, 21);
            try (MultiHeadBase layer = k.layer()) {
                check(k, "before setWeights");
                float[][] next = randomWeights(layer, new SplittableRandom(22));
                layer.setWeights(next);
                k.call().w = next;
                check(k, "after setWeights");
                // setWeights(List<Tensor>) goes the same way.
                float[][] third = randomWeights(layer, new SplittableRandom(23));
                try (Arena arena = Arena.ofConfined()) {
                    List<Tensor> tensors = new ArrayList<>();
                    for (int i = 0; i < third.length; i++) {
                        tensors.add(Tensor.of(arena, third[i], layer.weights().get(i).shape()));
                    }
                    layer.setWeights(tensors);
                }
                k.call().w = third;
                check(k, "after setWeights(List<Tensor>)");
            }
        }
    }

    /** applyConstraints changes the weights in place: the derived ones follow. */
    @Test
    void constraintsRefreshTheDerivedWeights() {
        NativeTests.requireNative();
        MultiHeadAttention layer = MultiHeadAttention.builder().numHeads(2).keyDim(4).kernelConstraint("NonNeg")
                .biasConstraint("NonNeg").build();
        try (layer) {
            MultiHeadReference.Call c = new MultiHeadReference.Call();
            SplittableRandom r = new SplittableRandom(31);
            c.qShape = new long[] {2, 9, 6};
            c.vShape = c.qShape;
            c.dk = 6;
            c.n = c.kv = 2;
            c.h = c.hv = 4;
            c.out = new long[] {6};
            c.axes = new int[] {1};
            c.useBias = true;
            c.fastPath = true;
            c.q = TestData.floats(r, 2 * 9 * 6, -1, 1);
            c.v = c.q;
            layer.build(c.qShape, c.vShape, null);
            float[][] w = randomWeights(layer, r);
            layer.setWeights(w);
            Case k = new Case(layer, c);
            c.w = w;
            check(k, "before the constraints");
            layer.applyConstraints();
            float[][] clipped = new float[w.length][];
            for (int i = 0; i < w.length; i++) {
                clipped[i] = w[i].clone();
                for (int j = 0; j < clipped[i].length; j++) {
                    clipped[i][j] = Math.max(0f, clipped[i][j]);
                }
                assertArrayEquals(clipped[i], layer.weights().get(i).toFloatArray(), "weight " + i + " clipped");
            }
            c.w = clipped;
            check(k, "after applyConstraints");
        }
    }

    /** With an activity regularizer nothing is folded (it sees the projections); numbers and loss as before. */
    @Test
    void activityRegularizerKeepsEveryBias() {
        NativeTests.requireNative();
        SplittableRandom r = new SplittableRandom(41);
        MultiHeadAttention plain = MultiHeadAttention.builder().numHeads(2).keyDim(4).build();
        MultiHeadAttention regularized = MultiHeadAttention.builder().numHeads(2).keyDim(4)
                .activityRegularizer("l2").build();
        try (plain; regularized; Arena arena = Arena.ofConfined()) {
            long[] shape = {1, 11, 5};
            float[] x = TestData.floats(r, 55, -1, 1);
            plain.build(shape, shape, null);
            regularized.build(shape, shape, null);
            float[][] w = randomWeights(plain, r);
            plain.setWeights(w);
            regularized.setWeights(w);
            Tensor t = Tensor.of(arena, x, shape);
            AttentionResult a = plain.call(arena, CallArgs.of(t, t));
            AttentionResult b = regularized.call(arena, CallArgs.of(t, t));
            double err = TestData.maxRelError(b.output().toFloatArray(), a.output().toFloatArray());
            assertTrue(err < TOLERANCE, () -> "regularized vs plain output, error " + err);
            assertTrue(b.activityRegularizationLoss() > 0, "the activity loss is computed");
        }
    }
}
