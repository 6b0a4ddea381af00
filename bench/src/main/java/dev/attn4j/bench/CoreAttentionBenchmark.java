package dev.attn4j.bench;

import ai.onnxruntime.OrtException;
import dev.attn4j.Tensor;
import dev.attn4j.bench.onnx.AttentionModels;
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
 * Core scaled-dot-product attention, softmax(scale Q K^T [causal]) V, on the shapes of
 * {@link CoreShape}, by each contender on the same inputs:
 * <ul>
 *   <li>{@code attn4j}: what the report's attn4j rows measure ({@link Attn4jCore}: the
 *       fused {@code Ops.attention} when the library has it, else the unfused public path);
 *   <li>{@code attn4jUnfused}: always the unfused public path (Ops.matmul,
 *       Ops.maskedSoftmax, Ops.matmul through a score buffer);
 *   <li>{@code onnxRuntime}: ONNX Runtime's CPU provider running one opset-23
 *       {@code Attention} node ({@link AttentionModels#core});
 *   <li>{@code vectorApi}: the plain Java baseline ({@link VectorAttention}), one thread
 *       whatever {@code threads} says.
 * </ul>
 * {@code threads} is OpenBLAS's thread count and ONNX Runtime's intra-op thread count.
 * Every trial first checks its contender's output (against double-precision attention
 * on sampled rows; ONNX Runtime also against attn4j's whole output) and fails if it is
 * off by more than 1e-4.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g", "--enable-native-access=ALL-UNNAMED",
        "--add-modules", "jdk.incubator.vector"})
public class CoreAttentionBenchmark {

    /** Shape and thread count, shared by every contender's state. */
    @State(Scope.Thread)
    public abstract static class Params {
        @Param({"A", "B", "D", "E", "F"})
        public CoreShape shape;

        @Param({"1", "2"})
        public int threads;

        CoreInputs in;

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            closeContender();
            in.close();
        }

        /** Runs before the inputs are freed: allocation probes, closing sessions. */
        void closeContender() throws Exception {}
    }

    @State(Scope.Thread)
    public static class Attn4jState extends Params {
        Tensor q;
        Tensor out;
        Tensor scores;

        @Setup(Level.Trial)
        public void setUp() {
            in = new CoreInputs(shape, threads);
            q = Attn4jCore.grouped(shape, in.q);
            out = Attn4jCore.grouped(shape, in.out);
            if (!Attn4jCore.USE_FUSED) {
                scores = Tensor.allocate(in.arena, Attn4jCore.scoresShape(shape));
            }
            run();
            BenchData.requireAttention("attn4j (" + Attn4jCore.variant() + ")", shape, in.q, in.k, in.v, in.out);
        }

        @Override
        void closeContender() {
            AllocationProbe.measure("attn4j", shape.name(), threads, this::run);
        }

        void run() {
            if (Attn4jCore.USE_FUSED) {
                Attn4jCore.fused(q, in.k, in.v, out, shape.scale(), shape.causal);
            } else {
                Attn4jCore.unfused(q, in.k, in.v, scores, out, shape.scale(), shape.causal);
            }
        }
    }

    @State(Scope.Thread)
    public static class UnfusedState extends Params {
        Tensor q;
        Tensor out;
        Tensor scores;

        @Setup(Level.Trial)
        public void setUp() {
            in = new CoreInputs(shape, threads);
            q = Attn4jCore.grouped(shape, in.q);
            out = Attn4jCore.grouped(shape, in.out);
            scores = Tensor.allocate(in.arena, Attn4jCore.scoresShape(shape));
            Attn4jCore.unfused(q, in.k, in.v, scores, out, shape.scale(), shape.causal);
            BenchData.requireAttention("attn4j unfused", shape, in.q, in.k, in.v, in.out);
        }

        @Override
        void closeContender() {
            AllocationProbe.measure("attn4jUnfused", shape.name(), threads,
                    () -> Attn4jCore.unfused(q, in.k, in.v, scores, out, shape.scale(), shape.causal));
        }
    }

    @State(Scope.Thread)
    public static class OrtState extends Params {
        OrtRunner ort;

        @Setup(Level.Trial)
        public void setUp() throws OrtException {
            in = new CoreInputs(shape, threads);
            byte[] model = AttentionModels.core(shape.batch, shape.heads, shape.kvHeads, shape.t, shape.s, shape.d,
                    shape.scale(), shape.causal);
            ort = new OrtRunner(model, threads, Map.of("Q", in.q, "K", in.k, "V", in.v), "Y", in.out);
            ort.run();
            BenchData.requireAttention("ONNX Runtime", shape, in.q, in.k, in.v, in.out);
            try (Arena arena = Arena.ofConfined()) {
                BenchData.requireClose("ONNX Runtime vs attn4j (" + Attn4jCore.variant() + ")",
                        in.attn4jOutput(arena), in.out);
            }
        }

        @Override
        void closeContender() throws OrtException {
            AllocationProbe.measure("onnxRuntime", shape.name(), threads, ort::runUnchecked);
            ort.close();
        }
    }

    @State(Scope.Thread)
    public static class VectorState extends Params {
        VectorAttention attention;

        @Setup(Level.Trial)
        public void setUp() {
            in = new CoreInputs(shape, threads);
            attention = new VectorAttention(shape);
            attention.compute(in.q.segment(), in.k.segment(), in.v.segment(), in.out.segment());
            BenchData.requireAttention("Vector API baseline", shape, in.q, in.k, in.v, in.out);
        }
    }

    @Benchmark
    public Tensor attn4j(Attn4jState s) {
        s.run();
        return s.out;
    }

    @Benchmark
    public Tensor attn4jUnfused(UnfusedState s) {
        Attn4jCore.unfused(s.q, s.in.k, s.in.v, s.scores, s.out, s.shape.scale(), s.shape.causal);
        return s.out;
    }

    @Benchmark
    public Tensor onnxRuntime(OrtState s) throws OrtException {
        s.ort.run();
        return s.in.out;
    }

    @Benchmark
    public Tensor vectorApi(VectorState s) {
        s.attention.compute(s.in.q.segment(), s.in.k.segment(), s.in.v.segment(), s.in.out.segment());
        return s.in.out;
    }
}
