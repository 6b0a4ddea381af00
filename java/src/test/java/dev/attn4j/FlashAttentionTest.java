package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.internal.Scratch;
import dev.attn4j.internal.backend.NativeBackend;
import dev.attn4j.internal.backend.ReferenceBackend;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Fused (flash) attention, {@link Ops#attention}: against a plain double-precision
 * reference written here, against the unfused path (matmul, masked softmax with
 * REPLACE, matmul), and the backend seam's general form (grouped-query heads, key
 * padding, the (B, T, N, H) layout read in place) native against {@link ReferenceBackend}.
 *
 * <p>Tolerance: for output (row i, channel c) with exact probabilities p_j, L the
 * largest |scale| sum_p |q_ip k_jp| over the kept keys and M = sum_j p_j |v_jc|, the
 * float32 kernel is within M (2 g(d + 1) L + 2 g(S) + 4e-7), g(n) = n 2^-24: float dot
 * products of d terms shift each logit by at most g(d + 1) L, so each p_j by a factor
 * within exp(2 g(d + 1) L); the float sums over S keys add g(S) each; exp and the final
 * scaling a few ulp. A worst-case bound, as in native/test/test_flash.c.
 */
class FlashAttentionTest {

    private static final double G = 0x1.0p-24;

    /** The exact result in double and the error bound of each output. */
    record Reference(double[] want, double[] tol) {}

    /**
     * Plain attention over dense (batch, t, d) q, (batch, s, d) k, (batch, s, dv) v:
     * the logits and the softmax in double; causal keeps j <= i.
     */
    static Reference reference(float[] q, float[] k, float[] v, int batch, int t, int s, int d, int dv,
                               float scale, boolean causal) {
        double[] want = new double[batch * t * dv];
        double[] tol = new double[want.length];
        double[] x = new double[s];
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < t; i++) {
                double max = Double.NEGATIVE_INFINITY;
                double lmax = 0;
                int kept = causal ? Math.min(i + 1, s) : s;
                for (int j = 0; j < kept; j++) {
                    double dot = 0;
                    double mag = 0;
                    for (int p = 0; p < d; p++) {
                        double term = (double) q[(b * t + i) * d + p] * k[(b * s + j) * d + p];
                        dot += term;
                        mag += Math.abs(term);
                    }
                    x[j] = scale * dot;
                    max = Math.max(max, x[j]);
                    lmax = Math.max(lmax, Math.abs(scale) * mag);
                }
                double sum = 0;
                for (int j = 0; j < kept; j++) {
                    sum += Math.exp(x[j] - max);
                }
                for (int c = 0; c < dv; c++) {
                    double acc = 0;
                    double absAcc = 0;
                    for (int j = 0; j < kept; j++) {
                        double p = Math.exp(x[j] - max) / sum;
                        float vj = v[(b * s + j) * dv + c];
                        acc += p * vj;
                        absAcc += p * Math.abs(vj);
                    }
                    int at = (b * t + i) * dv + c;
                    want[at] = acc;
                    tol[at] = absAcc * (2 * G * (d + 1) * lmax + 2 * G * s + 4e-7) + 1e-30;
                }
            }
        }
        return new Reference(want, tol);
    }

    /** The worst |got - want| / tol; fails with the first output outside its bound. */
    static double check(float[] got, Reference ref, double slack, String what) {
        double worst = 0;
        for (int at = 0; at < got.length; at++) {
            double err = Math.abs(got[at] - ref.want[at]);
            double allowed = slack * ref.tol[at];
            if (!(err <= allowed)) {
                throw new AssertionError(what + ": output " + at + " = " + got[at] + ", expected " + ref.want[at]
                        + " (error " + err + ", allowed " + allowed + ")");
            }
            worst = Math.max(worst, err / allowed);
        }
        return worst;
    }

    static Stream<Arguments> shapes() {
        // {leading dims..., T, S, d, dv}: sizes 1, odd, around the 32-row and 64-key
        // blocks, T != S both ways, and no batch axis at all.
        long[][] shapes = {
            {1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}, {2, 3, 5, 7, 3, 2}, {1, 2, 31, 33, 16, 16}, {2, 1, 32, 64, 8, 12},
            {1, 3, 33, 65, 13, 11}, {3, 70, 17, 64, 64}, {17, 130, 5, 9}, {2, 2, 1, 100, 32, 7}, {1, 1, 100, 1, 9, 24},
            {2, 97, 129, 64, 64},
        };
        List<Arguments> list = new ArrayList<>();
        long seed = 100;
        for (long[] s : shapes) {
            for (boolean causal : new boolean[] {false, true}) {
                list.add(Arguments.of(s, causal, seed++));
            }
        }
        return list.stream();
    }

    @ParameterizedTest(name = "shape {0} causal={1} seed={2}")
    @MethodSource("shapes")
    void matchesDoublePrecisionReference(long[] spec, boolean causal, long seed) {
        NativeTests.requireNative();
        int lead = spec.length - 4;
        int batch = 1;
        for (int i = 0; i < lead; i++) {
            batch *= (int) spec[i];
        }
        int t = (int) spec[lead];
        int s = (int) spec[lead + 1];
        int d = (int) spec[lead + 2];
        int dv = (int) spec[lead + 3];
        SplittableRandom random = new SplittableRandom(seed);
        float[] q = TestData.floats(random, batch * t * d, -1, 1);
        float[] k = TestData.floats(random, batch * s * d, -1, 1);
        float[] v = TestData.floats(random, batch * s * dv, -1, 1);
        float scale = (float) (1 / Math.sqrt(d));
        try (Arena arena = Arena.ofConfined()) {
            Tensor out = Tensor.allocate(arena, withLast(spec, lead, t, dv));
            Ops.attention(Tensor.of(arena, q, withLast(spec, lead, t, d)), Tensor.of(arena, k, withLast(spec, lead, s, d)),
                    Tensor.of(arena, v, withLast(spec, lead, s, dv)), out, scale, causal);
            check(out.toFloatArray(), reference(q, k, v, batch, t, s, d, dv, scale, causal), 1, "attention");
        }
    }

    private static long[] withLast(long[] spec, int lead, long a, long b) {
        long[] shape = new long[lead + 2];
        System.arraycopy(spec, 0, shape, 0, lead);
        shape[lead] = a;
        shape[lead + 1] = b;
        return shape;
    }

    /**
     * Shape A of the benchmarks, (B, H, T, S, d) = (8, 8, 256, 256, 64), with B = 2 to
     * keep the test short: fused against the unfused path the layers run (a batched
     * product, the fused softmax with REPLACE, a batched product), and both against the
     * reference. Each is within its bound, so they are within twice it of each other.
     */
    @Test
    void matchesTheUnfusedPathOnShapeALikeSizes() {
        NativeTests.requireNative();
        int b = 2, h = 8, t = 256, s = 256, d = 64;
        SplittableRandom random = new SplittableRandom(7);
        float[] q = TestData.floats(random, b * h * t * d, -1, 1);
        float[] k = TestData.floats(random, b * h * s * d, -1, 1);
        float[] v = TestData.floats(random, b * h * s * d, -1, 1);
        float scale = 0.125f;
        try (Arena arena = Arena.ofConfined()) {
            Tensor tq = Tensor.of(arena, q, b, h, t, d);
            Tensor tk = Tensor.of(arena, k, b, h, s, d);
            Tensor tv = Tensor.of(arena, v, b, h, s, d);
            for (boolean causal : new boolean[] {false, true}) {
                Tensor fused = Tensor.allocate(arena, b, h, t, d);
                Ops.attention(tq, tk, tv, fused, scale, causal);

                Tensor scores = Tensor.allocate(arena, b, h, t, s);
                Tensor unfused = Tensor.allocate(arena, b, h, t, d);
                Ops.matmul(tq, false, tk, true, scores);
                Ops.maskedSoftmax(scores, scale, null, causal, MaskConvention.REPLACE);
                Ops.matmul(scores, tv, unfused);

                Reference ref = reference(q, k, v, b * h, t, s, d, d, scale, causal);
                float[] f = fused.toFloatArray();
                float[] u = unfused.toFloatArray();
                check(f, ref, 1, "fused, causal=" + causal);
                check(u, ref, 1, "unfused, causal=" + causal);
                double[] fusedAsWant = new double[f.length];
                for (int i = 0; i < f.length; i++) {
                    fusedAsWant[i] = f[i];
                }
                double[] twice = ref.tol.clone();
                for (int i = 0; i < twice.length; i++) {
                    twice[i] *= 2;
                }
                check(u, new Reference(fusedAsWant, twice), 1, "unfused vs fused, causal=" + causal);
            }
        }
    }

    /**
     * The backend's general form, as a multi-head layer would call it: q, k, v and out
     * in the (B, T, N, H) projection layout read and written in place, grouped-query
     * heads (kvRepeat 2), a (B, S) key padding mask shared by the heads with some
     * entries fully padded, causal or not, with and without a per-head query bias.
     * Native against the plain Java reference;
     * 1, 2 and 3 threads give the same bits.
     */
    @Test
    void backendGeneralFormMatchesTheReferenceBackend() {
        NativeBackend nb = NativeTests.requireNative();
        ReferenceBackend ref = new ReferenceBackend();
        int b = 2, t = 45, s = 70, n = 4, nkv = 2, h = 24, hv = 20;
        long rep = n / nkv;
        SplittableRandom random = new SplittableRandom(31);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment q = arena.allocateFrom(ValueLayout.JAVA_FLOAT, TestData.floats(random, b * t * n * h, -1, 1));
            MemorySegment k = arena.allocateFrom(ValueLayout.JAVA_FLOAT, TestData.floats(random, b * s * nkv * h, -1, 1));
            MemorySegment v = arena.allocateFrom(ValueLayout.JAVA_FLOAT, TestData.floats(random, b * s * nkv * hv, -1, 1));
            MemorySegment mask = arena.allocate((long) b * s);
            for (int j = 0; j < b * s; j++) {
                // batch entry 1: keys before 20 padded, so causal rows i < 20 keep none
                boolean keep = j < s ? random.nextDouble() < 0.7 : j - s >= 20 && random.nextDouble() < 0.7;
                mask.set(ValueLayout.JAVA_BYTE, j, (byte) (keep ? 1 : 0));
            }
            MemorySegment bias = arena.allocateFrom(ValueLayout.JAVA_FLOAT, TestData.floats(random, n * h, -1, 1));
            for (boolean causal : new boolean[] {false, true}) {
                for (MemorySegment colMask : new MemorySegment[] {MemorySegment.NULL, mask}) {
                    for (MemorySegment qBias : new MemorySegment[] {MemorySegment.NULL, bias}) {
                        float[][] got = new float[4][];
                        for (int threads = 0; threads <= 3; threads++) {
                            MemorySegment out = arena.allocate((long) b * t * n * hv * 4);
                            (threads == 0 ? ref : nb).flashAttention(
                                    q, n * h, (long) t * n * h, h,
                                    k, nkv * h, (long) s * nkv * h, h,
                                    v, nkv * hv, (long) s * nkv * hv, hv,
                                    out, n * hv, (long) t * n * hv, hv,
                                    b * n, n, rep, t, s, h, hv, 0.3f, qBias, colMask, n, causal, MemorySegment.NULL,
                                    Math.max(threads, 1));
                            got[threads] = out.toArray(ValueLayout.JAVA_FLOAT);
                        }
                        String what = "causal=" + causal + " mask=" + !colMask.equals(MemorySegment.NULL)
                                + " qBias=" + !qBias.equals(MemorySegment.NULL);
                        double err = TestData.maxRelError(got[1], got[0]);
                        assertTrue(err < 2e-6, () -> what + ": native vs reference backend, max error " + err);
                        assertArrayEquals(got[1], got[2], what + ": 2 threads differ from 1");
                        assertArrayEquals(got[1], got[3], what + ": 3 threads differ from 1");
                    }
                }
            }
        }
    }

    /** A sequence long enough that the score matrix would be 64 MiB; rows sampled. */
    @Test
    void longSequenceSampledRows() {
        NativeTests.requireNative();
        int t = 4096, s = 4096, d = 16;
        SplittableRandom random = new SplittableRandom(5);
        float[] q = TestData.floats(random, t * d, -2, 2);
        float[] k = TestData.floats(random, s * d, -2, 2);
        float[] v = TestData.floats(random, s * d, -1, 1);
        try (Arena arena = Arena.ofConfined()) {
            Tensor out = Tensor.allocate(arena, 1, t, d);
            Ops.attention(Tensor.of(arena, q, 1, t, d), Tensor.of(arena, k, 1, s, d), Tensor.of(arena, v, 1, s, d), out,
                    0.25f, true);
            float[] got = out.toFloatArray();
            for (int i : new int[] {0, 1, 31, 32, 63, 64, 1000, 2047, 4000, 4095}) {
                // Row i alone: causal, it sees the first i + 1 keys and nothing else.
                float[] qi = new float[d];
                System.arraycopy(q, i * d, qi, 0, d);
                int rows = i + 1;
                float[] kPrefix = new float[rows * d];
                float[] vPrefix = new float[rows * d];
                System.arraycopy(k, 0, kPrefix, 0, rows * d);
                System.arraycopy(v, 0, vPrefix, 0, rows * d);
                float[] row = new float[d];
                System.arraycopy(got, i * d, row, 0, d);
                check(row, reference(qi, kPrefix, vPrefix, 1, 1, rows, d, d, 0.25f, false), 1, "row " + i);
            }
        }
    }

    @Test
    void emptyAndDegenerateShapes() {
        NativeTests.requireNative();
        try (Arena arena = Arena.ofConfined()) {
            // S = 0: softmax over no keys, then an empty sum: zeros.
            Tensor out = Tensor.of(arena, new float[] {5, 5, 5, 5, 5, 5}, 2, 3);
            Ops.attention(Tensor.allocate(arena, 2, 4), Tensor.allocate(arena, 0, 4), Tensor.allocate(arena, 0, 3),
                    out, 1f, false);
            assertArrayEquals(new float[6], out.toFloatArray());
            // T = 0 and a zero batch: nothing to do.
            Ops.attention(Tensor.allocate(arena, 0, 4), Tensor.allocate(arena, 3, 4), Tensor.allocate(arena, 3, 2),
                    Tensor.allocate(arena, 0, 2), 1f, true);
            Ops.attention(Tensor.allocate(arena, 0, 2, 4), Tensor.allocate(arena, 0, 3, 4), Tensor.allocate(arena, 0, 3, 2),
                    Tensor.allocate(arena, 0, 2, 2), 1f, true);
            // One key: every row is that value row, causal or not.
            Tensor one = Tensor.allocate(arena, 3, 2);
            Ops.attention(Tensor.of(arena, new float[] {1, 2, 3, 4, 5, 6}, 3, 2), Tensor.of(arena, new float[] {7, 8}, 1, 2),
                    Tensor.of(arena, new float[] {0.5f, -2f}, 1, 2), one, 0.1f, true);
            assertArrayEquals(new float[] {0.5f, -2f, 0.5f, -2f, 0.5f, -2f}, one.toFloatArray());
        }
    }

    @Test
    void invalidArgumentsAreRejectedBeforeTheNativeCall() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.allocate(arena, 2, 3, 5, 8);
            Tensor k = Tensor.allocate(arena, 2, 3, 7, 8);
            Tensor v = Tensor.allocate(arena, 2, 3, 7, 4);
            Tensor out = Tensor.allocate(arena, 2, 3, 5, 4);
            expect("attention: k must have the last dimension of q, d = 8 (q [2, 3, 5, 8]), but has shape [2, 3, 7, 9]",
                    () -> Ops.attention(q, Tensor.allocate(arena, 2, 3, 7, 9), v, out, 1f, false));
            expect("attention: v must have as many rows as k, S = 7 (k [2, 3, 7, 8]), but has shape [2, 3, 6, 4]",
                    () -> Ops.attention(q, k, Tensor.allocate(arena, 2, 3, 6, 4), out, 1f, false));
            expect("attention: out must have shape (batch..., T = 5, dv = 4), but has shape [2, 3, 5, 5]",
                    () -> Ops.attention(q, k, v, Tensor.allocate(arena, 2, 3, 5, 5), 1f, false));
            expect("attention: batch dimensions differ at axis 1: q [2, 3, 5, 8], k [2, 2, 7, 8], v [2, 3, 7, 4], "
                    + "out [2, 3, 5, 4]", () -> Ops.attention(q, Tensor.allocate(arena, 2, 2, 7, 8), v, out, 1f, false));
            expect("attention: v must have the rank of q (4) (batch..., S, dv), but has shape [6, 7, 4]",
                    () -> Ops.attention(q, k, Tensor.allocate(arena, 6, 7, 4), out, 1f, false));
            expect("attention: q must have rank >= 2 (batch..., T, d), but has shape [8]",
                    () -> Ops.attention(Tensor.allocate(arena, 8), k, v, out, 1f, false));
            expect("attention: k must be float32, but is Tensor[bool, shape=[2, 3, 7, 8]]",
                    () -> Ops.attention(q, Tensor.allocateMask(arena, 2, 3, 7, 8), v, out, 1f, false));
            assertThrows(NullPointerException.class, () -> Ops.attention(q, k, null, out, 1f, false));
            // out over q's memory (a view of the same elements).
            Tensor square = Tensor.allocate(arena, 4, 4);
            IllegalArgumentException overlap = assertThrows(IllegalArgumentException.class,
                    () -> Ops.attention(square, Tensor.allocate(arena, 3, 4), Tensor.allocate(arena, 3, 4),
                            square.reshape(4, 4), 1f, false));
            assertTrue(overlap.getMessage().startsWith("attention: out must not overlap q, but out [4, 4]"),
                    overlap::getMessage);
            Tensor readOnly = Tensor.wrap(out.segment().asReadOnly(), 2, 3, 5, 4);
            expect("attention: out must be writable, but its segment is read-only",
                    () -> Ops.attention(q, k, v, readOnly, 1f, false));
            expect("attention: q and k must have a last dimension d >= 1, but q has shape [2, 0] and k [3, 0]",
                    () -> Ops.attention(Tensor.allocate(arena, 2, 0), Tensor.allocate(arena, 3, 0),
                            Tensor.allocate(arena, 3, 2), Tensor.allocate(arena, 2, 2), 1f, false));
        }
    }

    private static void expect(String message, Runnable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertEquals(message, e.getMessage());
    }

    /** The kernel workspace is its own per-thread block: it never overlaps carved scratch. */
    @Test
    void workspaceIsApartFromScratchAndReused() {
        MemorySegment carved = Scratch.carver(1 << 16).floats(1 << 14);
        MemorySegment ws = Scratch.workspace(30_000);
        assertTrue(ws.address() >= carved.address() + carved.byteSize()
                || carved.address() >= ws.address() + ws.byteSize(), "workspace overlaps the scratch block");
        assertEquals(0, ws.address() % 64);
        assertTrue(ws.byteSize() >= 30_000);
        assertEquals(ws, Scratch.workspace(20_000), "a smaller workspace is not the same block");
    }
}
