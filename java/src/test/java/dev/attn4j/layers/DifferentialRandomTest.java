package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * Randomized differential testing: {@value #CONFIGS} random configurations per layer,
 * each compared with the plain double-precision references ({@link AttentionReference},
 * {@link MultiHeadReference}), written from Keras's formulas and sharing no code with
 * attn4j. One JUnit test per layer loops over its seeds and reports the failing ones;
 * every configuration is a pure function of its seed.
 *
 * <p>Replay: {@code -Dattn4j.test.seed=N} runs only seed N in every test, e.g.
 * {@code mvn test -pl java -Dtest='DifferentialRandomTest#multiHeadAttention' -Dattn4j.test.seed=41234}
 * (surefire hands the property to the test JVM). The failure message lists the failing
 * seeds with their configurations. Seeds: Attention dot 10000.., concat 20000..,
 * AdditiveAttention 30000.., MultiHeadAttention 40000.., GroupQueryAttention 50000...
 *
 * <p>Coverage: shapes with 1 and odd sizes around the SIMD widths (7, 8, 9, 15, 16, 17),
 * several leading batch axes (single-head), Tq != Tv, a separate key with other features,
 * every mask kind (query, value, key, attention mask in each Keras layout, bool and
 * float), fully masked rows, causal, sliding window, scores on and off (so both Keras code
 * paths of the multi-head layers), gate, bias on and off, custom output shapes, N-D
 * inputs with single and multi-axis attention (consecutive and not), GQA head ratios,
 * and self-attention where the query mask also masks the value.
 *
 * <p>Tolerance: 1e-5 relative to max(1, |expected|) (the largest error seen is about
 * 1.2e-6): float32 GEMM accumulation and the vector exp/tanh over dot products of at
 * most 17 terms. Single-head scores stay below 32 in magnitude (inputs in [-1, 1],
 * D <= 17, scales < 1.5), where Keras's {@code s - 1e9} is exactly -1e9 in float32, so a
 * fully masked row is uniform whatever the accumulation order (the multi-head layers
 * replace masked scores instead, which has no such sensitivity).
 */
class DifferentialRandomTest {
    static final int CONFIGS = 2000;
    private static final int[] SIZES = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17};
    private static final int[] SMALL = {1, 2, 3, 4, 5, 7};

    @FunctionalInterface
    interface Check {
        /** Null when the configuration matches the reference, else what differs; updates worst[0..1]. */
        String run(long seed, double[] worst);
    }

    @Test
    void attentionDot() {
        runAll("Attention(dot)", 10_000, (seed, worst) -> singleHead(AttentionReference.Mode.DOT, seed, worst));
    }

    @Test
    void attentionConcat() {
        runAll("Attention(concat)", 20_000, (seed, worst) -> singleHead(AttentionReference.Mode.CONCAT, seed, worst));
    }

    @Test
    void additiveAttention() {
        runAll("AdditiveAttention", 30_000, (seed, worst) -> singleHead(AttentionReference.Mode.ADDITIVE, seed, worst));
    }

    @Test
    void multiHeadAttention() {
        runAll("MultiHeadAttention", 40_000, (seed, worst) -> multiHead(false, seed, worst));
    }

    @Test
    void groupQueryAttention() {
        runAll("GroupQueryAttention", 50_000, (seed, worst) -> multiHead(true, seed, worst));
    }

    /** Seeds base .. base + CONFIGS - 1, or only the one named by attn4j.test.seed. */
    private static long[] seeds(long base) {
        String only = System.getProperty("attn4j.test.seed", "");
        if (!only.isBlank()) {
            return new long[] {Long.parseLong(only.trim())};
        }
        return IntStream.range(0, CONFIGS).mapToLong(i -> base + i).toArray();
    }

    /** Runs every seed, collects failures, prints the counts, fails listing the first few seeds. */
    private static void runAll(String layer, long base, Check check) {
        NativeTests.requireNative();
        long[] seeds = seeds(base);
        List<String> failures = new ArrayList<>();
        double[] worst = new double[2];
        long start = System.nanoTime();
        for (long seed : seeds) {
            String failure;
            try {
                failure = check.run(seed, worst);
            } catch (RuntimeException | AssertionError e) {
                failure = e.toString();
            }
            if (failure != null) {
                failures.add("seed " + seed + ": " + failure);
            }
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        System.out.printf("DifferentialRandomTest %s: %d configurations (seeds %d..%d), %d failed, "
                        + "max output error %.2e, max scores error %.2e, %d ms%n", layer, seeds.length, seeds[0],
                seeds[seeds.length - 1], failures.size(), worst[0], worst[1], ms);
        assertTrue(failures.isEmpty(), () -> layer + ": " + failures.size() + " of " + seeds.length
                + " configurations differ from the reference (replay one with -Dattn4j.test.seed=N):\n  "
                + String.join("\n  ", failures.subList(0, Math.min(10, failures.size()))));
    }

    private static String compare(String what, float[] got, float[] want, double tolerance, double[] worst, int slot) {
        double err = TestData.maxRelError(got, want);
        worst[slot] = Math.max(worst[slot], err);
        return err < tolerance ? null : what + ": " + (slot == 0 ? "output" : "scores") + " error " + err;
    }

    // ---- Attention (dot, concat) and AdditiveAttention ------------------------------------

    private static String singleHead(AttentionReference.Mode mode, long seed, double[] worst) {
        SplittableRandom r = new SplittableRandom(seed);
        int leadRank = 1 + r.nextInt(3);
        long[] lead = new long[leadRank];
        int b = 1;
        for (int i = 0; i < leadRank; i++) {
            lead[i] = 1 + r.nextInt(leadRank == 1 ? 4 : 2);
            b *= (int) lead[i];
        }
        int tq = SIZES[r.nextInt(SIZES.length)];
        int tv = SIZES[r.nextInt(SIZES.length)];
        int d = SIZES[r.nextInt(SIZES.length)];
        boolean withKey = r.nextBoolean();
        int dv = withKey ? SIZES[r.nextInt(SIZES.length)] : d;
        boolean useScale = r.nextBoolean();
        boolean causal = r.nextInt(3) == 0;
        boolean returnScores = r.nextInt(4) != 0;
        float[] q = TestData.floats(r, b * tq * d, -1, 1);
        float[] v = TestData.floats(r, b * tv * dv, -1, 1);
        float[] k = withKey ? TestData.floats(r, b * tv * d, -1, 1) : null;
        int maskKind = r.nextInt(4); // none, query, value, both
        boolean[] qm = (maskKind & 1) != 0 ? TestData.booleans(r, b * tq, 0.7) : null;
        boolean[] vm = (maskKind & 2) != 0 ? TestData.booleans(r, b * tv, 0.7) : null;
        if (vm != null && r.nextInt(4) == 0) {
            Arrays.fill(vm, 0, tv, false); // a fully masked batch entry: uniform weights (s - 1e9)
        }
        float scale = useScale ? (float) r.nextDouble(0.2, 1.4) : 1f;
        float concatWeight = (float) r.nextDouble(0.5, 1.4);
        float[] addScale = useScale ? TestData.floats(r, d, -1, 1) : null;
        boolean selfAttention = !withKey && tq == tv && qm == null && r.nextInt(8) == 0;
        if (selfAttention) {
            v = q; // the same tensor as query and value
        }

        AttentionLayer layer = switch (mode) {
            case DOT -> Attention.builder().useScale(useScale).build();
            case CONCAT -> Attention.builder().useScale(useScale).scoreMode("concat").build();
            case ADDITIVE -> AdditiveAttention.builder().useScale(useScale).build();
        };
        String what = mode + " lead " + Arrays.toString(lead) + " tq " + tq + " tv " + tv + " d " + d + " dv " + dv
                + " key " + withKey + " scale " + useScale + " causal " + causal + " scores " + returnScores + " qm "
                + (qm != null) + " vm " + (vm != null) + " self " + selfAttention;
        try (layer; Arena arena = Arena.ofConfined()) {
            Tensor tQ = Tensor.of(arena, q, concat(lead, tq, d));
            Tensor tV = selfAttention ? tQ : Tensor.of(arena, v, concat(lead, tv, dv));
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
            if (!Arrays.equals(concat(lead, tq, dv), got.output().shape())) {
                return what + ": output shape " + Arrays.toString(got.output().shape());
            }
            String diff = compare(what, got.output().toFloatArray(), want.output(), 1e-5, worst, 0);
            if (diff == null && returnScores) {
                diff = compare(what, got.attentionScores().toFloatArray(), want.scores(), 1e-5, worst, 1);
            } else if (diff == null && got.attentionScores() != null) {
                diff = what + ": scores returned without being asked for";
            }
            return diff;
        }
    }

    // ---- MultiHeadAttention and GroupQueryAttention ----------------------------------------

    private static String multiHead(boolean gqa, long seed, double[] worst) {
        SplittableRandom r = new SplittableRandom(seed);
        MultiHeadReference.Call c = new MultiHeadReference.Call();
        int rank = gqa ? 3 : switch (r.nextInt(10)) {
            case 0, 1 -> 4;
            case 2 -> 5;
            default -> 3;
        };
        long b = 1 + r.nextInt(3);
        c.qShape = new long[rank];
        c.vShape = new long[rank];
        c.qShape[0] = c.vShape[0] = b;
        int[] axes;
        if (rank == 3) {
            axes = new int[] {1};
        } else {
            axes = switch (r.nextInt(4)) {
                case 0 -> new int[] {1};
                case 1 -> new int[] {rank - 2};
                case 2 -> IntStream.range(1, rank - 1).toArray();
                default -> rank == 5 ? new int[] {1, 3} : new int[] {2};
            };
        }
        c.axes = axes;
        boolean[] isAxis = new boolean[rank];
        for (int a : axes) {
            isAxis[a] = true;
        }
        for (int i = 1; i < rank - 1; i++) {
            int[] sizes = rank == 3 ? SIZES : SMALL;
            c.qShape[i] = sizes[r.nextInt(sizes.length)];
            c.vShape[i] = isAxis[i] ? sizes[r.nextInt(sizes.length)] : c.qShape[i];
        }
        int dq = 1 + r.nextInt(9);
        int dv = 1 + r.nextInt(9);
        boolean withKey = r.nextBoolean();
        c.dk = withKey ? 1 + r.nextInt(9) : dv;
        c.qShape[rank - 1] = dq;
        c.vShape[rank - 1] = dv;
        if (gqa) {
            c.kv = 1 + r.nextInt(3);
            c.n = c.kv * (1 + r.nextInt(4)); // ratios 1 (MHA), 2, 3, 4
            c.h = c.hv = 1 + r.nextInt(8);
            c.out = new long[] {dq};
        } else {
            c.n = 1 + r.nextInt(5);
            c.kv = c.n;
            c.h = 1 + r.nextInt(8);
            c.hv = r.nextBoolean() ? c.h : 1 + r.nextInt(8);
            c.out = switch (r.nextInt(3)) {
                case 0 -> new long[] {dq};
                case 1 -> new long[] {1 + r.nextInt(9)};
                default -> new long[] {2, 1 + r.nextInt(3)};
            };
        }
        c.useBias = r.nextInt(4) != 0;
        c.useGate = r.nextInt(4) == 0;
        boolean returnScores = r.nextBoolean();
        c.fastPath = !returnScores && rank == 3;
        boolean positional = rank == 3 || (axes.length == 1 && axes[0] == 1);
        c.causal = positional && r.nextInt(3) == 0;
        c.window = positional && r.nextInt(4) == 0 ? 1 + r.nextInt(3) : 0;
        long t = 1;
        long s = 1;
        for (int a : axes) {
            t *= c.qShape[a];
            s *= c.vShape[a];
        }
        // Self-attention: one tensor as query and value, so a query mask also masks the value.
        boolean self = rank == 3 && !withKey && dq == dv && t == s && r.nextInt(5) == 0;
        c.q = TestData.floats(r, (int) MultiHeadReference.prod(c.qShape, 0, rank), -1, 1);
        c.v = self ? c.q : TestData.floats(r, (int) MultiHeadReference.prod(c.vShape, 0, rank), -1, 1);
        long[] kShape = c.vShape.clone();
        kShape[rank - 1] = c.dk;
        c.k = withKey ? TestData.floats(r, (int) MultiHeadReference.prod(kShape, 0, rank), -1, 1) : null;

        AttentionLayer layer = gqa
                ? GroupQueryAttention.builder().headDim(c.h).numQueryHeads(c.n).numKeyValueHeads(c.kv)
                        .useBias(c.useBias).useGate(c.useGate).slidingWindow(c.window == 0 ? null : c.window).build()
                : MultiHeadAttention.builder().numHeads(c.n).keyDim(c.h).valueDim(c.hv).useBias(c.useBias)
                        .useGate(c.useGate).outputShape(c.out).attentionAxes(axes)
                        .slidingWindow(c.window == 0 ? null : c.window).build();
        try (layer; Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.of(arena, c.q, c.qShape);
            Tensor v = self ? q : Tensor.of(arena, c.v, c.vShape);
            Tensor k = withKey ? Tensor.of(arena, c.k, kShape) : null;
            layer.build(q.shape(), v.shape(), k == null ? null : k.shape());
            List<float[]> weights = new ArrayList<>();
            for (Weight w : layer.weights()) {
                weights.add(TestData.floats(r, (int) w.size(), -0.7, 0.7));
            }
            c.w = weights.toArray(float[][]::new);
            layer.setWeights(c.w);
            CallArgs args = CallArgs.of(q, v).withKey(k).withReturnAttentionScores(returnScores)
                    .withUseCausalMask(c.causal);
            if (rank == 3) {
                if (r.nextInt(3) == 0) {
                    c.queryMask = TestData.booleans(r, (int) (b * t), 0.8);
                    args = args.withQueryMask(mask(arena, r, c.queryMask, gqa, b, t));
                }
                if (r.nextInt(3) == 0) {
                    c.valueMask = TestData.booleans(r, (int) (b * s), 0.7);
                    if (r.nextInt(5) == 0) {
                        Arrays.fill(c.valueMask, 0, (int) s, false); // every key of batch 0 masked
                    }
                    args = args.withValueMask(mask(arena, r, c.valueMask, gqa, b, s));
                }
                if (r.nextInt(4) == 0) {
                    c.keyMask = TestData.booleans(r, (int) (b * s), 0.7);
                    args = args.withKeyMask(mask(arena, r, c.keyMask, gqa, b, s));
                }
                if (self && c.queryMask != null && c.valueMask == null) {
                    c.valueMask = c.queryMask; // Keras's mask propagation: the value is the query
                }
            }
            long[] scoresShape = layer.computeAttentionScoresShape(q.shape(), v.shape(), k == null ? null : k.shape());
            String attentionLayout = "none";
            if (r.nextInt(3) == 0) {
                long groups = MultiHeadReference.prod(scoresShape, 0, scoresShape.length - 1 - 2 * axes.length);
                int layout = rank == 3 ? r.nextInt(3) : 1;
                long[] maskShape = switch (layout) {
                    case 0 -> new long[] {t, s};
                    case 1 -> rank == 3 ? new long[] {b, t, s} : dropHead(scoresShape, axes.length);
                    default -> new long[] {b, c.n, t, s};
                };
                attentionLayout = Arrays.toString(maskShape);
                boolean[] m = TestData.booleans(r, (int) MultiHeadReference.prod(maskShape, 0, maskShape.length), 0.7);
                args = args.withAttentionMask(mask(arena, r, m, gqa, maskShape));
                c.attentionMask = new boolean[(int) (groups * c.n * t * s)];
                for (int g = 0; g < groups; g++) {
                    for (int u = 0; u < c.n; u++) {
                        for (int x = 0; x < t * s; x++) {
                            int from = switch (layout) {
                                case 0 -> x;
                                case 1 -> (int) (g * t * s + x);
                                default -> (int) ((g * c.n + u) * t * s + x);
                            };
                            c.attentionMask[(int) ((g * c.n + u) * t * s + x)] = m[from];
                        }
                    }
                }
            }
            AttentionResult got = layer.call(arena, args);
            MultiHeadReference.Result want = MultiHeadReference.compute(c);
            String what = (gqa ? "GQA " : "MHA ") + MultiHeadReference.describe(c) + " scores " + returnScores
                    + " self " + self + " attention mask " + attentionLayout;
            String diff = compare(what, got.output().toFloatArray(), want.output(), 1e-5, worst, 0);
            if (diff == null && returnScores) {
                if (!Arrays.equals(want.scoresShape(), got.attentionScores().shape())) {
                    return what + ": scores shape " + Arrays.toString(got.attentionScores().shape()) + " != "
                            + Arrays.toString(want.scoresShape());
                }
                diff = compare(what, got.attentionScores().toFloatArray(), want.scores(), 1e-5, worst, 1);
            }
            return diff;
        }
    }

    /**
     * A keep-mask as the layer takes it: bool, or float (MHA: any non-zero value keeps,
     * so kept entries get arbitrary non-zero values; GQA: 0 and 1 only, as its einsum path
     * keeps > 0.5 where the fused one keeps non-zero).
     */
    private static Tensor mask(Arena arena, SplittableRandom r, boolean[] keep, boolean gqa, long... shape) {
        if (r.nextInt(4) != 0) {
            return Tensor.ofMask(arena, keep, shape);
        }
        float[] f = new float[keep.length];
        for (int i = 0; i < f.length; i++) {
            f[i] = !keep[i] ? 0f : gqa ? 1f : (float) (r.nextBoolean() ? r.nextDouble(0.01, 3) : -r.nextDouble(0.01, 3));
        }
        return Tensor.of(arena, f, shape);
    }

    /** (B, others..., N, T..., S...) without the head axis: a per-group attention mask. */
    private static long[] dropHead(long[] scores, int k) {
        int head = scores.length - 1 - 2 * k;
        long[] out = new long[scores.length - 1];
        for (int i = 0, p = 0; i < scores.length; i++) {
            if (i != head) {
                out[p++] = scores[i];
            }
        }
        return out;
    }

    /** {@code lead} followed by {@code tail}: a shape with leading batch axes. */
    static long[] concat(long[] lead, long... tail) {
        long[] s = Arrays.copyOf(lead, lead.length + tail.length);
        System.arraycopy(tail, 0, s, lead.length, tail.length);
        return s;
    }
}
