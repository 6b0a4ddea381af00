package dev.attn4j;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;

/**
 * Run in a forked JVM by {@link AltOpenBlasTest}: prints {@link Attn4j#info()} and
 * multiplies random matrices (small and large batches) through the public path,
 * exiting 0 when every product matches the plain reference.
 */
public final class AltOpenBlasCheck {
    public static void main(String[] args) {
        System.out.println(Attn4j.info());
        SplittableRandom random = new SplittableRandom(1);
        int[][] shapes = {{3, 4, 5, 6}, {3, 100, 100, 100}, {4, 128, 96, 130}, {2, 200, 150, 64}};
        for (int[] s : shapes) {
            int batch = s[0], m = s[1], n = s[2], k = s[3];
            float[] a = TestData.floats(random, batch * m * k, -1, 1);
            float[] b = TestData.floats(random, batch * n * k, -1, 1);
            try (Arena arena = Arena.ofConfined()) {
                Tensor out = Tensor.allocate(arena, batch, m, n);
                Ops.matmul(Tensor.of(arena, a, batch, m, k), false, Tensor.of(arena, b, batch, n, k), true, out);
                double err = TestData.maxRelError(out.toFloatArray(),
                        MatmulTest.reference(a, false, b, true, false, batch, m, n, k));
                if (!(err < MatmulTest.tolerance(k))) {
                    System.out.println("MISMATCH " + batch + "x" + m + "x" + n + "x" + k + " error " + err);
                    System.exit(2);
                }
            }
        }
        System.out.println("ALL PRODUCTS OK");
    }
}
