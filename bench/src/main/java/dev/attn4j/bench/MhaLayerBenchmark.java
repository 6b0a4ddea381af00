package dev.attn4j.bench;

import ai.onnxruntime.OrtException;
import dev.attn4j.Attn4j;
import dev.attn4j.Tensor;
import dev.attn4j.bench.onnx.AttentionModels;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.MultiHeadAttention;
import java.lang.foreign.Arena;
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
 * Shape C: a whole Keras MultiHeadAttention layer, self-attention on X (B=8, T=256,
 * D=512), 8 heads, key_dim 64, with biases: four projections, the attention, and the
 * output projection. attn4j calls {@code MultiHeadAttention.callInto} into a
 * preallocated output; ONNX Runtime runs the same layer written as MatMul/Add,
 * Reshape/Transpose and the opset-23 Attention node ({@link AttentionModels#multiHeadAttention}),
 * with the same weights as initializers. Each trial first checks that both give the
 * same output within 1e-4.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g", "--enable-native-access=ALL-UNNAMED",
        "--add-modules", "jdk.incubator.vector"})
public class MhaLayerBenchmark {
    public static final int BATCH = 8;
    public static final int T = 256;
    public static final int D_MODEL = 512;
    public static final int HEADS = 8;
    public static final int KEY_DIM = 64;

    /** Projections (3 in, 1 out: 2 B T D (N H) each) plus the attention core (4 B N T T H). */
    public static double flops() {
        double projections = 4 * 2.0 * BATCH * T * D_MODEL * HEADS * KEY_DIM;
        double core = 4.0 * BATCH * HEADS * T * T * KEY_DIM;
        return projections + core;
    }

    /** Weights in Keras order (query/kernel, query/bias, key/..., value/..., attention_output/...). */
    static float[][] weights() {
        int hidden = HEADS * KEY_DIM;
        float kernelBound = (float) Math.sqrt(6.0 / (D_MODEL + hidden)); // glorot_uniform's range
        float[][] w = new float[8][];
        for (int i = 0; i < 4; i++) {
            w[2 * i] = BenchData.randomArray(D_MODEL * hidden, 100 + i, kernelBound);
            w[2 * i + 1] = BenchData.randomArray(i == 3 ? D_MODEL : hidden, 200 + i, 0.1f);
        }
        return w;
    }

    @State(Scope.Thread)
    public abstract static class Params {
        @Param({"1", "2"})
        public int threads;

        Arena arena;
        Tensor x;
        Tensor out;
        float[][] weights;

        void createInputs() {
            Attn4j.setNumThreads(threads);
            arena = Arena.ofShared();
            x = BenchData.random(arena, 21, BATCH, T, D_MODEL);
            out = Tensor.allocate(arena, BATCH, T, D_MODEL);
            weights = weights();
        }

        static MultiHeadAttention layer(Tensor x, float[][] weights) {
            MultiHeadAttention layer = MultiHeadAttention.builder().numHeads(HEADS).keyDim(KEY_DIM).build();
            layer.build(x.shape(), x.shape(), null);
            layer.setWeights(weights);
            return layer;
        }

        static OrtRunner ort(Tensor x, float[][] weights, int threads, Tensor out) throws OrtException {
            byte[] model = AttentionModels.multiHeadAttention(BATCH, T, D_MODEL, HEADS, KEY_DIM, weights);
            return new OrtRunner(model, threads, Map.of("X", x), "Y", out);
        }

        /** attn4j and ONNX Runtime must agree before either is timed. */
        void requireAgreement() throws OrtException {
            try (Arena scratch = Arena.ofConfined();
                 MultiHeadAttention layer = layer(x, weights)) {
                Tensor a = Tensor.allocate(scratch, BATCH, T, D_MODEL);
                Tensor o = Tensor.allocate(scratch, BATCH, T, D_MODEL);
                layer.callInto(CallArgs.of(x, x), a, null);
                try (OrtRunner ort = ort(x, weights, threads, o)) {
                    ort.run();
                }
                BenchData.requireClose("MultiHeadAttention: ONNX Runtime vs attn4j", a, o);
            }
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            closeContender();
            arena.close();
        }

        abstract void closeContender() throws Exception;
    }

    @State(Scope.Thread)
    public static class Attn4jState extends Params {
        MultiHeadAttention layer;
        CallArgs args;

        @Setup(Level.Trial)
        public void setUp() throws OrtException {
            createInputs();
            requireAgreement();
            layer = layer(x, weights);
            args = CallArgs.of(x, x);
        }

        @Override
        void closeContender() {
            AllocationProbe.measure("attn4j", "C", threads, () -> layer.callInto(args, out, null));
            layer.close();
        }
    }

    @State(Scope.Thread)
    public static class OrtState extends Params {
        OrtRunner ort;

        @Setup(Level.Trial)
        public void setUp() throws OrtException {
            createInputs();
            requireAgreement();
            ort = ort(x, weights, threads, out);
        }

        @Override
        void closeContender() throws OrtException {
            AllocationProbe.measure("onnxRuntime", "C", threads, ort::runUnchecked);
            ort.close();
        }
    }

    @Benchmark
    public Tensor attn4j(Attn4jState s) {
        s.layer.callInto(s.args, s.out, null);
        return s.out;
    }

    @Benchmark
    public Tensor onnxRuntime(OrtState s) throws OrtException {
        s.ort.run();
        return s.out;
    }
}
