package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import dev.attn4j.internal.backend.Dropout;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * The backward passes of all four layers ({@link AttentionLayer#forward} then
 * {@link AttentionLayer#backward}) against {@link GradientReference}, the test-side
 * double-precision restatement of Keras's formulas and of their chain rule:
 *
 * <ul>
 *   <li><b>Finite differences</b>: {@value #FD_CONFIGS} small random configurations per
 *       layer, attn4j's float32 gradients of every input and weight against central
 *       differences of the double-precision forward (h = 1e-4), relative error at most
 *       1e-3 per gradient tensor (max |got - want| over max |want|: float32 products of a
 *       few terms are good to ~1e-6, the differences to ~1e-8).</li>
 *   <li><b>Analytic reference</b>: {@value #LARGE_CONFIGS} larger configurations per layer
 *       (up to 140 positions, so the fused kernel's backward crosses its 64-row blocks)
 *       against the reference's analytic backward, the same bound.</li>
 * </ul>
 *
 * Coverage: dot / concat / additive scores, use_scale, key given or not, query and value
 * masks, causal, fully masked rows (Keras: gradient through {@code s - 1e9} for the
 * single-head layers, none through the multi-head layers' replaced logits), training
 * dropout with the forward's mask; heads, GQA ratios, key_dim != value_dim, biases on and
 * off, use_gate, output shapes, N-D inputs with several attention axes, every multi-head
 * mask (query, value, key, attention mask, causal, sliding window), both Keras code paths
 * and the fused flash path, self-attention (one tensor as query and value). Replay a seed
 * with {@code -Dattn4j.test.seed=N}.
 */
class GradientTest {
    static final int FD_CONFIGS = 500;
    static final int LARGE_CONFIGS = 100;
    private static final double TOLERANCE = 1e-3;

    @Test
    void attentionDotFiniteDifferences() {
        run("Attention(dot) FD", 60_000, FD_CONFIGS, seed -> single(GradientReference.Mode.DOT, seed, false));
    }

    @Test
    void attentionConcatFiniteDifferences() {
        run("Attention(concat) FD", 61_000, FD_CONFIGS, seed -> single(GradientReference.Mode.CONCAT, seed, false));
    }

    @Test
    void additiveAttentionFiniteDifferences() {
        run("AdditiveAttention FD", 62_000, FD_CONFIGS, seed -> single(GradientReference.Mode.ADDITIVE, seed, false));
    }

    @Test
    void multiHeadAttentionFiniteDifferences() {
        run("MultiHeadAttention FD", 63_000, FD_CONFIGS, seed -> multi(false, seed, false));
    }

    @Test
    void groupQueryAttentionFiniteDifferences() {
        run("GroupQueryAttention FD", 64_000, FD_CONFIGS, seed -> multi(true, seed, false));
    }

    @Test
    void singleHeadLayersAgainstTheAnalyticReference() {
        run("Attention/AdditiveAttention analytic", 65_000, LARGE_CONFIGS * 3,
                seed -> single(GradientReference.Mode.values()[(int) (seed % 3)], seed, true));
    }

    @Test
    void multiHeadAttentionAgainstTheAnalyticReference() {
        run("MultiHeadAttention analytic", 66_000, LARGE_CONFIGS, seed -> multi(false, seed, true));
    }

    @Test
    void groupQueryAttentionAgainstTheAnalyticReference() {
        run("GroupQueryAttention analytic", 67_000, LARGE_CONFIGS, seed -> multi(true, seed, true));
    }

    // ---- driver -----------------------------------------------------------------------------

    @FunctionalInterface
    interface Check {
        /** Null when attn4j matches the reference, else what differs; the worst error in [0]. */
        String run(long seed);
    }

    private static double worst;

    private static void run(String what, long base, int count, Check check) {
        NativeTests.requireNative();
        String only = System.getProperty("attn4j.test.seed", "");
        long[] seeds = only.isBlank() ? IntStream.range(0, count).mapToLong(i -> base + i).toArray()
                : new long[] {Long.parseLong(only.trim())};
        List<String> failures = new ArrayList<>();
        worst = 0;
        long start = System.nanoTime();
        for (long seed : seeds) {
            String failure;
            try {
                failure = check.run(seed);
            } catch (RuntimeException | AssertionError e) {
                failure = e.toString();
            }
            if (failure != null) {
                failures.add("seed " + seed + ": " + failure);
            }
        }
        System.out.printf("GradientTest %s: %d configurations (seeds %d..%d), %d failed, worst relative error "
                        + "%.2e, %d ms%n", what, seeds.length, seeds[0], seeds[seeds.length - 1], failures.size(),
                worst, (System.nanoTime() - start) / 1_000_000);
        assertTrue(failures.isEmpty(), () -> what + ": " + failures.size() + " of " + seeds.length
                + " configurations differ from the reference (replay with -Dattn4j.test.seed=N):\n  "
                + String.join("\n  ", failures.subList(0, Math.min(10, failures.size()))));
    }

    /**
     * max |got - want| / max(max |want|, 0.01): relative to the gradient's magnitude, and
     * absolute (1e-5) for gradients that are ~0 in exact arithmetic, such as the key bias's
     * (the softmax cancels it), where float32 leaves the rounding of sums over every row.
     */
    private static String compare(String what, Tensor got, double[] want) {
        float[] g = got.toFloatArray();
        if (g.length != want.length) {
            return what + ": " + g.length + " values, expected " + want.length;
        }
        double maxDiff = 0;
        double maxWant = 0;
        for (int i = 0; i < g.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(g[i] - want[i]));
            if (Double.isNaN(g[i])) {
                maxDiff = Double.POSITIVE_INFINITY;
            }
            maxWant = Math.max(maxWant, Math.abs(want[i]));
        }
        double err = maxDiff / Math.max(maxWant, 1e-2);
        worst = Math.max(worst, err);
        return err <= TOLERANCE ? null : what + " error " + err + " (max |diff| " + maxDiff + ", max |want| " + maxWant
                + ")";
    }

    private static String compareAll(String what, Gradients got, GradientReference.Grads want, List<Weight> weights) {
        String diff = compare(what + " dQuery", got.query(), want.dq());
        if (diff == null) {
            diff = compare(what + " dValue", got.value(), want.dv());
        }
        if (diff == null && want.dk() != null) {
            diff = compare(what + " dKey", got.key(), want.dk());
        }
        if (diff == null && (want.dk() == null) != (got.key() == null)) {
            diff = what + ": key gradient presence differs";
        }
        for (int i = 0; diff == null && i < weights.size(); i++) {
            Weight w = got.weights().get(i);
            if (!w.path().equals(weights.get(i).path()) || !Arrays.equals(w.shape(), weights.get(i).shape())) {
                return what + ": weight gradient " + i + " is " + w + ", expected " + weights.get(i);
            }
            diff = compare(what + " d" + w.path(), w.value(), want.dW()[i]);
        }
        return diff;
    }

    private static double[] doubles(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    private static float[] floats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }

    /** The keep mask attn4j's dropout draws for a layer's first training call (stream 0). */
    private static boolean[] keep(long seed, int n, double rate) {
        boolean[] keep = new boolean[n];
        for (int i = 0; i < n; i++) {
            keep[i] = Dropout.keep(seed, 0, i, (float) rate);
        }
        return keep;
    }

    // ---- Attention (dot, concat) and AdditiveAttention -------------------------------------

    private static final int[] TINY = {1, 2, 3, 4, 5};
    private static final int[] LARGER = {1, 7, 16, 17, 33, 40};

    private static String single(GradientReference.Mode mode, long seed, boolean large) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] sizes = large ? LARGER : TINY;
        GradientReference.Single c = new GradientReference.Single();
        c.mode = mode;
        long[] lead = r.nextInt(4) == 0 ? new long[] {1 + r.nextInt(2), 1 + r.nextInt(2)} : new long[] {1 + r.nextInt(3)};
        c.b = (int) MultiHeadReference.prod(lead, 0, lead.length);
        c.tq = sizes[r.nextInt(sizes.length)];
        c.tv = sizes[r.nextInt(sizes.length)];
        c.d = sizes[r.nextInt(sizes.length)];
        boolean withKey = r.nextBoolean();
        c.dv = withKey ? sizes[r.nextInt(sizes.length)] : c.d;
        c.useScale = r.nextBoolean();
        c.causal = r.nextInt(3) == 0;
        boolean self = !withKey && c.tq == c.tv && r.nextInt(6) == 0;
        float[] q = TestData.floats(r, c.b * c.tq * c.d, -1, 1);
        float[] v = self ? q : TestData.floats(r, c.b * c.tv * c.dv, -1, 1);
        float[] k = withKey ? TestData.floats(r, c.b * c.tv * c.d, -1, 1) : null;
        c.q = doubles(q);
        c.v = doubles(v);
        c.k = k == null ? null : doubles(k);
        if (r.nextInt(3) == 0) {
            c.queryMask = TestData.booleans(r, c.b * c.tq, 0.7);
        }
        if (r.nextInt(3) == 0) {
            c.valueMask = TestData.booleans(r, c.b * c.tv, 0.7);
            if (large && r.nextInt(3) == 0) {
                Arrays.fill(c.valueMask, 0, c.tv, false); // a fully masked batch entry
            } else if (!large) {
                for (int n = 0; n < c.b; n++) {
                    c.valueMask[n * c.tv] = true; // key 0 kept: no row is fully masked (see below)
                }
            }
        }
        // Keras rounds s - 1e9 in float32: a fully masked row is uniform, and its gradient is
        // the unmasked formula with that P. Such a row's loss is a piecewise constant function
        // of its scores, which finite differences cannot see, so the small configurations keep
        // key 0 of every row (with the causal mask too); the larger ones, compared with the
        // analytic reference under Keras's rounding, have fully masked rows.
        c.float32MaskRounding = large;
        double rate = r.nextInt(4) == 0 ? 0.3 : 0;
        long layerSeed = 1000 + seed;
        List<float[]> weights = new ArrayList<>();
        if (mode == GradientReference.Mode.ADDITIVE) {
            if (c.useScale) {
                weights.add(TestData.floats(r, c.d, -1, 1));
            }
        } else {
            if (c.useScale) {
                weights.add(new float[] {(float) r.nextDouble(0.2, 1.4)});
            }
            if (mode == GradientReference.Mode.CONCAT) {
                weights.add(new float[] {(float) r.nextDouble(0.5, 1.4)});
            }
        }
        c.w = weights.stream().map(GradientTest::doubles).toArray(double[][]::new);
        if (rate > 0) {
            c.dropoutKeep = keep(layerSeed, c.b * c.tq * c.tv, rate);
            c.rate = (float) rate;
        }
        AttentionLayer layer = switch (mode) {
            case DOT -> Attention.builder().useScale(c.useScale).dropout(rate).seed(layerSeed).build();
            case CONCAT -> Attention.builder().useScale(c.useScale).scoreMode("concat").dropout(rate).seed(layerSeed)
                    .build();
            case ADDITIVE -> AdditiveAttention.builder().useScale(c.useScale).dropout(rate).seed(layerSeed).build();
        };
        String what = mode + " lead " + Arrays.toString(lead) + " tq " + c.tq + " tv " + c.tv + " d " + c.d + " dv "
                + c.dv + " key " + withKey + " scale " + c.useScale + " causal " + c.causal + " qm "
                + (c.queryMask != null) + " vm " + (c.valueMask != null) + " dropout " + rate + " self " + self;
        try (layer; Arena arena = Arena.ofConfined()) {
            Tensor tq = Tensor.of(arena, q, DifferentialRandomTest.concat(lead, c.tq, c.d));
            Tensor tv = self ? tq : Tensor.of(arena, v, DifferentialRandomTest.concat(lead, c.tv, c.dv));
            Tensor tk = withKey ? Tensor.of(arena, k, DifferentialRandomTest.concat(lead, c.tv, c.d)) : null;
            layer.build(tq.shape(), tv.shape(), tk == null ? null : tk.shape());
            layer.setWeights(weights.toArray(float[][]::new));
            CallArgs args = CallArgs.of(tq, tv).withKey(tk).withUseCausalMask(c.causal).withTraining(rate > 0)
                    .withReturnAttentionScores(r.nextBoolean())
                    .withQueryMask(c.queryMask == null ? null
                            : Tensor.ofMask(arena, c.queryMask, DifferentialRandomTest.concat(lead, c.tq)))
                    .withValueMask(c.valueMask == null ? null
                            : Tensor.ofMask(arena, c.valueMask, DifferentialRandomTest.concat(lead, c.tv)));
            ForwardPass fwd = layer.forward(arena, args);
            float[] dOut = TestData.floats(r, c.b * c.tq * c.dv, -1, 1);
            Gradients got = layer.backward(arena, fwd, Tensor.of(arena, dOut, fwd.output().shape()));
            GradientReference.Grads want = large ? GradientReference.backward(c, doubles(dOut))
                    : GradientReference.finiteDifference(c, doubles(dOut), 1e-4);
            return compareAll(what, got, want, layer.weights());
        }
    }

    // ---- MultiHeadAttention and GroupQueryAttention ----------------------------------------

    private static String multi(boolean gqa, long seed, boolean large) {
        SplittableRandom r = new SplittableRandom(seed);
        GradientReference.Multi c = new GradientReference.Multi();
        int rank = gqa || large ? 3 : switch (r.nextInt(8)) {
            case 0 -> 4;
            case 1 -> 5;
            default -> 3;
        };
        long b = 1 + r.nextInt(2);
        c.qShape = new long[rank];
        c.vShape = new long[rank];
        c.qShape[0] = c.vShape[0] = b;
        int[] axes = rank == 3 ? new int[] {1} : switch (r.nextInt(4)) {
            case 0 -> new int[] {1};
            case 1 -> new int[] {rank - 2};
            case 2 -> IntStream.range(1, rank - 1).toArray();
            default -> rank == 5 ? new int[] {1, 3} : new int[] {2};
        };
        c.axes = axes;
        boolean[] isAxis = new boolean[rank];
        for (int a : axes) {
            isAxis[a] = true;
        }
        int[] positions = large ? new int[] {1, 9, 31, 64, 65, 100, 140} : rank == 3 ? TINY : new int[] {1, 2, 3};
        for (int i = 1; i < rank - 1; i++) {
            c.qShape[i] = positions[r.nextInt(positions.length)];
            c.vShape[i] = isAxis[i] ? positions[r.nextInt(positions.length)] : c.qShape[i];
        }
        int maxFeatures = large ? 24 : 5;
        int dq = 1 + r.nextInt(maxFeatures);
        int dv = 1 + r.nextInt(maxFeatures);
        boolean withKey = r.nextBoolean();
        c.dk = withKey ? 1 + r.nextInt(maxFeatures) : dv;
        c.qShape[rank - 1] = dq;
        c.vShape[rank - 1] = dv;
        int maxHead = large ? 16 : 3;
        if (gqa) {
            c.kv = 1 + r.nextInt(2);
            c.n = c.kv * (1 + r.nextInt(4));
            c.h = c.hv = 1 + r.nextInt(maxHead);
            c.out = new long[] {dq};
        } else {
            c.n = 1 + r.nextInt(3);
            c.kv = c.n;
            c.h = 1 + r.nextInt(maxHead);
            c.hv = r.nextBoolean() ? c.h : 1 + r.nextInt(maxHead);
            c.out = switch (r.nextInt(3)) {
                case 0 -> new long[] {dq};
                case 1 -> new long[] {1 + r.nextInt(4)};
                default -> new long[] {2, 1 + r.nextInt(3)};
            };
        }
        c.useBias = r.nextInt(4) != 0;
        c.useGate = r.nextInt(4) == 0;
        boolean returnScores = r.nextInt(3) == 0;
        double rate = !large && r.nextInt(5) == 0 ? 0.25 : 0;
        c.fastPath = !returnScores && rank == 3 && rate == 0;
        boolean positional = rank == 3 || (axes.length == 1 && axes[0] == 1);
        c.causal = positional && r.nextInt(3) == 0;
        c.window = positional && r.nextInt(5) == 0 ? 1 + r.nextInt(3) : 0;
        long t = 1;
        long s = 1;
        for (int a : axes) {
            t *= c.qShape[a];
            s *= c.vShape[a];
        }
        boolean self = rank == 3 && !withKey && dq == dv && t == s && r.nextInt(4) == 0;
        float[] q = TestData.floats(r, (int) MultiHeadReference.prod(c.qShape, 0, rank), -1, 1);
        float[] v = self ? q : TestData.floats(r, (int) MultiHeadReference.prod(c.vShape, 0, rank), -1, 1);
        long[] kShape = c.vShape.clone();
        kShape[rank - 1] = c.dk;
        float[] k = withKey ? TestData.floats(r, (int) MultiHeadReference.prod(kShape, 0, rank), -1, 1) : null;
        c.q = doubles(q);
        c.v = doubles(v);
        c.k = k == null ? null : doubles(k);
        long layerSeed = 2000 + seed;
        AttentionLayer layer = gqa
                ? GroupQueryAttention.builder().headDim(c.h).numQueryHeads(c.n).numKeyValueHeads(c.kv)
                        .useBias(c.useBias).useGate(c.useGate).dropout(rate).seed(layerSeed)
                        .slidingWindow(c.window == 0 ? null : c.window).build()
                : MultiHeadAttention.builder().numHeads(c.n).keyDim(c.h).valueDim(c.hv).useBias(c.useBias)
                        .useGate(c.useGate).outputShape(c.out).attentionAxes(axes).dropout(rate).seed(layerSeed)
                        .slidingWindow(c.window == 0 ? null : c.window).build();
        try (layer; Arena arena = Arena.ofConfined()) {
            Tensor tq = Tensor.of(arena, q, c.qShape);
            Tensor tv = self ? tq : Tensor.of(arena, v, c.vShape);
            Tensor tk = withKey ? Tensor.of(arena, k, kShape) : null;
            layer.build(tq.shape(), tv.shape(), tk == null ? null : tk.shape());
            List<float[]> weights = new ArrayList<>();
            for (Weight w : layer.weights()) {
                weights.add(TestData.floats(r, (int) w.size(), -0.7, 0.7));
            }
            layer.setWeights(weights.toArray(float[][]::new));
            c.w = weights.stream().map(GradientTest::doubles).toArray(double[][]::new);
            CallArgs args = CallArgs.of(tq, tv).withKey(tk).withReturnAttentionScores(returnScores)
                    .withUseCausalMask(c.causal).withTraining(rate > 0);
            if (rank == 3) {
                if (r.nextInt(4) == 0) {
                    c.queryMask = TestData.booleans(r, (int) (b * t), 0.8);
                    args = args.withQueryMask(Tensor.ofMask(arena, c.queryMask, b, t));
                }
                if (r.nextInt(3) == 0) {
                    c.valueMask = TestData.booleans(r, (int) (b * s), 0.7);
                    if (r.nextInt(4) == 0) {
                        Arrays.fill(c.valueMask, 0, (int) s, false); // every key of batch 0 masked
                    }
                    args = args.withValueMask(Tensor.ofMask(arena, c.valueMask, b, s));
                }
                if (r.nextInt(4) == 0) {
                    c.keyMask = TestData.booleans(r, (int) (b * s), 0.7);
                    args = args.withKeyMask(Tensor.ofMask(arena, c.keyMask, b, s));
                }
                if (self && c.queryMask != null && c.valueMask == null) {
                    c.valueMask = c.queryMask; // Keras's mask propagation: the value is the query
                }
            }
            long[] scoresShape = layer.computeAttentionScoresShape(tq.shape(), tv.shape(),
                    tk == null ? null : tk.shape());
            long scoreCount = MultiHeadReference.prod(scoresShape, 0, scoresShape.length);
            if (!large && r.nextInt(4) == 0) {
                // A full mask in the scores' layout (any rank), as a float mask now and then.
                c.attentionMask = TestData.booleans(r, (int) scoreCount, 0.7);
                Tensor mask = Tensor.ofMask(arena, c.attentionMask, scoresShape);
                if (r.nextInt(3) == 0) {
                    float[] f = new float[c.attentionMask.length];
                    for (int i = 0; i < f.length; i++) {
                        f[i] = c.attentionMask[i] ? 1f : 0f;
                    }
                    mask = Tensor.of(arena, f, scoresShape);
                }
                args = args.withAttentionMask(mask);
            }
            if (rate > 0) {
                c.dropoutKeep = keep(layerSeed, (int) scoreCount, rate);
                c.rate = (float) rate;
            }
            ForwardPass fwd = layer.forward(arena, args);
            float[] dOut = TestData.floats(r, (int) fwd.output().size(), -1, 1);
            Gradients got = layer.backward(arena, fwd, Tensor.of(arena, dOut, fwd.output().shape()));
            GradientReference.Grads want = large ? GradientReference.backward(c, doubles(dOut))
                    : GradientReference.finiteDifference(c, doubles(dOut), 1e-4);
            String what = (gqa ? "GQA " : "MHA ") + MultiHeadReference.describe(toCall(c)) + " scores "
                    + returnScores + " dropout " + rate + " self " + self;
            return compareAll(what, got, want, layer.weights());
        }
    }

    /** The reference call's description, for messages. */
    private static MultiHeadReference.Call toCall(GradientReference.Multi c) {
        MultiHeadReference.Call call = new MultiHeadReference.Call();
        call.qShape = c.qShape;
        call.vShape = c.vShape;
        call.n = c.n;
        call.kv = c.kv;
        call.h = c.h;
        call.hv = c.hv;
        call.axes = c.axes;
        call.out = c.out;
        call.useBias = c.useBias;
        call.useGate = c.useGate;
        call.causal = c.causal;
        call.window = c.window;
        call.fastPath = c.fastPath;
        call.queryMask = c.queryMask;
        call.valueMask = c.valueMask;
        call.keyMask = c.keyMask;
        call.attentionMask = c.attentionMask;
        return call;
    }
}
