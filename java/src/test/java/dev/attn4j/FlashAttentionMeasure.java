package dev.attn4j;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * A quick measurement (not a JMH benchmark; the bench module has those): fused
 * {@link Ops#attention} against the unfused path (batched matmul, fused softmax with
 * REPLACE, batched matmul) on the shapes of the task, single-threaded unless asked.
 * Reports the median and the minimum over repetitions of the wall time (on a shared
 * machine the minimum is the run least disturbed by others), and GFLOP/s =
 * 4 B H T S d / time.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp test-classes:classes:deps dev.attn4j.FlashAttentionMeasure [threads]
 * </pre>
 */
public final class FlashAttentionMeasure {
    private FlashAttentionMeasure() {}

    public static void main(String[] args) {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 1;
        String only = args.length > 1 ? args[1] : "ABE";
        Attn4j.setNumThreads(threads);
        System.out.println(Attn4j.info());
        System.out.println("threads " + Attn4j.numThreads());
        if (only.contains("A")) {
            run("A", 8, 8, 256, 256, 64, 31, true);
        }
        if (only.contains("B")) {
            run("B", 1, 8, 32, 32, 64, 2001, true);
        }
        if (only.contains("E")) {
            run("E", 1, 8, 4096, 4096, 64, 5, false);
        }
    }

    private static void run(String name, int b, int h, int t, int s, int d, int reps, boolean unfused) {
        SplittableRandom random = new SplittableRandom(1);
        double flops = 4.0 * b * h * t * s * d;
        float scale = (float) (1 / Math.sqrt(d));
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.of(arena, TestData.floats(random, b * h * t * d, -1, 1), b, h, t, d);
            Tensor k = Tensor.of(arena, TestData.floats(random, b * h * s * d, -1, 1), b, h, s, d);
            Tensor v = Tensor.of(arena, TestData.floats(random, b * h * s * d, -1, 1), b, h, s, d);
            Tensor out = Tensor.allocate(arena, b, h, t, d);
            report(name + " fused   ", flops, time(reps, () -> Ops.attention(q, k, v, out, scale, false)));
            if (unfused) {
                Tensor scores = Tensor.allocate(arena, b, h, t, s);
                Tensor out2 = Tensor.allocate(arena, b, h, t, d);
                report(name + " unfused ", flops, time(reps, () -> {
                    Ops.matmul(q, false, k, true, scores);
                    Ops.maskedSoftmax(scores, scale, null, false, MaskConvention.REPLACE);
                    Ops.matmul(scores, v, out2);
                }));
                float[] x = out.toFloatArray();
                float[] y = out2.toFloatArray();
                double diff = 0;
                for (int i = 0; i < x.length; i++) {
                    diff = Math.max(diff, Math.abs(x[i] - y[i]));
                }
                System.out.printf("%s max |fused - unfused| = %.3g%n", name, diff);
            }
        }
    }

    /** {median, min} of the wall time in seconds, after a warm-up of a third of the repetitions. */
    private static double[] time(int reps, Runnable r) {
        for (int i = 0; i < Math.max(1, reps / 3); i++) {
            r.run();
        }
        double[] wall = new double[reps];
        for (int i = 0; i < reps; i++) {
            long w0 = System.nanoTime();
            r.run();
            wall[i] = (System.nanoTime() - w0) * 1e-9;
        }
        Arrays.sort(wall);
        return new double[] {wall[reps / 2], wall[0]};
    }

    private static void report(String what, double flops, double[] m) {
        System.out.printf("%s median %9.3f ms (%6.1f GFLOP/s)   min %9.3f ms (%6.1f GFLOP/s)%n",
                what, m[0] * 1e3, flops / m[0] * 1e-9, m[1] * 1e3, flops / m[1] * 1e-9);
    }
}
