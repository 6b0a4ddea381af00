package dev.attn4j.internal.backend;

import dev.attn4j.MaskConvention;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Plain Java implementation of {@link Backend}: straightforward loops, accumulation
 * in double, no tricks. It is the independent truth the native backend is tested
 * against, and the fallback when the native libraries cannot load (much slower).
 * Stateless and thread-safe.
 */
public final class ReferenceBackend implements Backend {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** The float32 constants Keras uses for masked logits. */
    static final float KERAS_SUBTRACT = 1e9f;
    static final float KERAS_SOFTMAX_NEGATIVE = -1e9f;
    static final float KERAS_DPA_NEGATIVE = -0.7f * Float.MAX_VALUE;

    @Override
    public String name() {
        return "java";
    }

    @Override
    public void sgemmBatched(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             MemorySegment a, int lda, long aOuter, long aInner,
                             MemorySegment b, int ldb, long bOuter, long bInner, int bRepeat,
                             float beta, MemorySegment c, int ldc, long cOuter, long cInner,
                             int outer, int inner, GemmRoute route) {
        for (int o = 0; o < outer; o++) {
            for (int h = 0; h < inner; h++) {
                long offA = o * aOuter + h * aInner;
                long offB = o * bOuter + (h / bRepeat) * bInner;
                long offC = o * cOuter + h * cInner;
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double sum = 0;
                        for (int p = 0; p < k; p++) {
                            float x = a.getAtIndex(F32, offA + (transA ? (long) p * lda + i : (long) i * lda + p));
                            float y = b.getAtIndex(F32, offB + (transB ? (long) j * ldb + p : (long) p * ldb + j));
                            sum += (double) x * y;
                        }
                        long at = offC + (long) i * ldc + j;
                        // beta == 0 ignores C entirely (it may hold garbage or NaN), as BLAS does.
                        double old = beta == 0f ? 0 : (double) beta * c.getAtIndex(F32, at);
                        c.setAtIndex(F32, at, (float) (alpha * sum + old));
                    }
                }
            }
        }
    }

    @Override
    public void maskedSoftmax(MemorySegment scores, long batch, int tq, int tv, float scale,
                              MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                              MemorySegment rowMask, MemorySegment colMask, long padBatchDiv,
                              boolean causal, long window, MaskConvention convention) {
        boolean hasRow = !rowMask.equals(MemorySegment.NULL);
        float[] logits = new float[tv];
        boolean[] keep = new boolean[tv];
        for (long bt = 0; bt < batch; bt++) {
            for (int i = 0; i < tq; i++) {
                long row = (bt * tq + i) * tv;
                long maskRow = (bt / maskBatchDiv) * maskBatchStride + (long) i * maskRowStride;
                long pad = bt / padBatchDiv;
                boolean rowKept = !hasRow || rowMask.get(ValueLayout.JAVA_BYTE, pad * tq + i) != 0;
                for (int j = 0; j < tv; j++) {
                    float x = scale * scores.getAtIndex(F32, row + j);
                    keep[j] = kept(rowKept, mask, maskRow, colMask, pad * tv, i, j, causal, window);
                    logits[j] = keep[j] ? x : switch (convention) {
                        case SUBTRACT -> x - KERAS_SUBTRACT;
                        case REPLACE_THEN_ZERO -> KERAS_SOFTMAX_NEGATIVE;
                        case REPLACE -> KERAS_DPA_NEGATIVE;
                    };
                }
                // Math.max propagates NaN, so a NaN logit makes the whole row NaN, as in numpy.
                double max = Double.NEGATIVE_INFINITY;
                for (float v : logits) {
                    max = Math.max(max, v);
                }
                double sum = 0;
                for (float v : logits) {
                    sum += Math.exp(v - max);
                }
                for (int j = 0; j < tv; j++) {
                    double p = Math.exp(logits[j] - max) / sum;
                    if (convention == MaskConvention.REPLACE_THEN_ZERO && !keep[j]) {
                        p = 0; // keras.layers.Softmax: where(mask, p, 0), also in a NaN row
                    }
                    scores.setAtIndex(F32, row + j, (float) p);
                }
            }
        }
    }

    /** Whether the forward softmax keeps (i, j); {@code rowKept} already holds the row mask. */
    private static boolean kept(boolean rowKept, MemorySegment mask, long maskRow, MemorySegment colMask, long colRow,
                                int i, int j, boolean causal, long window) {
        return rowKept
                && (mask.equals(MemorySegment.NULL) || mask.get(ValueLayout.JAVA_BYTE, maskRow + j) != 0)
                && (colMask.equals(MemorySegment.NULL) || colMask.get(ValueLayout.JAVA_BYTE, colRow + j) != 0)
                && (!causal || j <= i)
                && (window <= 0 || Math.abs(i - j) < window);
    }

    @Override
    public void smallGemm(MemorySegment x, int m, int k, MemorySegment w, int n, MemorySegment bias,
                          MemorySegment y) {
        boolean hasBias = !bias.equals(MemorySegment.NULL);
        for (int r = 0; r < m; r++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                for (int i = 0; i < k; i++) {
                    sum += (double) x.getAtIndex(F32, (long) r * k + i) * w.getAtIndex(F32, (long) i * n + j);
                }
                float a = (float) sum;
                y.setAtIndex(F32, (long) r * n + j, hasBias ? a + bias.getAtIndex(F32, j) : a);
            }
        }
    }

    @Override
    public void softmaxBackward(MemorySegment p, MemorySegment dp, long batch, int tq, int tv, float scale,
                                MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                                MemorySegment rowMask, MemorySegment colMask, long padBatchDiv,
                                boolean causal, long window, MaskConvention convention) {
        boolean masking = convention != MaskConvention.SUBTRACT;
        for (long bt = 0; bt < batch; bt++) {
            long pad = bt / padBatchDiv;
            for (int i = 0; i < tq; i++) {
                long row = (bt * tq + i) * tv;
                long maskRow = (bt / maskBatchDiv) * maskBatchStride + (long) i * maskRowStride;
                boolean rowKept = rowMask.equals(MemorySegment.NULL)
                        || rowMask.get(ValueLayout.JAVA_BYTE, pad * tq + i) != 0;
                double dot = 0;
                for (int j = 0; j < tv; j++) {
                    dot += (double) p.getAtIndex(F32, row + j) * dp.getAtIndex(F32, row + j);
                }
                float r = (float) dot;
                for (int j = 0; j < tv; j++) {
                    boolean keep = !masking || kept(rowKept, mask, maskRow, colMask, pad * tv, i, j, causal, window);
                    float g = keep ? scale * p.getAtIndex(F32, row + j) * (dp.getAtIndex(F32, row + j) - r) : 0f;
                    dp.setAtIndex(F32, row + j, g);
                }
            }
        }
    }

    @Override
    public void tanhScoresBackward(MemorySegment q, MemorySegment k, MemorySegment ds, MemorySegment dq,
                                   MemorySegment dk, MemorySegment dw, MemorySegment dscalars, long batch, int tq,
                                   int tv, int dim, MemorySegment weights, float inner, float outer) {
        boolean weighted = !weights.equals(MemorySegment.NULL);
        double[] gq = new double[tq * dim];
        double[] gk = new double[tv * dim];
        double[] gw = new double[dim];
        double dInner = 0;
        double dOuter = 0;
        for (long b = 0; b < batch; b++) {
            java.util.Arrays.fill(gq, 0);
            java.util.Arrays.fill(gk, 0);
            for (int i = 0; i < tq; i++) {
                for (int j = 0; j < tv; j++) {
                    double s = ds.getAtIndex(F32, (b * tq + i) * tv + j);
                    double g = s * outer;
                    for (int d = 0; d < dim; d++) {
                        float t = q.getAtIndex(F32, (b * tq + i) * dim + d) + k.getAtIndex(F32, (b * tv + j) * dim + d);
                        double u = Math.tanh((float) (inner * t));
                        double w = weighted ? weights.getAtIndex(F32, d) : 1;
                        double du = g * w * (1 - u * u); // dL/d(inner * t)
                        gq[i * dim + d] += du * inner;
                        gk[j * dim + d] += du * inner;
                        gw[d] += g * u;
                        dInner += du * t;
                        dOuter += s * w * u;
                    }
                }
            }
            for (int x = 0; x < tq * dim; x++) {
                dq.setAtIndex(F32, b * tq * dim + x, (float) gq[x]);
            }
            for (int x = 0; x < tv * dim; x++) {
                dk.setAtIndex(F32, b * tv * dim + x, (float) gk[x]);
            }
        }
        if (!dw.equals(MemorySegment.NULL)) {
            for (int d = 0; d < dim; d++) {
                dw.setAtIndex(F32, d, (float) gw[d]);
            }
        }
        if (!dscalars.equals(MemorySegment.NULL)) {
            dscalars.setAtIndex(F32, 0, (float) dInner);
            dscalars.setAtIndex(F32, 1, (float) dOuter);
        }
    }

    @Override
    public void gateBackward(MemorySegment a, MemorySegment gate, MemorySegment dy, MemorySegment dz, long n) {
        for (long i = 0; i < n; i++) {
            float g = gate.getAtIndex(F32, i);
            float d = dy.getAtIndex(F32, i);
            dz.setAtIndex(F32, i, d * a.getAtIndex(F32, i) * g * (1 - g));
            dy.setAtIndex(F32, i, d * g);
        }
    }

    /**
     * Plainly, per (batch, key/value head) group: every query row's probabilities
     * recomputed in double ({@code lse} is not needed), then the chain rule; dk and dv of
     * the group are summed in double over its query heads and written once.
     */
    @Override
    public void flashAttentionBackward(MemorySegment q, long ldq, long qOuter, long qInner,
                                       MemorySegment k, long ldk, long kOuter, long kInner,
                                       MemorySegment v, long ldv, long vOuter, long vInner,
                                       MemorySegment o, MemorySegment dout, long ldo, long oOuter, long oInner,
                                       MemorySegment dq, MemorySegment dk, MemorySegment dv,
                                       long batchHeads, long inner, long kvRepeat, long tq, long tk, long d,
                                       long dvDim, float scale, MemorySegment colMask, long colMaskDiv,
                                       boolean causal, MemorySegment lse, int threads) {
        boolean hasMask = !colMask.equals(MemorySegment.NULL);
        int keys = Math.toIntExact(tk);
        int hd = Math.toIntExact(d);
        int hv = Math.toIntExact(dvDim);
        double[] logits = new double[keys];
        boolean[] keptJ = new boolean[keys];
        double[] probs = new double[keys];
        double[] dS = new double[keys];
        for (long group = 0; group < batchHeads / kvRepeat; group++) {
            long bh0 = group * kvRepeat;
            long o0 = bh0 / inner;
            long g0 = (bh0 % inner) / kvRepeat;
            long kBase = o0 * kOuter + g0 * kInner;
            long vBase = o0 * vOuter + g0 * vInner;
            double[] gk = new double[keys * hd];
            double[] gv = new double[keys * hv];
            for (long bh = bh0; bh < bh0 + kvRepeat; bh++) {
                long ob = bh / inner;
                long h = bh % inner;
                long qBase = ob * qOuter + h * qInner;
                long oBase = ob * oOuter + h * oInner;
                for (long i = 0; i < tq; i++) {
                    double max = Double.NEGATIVE_INFINITY;
                    boolean any = false;
                    for (int j = 0; j < keys; j++) {
                        double dot = 0;
                        for (int p = 0; p < hd; p++) {
                            dot += (double) q.getAtIndex(F32, qBase + i * ldq + p) * k.getAtIndex(F32, kBase + j * ldk + p);
                        }
                        logits[j] = scale * dot;
                        keptJ[j] = (!hasMask || colMask.get(ValueLayout.JAVA_BYTE, (bh / colMaskDiv) * tk + j) != 0)
                                && (!causal || j <= i);
                        if (keptJ[j]) {
                            any = true;
                            max = Math.max(max, logits[j]);
                        }
                    }
                    double sum = 0;
                    for (int j = 0; j < keys; j++) {
                        sum += keptJ[j] ? Math.exp(logits[j] - max) : 0;
                    }
                    double rowDot = 0; // D_i = do_i . o_i
                    for (int c = 0; c < hv; c++) {
                        rowDot += (double) dout.getAtIndex(F32, oBase + i * ldo + c) * o.getAtIndex(F32, oBase + i * ldo + c);
                    }
                    for (int j = 0; j < keys; j++) {
                        probs[j] = any ? (keptJ[j] ? Math.exp(logits[j] - max) / sum : 0) : 1.0 / keys;
                        double dp = 0;
                        for (int c = 0; c < hv; c++) {
                            double g = dout.getAtIndex(F32, oBase + i * ldo + c);
                            gv[j * hv + c] += probs[j] * g;
                            dp += g * v.getAtIndex(F32, vBase + j * ldv + c);
                        }
                        dS[j] = any && keptJ[j] ? probs[j] * (dp - rowDot) : 0;
                    }
                    for (int p = 0; p < hd; p++) {
                        double acc = 0;
                        for (int j = 0; j < keys; j++) {
                            acc += dS[j] * k.getAtIndex(F32, kBase + j * ldk + p);
                            gk[j * hd + p] += scale * dS[j] * q.getAtIndex(F32, qBase + i * ldq + p);
                        }
                        dq.setAtIndex(F32, qBase + i * ldq + p, (float) (scale * acc));
                    }
                }
            }
            for (int j = 0; j < keys; j++) {
                for (int p = 0; p < hd; p++) {
                    dk.setAtIndex(F32, kBase + j * ldk + p, (float) gk[j * hd + p]);
                }
                for (int c = 0; c < hv; c++) {
                    dv.setAtIndex(F32, vBase + j * ldv + c, (float) gv[j * hv + c]);
                }
            }
        }
    }

    /**
     * Plainly, row by row: the logits in double, the softmax over the kept keys in
     * double, a row that keeps no key the mean of every value row (Keras's
     * dot_product_attention gives it a uniform softmax over all tk keys).
     */
    @Override
    public void flashAttention(MemorySegment q, long ldq, long qOuter, long qInner,
                               MemorySegment k, long ldk, long kOuter, long kInner,
                               MemorySegment v, long ldv, long vOuter, long vInner,
                               MemorySegment out, long ldo, long oOuter, long oInner,
                               long batchHeads, long inner, long kvRepeat, long tq, long tk, long d, long dv,
                               float scale, MemorySegment qBias, MemorySegment colMask, long colMaskDiv,
                               boolean causal, MemorySegment lse, int threads) {
        boolean hasMask = !colMask.equals(MemorySegment.NULL);
        boolean hasBias = !qBias.equals(MemorySegment.NULL);
        boolean hasLse = !lse.equals(MemorySegment.NULL);
        int keys = Math.toIntExact(tk);
        double[] logits = new double[keys];
        boolean[] kept = new boolean[keys];
        double[] acc = new double[Math.toIntExact(dv)];
        for (long bh = 0; bh < batchHeads; bh++) {
            long o = bh / inner;
            long h = bh % inner;
            long qBase = o * qOuter + h * qInner;
            long kBase = o * kOuter + (h / kvRepeat) * kInner;
            long vBase = o * vOuter + (h / kvRepeat) * vInner;
            long oBase = o * oOuter + h * oInner;
            for (long i = 0; i < tq; i++) {
                double max = Double.NEGATIVE_INFINITY;
                boolean any = false;
                for (int j = 0; j < keys; j++) {
                    double dot = 0;
                    for (long p = 0; p < d; p++) {
                        float qe = q.getAtIndex(F32, qBase + i * ldq + p);
                        if (hasBias) {
                            qe += qBias.getAtIndex(F32, h * d + p); // the float sum, as Keras's projection
                        }
                        dot += (double) qe * k.getAtIndex(F32, kBase + j * ldk + p);
                    }
                    logits[j] = scale * dot;
                    kept[j] = (!hasMask || colMask.get(ValueLayout.JAVA_BYTE, (bh / colMaskDiv) * tk + j) != 0)
                            && (!causal || j <= i);
                    if (kept[j]) {
                        any = true;
                        max = Math.max(max, logits[j]); // Math.max propagates NaN: a NaN logit makes the row NaN
                    }
                }
                double sum = 0;
                for (int j = 0; j < keys; j++) {
                    sum += kept[j] ? Math.exp(logits[j] - max) : 0;
                }
                if (hasLse) {
                    lse.setAtIndex(F32, bh * tq + i, any ? (float) (max + Math.log(sum)) : Float.POSITIVE_INFINITY);
                }
                java.util.Arrays.fill(acc, 0);
                for (int j = 0; j < keys; j++) {
                    double p = any ? (kept[j] ? Math.exp(logits[j] - max) / sum : 0) : 1.0 / keys;
                    if (p != 0) {
                        for (int c = 0; c < acc.length; c++) {
                            acc[c] += p * v.getAtIndex(F32, vBase + j * ldv + c);
                        }
                    }
                }
                for (int c = 0; c < acc.length; c++) {
                    out.setAtIndex(F32, oBase + i * ldo + c, (float) acc[c]);
                }
            }
        }
    }

    /** Plainly: each (row, head) through {@link #flashAttention} over its key range. */
    @Override
    public void decodeAttention(MemorySegment q, long qOuter, long qInner,
                                MemorySegment k, long ldk, long kOuter, long kInner,
                                MemorySegment v, long ldv, long vOuter, long vInner,
                                MemorySegment out, long oOuter, long oInner,
                                long batch, long heads, long kvRepeat, long tk, long d, long dv, float scale,
                                MemorySegment keyBegin, MemorySegment keyEnd, int threads) {
        for (long b = 0; b < batch; b++) {
            long begin = keyBegin.equals(MemorySegment.NULL) ? 0 : keyBegin.getAtIndex(ValueLayout.JAVA_INT, b);
            long end = keyEnd.equals(MemorySegment.NULL) ? tk : keyEnd.getAtIndex(ValueLayout.JAVA_INT, b);
            for (long h = 0; h < heads; h++) {
                long g = h / kvRepeat;
                flashAttention(q.asSlice(4 * (b * qOuter + h * qInner)), d, 0, 0,
                        k.asSlice(4 * (b * kOuter + g * kInner + begin * ldk)), ldk, 0, 0,
                        v.asSlice(4 * (b * vOuter + g * vInner + begin * ldv)), ldv, 0, 0,
                        out.asSlice(4 * (b * oOuter + h * oInner)), dv, 0, 0,
                        1, 1, 1, 1, end - begin, d, dv, scale, MemorySegment.NULL, MemorySegment.NULL, 1, false,
                        MemorySegment.NULL, 1);
            }
        }
    }

    @Override
    public void biasAct(MemorySegment x, long rows, int cols, MemorySegment bias, Activation activation) {
        boolean hasBias = !bias.equals(MemorySegment.NULL);
        for (long r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                float v = x.getAtIndex(F32, r * cols + c);
                if (hasBias) {
                    v += bias.getAtIndex(F32, c);
                }
                x.setAtIndex(F32, r * cols + c, switch (activation) {
                    case LINEAR -> v;
                    case SIGMOID -> (float) (1 / (1 + Math.exp(-v)));
                    case RELU -> v > 0 || Float.isNaN(v) ? v : 0f;
                    case TANH -> (float) Math.tanh(v);
                    case GELU -> (float) (0.5 * v * (1 + erf(v / Math.sqrt(2))));
                    case SILU -> (float) (v / (1 + Math.exp(-v)));
                });
            }
        }
    }

    /** erf to double precision (Abramowitz-Stegun 7.1.26 is too coarse; use a series / continued fraction). */
    static double erf(double x) {
        if (Double.isNaN(x)) {
            return x;
        }
        double ax = Math.abs(x);
        double r;
        if (ax < 2.5) {
            // Maclaurin series: erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
            double term = ax;
            double sum = ax;
            for (int n = 1; n < 80; n++) {
                term *= -ax * ax / n;
                sum += term / (2 * n + 1);
            }
            r = 2 / Math.sqrt(Math.PI) * sum;
        } else {
            // Continued fraction for erfc, good for larger |x|.
            double f = 0;
            for (int n = 60; n >= 1; n--) {
                f = n / 2.0 / (ax + f);
            }
            r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
        }
        return x < 0 ? -r : r;
    }

    @Override
    public void mul(MemorySegment x, MemorySegment y, long n) {
        for (long i = 0; i < n; i++) {
            x.setAtIndex(F32, i, x.getAtIndex(F32, i) * y.getAtIndex(F32, i));
        }
    }

    @Override
    public void maskFromFloat(MemorySegment m, MemorySegment out, long n, boolean greaterThanHalf) {
        for (long i = 0; i < n; i++) {
            float v = m.getAtIndex(F32, i);
            boolean keep = greaterThanHalf ? v > 0.5f : v != 0f;
            out.set(ValueLayout.JAVA_BYTE, i, keep ? (byte) 1 : (byte) 0);
        }
    }

    @Override
    public void tanhScores(MemorySegment q, MemorySegment k, MemorySegment scores, long batch, int tq, int tv,
                           int dim, MemorySegment weights, float inner, float outer) {
        boolean weighted = !weights.equals(MemorySegment.NULL);
        for (long b = 0; b < batch; b++) {
            for (int i = 0; i < tq; i++) {
                for (int j = 0; j < tv; j++) {
                    double sum = 0;
                    for (int d = 0; d < dim; d++) {
                        // float32 in Keras's order: t = q + k, u = inner * t, w * tanh(u)
                        float t = q.getAtIndex(F32, (b * tq + i) * dim + d) + k.getAtIndex(F32, (b * tv + j) * dim + d);
                        float th = (float) Math.tanh(inner * t);
                        sum += weighted ? weights.getAtIndex(F32, d) * th : th;
                    }
                    scores.setAtIndex(F32, (b * tq + i) * tv + j, outer * (float) sum);
                }
            }
        }
    }

    @Override
    public void dropout(MemorySegment x, long n, float rate, long seed, long stream) {
        if (rate == 0f) {
            return;
        }
        float keepProb = 1f - rate;
        for (long i = 0; i < n; i++) {
            x.setAtIndex(F32, i, Dropout.keep(seed, stream, i, rate) ? x.getAtIndex(F32, i) / keepProb : 0f);
        }
    }

    @Override
    public void mulRowMask(MemorySegment x, long rows, int cols, MemorySegment rowMask) {
        for (long r = 0; r < rows; r++) {
            if (rowMask.get(ValueLayout.JAVA_BYTE, r) == 0) {
                for (int c = 0; c < cols; c++) {
                    x.setAtIndex(F32, r * cols + c, x.getAtIndex(F32, r * cols + c) * 0f);
                }
            }
        }
    }
}
