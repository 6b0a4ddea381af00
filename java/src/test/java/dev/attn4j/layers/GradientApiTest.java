package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.GemmRoute;
import dev.attn4j.internal.backend.NativeBackend;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * The backward API: argument checks (each before any native product), the mask rules
 * with hand-derived results, dropout's recorded mask, determinism and shared use.
 */
class GradientApiTest {

    private static MultiHeadAttention mha() {
        return MultiHeadAttention.builder().numHeads(2).keyDim(3).seed(7L).build();
    }

    private static long gemmCalls() {
        NativeBackend nb = Backends.selection().nativeBackend();
        long n = 0;
        for (GemmRoute r : GemmRoute.values()) {
            n += nb == null ? 0 : nb.routeCount(r);
        }
        return n;
    }

    /** Asserts that {@code action} throws {@code type} with these message fragments, before any GEMM. */
    private static void rejects(Class<? extends Throwable> type, Runnable action, String... fragments) {
        long before = gemmCalls();
        Throwable t = assertThrows(type, action::run);
        for (String f : fragments) {
            assertTrue(t.getMessage().contains(f), () -> "message lacks \"" + f + "\": " + t.getMessage());
        }
        assertEquals(before, gemmCalls(), "a matrix product ran before the check: " + t.getMessage());
    }

    @Test
    void backwardChecksItsArgumentsBeforeAnyProduct() {
        NativeTests.requireNative();
        try (MultiHeadAttention layer = mha(); MultiHeadAttention other = mha(); Arena arena = Arena.ofConfined()) {
            SplittableRandom r = new SplittableRandom(1);
            Tensor x = Tensor.of(arena, TestData.floats(r, 2 * 5 * 4, -1, 1), 2, 5, 4);
            ForwardPass fwd = layer.forward(arena, CallArgs.of(x, x));
            Tensor good = Tensor.allocate(arena, 2, 5, 4);
            rejects(NullPointerException.class, () -> layer.backward(null, fwd, good), "MultiHeadAttention.backward",
                    "arena must not be null");
            rejects(NullPointerException.class, () -> layer.backward(arena, null, good), "forward must not be null");
            rejects(NullPointerException.class, () -> layer.backward(arena, fwd, null),
                    "outputGradient must not be null");
            rejects(IllegalArgumentException.class, () -> layer.backward(arena, fwd, Tensor.allocate(arena, 2, 5, 3)),
                    "outputGradient must be float32 of the output's shape [2, 5, 4]", "[2, 5, 3]");
            rejects(IllegalArgumentException.class,
                    () -> layer.backward(arena, fwd, Tensor.allocateMask(arena, 2, 5, 4)),
                    "outputGradient must be float32");
            other.build(x.shape(), x.shape(), null);
            rejects(IllegalArgumentException.class, () -> other.backward(arena, fwd, good),
                    "forward was made by layer '" + layer.name() + "'", "not by this layer '" + other.name() + "'");
            Tensor closedGradient;
            try (Arena gone = Arena.ofConfined()) {
                closedGradient = Tensor.allocate(gone, 2, 5, 4);
            }
            rejects(IllegalStateException.class, () -> layer.backward(arena, fwd, closedGradient),
                    "the arena of outputGradient");

            // An input whose arena closed after the forward pass.
            ForwardPass stale;
            try (Arena inputs = Arena.ofConfined()) {
                Tensor q = Tensor.of(inputs, TestData.floats(r, 2 * 5 * 4, -1, 1), 2, 5, 4);
                stale = layer.forward(arena, CallArgs.of(q, x));
            }
            rejects(IllegalStateException.class, () -> layer.backward(arena, stale, good), "the arena of query");

            // The forward pass's own arena closed: its saved activations are gone.
            ForwardPass orphan;
            try (Arena forwardArena = Arena.ofConfined()) {
                orphan = layer.forward(forwardArena, CallArgs.of(x, x));
            }
            rejects(IllegalStateException.class, () -> layer.backward(arena, orphan, good),
                    "the arena of the forward pass is closed");

            // Weights changed since the forward pass.
            List<float[]> w = new ArrayList<>();
            for (Weight weight : layer.weights()) {
                w.add(weight.toFloatArray());
            }
            layer.setWeights(w.toArray(float[][]::new));
            rejects(IllegalStateException.class, () -> layer.backward(arena, fwd, good),
                    "weights of layer '" + layer.name() + "' changed after the forward pass");
            layer.close();
            rejects(IllegalStateException.class, () -> layer.backward(arena, fwd, good), "is closed");
        }
    }

    @Test
    void forwardChecksLikeCall() {
        try (MultiHeadAttention layer = mha(); Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.allocate(arena, 2, 5, 4);
            rejects(NullPointerException.class, () -> layer.forward(null, CallArgs.of(x, x)),
                    "MultiHeadAttention.forward", "arena must not be null");
            rejects(NullPointerException.class, () -> layer.forward(arena, null), "args must not be null");
            rejects(IllegalArgumentException.class,
                    () -> layer.forward(arena, CallArgs.of(Tensor.allocate(arena, 5, 4), x)), "rank >= 3");
        }
    }

    @Test
    void gradientsAreNamedLikeTheWeights() {
        NativeTests.requireNative();
        try (MultiHeadAttention layer = MultiHeadAttention.builder().numHeads(2).keyDim(3).useGate(true)
                .name("mha_g").build(); Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.of(arena, TestData.floats(new SplittableRandom(2), 30, -1, 1), 1, 6, 5);
            Tensor key = Tensor.of(arena, TestData.floats(new SplittableRandom(3), 12, -1, 1), 1, 4, 3);
            Tensor value = Tensor.of(arena, TestData.floats(new SplittableRandom(4), 8, -1, 1), 1, 4, 2);
            ForwardPass fwd = layer.forward(arena, CallArgs.of(x, value).withKey(key));
            Gradients g = layer.backward(arena, fwd, Tensor.of(arena, new float[30], 1, 6, 5));
            assertEquals(layer.weights().stream().map(Weight::path).toList(),
                    g.weights().stream().map(Weight::path).toList());
            assertArrayEquals(new long[] {1, 4, 3}, g.key().shape());
            assertArrayEquals(new long[] {1, 4, 2}, g.value().shape());
            assertArrayEquals(new long[] {5, 2, 3}, g.weight("mha_g/gate/kernel").shape());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> g.weight("kernel"));
            assertTrue(e.getMessage().contains("no single weight"), e.getMessage());
            // A zero output gradient gives zero gradients everywhere.
            for (Weight w : g.weights()) {
                for (float v : w.toFloatArray()) {
                    assertEquals(0f, v, w.path());
                }
            }
            Tensor dq = g.weight("mha_g/query/kernel");
            dq.set(1f, 0, 0, 0); // the caller's own memory
            assertEquals(1f, dq.get(0, 0, 0));
        }
        try (Attention dot = Attention.builder().useScale(true).build(); Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.of(arena, TestData.floats(new SplittableRandom(5), 12, -1, 1), 1, 3, 4);
            ForwardPass fwd = dot.forward(arena, CallArgs.of(q, q));
            Gradients g = dot.backward(arena, fwd, q);
            assertNull(g.key(), "no key argument: its share is in the value's gradient");
            assertArrayEquals(new long[0], g.weight("scale").shape());
        }
    }

    /**
     * Hand-derived: with a sliding window of 1 every query attends to its own key only,
     * P is the identity whatever the scores, so the scores get no gradient: the query and
     * key kernels' and biases' gradients are exactly 0, while the value path's are not.
     */
    @Test
    void aWindowOfOneLeavesTheScoresWithoutGradient() {
        NativeTests.requireNative();
        for (boolean scores : new boolean[] {false, true}) { // flash path and einsum path
            try (MultiHeadAttention layer = MultiHeadAttention.builder().numHeads(2).keyDim(3).slidingWindow(1)
                    .seed(3L).build(); Arena arena = Arena.ofConfined()) {
                SplittableRandom r = new SplittableRandom(6);
                Tensor x = Tensor.of(arena, TestData.floats(r, 2 * 7 * 4, -1, 1), 2, 7, 4);
                layer.build(x.shape(), x.shape(), null);
                randomWeights(layer, r);
                ForwardPass fwd = layer.forward(arena, CallArgs.of(x, x).withReturnAttentionScores(scores));
                Gradients g = layer.backward(arena, fwd, Tensor.of(arena, TestData.floats(r, 56, -1, 1), 2, 7, 4));
                for (String zero : new String[] {"query/kernel", "query/bias", "key/kernel", "key/bias"}) {
                    float[] v = g.weight(layer.name() + "/" + zero).toFloatArray();
                    assertArrayEquals(new float[v.length], v, zero + " (scores " + scores + ")");
                }
                assertTrue(maxAbs(g.weight(layer.name() + "/value/kernel").toFloatArray()) > 1e-3);
            }
        }
    }

    /**
     * Hand-derived, causal: the loss reads only output row 0, which attends to position 0
     * alone, so the key and value gradients of positions 1.. are exactly 0 and so are the
     * query's (row 0's scores have one kept key: P = 1, no gradient; the others are not read).
     */
    @Test
    void causalRowsPassNothingToFuturePositions() {
        NativeTests.requireNative();
        for (boolean scores : new boolean[] {false, true}) {
            try (MultiHeadAttention layer = mha(); Arena arena = Arena.ofConfined()) {
                SplittableRandom r = new SplittableRandom(8);
                Tensor q = Tensor.of(arena, TestData.floats(r, 6 * 4, -1, 1), 1, 6, 4);
                Tensor kv = Tensor.of(arena, TestData.floats(r, 6 * 4, -1, 1), 1, 6, 4);
                layer.build(q.shape(), kv.shape(), null);
                randomWeights(layer, r);
                ForwardPass fwd = layer.forward(arena, CallArgs.of(q, kv).withUseCausalMask(true)
                        .withReturnAttentionScores(scores));
                float[] dOut = new float[24];
                for (int c = 0; c < 4; c++) {
                    dOut[c] = 1f;
                }
                Gradients g = layer.backward(arena, fwd, Tensor.of(arena, dOut, 1, 6, 4));
                float[] dv = g.value().toFloatArray();
                assertTrue(maxAbs(Arrays.copyOf(dv, 4)) > 1e-4, "position 0 feeds output 0");
                assertArrayEquals(new float[20], Arrays.copyOfRange(dv, 4, 24), "future positions");
                // One kept key: P = 1 and no gradient to the scores (up to rounding on the fused
                // path, whose row statistic do . o and do . v_0 are summed in other orders).
                assertArrayEquals(new float[24], g.query().toFloatArray(), 1e-6f, "one kept key: P = 1");
            }
        }
    }

    /**
     * Keras's Attention masks with {@code s - 1e9}, whose derivative is 1: a fully masked
     * row (uniform weights) still passes a gradient to its scores, unlike the multi-head
     * layers' replaced logits. Checked against the formula on a 1 x 2 case by hand:
     * P = (1/2, 1/2), dP_j = dO . v_j, ds_j = P_j (dP_j - mean dP), dq = scale sum_j ds_j k_j.
     */
    @Test
    void attentionPassesGradientThroughAFullyMaskedRowAsKerasDoes() {
        NativeTests.requireNative();
        try (Attention dot = Attention.builder().build(); Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.of(arena, new float[] {0.5f, -0.25f}, 1, 1, 2);
            Tensor v = Tensor.of(arena, new float[] {1f, 2f, -1f, 0.5f}, 1, 2, 2);
            Tensor none = Tensor.ofMask(arena, new boolean[] {false, false}, 1, 2);
            ForwardPass fwd = dot.forward(arena, CallArgs.of(q, v).withValueMask(none));
            assertArrayEquals(new float[] {0f, 1.25f}, fwd.output().toFloatArray(), 1e-6f, "uniform weights");
            Gradients g = dot.backward(arena, fwd, Tensor.of(arena, new float[] {1f, 1f}, 1, 1, 2));
            // dP = (3, -0.5), mean 1.25: ds = (0.875, -0.875); dq = 0.875 (1, 2) - 0.875 (-1, 0.5)
            assertArrayEquals(new float[] {1.75f, 1.3125f}, g.query().toFloatArray(), 1e-6f);
        }
    }

    @Test
    void trainingDropoutUsesTheForwardsMask() {
        NativeTests.requireNative();
        Function<Long, MultiHeadAttention> make = seed -> MultiHeadAttention.builder().numHeads(2).keyDim(3)
                .dropout(0.5).seed(seed).build();
        try (MultiHeadAttention layer = make.apply(11L); MultiHeadAttention twin = make.apply(11L);
             Arena arena = Arena.ofConfined()) {
            SplittableRandom r = new SplittableRandom(9);
            Tensor x = Tensor.of(arena, TestData.floats(r, 2 * 6 * 4, -1, 1), 2, 6, 4);
            Tensor dOut = Tensor.of(arena, TestData.floats(r, 2 * 6 * 4, -1, 1), 2, 6, 4);
            layer.build(x.shape(), x.shape(), null);
            twin.build(x.shape(), x.shape(), null);
            float[][] w = randomWeights(layer, r);
            twin.setWeights(w);
            CallArgs args = CallArgs.of(x, x).withTraining(true);
            ForwardPass first = layer.forward(arena, args);
            ForwardPass second = layer.forward(arena, args); // another stream, another mask
            float[] secondGrad = layer.backward(arena, second, dOut).query().toFloatArray();
            float[] firstGrad = layer.backward(arena, first, dOut).query().toFloatArray();
            ForwardPass twinFirst = twin.forward(arena, args);
            assertArrayEquals(twinFirst.output().toFloatArray(), first.output().toFloatArray());
            assertArrayEquals(twin.backward(arena, twinFirst, dOut).query().toFloatArray(), firstGrad,
                    "the first pass's mask, whatever ran in between");
            assertFalse(Arrays.equals(firstGrad, secondGrad), "each training call draws its own mask");
        }
    }

    @Test
    void oneForwardServesSeveralBackwardPassesOnManyThreads() throws Exception {
        NativeTests.requireNative();
        try (GroupQueryAttention layer = GroupQueryAttention.builder().headDim(4).numQueryHeads(4)
                .numKeyValueHeads(2).build(); Arena arena = Arena.ofShared()) {
            SplittableRandom r = new SplittableRandom(10);
            Tensor x = Tensor.of(arena, TestData.floats(r, 3 * 70 * 8, -1, 1), 3, 70, 8);
            layer.build(x.shape(), x.shape(), null);
            randomWeights(layer, r);
            ForwardPass fwd = layer.forward(arena, CallArgs.of(x, x).withUseCausalMask(true));
            Tensor dOut = Tensor.of(arena, TestData.floats(r, 3 * 70 * 8, -1, 1), 3, 70, 8);
            Gradients once = layer.backward(arena, fwd, dOut);
            ExecutorService pool = Executors.newFixedThreadPool(4);
            try {
                List<Future<Gradients>> runs = new ArrayList<>();
                for (int i = 0; i < 16; i++) {
                    runs.add(pool.submit(() -> layer.backward(arena, fwd, dOut)));
                }
                for (Future<Gradients> f : runs) {
                    Gradients g = f.get();
                    assertArrayEquals(once.query().toFloatArray(), g.query().toFloatArray());
                    for (int i = 0; i < once.weights().size(); i++) {
                        assertArrayEquals(once.weights().get(i).toFloatArray(), g.weights().get(i).toFloatArray());
                    }
                }
            } finally {
                pool.shutdown();
            }
        }
    }

    /**
     * The einsum path's backward resolves the masks twice (the forward again, then the
     * softmax's backward): a mask that needs broadcasting to the scores' layout, (1, N, T,
     * S) here, must fit the thread's scratch both times, also on a fresh thread whose
     * scratch this call sizes. Checked against the same call on a thread that ran bigger
     * calls before (whose scratch was already larger).
     */
    @Test
    void aBroadcastMaskFitsTheBackwardsScratchOnAFreshThread() throws Exception {
        NativeTests.requireNative();
        try (MultiHeadAttention layer = MultiHeadAttention.builder().numHeads(2).keyDim(16).seed(5L).build();
             Arena arena = Arena.ofShared()) {
            SplittableRandom r = new SplittableRandom(12);
            int b = 2, t = 256, d = 32;
            Tensor x = Tensor.of(arena, TestData.floats(r, b * t * d, -1, 1), b, t, d);
            boolean[] keep = TestData.booleans(r, 2 * t * t, 0.8);
            for (int u = 0; u < 2; u++) {
                for (int i = 0; i < t; i++) {
                    keep[(u * t + i) * t] = true; // no fully masked row (any would do; simpler to read)
                }
            }
            Tensor mask = Tensor.ofMask(arena, keep, 1, 2, t, t);
            Tensor dOut = Tensor.of(arena, TestData.floats(r, b * t * d, -1, 1), b, t, d);
            layer.build(x.shape(), x.shape(), null);
            randomWeights(layer, r);
            CallArgs args = CallArgs.of(x, x).withAttentionMask(mask);
            java.util.concurrent.atomic.AtomicReference<Object> fresh = new java.util.concurrent.atomic.AtomicReference<>();
            Thread thread = Thread.ofPlatform().start(() -> {
                try {
                    ForwardPass fwd = layer.forward(arena, args);
                    fresh.set(layer.backward(arena, fwd, dOut).query().toFloatArray());
                } catch (Throwable e) {
                    fresh.set(e);
                }
            });
            thread.join();
            if (fresh.get() instanceof Throwable e) {
                throw new AssertionError("backward on a fresh thread failed", e);
            }
            ForwardPass fwd = layer.forward(arena, args);
            assertArrayEquals(layer.backward(arena, fwd, dOut).query().toFloatArray(), (float[]) fresh.get());
        }
    }

    private static float[][] randomWeights(AttentionLayer layer, SplittableRandom r) {
        float[][] w = layer.weights().stream().map(x -> TestData.floats(r, (int) x.size(), -0.7, 0.7))
                .toArray(float[][]::new);
        layer.setWeights(w);
        return w;
    }

    private static double maxAbs(float[] v) {
        double m = 0;
        for (float x : v) {
            m = Math.max(m, Math.abs(x));
        }
        return m;
    }
}
