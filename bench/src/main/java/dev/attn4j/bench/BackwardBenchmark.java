package dev.attn4j.bench;

import dev.attn4j.Ops;
import dev.attn4j.Tensor;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.ForwardPass;
import dev.attn4j.layers.Gradients;
import dev.attn4j.layers.MultiHeadAttention;
import dev.attn4j.layers.Weight;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.DoubleUnaryOperator;
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
 * Backward passes against their forward passes, in the same run (the report's "backward
 * passes" table). ONNX Runtime's Java API has no backward pass, so the peer is the plain
 * Java baseline's ({@link VectorAttention#backward}).
 *
 * <p>Core attention ({@link CoreShape}, A by default), on the same inputs as
 * {@link CoreAttentionBenchmark}, and dOut uniform in [-1, 1):
 * <ul>
 *   <li>{@code attn4jForward}: {@code Ops.attention(q, k, v, out, scale, causal)};
 *   <li>{@code attn4jBackward}: {@code Ops.attentionBackward(q, k, v, out, dOut, dq, dk, dv,
 *       scale, causal, lse)}, out and the row statistics lse computed in setup by the
 *       forward that saves them ({@code Ops.attention(..., lse)}, as fast as the plain one),
 *       as a training step runs it;
 *   <li>{@code vectorApiBackward}: the plain Java backward, one thread whatever
 *       {@code threads} says.
 * </ul>
 *
 * <p>Shape C, the MultiHeadAttention layer of {@link MhaLayerBenchmark} (self-attention on
 * (8, 256, 512), 8 heads, key_dim 64, biases, the same weights):
 * <ul>
 *   <li>{@code layerForward}: {@code callInto} a preallocated output, the serving call;
 *   <li>{@code layerForwardForBackward}: {@code layer.forward(arena, args)}, the training
 *       forward that keeps what backward needs, into a confined arena opened and closed in
 *       each call: the allocation (zeroed), and the free, of its ~20 MiB (output, the Q,
 *       K, V projections and the attention output, softmax statistics) are part of the
 *       time, as in a training step. Not one arena per trial: at 20 MiB a call, the
 *       ~400-750 calls of a full trial would hold 8-15 GB, and each call would fault in
 *       fresh pages instead;
 *   <li>{@code layerBackward}: {@code layer.backward(arena, forward, dOut)} over one
 *       {@code ForwardPass} made in setup, its gradients (dquery, dvalue and the eight
 *       weights' gradients, ~12 MiB) in a confined arena opened and closed in each call.
 * </ul>
 *
 * <p>Checks before timing: attn4j's core gradients against the backward pass in double
 * precision on sampled heads, the baseline's against both that and attn4j's whole
 * gradients (relative {@link BenchData#GRADIENT_TOLERANCE}); the layer's gradients by
 * central differences along random directions (of the query argument, of the value
 * argument, of all weights at once), and the training forward's output against the
 * serving call's within 1e-4.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g", "--enable-native-access=ALL-UNNAMED",
        "--add-modules", "jdk.incubator.vector"})
public class BackwardBenchmark {
    private static final int B = MhaLayerBenchmark.BATCH;
    private static final int T = MhaLayerBenchmark.T;
    private static final int D = MhaLayerBenchmark.D_MODEL;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /**
     * Useful floating-point operations per call of {@code method}: the forward's count
     * ({@link CoreShape#flops}, {@link MhaLayerBenchmark#flops}), twice that for a backward
     * pass (every product of the forward has two in the backward: dV and dP for P V, dQ
     * and dK for Q K^T, the input and the kernel gradient for a projection). The
     * recomputed Q K^T of the flash backward is not useful work and is not counted.
     */
    static double flops(String method, String shape) {
        double forward = method.startsWith("layer") ? MhaLayerBenchmark.flops() : CoreShape.valueOf(shape).flops();
        return method.endsWith("Backward") && !method.equals("layerForwardForBackward") ? 2 * forward : forward;
    }

    // ---- core attention -------------------------------------------------------------------

    /** Inputs, dOut and gradient tensors of one core shape, in the trial's arena. */
    @State(Scope.Thread)
    public abstract static class CoreParams {
        @Param({"A"})
        public CoreShape shape;

        @Param({"1", "2"})
        public int threads;

        CoreInputs in;
        Tensor dOut;
        Tensor dq;
        Tensor dk;
        Tensor dv;
        // Grouped-query shapes run as Hkv "heads" of G*T rows, as in Attn4jCore: q, out, dOut, dq so viewed.
        Tensor q;
        Tensor out;
        Tensor dOutGrouped;
        Tensor dqGrouped;

        void createInputs() {
            in = new CoreInputs(shape, threads);
            dOut = BenchData.random(in.arena, 4, shape.qShape());
            dq = Tensor.allocate(in.arena, shape.qShape());
            dk = Tensor.allocate(in.arena, shape.kvShape());
            dv = Tensor.allocate(in.arena, shape.kvShape());
            q = Attn4jCore.grouped(shape, in.q);
            out = Attn4jCore.grouped(shape, in.out);
            dOutGrouped = Attn4jCore.grouped(shape, dOut);
            dqGrouped = Attn4jCore.grouped(shape, dq);
        }

        void forward() {
            Ops.attention(q, in.k, in.v, out, shape.scale(), shape.causal);
        }

        /** attn4j's gradients of the current {@code out} into dq (grouped), dk, dv; lse null: recomputed. */
        void backward(Tensor dqGroupedInto, Tensor dkInto, Tensor dvInto, Tensor lse) {
            Ops.attentionBackward(q, in.k, in.v, out, dOutGrouped, dqGroupedInto, dkInto, dvInto, shape.scale(),
                    shape.causal, lse);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            closeContender();
            in.close();
        }

        void closeContender() {}
    }

    @State(Scope.Thread)
    public static class ForwardState extends CoreParams {
        @Setup(Level.Trial)
        public void setUp() {
            createInputs();
            forward();
            BenchData.requireAttention("attn4j Ops.attention", shape, in.q, in.k, in.v, in.out);
        }

        @Override
        void closeContender() {
            AllocationProbe.measure("attn4jForward", shape.name(), threads, this::forward);
        }
    }

    @State(Scope.Thread)
    public static class BackwardState extends CoreParams {
        Tensor lse;

        @Setup(Level.Trial)
        public void setUp() {
            createInputs();
            lse = Tensor.allocate(in.arena, Arrays.copyOf(q.shape(), q.rank() - 1));
            Ops.attention(q, in.k, in.v, out, shape.scale(), shape.causal, lse); // the training forward
            run();
            BenchData.requireAttentionBackward("attn4j Ops.attentionBackward", shape, in.q, in.k, in.v, dOut, dq,
                    dk, dv);
        }

        void run() {
            backward(dqGrouped, dk, dv, lse);
        }

        @Override
        void closeContender() {
            AllocationProbe.measure("attn4jBackward", shape.name(), threads, this::run);
        }
    }

    @State(Scope.Thread)
    public static class VectorBackwardState extends CoreParams {
        VectorAttention attention;

        @Setup(Level.Trial)
        public void setUp() {
            createInputs();
            attention = new VectorAttention(shape);
            run();
            BenchData.requireAttentionBackward("Vector API backward", shape, in.q, in.k, in.v, dOut, dq, dk, dv);
            try (Arena scratch = Arena.ofConfined()) {
                Tensor dqRef = Tensor.allocate(scratch, shape.qShape());
                Tensor dkRef = Tensor.allocate(scratch, shape.kvShape());
                Tensor dvRef = Tensor.allocate(scratch, shape.kvShape());
                forward();
                backward(Attn4jCore.grouped(shape, dqRef), dkRef, dvRef, null);
                BenchData.requireRelativeClose("Vector API backward vs attn4j Ops.attentionBackward: dq", dqRef, dq);
                BenchData.requireRelativeClose("Vector API backward vs attn4j Ops.attentionBackward: dk", dkRef, dk);
                BenchData.requireRelativeClose("Vector API backward vs attn4j Ops.attentionBackward: dv", dvRef, dv);
            }
        }

        void run() {
            attention.backward(in.q.segment(), in.k.segment(), in.v.segment(), dOut.segment(), dq.segment(),
                    dk.segment(), dv.segment());
        }
    }

    @Benchmark
    public Tensor attn4jForward(ForwardState s) {
        s.forward();
        return s.in.out;
    }

    @Benchmark
    public Tensor attn4jBackward(BackwardState s) {
        s.run();
        return s.dq;
    }

    @Benchmark
    public Tensor vectorApiBackward(VectorBackwardState s) {
        s.run();
        return s.dq;
    }

    // ---- shape C: the MultiHeadAttention layer --------------------------------------------

    /**
     * X, dL/d(output) and the layer of {@link MhaLayerBenchmark} (its inputs and weights:
     * {@link MhaLayerBenchmark.Params#createInputs}), in the trial's arena.
     */
    @State(Scope.Thread)
    public abstract static class LayerParams extends MhaLayerBenchmark.Params {
        Tensor dOut;
        MultiHeadAttention layer;
        CallArgs args;

        void createLayer() {
            createInputs();
            dOut = BenchData.random(arena, 22, B, T, D);
            layer = layer(x, weights);
            args = CallArgs.of(x, x);
        }

        /** This state's allocation probe, run at teardown before the layer and the inputs are freed. */
        abstract void probe();

        @Override
        void closeContender() {
            probe();
            layer.close();
        }
    }

    /** The serving call; its output is checked against ONNX Runtime's by {@link MhaLayerBenchmark}. */
    @State(Scope.Thread)
    public static class LayerForwardState extends LayerParams {
        @Setup(Level.Trial)
        public void setUp() {
            createLayer();
            layer.callInto(args, out, null);
        }

        @Override
        void probe() {
            AllocationProbe.measure("layerForward", "C", threads, () -> layer.callInto(args, out, null));
        }
    }

    @State(Scope.Thread)
    public static class LayerForwardForBackwardState extends LayerParams {
        @Setup(Level.Trial)
        public void setUp() {
            createLayer();
            layer.callInto(args, out, null);
            try (Arena scratch = Arena.ofConfined()) {
                BenchData.requireClose("MultiHeadAttention: forward (for backward) vs callInto", out,
                        layer.forward(scratch, args).output());
            }
        }

        ForwardPass run() {
            try (Arena call = Arena.ofConfined()) {
                return layer.forward(call, args);
            }
        }

        @Override
        void probe() {
            AllocationProbe.measure("layerForwardForBackward", "C", threads, this::run);
        }
    }

    @State(Scope.Thread)
    public static class LayerBackwardState extends LayerParams {
        ForwardPass forward;

        @Setup(Level.Trial)
        public void setUp() {
            createLayer();
            forward = layer.forward(arena, args);
            try (Arena scratch = Arena.ofConfined()) {
                requireDirectionalDerivatives(x, weights, dOut, layer.backward(scratch, forward, dOut));
            }
        }

        Gradients run() {
            try (Arena call = Arena.ofConfined()) {
                return layer.backward(call, forward, dOut);
            }
        }

        @Override
        void probe() {
            AllocationProbe.measure("layerBackward", "C", threads, this::run);
        }
    }

    @Benchmark
    public Tensor layerForward(LayerForwardState s) {
        s.layer.callInto(s.args, s.out, null);
        return s.out;
    }

    @Benchmark
    public ForwardPass layerForwardForBackward(LayerForwardForBackwardState s) {
        return s.run();
    }

    @Benchmark
    public Gradients layerBackward(LayerBackwardState s) {
        return s.run();
    }

    // ---- the layer's gradient check -------------------------------------------------------

    /** Step of the central differences: the layer is float32, so not much smaller (see below). */
    static final double STEP = 1e-2;

    /**
     * Tolerance of each directional derivative, relative to its value. The loss sums 1M
     * float32 outputs times dOut: their rounding, and the O(STEP^2) truncation of the
     * central difference, leave ~1e-4 of a derivative's value at this step (measured: 2e-5
     * to 1e-4; 4e-4 at steps of 0.1 and of 0.003), so 2e-3 separates that noise from a
     * wrong gradient (a missing term or factor changes it by far more).
     */
    static final double DIRECTIONAL_TOLERANCE = 2e-3;

    /**
     * Checks the layer's gradients of L = sum(dOut * layer(query, value)) by central
     * differences along three random directions: the query argument alone, the value
     * argument alone (against {@code g.query()}, {@code g.value()}), and all weights at
     * once (against the sum over the weights' gradients), on a second layer with the same
     * weights.
     */
    static void requireDirectionalDerivatives(Tensor x, float[][] weights, Tensor dOut, Gradients g) {
        try (Arena scratch = Arena.ofConfined();
             MultiHeadAttention probe = MhaLayerBenchmark.Params.layer(x, weights)) {
            Tensor y = Tensor.allocate(scratch, B, T, D);
            Tensor moved = Tensor.allocate(scratch, B, T, D);
            float[] u = BenchData.randomArray((int) x.size(), 31, 1f);

            DoubleUnaryOperator alongQuery = step -> {
                shift(x, u, step, moved);
                probe.callInto(CallArgs.of(moved, x), y, null);
                return dot(dOut.segment(), y.segment(), y.size());
            };
            requireDerivative("dquery", derivative(alongQuery), dot(g.query().segment(), u));

            DoubleUnaryOperator alongValue = step -> {
                shift(x, u, step, moved);
                probe.callInto(CallArgs.of(x, moved), y, null);
                return dot(dOut.segment(), y.segment(), y.size());
            };
            requireDerivative("dvalue", derivative(alongValue), dot(g.value().segment(), u));

            List<Weight> dWeights = g.weights();
            float[][] directions = new float[weights.length][];
            double expected = 0;
            for (int i = 0; i < weights.length; i++) {
                directions[i] = BenchData.randomArray(weights[i].length, 40 + i, 1f);
                expected += dot(dWeights.get(i).value().segment(), directions[i]);
            }
            DoubleUnaryOperator alongWeights = step -> {
                float[][] w = new float[weights.length][];
                for (int i = 0; i < w.length; i++) {
                    w[i] = new float[weights[i].length];
                    for (int j = 0; j < w[i].length; j++) {
                        w[i][j] = (float) (weights[i][j] + step * directions[i][j]);
                    }
                }
                probe.setWeights(w);
                probe.callInto(CallArgs.of(x, x), y, null);
                return dot(dOut.segment(), y.segment(), y.size());
            };
            requireDerivative("the weights", derivative(alongWeights), expected);
        }
    }

    private static double derivative(DoubleUnaryOperator loss) {
        return (loss.applyAsDouble(STEP) - loss.applyAsDouble(-STEP)) / (2 * STEP);
    }

    private static void requireDerivative(String what, double numeric, double analytic) {
        double relative = Math.abs(numeric - analytic) / Math.max(Math.abs(numeric), Double.MIN_NORMAL);
        if (!(relative <= DIRECTIONAL_TOLERANCE)) {
            throw new IllegalStateException("MultiHeadAttention.backward: the gradient of " + what + " along a random"
                    + " direction is " + analytic + ", central differences give " + numeric + " (relative difference "
                    + relative + ", tolerance " + DIRECTIONAL_TOLERANCE + ")");
        }
    }

    /** into = x + step u. */
    private static void shift(Tensor x, float[] u, double step, Tensor into) {
        MemorySegment from = x.segment();
        MemorySegment to = into.segment();
        for (int i = 0; i < u.length; i++) {
            to.setAtIndex(F32, i, (float) (from.getAtIndex(F32, i) + step * u[i]));
        }
    }

    private static double dot(MemorySegment a, MemorySegment b, long n) {
        double sum = 0;
        for (long i = 0; i < n; i++) {
            sum += (double) a.getAtIndex(F32, i) * b.getAtIndex(F32, i);
        }
        return sum;
    }

    private static double dot(MemorySegment a, float[] b) {
        double sum = 0;
        for (int i = 0; i < b.length; i++) {
            sum += (double) a.getAtIndex(F32, i) * b[i];
        }
        return sum;
    }
}
