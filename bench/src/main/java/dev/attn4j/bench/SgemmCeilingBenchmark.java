package dev.attn4j.bench;

import dev.attn4j.Attn4j;
import dev.attn4j.Ops;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
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
 * The machine's ceiling: one 2048 x 2048 x 2048 {@code cblas_sgemm} (through
 * {@code Ops.matmul} on (1, 2048, 2048) tensors, a batch of one, which the backend sends
 * to {@code cblas_sgemm}), 2 * 2048^3 floating-point operations per call. The report
 * divides every attn4j GFLOP/s by this run's figure at the same thread count.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g", "--enable-native-access=ALL-UNNAMED",
        "--add-modules", "jdk.incubator.vector"})
public class SgemmCeilingBenchmark {
    public static final int N = 2048;
    public static final double FLOPS = 2.0 * N * N * N;

    @Param({"1", "2"})
    public int threads;

    private Arena arena;
    private Tensor a;
    private Tensor b;
    private Tensor c;

    @Setup(Level.Trial)
    public void setUp() {
        Attn4j.setNumThreads(threads);
        arena = Arena.ofShared();
        a = BenchData.random(arena, 11, 1, N, N);
        b = BenchData.random(arena, 12, 1, N, N);
        c = Tensor.allocate(arena, 1, N, N);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public Tensor sgemm() {
        Ops.matmul(a, b, c);
        return c;
    }
}
