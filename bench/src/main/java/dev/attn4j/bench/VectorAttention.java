package dev.attn4j.bench;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
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
                // K^T in tiles of 16 keys: 16 rows read, 16 consecutive floats written per channel.
                for (int j0 = 0; j0 < s; j0 += 16) {
                    int j1 = Math.min(s, j0 + 16);
                    for (int c = 0; c < d; c++) {
                        for (int j = j0; j < j1; j++) {
                            kt[c * sPadded + j] = k.getAtIndex(F32, kvBase + (long) j * d + c);
                        }
                    }
                }
                MemorySegment.copy(v, F32, kvBase * Float.BYTES, vh, 0, s * d);
                for (int g = 0; g < shape.groups(); g++) {
                    int h = kvh * shape.groups() + g;
                    for (int i = 0; i < t; i++) {
                        long rowBase = (((long) b * shape.heads + h) * t + i) * d;
                        MemorySegment.copy(q, F32, rowBase * Float.BYTES, qRow, 0, d);
                        for (int c = 0; c < d; c++) {
                            qRow[c] *= scale;
                        }
                        int limit = shape.causal ? Math.min(i + 1, s) : s;
                        scores(limit);
                        float inverseSum = softmax(limit);
                        weightedValues(limit, inverseSum, out, rowBase * Float.BYTES);
                    }
                }
            }
        }
    }

    /** row[j] = sum_c qRow[c] * Kt[c, j] for j < limit (and garbage up to the next 4L block). */
    private void scores(int limit) {
        int d = shape.d;
        for (int j = 0; j < limit; j += 4 * L) {
            FloatVector a0 = FloatVector.zero(SPECIES);
            FloatVector a1 = FloatVector.zero(SPECIES);
            FloatVector a2 = FloatVector.zero(SPECIES);
            FloatVector a3 = FloatVector.zero(SPECIES);
            for (int c = 0; c < d; c++) {
                FloatVector qc = broadcast(qRow[c]);
                int base = c * sPadded + j;
                a0 = FloatVector.fromArray(SPECIES, kt, base).fma(qc, a0);
                a1 = FloatVector.fromArray(SPECIES, kt, base + L).fma(qc, a1);
                a2 = FloatVector.fromArray(SPECIES, kt, base + 2 * L).fma(qc, a2);
                a3 = FloatVector.fromArray(SPECIES, kt, base + 3 * L).fma(qc, a3);
            }
            a0.intoArray(row, j);
            a1.intoArray(row, j + L);
            a2.intoArray(row, j + 2 * L);
            a3.intoArray(row, j + 3 * L);
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

    /** out[row, :] = inverseSum * sum_j row[j] * V[j, :], j < limit. */
    private void weightedValues(int limit, float inverseSum, MemorySegment out, long outOffset) {
        int d = shape.d;
        int unrolled = limit - limit % 4;
        for (int c = 0; c < d; c += L) {
            FloatVector a0 = FloatVector.zero(SPECIES);
            FloatVector a1 = FloatVector.zero(SPECIES);
            FloatVector a2 = FloatVector.zero(SPECIES);
            FloatVector a3 = FloatVector.zero(SPECIES);
            int j = 0;
            for (; j < unrolled; j += 4) {
                a0 = FloatVector.fromArray(SPECIES, vh, j * d + c).fma(broadcast(row[j]), a0);
                a1 = FloatVector.fromArray(SPECIES, vh, (j + 1) * d + c).fma(broadcast(row[j + 1]), a1);
                a2 = FloatVector.fromArray(SPECIES, vh, (j + 2) * d + c).fma(broadcast(row[j + 2]), a2);
                a3 = FloatVector.fromArray(SPECIES, vh, (j + 3) * d + c).fma(broadcast(row[j + 3]), a3);
            }
            for (; j < limit; j++) {
                a0 = FloatVector.fromArray(SPECIES, vh, j * d + c).fma(broadcast(row[j]), a0);
            }
            a0.add(a1).add(a2.add(a3)).mul(inverseSum)
                    .intoMemorySegment(out, outOffset + (long) c * Float.BYTES, ByteOrder.nativeOrder());
        }
    }

    private static FloatVector broadcast(float x) {
        return FloatVector.broadcast(SPECIES, x);
    }
}
