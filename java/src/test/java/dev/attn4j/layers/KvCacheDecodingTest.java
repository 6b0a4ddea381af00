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
 * Exactness of cached decoding: over {@value #CONFIGS} random configurations per layer,
 * decoding a sequence through a {@link KvCache} (token by token, in random chunks, or
 * ragged: rows with prompts of different lengths, then one token per row per step) gives
 * the rows of one full causal call on the whole sequence
 * ({@code CallArgs.withUseCausalMask(true)}), within 1e-5 relative to max(1, |expected|).
 *
 * <p>Coverage: MHA (key_dim != value_dim, custom output shapes) and GQA (head ratios 1 to
 * 4), biases on and off, use_gate, sliding windows smaller and larger than the sequence,
 * self-attention (query = value = key) and separate query / value / key tensors of other
 * feature sizes, batch 1 to 3, lengths 1 to 24, caches exactly full and with room left.
 * Every configuration is a pure function of its seed (replay: {@code -Dattn4j.test.seed=N}).
 *
 * <p>Tolerance: the full call and the cached one sum the same float32 products in other
 * orders (the full call's fused kernel against the cached path's GEMM + softmax); errors
 * seen are about 1e-6.
 */
class KvCacheDecodingTest {
    static final int CONFIGS = 300;
    private static final int[] SIZES = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17};

    @Test
    void multiHeadAttention() {
        runAll("MultiHeadAttention", 60_000, false);
    }

    @Test
    void groupQueryAttention() {
        runAll("GroupQueryAttention", 70_000, true);
    }

    private static void runAll(String what, long base, boolean gqa) {
        NativeTests.requireNative();
        String only = System.getProperty("attn4j.test.seed", "");
        long[] seeds = only.isBlank() ? IntStream.range(0, CONFIGS).mapToLong(i -> base + i).toArray()
                : new long[] {Long.parseLong(only.trim())};
        List<String> failures = new ArrayList<>();
        double[] worst = new double[1];
        for (long seed : seeds) {
            try {
                String f = check(seed, gqa, worst);
                if (f != null) {
                    failures.add("seed " + seed + ": " + f);
                }
            } catch (RuntimeException | AssertionError e) {
                failures.add("seed " + seed + ": " + e);
            }
        }
        System.out.printf("KvCacheDecodingTest %s: %d configurations, %d failed, max error %.2e%n", what,
                seeds.length, failures.size(), worst[0]);
        assertTrue(failures.isEmpty(), () -> what + ": " + failures.size() + " configurations differ:\n  "
                + String.join("\n  ", failures.subList(0, Math.min(10, failures.size()))));
    }

    enum Schedule { TOKENS, CHUNKS, RAGGED }

    /** Null when every decoded row matches the full causal call; else what differs. */
    static String check(long seed, boolean gqa, double[] worst) {
        SplittableRandom r = new SplittableRandom(seed);
        int b = 1 + r.nextInt(3);
        int t = 1 + r.nextInt(24);
        int d = SIZES[r.nextInt(SIZES.length)];
        int inputs = r.nextInt(3); // 0: self-attention, 1: query + value, 2: query + value + key
        int dv = inputs == 0 ? d : SIZES[r.nextInt(SIZES.length)];
        int dk = inputs == 2 ? SIZES[r.nextInt(SIZES.length)] : dv;
        boolean bias = r.nextBoolean();
        boolean gate = r.nextInt(3) == 0;
        Integer window = r.nextInt(3) == 0 ? 1 + r.nextInt(8) : null;
        Schedule schedule = Schedule.values()[r.nextInt(3)];
        String config;
        MultiHeadBase layer;
        if (gqa) {
            int kv = 1 + r.nextInt(3);
            int n = kv * (1 + r.nextInt(4));
            int h = SIZES[r.nextInt(SIZES.length)];
            layer = GroupQueryAttention.builder().headDim(h).numQueryHeads(n).numKeyValueHeads(kv).useBias(bias)
                    .useGate(gate).slidingWindow(window).build();
            config = "GQA n " + n + " kv " + kv + " h " + h;
        } else {
            int n = 1 + r.nextInt(4);
            int h = SIZES[r.nextInt(SIZES.length)];
            int hv = r.nextBoolean() ? h : SIZES[r.nextInt(SIZES.length)];
            MultiHeadAttention.Builder mb = MultiHeadAttention.builder().numHeads(n).keyDim(h).valueDim(hv)
                    .useBias(bias).useGate(gate).slidingWindow(window);
            long[] out = switch (r.nextInt(4)) {
                case 0 -> new long[] {5};
                case 1 -> new long[] {2, 3};
                default -> null;
            };
            if (out != null) {
                mb.outputShape(out);
            }
            layer = mb.build();
            config = "MHA n " + n + " h " + h + " hv " + hv + " out " + Arrays.toString(out);
        }
        config += " B " + b + " T " + t + " D " + d + " Dv " + dv + " Dk " + dk + " inputs " + inputs + " bias "
                + bias + " gate " + gate + " window " + window + " " + schedule;
        try (Arena arena = Arena.ofConfined(); MultiHeadBase l = layer) {
            float[] xq = TestData.floats(r, b * t * d, -1, 1);
            float[] xv = inputs == 0 ? xq : TestData.floats(r, b * t * dv, -1, 1);
            float[] xk = inputs == 2 ? TestData.floats(r, b * t * dk, -1, 1) : null;
            Tensor q = Tensor.of(arena, xq, b, t, d);
            Tensor v = inputs == 0 ? q : Tensor.of(arena, xv, b, t, dv);
            Tensor k = xk == null ? null : Tensor.of(arena, xk, b, t, dk);
            l.build(q.shape(), v.shape(), k == null ? null : k.shape());
            float[][] weights = new float[l.weights().size()][];
            for (int i = 0; i < weights.length; i++) {
                weights[i] = TestData.floats(r, (int) l.weights().get(i).size(), -0.6, 0.6);
            }
            l.setWeights(weights);
            Tensor full = l.call(arena, CallArgs.of(q, v).withKey(k).withUseCausalMask(true)).output();
            float[] expected = full.toFloatArray();
            int outCols = (int) (full.size() / ((long) b * t));

            int maxLen = t + (schedule == Schedule.RAGGED ? 0 : r.nextInt(3));
            try (KvCache cache = KvCache.create(l, b, maxLen)) {
                int[] start = new int[b];
                List<int[]> calls = new ArrayList<>(); // {tq, newLengths...}
                if (schedule == Schedule.RAGGED) {
                    int[] prompt = new int[b];
                    int p = 0;
                    for (int i = 0; i < b; i++) {
                        prompt[i] = 1 + r.nextInt(t);
                        p = Math.max(p, prompt[i]);
                    }
                    String err = decode(l, cache, arena, xq, xv, xk, d, dv, dk, t, p, prompt, start, expected,
                            outCols, worst);
                    if (err != null) {
                        return config + ": prompt " + Arrays.toString(prompt) + ": " + err;
                    }
                    while (Arrays.stream(start).anyMatch(s -> s < t)) {
                        int[] one = new int[b];
                        for (int i = 0; i < b; i++) {
                            one[i] = start[i] < t ? 1 : 0;
                        }
                        err = decode(l, cache, arena, xq, xv, xk, d, dv, dk, t, 1, one, start, expected, outCols,
                                worst);
                        if (err != null) {
                            return config + ": step at " + Arrays.toString(start) + ": " + err;
                        }
                    }
                } else {
                    while (start[0] < t) {
                        int m = schedule == Schedule.TOKENS ? 1 : 1 + r.nextInt(Math.min(6, t - start[0]));
                        String err = decode(l, cache, arena, xq, xv, xk, d, dv, dk, t, m, null, start, expected,
                                outCols, worst);
                        if (err != null) {
                            return config + ": chunk of " + m + " at " + start[0] + ": " + err;
                        }
                    }
                }
                for (int i = 0; i < b; i++) {
                    if (cache.length(i) != t) {
                        return config + ": row " + i + " has length " + cache.length(i) + ", not " + t;
                    }
                }
            }
        }
        return null;
    }

    /**
     * One cached call bringing positions start[i] .. start[i] + m - 1 of each row (taken
     * from the full inputs; past the end or the row's newLengths: padding), then compares
     * the real rows with the full call and advances start; null when they match.
     */
    private static String decode(MultiHeadBase l, KvCache cache, Arena arena, float[] xq, float[] xv, float[] xk,
                               int d, int dv, int dk, int t, int m, int[] newLengths, int[] start, float[] expected,
                               int outCols, double[] worst) {
        int b = start.length;
        Tensor q = Tensor.of(arena, window(xq, b, t, d, start, m), b, m, d);
        Tensor v = xv == xq ? q : Tensor.of(arena, window(xv, b, t, dv, start, m), b, m, dv);
        Tensor k = xk == null ? null : Tensor.of(arena, window(xk, b, t, dk, start, m), b, m, dk);
        long[] outShape = l.computeOutputShape(q.shape(), v.shape(), k == null ? null : k.shape());
        Tensor out = Tensor.allocate(arena, outShape);
        l.callCachedInto(cache, q, v, k, newLengths, out);
        float[] got = out.toFloatArray();
        for (int i = 0; i < b; i++) {
            int real = newLengths == null ? m : newLengths[i];
            float[] g = Arrays.copyOfRange(got, i * m * outCols, (i * m + real) * outCols);
            int from = (i * t + start[i]) * outCols;
            float[] e = Arrays.copyOfRange(expected, from, from + real * outCols);
            double err = TestData.maxRelError(g, e);
            worst[0] = Math.max(worst[0], err);
            if (!(err < 1e-5)) {
                return "row " + i + " positions " + start[i] + ".." + (start[i] + real - 1) + ": error " + err;
            }
            start[i] += real;
        }
        return null;
    }

    /** Positions start[i] .. start[i] + m - 1 of each row of x (B, T, F); zeros past T. */
    private static float[] window(float[] x, int b, int t, int f, int[] start, int m) {
        float[] w = new float[b * m * f];
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < m && start[i] + j < t; j++) {
                System.arraycopy(x, (i * t + start[i] + j) * f, w, (i * m + j) * f, f);
            }
        }
        return w;
    }
}
