package dev.attn4j.bench;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The plain Java baseline: core attention with the JDK Vector API, one thread, no
 * native code. What a careful Java programmer writes without a BLAS:
 * <ul>
 *   <li>each K/V head is copied once into heap arrays, K transposed to (d, S) so that a
 *       row of scores is a sum over c of {@code q[c] * Kt[c, :]}: FMAs along the key
 *       axis, four vector accumulators per block of keys, no horizontal reductions;
 *   <li>softmax with the Vector API's EXP (an intrinsic on x86), max-subtracted, the
 *       1/sum folded into the output;
 *   <li>P V as FMAs along d, four independent accumulators over the keys.
 * </ul>
 * Grouped-query shapes reuse one K/V copy for the G query heads that share it; causal
 * shapes stop each row at key i.
 *
 * <p>{@link #backward} is the same programmer's backward pass, also one thread: per
 * query row it recomputes the scores and the softmax with the forward's helpers, then
 * dP = dO V^T (the scores' loop over a V^T copy), dS = P (dP - rowsum(P dP)),
 * dQ = scale dS K (the forward's weighted sum of rows, over a K copy), and adds the row's
 * rank-one shares dV += P^T dO and dK += scale dS^T Q into heap accumulators of the K/V
 * head, written out once per head. No (T, S) matrix, like the fused kernel.
 */
final class VectorAttention {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int L = SPECIES.length();
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final CoreShape shape;
    private final int sPadded;    // Kt row stride: S rounded up to whole vectors
    private final float[] kt;     // (d, sPadded) K^T of one key/value head
    private final float[] vh;     // (S, d) V of one key/value head
    private final float[] qRow;   // one query row, scaled
    private final float[] row;    // one row of scores, then of exp(score - max)
    // Backward only:
    private final float[] vt;     // (d, sPadded) V^T of one key/value head
    private final float[] kh;     // (S, d) K of one key/value head
    private final float[] dkAcc;  // (S, d) dK of one key/value head, summed over rows and its query heads
    private final float[] dvAcc;  // (S, d) dV, likewise
    private final float[] doRow;  // one row of dO
    private final float[] dp;     // one row of dP = dO V^T, then of dS

    VectorAttention(CoreShape shape) {
        if (shape.d % L != 0) {
            throw new IllegalArgumentException("VectorAttention: d = " + shape.d
                    + " must be a multiple of the vector length " + L);
        }
        this.shape = shape;
        this.sPadded = (shape.s + 4 * L - 1) / (4 * L) * (4 * L);
        this.kt = new float[shape.d * sPadded];
        this.vh = new float[shape.s * shape.d];
        this.qRow = new float[shape.d];
        this.row = new float[sPadded];
        this.vt = new float[shape.d * sPadded];
        this.kh = new float[shape.s * shape.d];
        this.dkAcc = new float[shape.s * shape.d];
        this.dvAcc = new float[shape.s * shape.d];
        this.doRow = new float[shape.d];
        this.dp = new float[sPadded];
    }

    static String species() {
        return SPECIES.toString();
    }

    void compute(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out) {
        int d = shape.d;
        int s = shape.s;
        int t = shape.t;
        float scale = shape.scale();
        for (int b = 0; b < shape.batch; b++) {
            for (int kvh = 0; kvh < shape.kvHeads; kvh++) {
                long kvBase = ((long) b * shape.kvHeads + kvh) * s * d;
                transpose(k, kvBase, kt);
                MemorySegment.copy(v, F32, kvBase * Float.BYTES, vh, 0, s * d);
                for (int g = 0; g < shape.groups(); g++) {
                    int h = kvh * shape.groups() + g;
                    for (int i = 0; i < t; i++) {
                        long rowBase = (((long) b * shape.heads + h) * t + i) * d;
                        loadScaledQuery(q, rowBase, scale);
                        int limit = shape.causal ? Math.min(i + 1, s) : s;
                        scores(qRow, kt, row, limit);
                        float inverseSum = softmax(limit);
                        weightedRows(row, vh, limit, inverseSum, out, rowBase * Float.BYTES);
                    }
                }
            }
        }
    }

    /**
     * The gradients of {@link #compute}'s attention: given dOut = dL/d(out), writes
     * dL/dq, dL/dk and dL/dv (layouts of q, k and v). Grouped-query shapes sum the G
     * query heads' shares into their K/V head's dk and dv.
     */
    void backward(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment dOut, MemorySegment dq,
                  MemorySegment dk, MemorySegment dv) {
        int d = shape.d;
        int s = shape.s;
        int t = shape.t;
        float scale = shape.scale();
        for (int b = 0; b < shape.batch; b++) {
            for (int kvh = 0; kvh < shape.kvHeads; kvh++) {
                long kvBase = ((long) b * shape.kvHeads + kvh) * s * d;
                transpose(k, kvBase, kt);
                transpose(v, kvBase, vt);
                MemorySegment.copy(k, F32, kvBase * Float.BYTES, kh, 0, s * d);
                Arrays.fill(dkAcc, 0f);
                Arrays.fill(dvAcc, 0f);
                for (int g = 0; g < shape.groups(); g++) {
                    int h = kvh * shape.groups() + g;
                    for (int i = 0; i < t; i++) {
                        long rowBase = (((long) b * shape.heads + h) * t + i) * d;
                        loadScaledQuery(q, rowBase, scale);
                        MemorySegment.copy(dOut, F32, rowBase * Float.BYTES, doRow, 0, d);
                        int limit = shape.causal ? Math.min(i + 1, s) : s;
                        scores(qRow, kt, row, limit);
                        float inverseSum = softmax(limit);
                        scores(doRow, vt, dp, limit); // dP[j] = dO . V[j, :]
                        softmaxGradient(limit, inverseSum);
                        accumulateKeyValueGradients(limit);
                        // dQ = scale dS K: qRow was scaled, the keys were not.
                        weightedRows(dp, kh, limit, scale, dq, rowBase * Float.BYTES);
                    }
                }
                MemorySegment.copy(dkAcc, 0, dk, F32, kvBase * Float.BYTES, s * d);
                MemorySegment.copy(dvAcc, 0, dv, F32, kvBase * Float.BYTES, s * d);
            }
        }
    }

    /** qRow = scale * q[row, :], the row at {@code rowBase}. */
    private void loadScaledQuery(MemorySegment q, long rowBase, float scale) {
        int d = shape.d;
        MemorySegment.copy(q, F32, rowBase * Float.BYTES, qRow, 0, d);
        for (int c = 0; c < d; c++) {
            qRow[c] *= scale;
        }
    }

    /** mt[c, j] = m[j, c] for the (S, d) head at {@code base}, in tiles of 16 rows (16 floats written per channel). */
    private void transpose(MemorySegment m, long base, float[] mt) {
        int d = shape.d;
        int s = shape.s;
        for (int j0 = 0; j0 < s; j0 += 16) {
            int j1 = Math.min(s, j0 + 16);
            for (int c = 0; c < d; c++) {
                for (int j = j0; j < j1; j++) {
                    mt[c * sPadded + j] = m.getAtIndex(F32, base + (long) j * d + c);
                }
            }
        }
    }

    /** dst[j] = sum_c x[c] * mt[c, j] for j < limit (and garbage up to the next 4L block). */
    private void scores(float[] x, float[] mt, float[] dst, int limit) {
        int d = shape.d;
        for (int j = 0; j < limit; j += 4 * L) {
            FloatVector a0 = FloatVector.zero(SPECIES);
            FloatVector a1 = FloatVector.zero(SPECIES);
            FloatVector a2 = FloatVector.zero(SPECIES);
            FloatVector a3 = FloatVector.zero(SPECIES);
            for (int c = 0; c < d; c++) {
                FloatVector xc = broadcast(x[c]);
                int base = c * sPadded + j;
                a0 = FloatVector.fromArray(SPECIES, mt, base).fma(xc, a0);
                a1 = FloatVector.fromArray(SPECIES, mt, base + L).fma(xc, a1);
                a2 = FloatVector.fromArray(SPECIES, mt, base + 2 * L).fma(xc, a2);
                a3 = FloatVector.fromArray(SPECIES, mt, base + 3 * L).fma(xc, a3);
            }
            a0.intoArray(dst, j);
            a1.intoArray(dst, j + L);
            a2.intoArray(dst, j + 2 * L);
            a3.intoArray(dst, j + 3 * L);
        }
    }

    /**
     * From row = exp(score - max) and dp = dP: row[j] = P[j] (normalized) and
     * dp[j] = dS[j] = P[j] (dP[j] - sum_i P[i] dP[i]), for j < limit.
     */
    private void softmaxGradient(int limit, float inverseSum) {
        int full = limit - limit % L;
        FloatVector dotV = FloatVector.zero(SPECIES);
        for (int j = 0; j < full; j += L) {
            FloatVector p = FloatVector.fromArray(SPECIES, row, j).mul(inverseSum);
            p.intoArray(row, j);
            dotV = p.fma(FloatVector.fromArray(SPECIES, dp, j), dotV);
        }
        float dot = dotV.reduceLanes(VectorOperators.ADD);
        for (int j = full; j < limit; j++) {
            row[j] *= inverseSum;
            dot += row[j] * dp[j];
        }
        for (int j = 0; j < full; j += L) {
            FloatVector p = FloatVector.fromArray(SPECIES, row, j);
            p.mul(FloatVector.fromArray(SPECIES, dp, j).sub(dot)).intoArray(dp, j);
        }
        for (int j = full; j < limit; j++) {
            dp[j] = row[j] * (dp[j] - dot);
        }
    }

    /** For j < limit: dV[j, :] += P[j] dO and dK[j, :] += dS[j] qRow (qRow holds scale q). FMAs along d. */
    private void accumulateKeyValueGradients(int limit) {
        int d = shape.d;
        for (int j = 0; j < limit; j++) {
            FloatVector p = broadcast(row[j]);
            FloatVector ds = broadcast(dp[j]);
            int base = j * d;
            for (int c = 0; c < d; c += L) {
                FloatVector.fromArray(SPECIES, doRow, c).fma(p, FloatVector.fromArray(SPECIES, dvAcc, base + c))
                        .intoArray(dvAcc, base + c);
                FloatVector.fromArray(SPECIES, qRow, c).fma(ds, FloatVector.fromArray(SPECIES, dkAcc, base + c))
                        .intoArray(dkAcc, base + c);
            }
        }
    }

    /** row[j] = exp(row[j] - max) for j < limit; returns 1 / sum. */
    private float softmax(int limit) {
        int full = limit - limit % L;
        FloatVector maxV = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < full; j += L) {
            maxV = maxV.max(FloatVector.fromArray(SPECIES, row, j));
        }
        float max = maxV.reduceLanes(VectorOperators.MAX);
        for (int j = full; j < limit; j++) {
            max = Math.max(max, row[j]);
        }
        FloatVector sumV = FloatVector.zero(SPECIES);
        for (int j = 0; j < full; j += L) {
            FloatVector e = FloatVector.fromArray(SPECIES, row, j).sub(max).lanewise(VectorOperators.EXP);
            e.intoArray(row, j);
            sumV = sumV.add(e);
        }
        float sum = sumV.reduceLanes(VectorOperators.ADD);
        for (int j = full; j < limit; j++) {
            row[j] = (float) Math.exp(row[j] - max);
            sum += row[j];
        }
        return 1 / sum;
    }

    /** out[row, :] = factor * sum_j w[j] * m[j, :] over the (S, d) rows of m, j < limit. */
    private void weightedRows(float[] w, float[] m, int limit, float factor, MemorySegment out, long outOffset) {
        int d = shape.d;
        int unrolled = limit - limit % 4;
        for (int c = 0; c < d; c += L) {
            FloatVector a0 = FloatVector.zero(SPECIES);
            FloatVector a1 = FloatVector.zero(SPECIES);
            FloatVector a2 = FloatVector.zero(SPECIES);
            FloatVector a3 = FloatVector.zero(SPECIES);
            int j = 0;
            for (; j < unrolled; j += 4) {
                a0 = FloatVector.fromArray(SPECIES, m, j * d + c).fma(broadcast(w[j]), a0);
                a1 = FloatVector.fromArray(SPECIES, m, (j + 1) * d + c).fma(broadcast(w[j + 1]), a1);
                a2 = FloatVector.fromArray(SPECIES, m, (j + 2) * d + c).fma(broadcast(w[j + 2]), a2);
                a3 = FloatVector.fromArray(SPECIES, m, (j + 3) * d + c).fma(broadcast(w[j + 3]), a3);
            }
            for (; j < limit; j++) {
                a0 = FloatVector.fromArray(SPECIES, m, j * d + c).fma(broadcast(w[j]), a0);
            }
            a0.add(a1).add(a2.add(a3)).mul(factor)
                    .intoMemorySegment(out, outOffset + (long) c * Float.BYTES, ByteOrder.nativeOrder());
        }
    }

    private static FloatVector broadcast(float x) {
        return FloatVector.broadcast(SPECIES, x);
    }
}
