package dev.attn4j.bench;

import dev.attn4j.MaskConvention;
import dev.attn4j.Ops;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
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
 * Core scaled-dot-product attention through the public primitives: scores = Q K^T
 * (batched GEMM), fused scale + softmax, out = P V (batched GEMM), over (B*H, T, d)
 * blocks. Shapes follow the benchmark plan: "A" is B=8, H=8, T=S=256, d=64; "B" is the
 * latency shape B=1, H=8, T=S=32, d=64. One OpenBLAS thread (the library default).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"})
public class CoreAttentionBenchmark {

    @Param({"A", "B"})
    public String shape;

    private Arena arena;
    private Tensor q, k, v, scores, out;
    private float scale;

    @Setup(Level.Trial)
    public void setUp() {
        int batchHeads = shape.equals("A") ? 8 * 8 : 8;
        int t = shape.equals("A") ? 256 : 32;
        int d = 64;
        arena = Arena.ofShared();
        SplittableRandom random = new SplittableRandom(42);
        q = random(arena, random, batchHeads, t, d);
        k = random(arena, random, batchHeads, t, d);
        v = random(arena, random, batchHeads, t, d);
        scores = Tensor.allocate(arena, batchHeads, t, t);
        out = Tensor.allocate(arena, batchHeads, t, d);
        scale = (float) (1 / Math.sqrt(d));
    }

    private static Tensor random(Arena arena, SplittableRandom random, long... shape) {
        Tensor t = Tensor.allocate(arena, shape);
        float[] data = new float[(int) t.size()];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) random.nextDouble(-1, 1);
        }
        t.copyFrom(data);
        return t;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public Tensor attention() {
        Ops.matmul(q, false, k, true, scores);
        Ops.maskedSoftmax(scores, scale, null, false, MaskConvention.REPLACE);
        Ops.matmul(scores, false, v, false, out);
        return out;
    }
}
