package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import dev.attn4j.conformance.ConformanceRunner;
import dev.attn4j.conformance.GoldenCase;
import dev.attn4j.conformance.GoldenCases;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * {@link KvCache} and the cached call: Keras's own numbers (golden cases decoded token
 * by token), the cache's life cycle (reset, truncate, full, closed), the errors for a
 * wrong layer or shape, and a shared layer decoding several caches from several threads.
 */
class KvCacheTest {
    private static final int D = 6;

    private static MultiHeadAttention mha() {
        MultiHeadAttention l = MultiHeadAttention.builder().numHeads(2).keyDim(3).valueDim(4).build();
        l.build(new long[] {1, 1, D}, new long[] {1, 1, D}, null);
        setRandomWeights(l, 7);
        return l;
    }

    private static void setRandomWeights(AttentionLayer l, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[][] w = new float[l.weights().size()][];
        for (int i = 0; i < w.length; i++) {
            w[i] = TestData.floats(r, (int) l.weights().get(i).size(), -0.5, 0.5);
        }
        l.setWeights(w);
    }

    private static Tensor tokens(Arena arena, long seed, int b, int t) {
        return Tensor.of(arena, TestData.floats(new SplittableRandom(seed), b * t * D, -1, 1), b, t, D);
    }

    /** Row positions [from, to) of x (B, T, F) as a new tensor. */
    private static Tensor positions(Arena arena, Tensor x, int from, int to) {
        int b = (int) x.dim(0);
        int t = (int) x.dim(1);
        int f = (int) x.dim(2);
        float[] all = x.toFloatArray();
        float[] w = new float[b * (to - from) * f];
        for (int i = 0; i < b; i++) {
            System.arraycopy(all, (i * t + from) * f, w, i * (to - from) * f, (to - from) * f);
        }
        return Tensor.of(arena, w, b, to - from, f);
    }

    private static float[] fullCausal(MultiHeadBase l, Arena arena, Tensor x) {
        return l.call(arena, CallArgs.of(x, x).withUseCausalMask(true)).output().toFloatArray();
    }

    private static float[] decodeAll(MultiHeadBase l, Arena arena, KvCache cache, Tensor x) {
        int t = (int) x.dim(1);
        List<float[]> steps = new ArrayList<>();
        for (int p = 0; p < t; p++) {
            Tensor step = positions(arena, x, p, p + 1);
            steps.add(l.callCached(arena, cache, step, step).toFloatArray());
        }
        return interleave(steps, (int) x.dim(0));
    }

    /** Per-step outputs (B, 1, F) back into (B, T, F). */
    private static float[] interleave(List<float[]> steps, int b) {
        int f = steps.get(0).length / b;
        float[] out = new float[b * steps.size() * f];
        for (int p = 0; p < steps.size(); p++) {
            for (int i = 0; i < b; i++) {
                System.arraycopy(steps.get(p), i * f, out, (i * steps.size() + p) * f, f);
            }
        }
        return out;
    }

    // ---- Keras's numbers ------------------------------------------------------------------

    /**
     * The golden cases of a causal call whose query and value have the same positions
     * (mha_causal_fast, mha_causal_scores, mha_sliding_window_causal, gqa_self_causal_fast,
     * gqa_self_causal_scores): the layer from Keras's config and weights, decoded token by
     * token, gives Keras's output within the conformance tolerance.
     */
    @ParameterizedTest
    @ValueSource(strings = {"multi_head_attention.json:mha_causal_fast", "multi_head_attention.json:mha_causal_scores",
            "multi_head_attention.json:mha_sliding_window_causal",
            "grouped_query_attention.json:gqa_self_causal_fast", "grouped_query_attention.json:gqa_self_causal_scores"})
    void decodingMatchesKerasGoldenCausalCalls(String which) throws Exception {
        NativeTests.requireNative();
        String[] parts = which.split(":");
        Path file = Path.of(KvCacheTest.class.getResource("/keras-golden/" + parts[0]).toURI());
        GoldenCase c = GoldenCases.load(file).stream().filter(g -> g.id().equals(parts[1])).findFirst().orElseThrow();
        assertEquals(Boolean.TRUE, c.callKwargs().get("use_causal_mask"), which);
        assertTrue(c.masks().isEmpty(), which);
        GoldenCase.Array qa = c.inputs().get("query");
        GoldenCase.Array va = c.inputs().get("value");
        assertArrayEquals(qa.shape(), va.shape(), which + ": query and value positions differ");
        assertFalse(c.inputs().containsKey("key"), which);
        try (Arena arena = Arena.ofConfined();
             MultiHeadBase layer = (MultiHeadBase) Layers.fromConfig(c.className(), c.config())) {
            Tensor q = Tensor.of(arena, qa.floats(), qa.shape());
            Tensor v = va.sameTensorAs() != null ? q : Tensor.of(arena, va.floats(), va.shape());
            layer.build(q.shape(), v.shape(), null);
            List<Tensor> weights = new ArrayList<>();
            for (GoldenCase.Array w : c.weights()) {
                weights.add(Tensor.of(arena, w.floats(), w.shape()));
            }
            layer.setWeights(weights);
            int b = (int) q.dim(0);
            int t = (int) q.dim(1);
            float[] want = c.expected().get("output").floats();
            try (KvCache cache = KvCache.create(layer, b, t)) {
                List<float[]> steps = new ArrayList<>();
                for (int p = 0; p < t; p++) {
                    Tensor qs = positions(arena, q, p, p + 1);
                    Tensor vs = v == q ? qs : positions(arena, v, p, p + 1);
                    steps.add(layer.callCached(arena, cache, qs, vs).toFloatArray());
                }
                float[] got = interleave(steps, b);
                for (int i = 0; i < want.length; i++) {
                    double tol = ConformanceRunner.ABS_TOLERANCE + ConformanceRunner.REL_TOLERANCE * Math.abs(want[i]);
                    int at = i;
                    assertTrue(Math.abs(got[i] - want[i]) <= tol,
                            () -> which + ": element " + at + " is " + got[at] + ", Keras " + want[at]);
                }
                // and in one chunk (the prompt path)
                cache.reset();
                float[] chunk = layer.callCached(arena, cache, q, v).toFloatArray();
                for (int i = 0; i < want.length; i++) {
                    assertEquals(want[i], chunk[i], 1e-5 + 1e-5 * Math.abs(want[i]), which + " (one chunk)");
                }
            }
        }
    }

    // ---- life cycle -----------------------------------------------------------------------

    @Test
    void sizesAndLengths() {
        try (GroupQueryAttention gqa = GroupQueryAttention.builder().headDim(4).numQueryHeads(8)
                .numKeyValueHeads(2).build()) {
            gqa.build(new long[] {3, 1, D}, new long[] {3, 1, D}, null);
            try (KvCache cache = KvCache.create(gqa, 3, 10)) {
                assertEquals(3, cache.batch());
                assertEquals(10, cache.maxLength());
                assertEquals(2, cache.keyValueHeads()); // only the shared heads, never repeated
                assertEquals(4, cache.keySize());
                assertEquals(4, cache.valueSize());
                assertEquals(2L * 3 * 2 * 10 * 4 * 4, cache.byteSize());
                assertArrayEquals(new int[3], cache.lengths());
                assertTrue(cache.keys().isReadOnly());
            }
        }
    }

    @Test
    void resetAndTruncateRewindTheSequence() {
        NativeTests.requireNative();
        try (Arena arena = Arena.ofConfined(); MultiHeadAttention l = mha(); KvCache cache = KvCache.create(l, 2, 8)) {
            Tensor x = tokens(arena, 1, 2, 6);
            float[] want = fullCausal(l, arena, x);
            float[] first = decodeAll(l, arena, cache, x);
            assertArrayEquals(new int[] {6, 6}, cache.lengths());
            assertTrue(TestData.maxRelError(first, want) < 1e-5);

            cache.reset();
            assertArrayEquals(new int[] {0, 0}, cache.lengths());
            assertEquals(0f, cache.keys().get(ValueLayout.JAVA_FLOAT, 0)); // cleared
            assertArrayEquals(first, decodeAll(l, arena, cache, x)); // bit for bit again

            // Drop the last two positions, then decode other tokens there: the prefix of
            // 4 and the 2 new ones are a sequence of their own.
            cache.truncate(4);
            assertArrayEquals(new int[] {4, 4}, cache.lengths());
            Tensor other = tokens(arena, 2, 2, 2);
            Tensor tail = l.callCached(arena, cache, other, other);
            float[] xs = x.toFloatArray();
            float[] os = other.toFloatArray();
            float[] joined = new float[2 * 6 * D];
            for (int i = 0; i < 2; i++) {
                System.arraycopy(xs, i * 6 * D, joined, i * 6 * D, 4 * D);
                System.arraycopy(os, i * 2 * D, joined, (i * 6 + 4) * D, 2 * D);
            }
            float[] wantJoined = fullCausal(l, arena, Tensor.of(arena, joined, 2, 6, D));
            float[] got = tail.toFloatArray();
            for (int i = 0; i < 2; i++) {
                float[] g = Arrays.copyOfRange(got, i * 2 * D, (i + 1) * 2 * D);
                float[] e = Arrays.copyOfRange(wantJoined, (i * 6 + 4) * D, (i + 1) * 6 * D);
                assertTrue(TestData.maxRelError(g, e) < 1e-5, "row " + i);
            }

            // One row rewound alone (a new request in a finished slot).
            cache.reset(1);
            assertArrayEquals(new int[] {6, 0}, cache.lengths());
            cache.truncate(0, 3);
            assertArrayEquals(new int[] {3, 0}, cache.lengths());
            IllegalArgumentException longer = assertThrows(IllegalArgumentException.class, () -> cache.truncate(0, 5));
            assertTrue(longer.getMessage().contains("length must be in [0, 3]"), longer.getMessage());
            assertThrows(IllegalArgumentException.class, () -> cache.truncate(1));
            assertThrows(IndexOutOfBoundsException.class, () -> cache.length(2));
        }
    }

    @Test
    void aFullCacheIsAClearErrorAndChangesNothing() {
        NativeTests.requireNative();
        try (Arena arena = Arena.ofConfined(); MultiHeadAttention l = mha(); KvCache cache = KvCache.create(l, 1, 3)) {
            Tensor two = tokens(arena, 3, 1, 2);
            l.callCached(arena, cache, two, two);
            IllegalStateException full = assertThrows(IllegalStateException.class,
                    () -> l.callCached(arena, cache, two, two));
            assertTrue(full.getMessage().contains("the cache is full: row 0 holds 2 of 3 positions and cannot take 2"),
                    full.getMessage());
            assertEquals(2, cache.length(0));
            Tensor one = tokens(arena, 4, 1, 1);
            l.callCached(arena, cache, one, one);
            assertEquals(3, cache.length(0));
            assertThrows(IllegalStateException.class, () -> l.callCached(arena, cache, one, one));
        }
    }

    @Test
    void closedCacheAndCacheInUse() {
        try (Arena arena = Arena.ofConfined(); MultiHeadAttention l = mha()) {
            KvCache cache = KvCache.create(l, 1, 4);
            Tensor one = tokens(arena, 5, 1, 1);
            cache.acquire("test"); // as a call running on another thread would
            IllegalStateException busy = assertThrows(IllegalStateException.class,
                    () -> l.callCached(arena, cache, one, one));
            assertTrue(busy.getMessage().contains("in use by another thread"), busy.getMessage());
            assertThrows(IllegalStateException.class, cache::close);
            cache.release();
            cache.close();
            cache.close(); // idempotent
            assertFalse(cache.isOpen());
            IllegalStateException closed = assertThrows(IllegalStateException.class,
                    () -> l.callCached(arena, cache, one, one));
            assertTrue(closed.getMessage().contains("KvCache is closed"), closed.getMessage());
            assertThrows(IllegalStateException.class, cache::reset);
        }
    }

    @Test
    void wrongLayerAndWrongShapes() {
        try (Arena arena = Arena.ofConfined(); MultiHeadAttention a = mha(); MultiHeadAttention b = mha();
             KvCache cache = KvCache.create(a, 2, 4)) {
            Tensor ok = tokens(arena, 6, 2, 1);
            IllegalArgumentException other = assertThrows(IllegalArgumentException.class,
                    () -> b.callCached(arena, cache, ok, ok));
            assertTrue(other.getMessage().contains("the cache belongs to layer '" + a.name() + "', not to layer '"
                    + b.name() + "'"), other.getMessage());
            Tensor batch3 = Tensor.allocate(arena, 3, 1, D);
            IllegalArgumentException batch = assertThrows(IllegalArgumentException.class,
                    () -> a.callCached(arena, cache, batch3, batch3));
            assertTrue(batch.getMessage().contains("query must have batch 2 (the cache's)"), batch.getMessage());
            Tensor features = Tensor.allocate(arena, 2, 1, D + 1);
            IllegalArgumentException feat = assertThrows(IllegalArgumentException.class,
                    () -> a.callCached(arena, cache, features, features));
            assertTrue(feat.getMessage().contains("query must have shape [2, 1, 6]"), feat.getMessage());
            Tensor value2 = Tensor.allocate(arena, 2, 2, D);
            IllegalArgumentException positions = assertThrows(IllegalArgumentException.class,
                    () -> a.callCached(arena, cache, ok, value2));
            assertTrue(positions.getMessage().contains("value must have shape [2, 1, 6]"), positions.getMessage());
            Tensor out = Tensor.allocate(arena, 2, 1, D + 2);
            IllegalArgumentException o = assertThrows(IllegalArgumentException.class,
                    () -> a.callCachedInto(cache, ok, ok, null, null, out));
            assertTrue(o.getMessage().contains("output must be float32 of shape [2, 1, 6]"), o.getMessage());
            Tensor good = Tensor.allocate(arena, 2, 1, D);
            IllegalArgumentException lens = assertThrows(IllegalArgumentException.class,
                    () -> a.callCachedInto(cache, ok, ok, null, new int[] {1, 2}, good));
            assertTrue(lens.getMessage().contains("newLengths[1] must be in [0, 1]"), lens.getMessage());
            assertArrayEquals(new int[] {0, 0}, cache.lengths()); // nothing was appended
        }
    }

    @Test
    void creationNeedsABuiltThreeDimensionalLayer() {
        try (MultiHeadAttention unbuilt = MultiHeadAttention.builder().numHeads(2).keyDim(2).build();
             MultiHeadAttention fourD = MultiHeadAttention.builder().numHeads(2).keyDim(2).attentionAxes(1, 2)
                     .build()) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> KvCache.create(unbuilt, 1, 4));
            assertTrue(e.getMessage().contains("is not built yet"), e.getMessage());
            fourD.build(new long[] {1, 2, 3, 4}, new long[] {1, 2, 3, 4}, null);
            IllegalArgumentException axes = assertThrows(IllegalArgumentException.class,
                    () -> KvCache.create(fourD, 1, 4));
            assertTrue(axes.getMessage().contains("attention axes [1, 2]"), axes.getMessage());
        }
        try (MultiHeadAttention l = mha()) {
            assertThrows(IllegalArgumentException.class, () -> KvCache.create(l, 0, 4));
            assertThrows(IllegalArgumentException.class, () -> KvCache.create(l, 1, 0));
        }
    }

    // ---- threads --------------------------------------------------------------------------

    /**
     * One layer, eight caches decoding eight different sequences on four threads at once,
     * gives bit for bit what decoding them one after the other gives.
     */
    @Test
    void sharedLayerWithOneCachePerSequenceGroup() throws Exception {
        NativeTests.requireNative();
        try (GroupQueryAttention l = GroupQueryAttention.builder().headDim(4).numQueryHeads(4).numKeyValueHeads(2)
                .slidingWindow(5).build(); Arena arena = Arena.ofShared()) {
            l.build(new long[] {2, 1, D}, new long[] {2, 1, D}, null);
            setRandomWeights(l, 11);
            int groups = 8;
            List<Tensor> inputs = new ArrayList<>();
            List<float[]> sequential = new ArrayList<>();
            for (int g = 0; g < groups; g++) {
                Tensor x = tokens(arena, 100 + g, 2, 12);
                inputs.add(x);
                try (KvCache cache = KvCache.create(l, 2, 12)) {
                    sequential.add(decodeAll(l, arena, cache, x));
                }
            }
            ExecutorService pool = Executors.newFixedThreadPool(4);
            try {
                for (int round = 0; round < 5; round++) {
                    List<Future<float[]>> results = new ArrayList<>();
                    for (int g = 0; g < groups; g++) {
                        Tensor x = inputs.get(g);
                        results.add(pool.submit(() -> {
                            try (Arena own = Arena.ofConfined(); KvCache cache = KvCache.create(l, 2, 12)) {
                                return decodeAll(l, own, cache, x);
                            }
                        }));
                    }
                    for (int g = 0; g < groups; g++) {
                        assertArrayEquals(sequential.get(g), results.get(g).get(), "group " + g + " round " + round);
                    }
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }
}
