package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.Attn4j;
import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * One built layer shared by {@value #THREADS} threads, {@value #CALLS} calls each with
 * different inputs (and masks), gives bit for bit the results of the same calls made one
 * after another on one thread: the thread-safety rule of {@link AttentionLayer}. The
 * query and value lengths change from call to call (T or T - 1, S or S - 2), so threads
 * keep replacing the plan a layer keeps for the last call's shapes under each other. Run with
 * OpenBLAS on 1 thread (attn4j's default) and on 2 threads ({@link Attn4j#setNumThreads},
 * restored afterwards); the shapes are large enough (m * n * k > 4 * 65536 for the score
 * or projection products) that OpenBLAS really splits them across its threads at 2.
 */
class SharedLayerConcurrencyTest {
    static final int THREADS = 8;
    static final int CALLS = 500;

    /** One call's inputs, as arrays, so every thread builds its own tensors; its lengths t and s. */
    record Input(float[] query, float[] value, boolean[] queryMask, boolean[] valueMask, boolean causal, int t,
                 int s) {}

    /** The inputs of all THREADS * CALLS calls: (B, T or T - 1, D) query and (B, S or S - 2, D) value. */
    private static List<Input> inputs(long seed, int b, int maxT, int maxS, int d) {
        SplittableRandom r = new SplittableRandom(seed);
        List<Input> in = new ArrayList<>();
        for (int i = 0; i < THREADS * CALLS; i++) {
            int t = maxT - (r.nextBoolean() ? 0 : 1);
            int s = maxS - (r.nextBoolean() ? 0 : 2);
            in.add(new Input(TestData.floats(r, b * t * d, -2, 2), TestData.floats(r, b * s * d, -2, 2),
                    r.nextBoolean() ? TestData.booleans(r, b * t, 0.8) : null,
                    r.nextBoolean() ? TestData.booleans(r, b * s, 0.8) : null, r.nextBoolean(), t, s));
        }
        return in;
    }

    /** Output then scores (or an empty array), as float bits. */
    private static float[][] run(AttentionLayer layer, Input in, int b, int d) {
        int t = in.t();
        int s = in.s();
        try (Arena arena = Arena.ofConfined()) {
            CallArgs args = CallArgs.of(Tensor.of(arena, in.query(), b, t, d), Tensor.of(arena, in.value(), b, s, d))
                    .withUseCausalMask(in.causal())
                    .withReturnAttentionScores(true)
                    .withQueryMask(in.queryMask() == null ? null : Tensor.ofMask(arena, in.queryMask(), b, t))
                    .withValueMask(in.valueMask() == null ? null : Tensor.ofMask(arena, in.valueMask(), b, s));
            AttentionResult res = layer.call(arena, args);
            return new float[][] {res.output().toFloatArray(), res.attentionScores().toFloatArray()};
        }
    }

    /**
     * Sequential results, then the same calls from THREADS threads started together;
     * returns the sequential results for comparison across OpenBLAS thread counts.
     */
    private static List<float[][]> sharedCallsMatchSequential(String what, AttentionLayer layer, List<Input> in,
                                                              int b, int d) throws Exception {
        List<float[][]> expected = new ArrayList<>();
        for (Input x : in) {
            expected.add(run(layer, x, b, d));
        }
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        CountDownLatch start = new CountDownLatch(1);
        long begin = System.nanoTime();
        try {
            List<Future<Integer>> futures = new ArrayList<>();
            for (int thread = 0; thread < THREADS; thread++) {
                int first = thread * CALLS;
                futures.add(pool.submit(() -> {
                    start.await();
                    int mismatches = 0;
                    for (int i = first; i < first + CALLS; i++) {
                        float[][] got = run(layer, in.get(i), b, d);
                        // Arrays.equals on float[] compares floatToIntBits: bit for bit, NaN included.
                        if (!Arrays.equals(expected.get(i)[0], got[0]) || !Arrays.equals(expected.get(i)[1], got[1])) {
                            mismatches++;
                        }
                    }
                    return mismatches;
                }));
            }
            start.countDown();
            int mismatches = 0;
            for (Future<Integer> f : futures) {
                mismatches += f.get();
            }
            long ms = (System.nanoTime() - begin) / 1_000_000;
            System.out.printf("SharedLayerConcurrencyTest %s, OpenBLAS threads %d: %d threads x %d calls, "
                    + "%d mismatches, %d ms%n", what, Attn4j.numThreads(), THREADS, CALLS, mismatches, ms);
            assertEquals(0, mismatches, what + ": calls from " + THREADS + " threads differ from sequential calls");
        } finally {
            pool.shutdownNow();
        }
        return expected;
    }

    private static void check(String what, Supplier<AttentionLayer> factory, long seed, int b, int t, int s, int d)
            throws Exception {
        NativeTests.requireNative();
        List<Input> in = inputs(seed, b, t, s, d);
        int before = Attn4j.numThreads();
        try (AttentionLayer layer = factory.get()) {
            layer.build(new long[] {b, t, d}, new long[] {b, s, d}, null);
            SplittableRandom r = new SplittableRandom(seed + 1);
            List<float[]> weights = new ArrayList<>();
            for (Weight w : layer.weights()) {
                weights.add(TestData.floats(r, (int) w.size(), -0.5, 0.5));
            }
            layer.setWeights(weights.toArray(float[][]::new));
            Attn4j.setNumThreads(1);
            List<float[][]> one = sharedCallsMatchSequential(what, layer, in, b, d);
            Attn4j.setNumThreads(2);
            assertTrue(Attn4j.numThreads() == 2, "OpenBLAS did not take 2 threads");
            List<float[][]> two = sharedCallsMatchSequential(what, layer, in, b, d);
            int differ = 0;
            for (int i = 0; i < one.size(); i++) {
                if (!Arrays.equals(one.get(i)[0], two.get(i)[0]) || !Arrays.equals(one.get(i)[1], two.get(i)[1])) {
                    differ++;
                }
            }
            // Not a rule (OpenBLAS may split work differently), reported for the record.
            System.out.printf("SharedLayerConcurrencyTest %s: results at 1 and 2 OpenBLAS threads differ in %d of "
                    + "%d calls%n", what, differ, one.size());
        } finally {
            Attn4j.setNumThreads(before);
        }
        assertEquals(before, Attn4j.numThreads(), "OpenBLAS thread count restored");
    }

    @Test
    void multiHeadAttention() throws Exception {
        check("MultiHeadAttention", () -> MultiHeadAttention.builder().numHeads(4).keyDim(16).seed(1L).build(),
                11, 2, 33, 31, 64);
    }

    @Test
    void attention() throws Exception {
        check("Attention", () -> Attention.builder().useScale(true).build(), 12, 3, 70, 65, 64);
    }

    @Test
    void groupQueryAttention() throws Exception {
        check("GroupQueryAttention",
                () -> GroupQueryAttention.builder().headDim(16).numQueryHeads(4).numKeyValueHeads(2).seed(2L).build(),
                13, 2, 33, 31, 64);
    }

    @Test
    void additiveAttention() throws Exception {
        check("AdditiveAttention", () -> AdditiveAttention.builder().seed(3L).build(), 14, 2, 17, 19, 16);
    }
}
