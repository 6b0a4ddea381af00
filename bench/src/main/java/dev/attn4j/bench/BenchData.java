package dev.attn4j.bench;

import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.SplittableRandom;

/**
 * Inputs every contender shares, and the checks that it computed the right thing.
 * Inputs are uniform in [-1, 1) from fixed seeds, so every contender, every fork and
 * every run sees the same numbers.
 */
final class BenchData {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** Absolute tolerance of every agreement check (outputs here are O(1)). */
    static final double TOLERANCE = 1e-4;

    private BenchData() {}

    static Tensor random(Arena arena, long seed, long... shape) {
        Tensor t = Tensor.allocate(arena, shape);
        fill(t.segment(), t.size(), seed, 1f);
        return t;
    }

    static void fill(MemorySegment segment, long n, long seed, float bound) {
        SplittableRandom random = new SplittableRandom(seed);
        for (long i = 0; i < n; i++) {
            segment.setAtIndex(F32, i, (float) random.nextDouble(-bound, bound));
        }
    }

    static float[] randomArray(int n, long seed, float bound) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) random.nextDouble(-bound, bound);
        }
        return a;
    }

    /** The tensor's memory as a direct FloatBuffer: ONNX Runtime reads it in place, no copy. */
    static FloatBuffer floats(Tensor t) {
        return t.segment().asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    static double maxAbsDiff(MemorySegment a, MemorySegment b, long n) {
        double max = 0;
        for (long i = 0; i < n; i++) {
            double diff = Math.abs(a.getAtIndex(F32, i) - b.getAtIndex(F32, i));
            if (!(diff <= max)) { // NaN counts as a difference
                max = Double.isNaN(diff) ? Double.POSITIVE_INFINITY : diff;
            }
        }
        return max;
    }

    /** Fails the trial unless {@code actual} agrees with {@code expected} within {@link #TOLERANCE}. */
    static void requireClose(String what, Tensor expected, Tensor actual) {
        if (expected.size() != actual.size()) {
            throw new IllegalStateException(what + ": " + actual.size() + " elements, expected " + expected.size());
        }
        double diff = maxAbsDiff(expected.segment(), actual.segment(), expected.size());
        if (!(diff <= TOLERANCE)) {
            throw new IllegalStateException(what + ": outputs differ by up to " + diff + " (tolerance " + TOLERANCE
                    + "); the benchmark would compare different computations");
        }
    }

    /**
     * Checks {@code out} against attention computed in double precision, on 64 sampled
     * (batch, head, query) rows: an independent truth for every contender, cheap even at
     * shape E.
     */
    static void requireAttention(String what, CoreShape shape, Tensor q, Tensor k, Tensor v, Tensor out) {
        SplittableRandom random = new SplittableRandom(7);
        MemorySegment qs = q.segment();
        MemorySegment ks = k.segment();
        MemorySegment vs = v.segment();
        MemorySegment os = out.segment();
        int d = shape.d;
        double worst = 0;
        for (int sample = 0; sample < 64; sample++) {
            int b = random.nextInt(shape.batch);
            int h = random.nextInt(shape.heads);
            int i = sample == 0 ? 0 : random.nextInt(shape.t); // row 0 is the edge case of causal
            int kvh = h / shape.groups();
            long qRow = (((long) b * shape.heads + h) * shape.t + i) * d;
            long kvBase = ((long) b * shape.kvHeads + kvh) * shape.s * d;
            int limit = shape.causal ? Math.min(i + 1, shape.s) : shape.s;
            double[] p = new double[limit];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < limit; j++) {
                double dot = 0;
                for (int c = 0; c < d; c++) {
                    dot += (double) qs.getAtIndex(F32, qRow + c) * ks.getAtIndex(F32, kvBase + (long) j * d + c);
                }
                p[j] = dot * shape.scale();
                max = Math.max(max, p[j]);
            }
            double sum = 0;
            for (int j = 0; j < limit; j++) {
                p[j] = Math.exp(p[j] - max);
                sum += p[j];
            }
            for (int c = 0; c < d; c++) {
                double o = 0;
                for (int j = 0; j < limit; j++) {
                    o += p[j] * vs.getAtIndex(F32, kvBase + (long) j * d + c);
                }
                double diff = Math.abs(o / sum - os.getAtIndex(F32, qRow + c));
                worst = Double.isNaN(diff) ? Double.POSITIVE_INFINITY : Math.max(worst, diff);
            }
        }
        if (!(worst <= TOLERANCE)) {
            throw new IllegalStateException(what + ": output differs from double-precision attention by up to "
                    + worst + " (tolerance " + TOLERANCE + ")");
        }
    }
}
