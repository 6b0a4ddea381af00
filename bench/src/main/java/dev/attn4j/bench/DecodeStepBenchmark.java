package dev.attn4j.bench;

import ai.onnxruntime.OrtException;
import dev.attn4j.Attn4j;
import dev.attn4j.Tensor;
import dev.attn4j.bench.onnx.AttentionModels;
import dev.attn4j.layers.GroupQueryAttention;
import dev.attn4j.layers.KvCache;
import dev.attn4j.layers.MultiHeadAttention;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Incremental decoding (issue 12): one decode step of a whole layer at a cache length,
 * B = 1, D = 512, 8 query heads of 64, with biases; {@code layer} "mha" is a Keras
 * MultiHeadAttention (8 key/value heads), "gqa" a GroupQueryAttention with 2 key/value
 * heads (8:2). A step projects the new token, appends its key and value at position
 * {@code length} of the cache, attends over the length + 1 positions and projects the
 * output.
 *
 * <p>attn4j: {@code callCachedInto} over a {@link KvCache} prefilled with {@code length}
 * positions (a prompt chunk through the layer), then {@code truncate(length)}, so every
 * step sees the same length (the truncate clears the one slot the step wrote, 1 to 4 KiB).
 * ONNX Runtime, in the same run: the same layer with the contrib operator
 * {@code com.microsoft.GroupQueryAttention} ({@link AttentionModels#cachedDecodeStep}),
 * its past and present keys and values bound to the same buffers (ONNX Runtime's
 * shared-buffer decoding: the new key and value are written in place, the cache is not
 * copied), filled with attn4j's cache contents, so both compute the very same step; each
 * trial first checks that they agree within 1e-4. Single-threaded (OpenBLAS and ONNX
 * Runtime's intra-op pool at 1), as a server runs one request per core.
 *
 * <p>The cost grows with the length (the step reads (length + 1) * K * 64 * 2 floats of
 * cache): ms per 1k positions = (t(4096) - t(128)) / 3.968.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g", "--enable-native-access=ALL-UNNAMED",
        "--add-modules", "jdk.incubator.vector"})
public class DecodeStepBenchmark {
    public static final int BATCH = 1;
    public static final int D_MODEL = 512;
    public static final int HEADS = 8;
    public static final int HEAD_DIM = 64;

    /**
     * Multiply-adds x 2 of one step at this cache length: the four projections of one
     * token and the attention over length + 1 positions (q K^T and P V per query head).
     */
    static double flops(String layer, int length) {
        int kv = kvHeads(layer);
        double projections = 2.0 * D_MODEL * (2 * HEADS * HEAD_DIM + 2 * kv * HEAD_DIM);
        return projections + 2.0 * HEADS * (length + 1) * 2 * HEAD_DIM;
    }

    static int kvHeads(String layer) {
        return switch (layer) {
            case "mha" -> HEADS;
            case "gqa" -> 2;
            default -> throw new IllegalArgumentException("layer must be mha or gqa, but is " + layer);
        };
    }

    /** Weights in Keras order (query/kernel, query/bias, key/..., value/..., attention_output/...). */
    static float[][] weights(int kvHeads) {
        int q = HEADS * HEAD_DIM;
        int kv = kvHeads * HEAD_DIM;
        int[] sizes = {D_MODEL * q, q, D_MODEL * kv, kv, D_MODEL * kv, kv, q * D_MODEL, D_MODEL};
        float[][] w = new float[8][];
        for (int i = 0; i < 8; i++) {
            float bound = i % 2 == 0 ? (float) Math.sqrt(6.0 / (D_MODEL + q)) : 0.1f;
            w[i] = BenchData.randomArray(sizes[i], 300 + i, bound);
        }
        return w;
    }

    /** The layer, built and with the weights. */
    static dev.attn4j.layers.AttentionLayer layer(String layer, float[][] weights) {
        long[] shape = {BATCH, 1, D_MODEL};
        if (layer.equals("mha")) {
            MultiHeadAttention mha = MultiHeadAttention.builder().numHeads(HEADS).keyDim(HEAD_DIM).build();
            mha.build(shape, shape, null);
            mha.setWeights(weights);
            return mha;
        }
        GroupQueryAttention gqa = GroupQueryAttention.builder().headDim(HEAD_DIM).numQueryHeads(HEADS)
                .numKeyValueHeads(kvHeads(layer)).build();
        gqa.build(shape, shape, null);
        gqa.setWeights(weights);
        return gqa;
    }

    static KvCache cache(dev.attn4j.layers.AttentionLayer l, int maxLength) {
        return l instanceof MultiHeadAttention m ? KvCache.create(m, BATCH, maxLength)
                : KvCache.create((GroupQueryAttention) l, BATCH, maxLength);
    }

    static void step(dev.attn4j.layers.AttentionLayer l, KvCache cache, Tensor x, Tensor out) {
        if (l instanceof MultiHeadAttention m) {
            m.callCachedInto(cache, x, x, null, null, out);
        } else {
            ((GroupQueryAttention) l).callCachedInto(cache, x, x, null, null, out);
        }
    }

    @State(Scope.Thread)
    public static class Params {
        @Param({"mha", "gqa"})
        public String layer;

        @Param({"128", "1024", "4096"})
        public int length;

        Arena arena;
        Tensor token;
        Tensor out;
        float[][] weights;
        dev.attn4j.layers.AttentionLayer attn4j;
        KvCache cache;

        /** The layer and a cache holding {@code length} positions of a random prompt. */
        void prepare() {
            Attn4j.setNumThreads(1);
            arena = Arena.ofShared();
            token = BenchData.random(arena, 31, BATCH, 1, D_MODEL);
            out = Tensor.allocate(arena, BATCH, 1, D_MODEL);
            weights = weights(kvHeads(layer));
            attn4j = layer(layer, weights);
            cache = cache(attn4j, length + 1);
            Tensor prompt = BenchData.random(arena, 32, BATCH, length, D_MODEL);
            Tensor promptOut = Tensor.allocate(arena, BATCH, length, D_MODEL);
            if (attn4j instanceof MultiHeadAttention m) {
                m.callCachedInto(cache, prompt, prompt, null, null, promptOut);
            } else {
                ((GroupQueryAttention) attn4j).callCachedInto(cache, prompt, prompt, null, null, promptOut);
            }
        }

        /** ONNX Runtime on a copy of attn4j's cache; its step and attn4j's must agree. */
        Ort ort() throws OrtException {
            Ort ort = new Ort(layer, length, weights, token, arena);
            MemorySegment.copy(cache.keys(), 0, ort.pastKey.segment(), 0, cache.keys().byteSize());
            MemorySegment.copy(cache.values(), 0, ort.pastValue.segment(), 0, cache.values().byteSize());
            Tensor expected = Tensor.allocate(arena, BATCH, 1, D_MODEL);
            step(attn4j, cache, token, expected);
            cache.truncate(length);
            ort.run();
            BenchData.requireClose("decode step (" + layer + ", length " + length + "): ONNX Runtime vs attn4j",
                    expected, ort.out);
            return ort;
        }

        void closeAll() {
            cache.close();
            attn4j.close();
            arena.close();
        }
    }

    /**
     * The ONNX Runtime session of one decode step over off-heap memory: X, past_key /
     * past_value (also bound as present_key / present_value: the shared buffer) and Y.
     */
    static final class Ort implements AutoCloseable {
        final Tensor pastKey;
        final Tensor pastValue;
        final Tensor out;
        final OrtRunner runner;

        Ort(String layer, int length, float[][] weights, Tensor token, Arena arena) throws OrtException {
            int kv = kvHeads(layer);
            pastKey = Tensor.allocate(arena, BATCH, kv, length + 1, HEAD_DIM);
            pastValue = Tensor.allocate(arena, BATCH, kv, length + 1, HEAD_DIM);
            out = Tensor.allocate(arena, BATCH, 1, D_MODEL);
            byte[] model = AttentionModels.cachedDecodeStep(BATCH, D_MODEL, HEADS, kv, HEAD_DIM, length + 1, length,
                    weights);
            Map<String, Tensor> inputs = new LinkedHashMap<>();
            inputs.put("X", token);
            inputs.put("past_key", pastKey);
            inputs.put("past_value", pastValue);
            Map<String, Tensor> outputs = new LinkedHashMap<>();
            outputs.put("Y", out);
            outputs.put("present_key", pastKey);
            outputs.put("present_value", pastValue);
            runner = new OrtRunner(model, 1, inputs, outputs);
        }

        void run() throws OrtException {
            runner.run();
        }

        @Override
        public void close() throws OrtException {
            runner.close();
        }
    }

    @State(Scope.Thread)
    public static class Attn4jState extends Params {
        @Setup(Level.Trial)
        public void setUp() throws OrtException {
            prepare();
            ort().close(); // the agreement check
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            AllocationProbe.measure("attn4j", "decode-" + layer + "-" + length, 1, () -> {
                step(attn4j, cache, token, out);
                cache.truncate(length);
            });
            closeAll();
        }
    }

    @State(Scope.Thread)
    public static class OrtState extends Params {
        Ort ort;

        @Setup(Level.Trial)
        public void setUp() throws OrtException {
            prepare();
            ort = ort();
        }

        @TearDown(Level.Trial)
        public void tearDown() throws OrtException {
            AllocationProbe.measure("onnxRuntime", "decode-" + layer + "-" + length, 1, ort.runner::runUnchecked);
            ort.close();
            closeAll();
        }
    }

    @Benchmark
    public Tensor attn4j(Attn4jState s) {
        step(s.attn4j, s.cache, s.token, s.out);
        s.cache.truncate(s.length);
        return s.out;
    }

    @Benchmark
    public Tensor onnxRuntime(OrtState s) throws OrtException {
        s.ort.run();
        return s.out;
    }
}
