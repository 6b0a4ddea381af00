package dev.attn4j;

import java.util.SplittableRandom;

/** Seeded random data for tests. */
public final class TestData {
    private TestData() {}

    public static float[] floats(SplittableRandom random, int n, double lo, double hi) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) random.nextDouble(lo, hi);
        }
        return x;
    }

    public static boolean[] booleans(SplittableRandom random, int n, double pTrue) {
        boolean[] x = new boolean[n];
        for (int i = 0; i < n; i++) {
            x[i] = random.nextDouble() < pTrue;
        }
        return x;
    }

    /** Largest |a - b| / max(1, |b|); NaN-aware (NaN must meet NaN). */
    public static double maxRelError(float[] actual, float[] expected) {
        if (actual.length != expected.length) {
            throw new AssertionError("length " + actual.length + " != " + expected.length);
        }
        double worst = 0;
        for (int i = 0; i < actual.length; i++) {
            if (Float.isNaN(expected[i]) || Float.isNaN(actual[i])) {
                if (Float.isNaN(expected[i]) != Float.isNaN(actual[i])) {
                    return Double.POSITIVE_INFINITY;
                }
                continue;
            }
            worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(1.0, Math.abs(expected[i])));
        }
        return worst;
    }
}
