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
     * Tolerance of the gradient checks, relative: max |difference| / max |expected value|.
     * Gradients are sums over up to T rows (dk, dv) or S keys (dq) of terms of both signs,
     * and their scale differs from tensor to tensor (on shape A the largest |dq| and |dk|
     * are ~0.07, |dv| ~0.17), so a relative bound fits them all.
     */
    static final double GRADIENT_TOLERANCE = 1e-3;

    /** max |expected - actual| / max |expected| over the tensor; NaN anywhere counts as infinite. */
    static double relativeDiff(Tensor expected, Tensor actual) {
        MemorySegment e = expected.segment();
        MemorySegment a = actual.segment();
        double scale = 0;
        for (long i = 0; i < expected.size(); i++) {
            scale = Math.max(scale, Math.abs(e.getAtIndex(F32, i)));
        }
        return maxAbsDiff(e, a, expected.size()) / Math.max(scale, Double.MIN_NORMAL);
    }

    /** Fails the trial unless {@code actual} is within {@link #GRADIENT_TOLERANCE} of {@code expected}, relatively. */
    static void requireRelativeClose(String what, Tensor expected, Tensor actual) {
        if (expected.size() != actual.size()) {
            throw new IllegalStateException(what + ": " + actual.size() + " elements, expected " + expected.size());
        }
        double diff = relativeDiff(expected, actual);
        if (!(diff <= GRADIENT_TOLERANCE)) {
            throw new IllegalStateException(what + ": differ by up to " + diff + " of the largest value (tolerance "
                    + GRADIENT_TOLERANCE + "); the benchmark would compare different computations");
        }
    }

    /**
     * Checks the gradients dq, dk, dv of core attention (given dOut) against the backward
     * pass computed in double precision, on two sampled (batch, key/value head) pairs:
     * every query head that shares the K/V head (its dq rows) and the head's dk and dv,
     * which sum over all of them. Relative tolerance per tensor ({@link #GRADIENT_TOLERANCE}).
     */
    static void requireAttentionBackward(String what, CoreShape shape, Tensor q, Tensor k, Tensor v, Tensor dOut,
                                         Tensor dq, Tensor dk, Tensor dv) {
        SplittableRandom random = new SplittableRandom(8);
        int d = shape.d;
        int s = shape.s;
        int t = shape.t;
        double scale = shape.scale();
        // [0] dq, [1] dk, [2] dv: the largest |reference| and the largest |difference| seen.
        double[] largest = new double[3];
        double[] worst = new double[3];
        for (int sample = 0; sample < 2; sample++) {
            int b = random.nextInt(shape.batch);
            int kvh = random.nextInt(shape.kvHeads);
            long kvBase = ((long) b * shape.kvHeads + kvh) * s * d;
            double[] kh = doubles(k.segment(), kvBase, s * d);
            double[] vh = doubles(v.segment(), kvBase, s * d);
            double[] dkRef = new double[s * d];
            double[] dvRef = new double[s * d];
            double[] p = new double[s];
            double[] dp = new double[s];
            for (int g = 0; g < shape.groups(); g++) {
                int h = kvh * shape.groups() + g;
                for (int i = 0; i < t; i++) {
                    long rowBase = (((long) b * shape.heads + h) * t + i) * d;
                    double[] qi = doubles(q.segment(), rowBase, d);
                    double[] doi = doubles(dOut.segment(), rowBase, d);
                    int limit = shape.causal ? Math.min(i + 1, s) : s;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < limit; j++) {
                        double dot = 0;
                        double dotV = 0;
                        for (int c = 0; c < d; c++) {
                            dot += qi[c] * kh[j * d + c];
                            dotV += doi[c] * vh[j * d + c];
                        }
                        p[j] = dot * scale;
                        dp[j] = dotV;
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < limit; j++) {
                        p[j] = Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    double rowDot = 0;
                    for (int j = 0; j < limit; j++) {
                        p[j] /= sum;
                        rowDot += p[j] * dp[j];
                    }
                    double[] dqi = new double[d];
                    for (int j = 0; j < limit; j++) {
                        double ds = p[j] * (dp[j] - rowDot);
                        for (int c = 0; c < d; c++) {
                            dqi[c] += scale * ds * kh[j * d + c];
                            dkRef[j * d + c] += scale * ds * qi[c];
                            dvRef[j * d + c] += p[j] * doi[c];
                        }
                    }
                    compare(dqi, dq.segment(), rowBase, largest, worst, 0);
                }
            }
            compare(dkRef, dk.segment(), kvBase, largest, worst, 1);
            compare(dvRef, dv.segment(), kvBase, largest, worst, 2);
        }
        String[] names = {"dq", "dk", "dv"};
        for (int n = 0; n < 3; n++) {
            double relative = worst[n] / Math.max(largest[n], Double.MIN_NORMAL);
            if (!(relative <= GRADIENT_TOLERANCE)) {
                throw new IllegalStateException(what + ": " + names[n] + " differs from the double-precision backward"
                        + " pass by up to " + relative + " of its largest value (tolerance " + GRADIENT_TOLERANCE
                        + ")");
            }
        }
    }

    private static double[] doubles(MemorySegment m, long offset, int n) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = m.getAtIndex(F32, offset + i);
        }
        return a;
    }

    private static void compare(double[] expected, MemorySegment actual, long offset, double[] largest,
                                double[] worst, int slot) {
        for (int i = 0; i < expected.length; i++) {
            largest[slot] = Math.max(largest[slot], Math.abs(expected[i]));
            double diff = Math.abs(expected[i] - actual.getAtIndex(F32, offset + i));
            worst[slot] = Double.isNaN(diff) ? Double.POSITIVE_INFINITY : Math.max(worst[slot], diff);
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
