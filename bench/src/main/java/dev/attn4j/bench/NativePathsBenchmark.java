package dev.attn4j.bench;

import dev.attn4j.MaskConvention;
import dev.attn4j.Tensor;
import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.GemmRoute;
import dev.attn4j.internal.backend.NativeBackend;
import java.lang.foreign.MemorySegment;
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
 * attn4j's own native paths for core attention, side by side, one thread:
 * <ul>
 *   <li>{@code gemmSoftmaxGemm}: the two matrix products through the internal backend
 *       with a forced OpenBLAS entry point ({@code route}: a loop of {@code cblas_sgemm},
 *       one {@code cblas_sgemm_batch} with pointer arrays, one
 *       {@code cblas_sgemm_batch_strided}), and libattn4j's fused scale + softmax
 *       between them, through a score buffer;
 *   <li>{@code fused}: the tiled kernel {@code Ops.attention}, no score matrix (the
 *       trial fails when the library has none).
 * </ul>
 * The backend still takes {@code cblas_sgemm} for products of at most 100^3
 * multiply-adds (OpenBLAS 0.3.28-0.3.31's batch calls crash on them, see
 * {@link NativeBackend#SMALL_PRODUCT_LIMIT}): shape B's 32x32x64 products always run
 * as a loop whatever the route, so the report runs only LOOP for B.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g", "--enable-native-access=ALL-UNNAMED",
        "--add-modules", "jdk.incubator.vector"})
public class NativePathsBenchmark {

    @State(Scope.Thread)
    public abstract static class Params {
        @Param({"A", "B", "E"})
        public CoreShape shape;

        @Param({"1"})
        public int threads;

        CoreInputs in;

        @TearDown(Level.Trial)
        public void tearDown() {
            in.close();
        }
    }

    @State(Scope.Thread)
    public static class RouteState extends Params {
        @Param({"LOOP", "BATCH", "STRIDED"})
        public GemmRoute route;

        NativeBackend backend;
        Tensor scores;
        int batch;
        int m;
        GemmRoute resolved;

        @Setup(Level.Trial)
        public void setUp() {
            backend = Backends.selection().nativeBackend();
            if (backend == null) {
                throw new IllegalStateException("the native backend is not loaded: " + Backends.selection().failure());
            }
            in = new CoreInputs(shape, threads);
            scores = Tensor.allocate(in.arena, Attn4jCore.scoresShape(shape));
            batch = shape.batch * shape.kvHeads;
            m = shape.groups() * shape.t;
            resolved = backend.resolveRoute(route, m, shape.s, shape.d, batch, true,
                    (long) m * shape.d, (long) shape.s * shape.d, (long) m * shape.s);
            if (resolved != route) {
                System.out.println("note: route " + route + " resolves to " + resolved + " for shape " + shape);
            }
            run();
            BenchData.requireAttention("gemm " + route + " + softmax + gemm", shape, in.q, in.k, in.v, in.out);
        }

        void run() {
            int d = shape.d;
            int s = shape.s;
            MemorySegment sc = scores.segment();
            // scores (m, S) = Q (m, d) K^T for each of the batch (B * Hkv) blocks
            backend.sgemmBatched(false, true, m, s, d, 1f,
                    in.q.segment(), d, (long) m * d, 0,
                    in.k.segment(), d, (long) s * d, 0, 1,
                    0f, sc, s, (long) m * s, 0,
                    batch, 1, route);
            backend.maskedSoftmax(sc, batch, m, s, shape.scale(), MemorySegment.NULL, 0, 0, 1,
                    MemorySegment.NULL, MemorySegment.NULL, 1, shape.causal, 0, MaskConvention.REPLACE);
            // out (m, d) = P (m, S) V (S, d)
            backend.sgemmBatched(false, false, m, d, s, 1f,
                    sc, s, (long) m * s, 0,
                    in.v.segment(), d, (long) s * d, 0, 1,
                    0f, in.out.segment(), d, (long) m * d, 0,
                    batch, 1, route);
        }
    }

    @State(Scope.Thread)
    public static class FusedState extends Params {
        Tensor q;
        Tensor out;

        @Setup(Level.Trial)
        public void setUp() {
            if (!Attn4jCore.fusedAvailable()) {
                throw new IllegalStateException("this attn4j has no fused Ops.attention");
            }
            in = new CoreInputs(shape, threads);
            q = Attn4jCore.grouped(shape, in.q);
            out = Attn4jCore.grouped(shape, in.out);
            Attn4jCore.fused(q, in.k, in.v, out, shape.scale(), shape.causal);
            BenchData.requireAttention("fused Ops.attention", shape, in.q, in.k, in.v, in.out);
        }
    }

    @Benchmark
    public Tensor gemmSoftmaxGemm(RouteState s) {
        s.run();
        return s.in.out;
    }

    @Benchmark
    public Tensor fused(FusedState s) {
        Attn4jCore.fused(s.q, s.in.k, s.in.v, s.out, s.shape.scale(), s.shape.causal);
        return s.out;
    }
}
