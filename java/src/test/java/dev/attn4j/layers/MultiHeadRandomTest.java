package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * MultiHeadAttention and GroupQueryAttention on random shapes against the plain
 * {@link MultiHeadReference}: odd head counts, key_dim != value_dim, T = 1 and S = 1,
 * 4-D and 5-D inputs with single and multi-axis attention (consecutive and not),
 * every mask kind on 3-D inputs, causal, sliding window, gate, both Keras code paths,
 * GQA head ratios. Seeds are in the test names, so a failure can be replayed.
 */
class MultiHeadRandomTest {

    static Stream<Long> seeds() {
        return LongStream.range(0, 160).boxed();
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void matchesReference(long seed) {
        NativeTests.requireNative();
        SplittableRandom r = new SplittableRandom(seed * 7919 + 17);
        boolean gqa = seed % 4 == 3;
        int[] small = {1, 2, 3, 5, 7};
        MultiHeadReference.Call c = new MultiHeadReference.Call();
        int rank = gqa ? 3 : (seed % 3 == 0 ? 3 + r.nextInt(3) : 3);
        long b = 1 + r.nextInt(3);
        c.qShape = new long[rank];
        c.vShape = new long[rank];
        c.qShape[0] = c.vShape[0] = b;
        // attention axes
        int[] axes;
        if (rank == 3) {
            axes = new int[] {1};
        } else {
            int choice = r.nextInt(4);
            axes = switch (choice) {
                case 0 -> new int[] {1};
                case 1 -> new int[] {rank - 2};
                case 2 -> java.util.stream.IntStream.range(1, rank - 1).toArray();
                default -> rank == 5 ? new int[] {1, 3} : new int[] {2};
            };
        }
        c.axes = axes;
        boolean[] isAxis = new boolean[rank];
        for (int a : axes) {
            isAxis[a] = true;
        }
        for (int i = 1; i < rank - 1; i++) {
            c.qShape[i] = small[r.nextInt(small.length)];
            c.vShape[i] = isAxis[i] ? small[r.nextInt(small.length)] : c.qShape[i];
        }
        int dq = 1 + r.nextInt(8);
        int dv = 1 + r.nextInt(8);
        boolean withKey = r.nextBoolean();
        c.dk = withKey ? 1 + r.nextInt(8) : dv;
        c.qShape[rank - 1] = dq;
        c.vShape[rank - 1] = dv;
        if (gqa) {
            c.kv = 1 + r.nextInt(3);
            c.n = c.kv * (1 + r.nextInt(3));
            c.h = c.hv = 1 + r.nextInt(6);
            c.out = new long[] {dq};
        } else {
            c.n = 1 + r.nextInt(5);
            c.kv = c.n;
            c.h = 1 + r.nextInt(6);
            c.hv = r.nextBoolean() ? c.h : 1 + r.nextInt(6);
            c.out = switch (r.nextInt(3)) {
                case 0 -> new long[] {dq};
                case 1 -> new long[] {1 + r.nextInt(6)};
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
        long t = 1, s = 1;
        for (int a : axes) {
            t *= c.qShape[a];
            s *= c.vShape[a];
        }
        c.q = TestData.floats(r, (int) MultiHeadReference.prod(c.qShape, 0, rank), -1, 1);
        c.v = TestData.floats(r, (int) MultiHeadReference.prod(c.vShape, 0, rank), -1, 1);
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
            Tensor v = Tensor.of(arena, c.v, c.vShape);
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
                    args = args.withQueryMask(Tensor.ofMask(arena, c.queryMask, b, t));
                }
                if (r.nextInt(3) == 0) {
                    c.valueMask = TestData.booleans(r, (int) (b * s), 0.7);
                    args = args.withValueMask(Tensor.ofMask(arena, c.valueMask, b, s));
                }
                if (r.nextInt(4) == 0) {
                    c.keyMask = TestData.booleans(r, (int) (b * s), 0.7);
                    args = args.withKeyMask(Tensor.ofMask(arena, c.keyMask, b, s));
                }
            }
            long[] scoresShape = layer.computeAttentionScoresShape(q.shape(), v.shape(), k == null ? null : k.shape());
            if (r.nextInt(3) == 0) {
                // An attention mask in one of Keras's layouts, expanded here to the full scores.
                long groups = scoresShape.length == 4 ? b : MultiHeadReference.prod(scoresShape, 0,
                        scoresShape.length - 1 - 2 * axes.length);
                int layout = rank == 3 ? r.nextInt(3) : 1;
                long[] maskShape = switch (layout) {
                    case 0 -> new long[] {t, s};
                    case 1 -> rank == 3 ? new long[] {b, t, s} : dropHead(scoresShape, axes.length);
                    default -> new long[] {b, c.n, t, s};
                };
                boolean[] m = TestData.booleans(r, (int) MultiHeadReference.prod(maskShape, 0, maskShape.length), 0.7);
                args = args.withAttentionMask(Tensor.ofMask(arena, m, maskShape));
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
            String what = (gqa ? "GQA " : "MHA ") + MultiHeadReference.describe(c) + " scores " + returnScores;
            double err = TestData.maxRelError(got.output().toFloatArray(), want.output());
            assertTrue(err < 3e-5, () -> what + ": output error " + err);
            if (returnScores) {
                assertArrayEquals(want.scoresShape(), got.attentionScores().shape(), what);
                double es = TestData.maxRelError(got.attentionScores().toFloatArray(), want.scores());
                assertTrue(es < 3e-5, () -> what + ": scores error " + es);
            }
        }
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
}
