package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** One built layer shared by several threads gives exactly the single-threaded results. */
class ConcurrentCallTest {

    @Test
    void sharedLayerMatchesSequentialResults() throws Exception {
        NativeTests.requireNative();
        int threads = 8;
        int callsPerThread = 40;
        try (AdditiveAttention layer = AdditiveAttention.builder().seed(3L).build();
             Attention dot = Attention.builder().useScale(true).build()) {
            layer.build(new long[] {2, 7, 16}, new long[] {2, 9, 16}, null);
            dot.build(new long[] {2, 7, 16}, new long[] {2, 9, 16}, null);
            dot.setWeights(new float[] {0.3f});
            List<float[][]> inputs = new ArrayList<>();
            SplittableRandom r = new SplittableRandom(77);
            for (int i = 0; i < threads * callsPerThread; i++) {
                inputs.add(new float[][] {TestData.floats(r, 2 * 7 * 16, -2, 2), TestData.floats(r, 2 * 9 * 16, -2, 2)});
            }
            List<float[]> expected = new ArrayList<>();
            for (int i = 0; i < inputs.size(); i++) {
                expected.add(run(i % 2 == 0 ? layer : dot, inputs.get(i)));
            }
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> futures = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int first = t * callsPerThread;
                    futures.add(pool.submit(() -> {
                        for (int i = first; i < first + callsPerThread; i++) {
                            assertArrayEquals(expected.get(i), run(i % 2 == 0 ? layer : dot, inputs.get(i)),
                                    "call " + i);
                        }
                        return null;
                    }));
                }
                for (Future<?> f : futures) {
                    f.get();
                }
            } finally {
                pool.shutdown();
            }
        }
    }

    private static float[] run(AttentionLayer layer, float[][] in) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.of(arena, in[0], 2, 7, 16);
            Tensor v = Tensor.of(arena, in[1], 2, 9, 16);
            return layer.call(arena, CallArgs.of(q, v).withUseCausalMask(true)).output().toFloatArray();
        }
    }
}
