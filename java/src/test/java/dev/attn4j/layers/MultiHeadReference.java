package dev.attn4j.layers;

import java.util.Arrays;

/**
 * A plain, double-precision restatement of Keras 3.15.1 MultiHeadAttention and
 * GroupQueryAttention for tests, written from the formulas with explicit index
 * arithmetic (no strides shared with attn4j). Inputs are (B, positions..., features);
 * heads N query / K key-value (query head u reads kv head u / (N / K)).
 */
final class MultiHeadReference {

    /** Everything a reference call needs; masks may be null. */
    static final class Call {
        long[] qShape, vShape;           // input shapes; key has vShape's positions
        int dk;                          // key features
        float[] q, v, k;                 // k null: v is the key
        int n, kv, h, hv;                // heads and sizes
        long[] out;                      // output feature dims
        int[] axes;                      // resolved attention axes
        float[][] w;                     // weights in Keras order
        boolean useBias, useGate;
        boolean[] queryMask, valueMask, keyMask; // (B, T), (B, S), (B, S): 3-D only
        boolean[] attentionMask;         // full (scores layout) keep mask, or null
        boolean causal;
        int window;                      // 0 = none
        boolean fastPath;                // Keras's dot_product_attention path
    }

    record Result(float[] output, float[] scores, long[] scoresShape) {}

    static Result compute(Call c) {
        int rank = c.qShape.length;
        int dq = (int) c.qShape[rank - 1];
        int dv = (int) c.vShape[rank - 1];
        int dkey = c.k == null ? dv : c.dk;
        float[] key = c.k == null ? c.v : c.k;
        int qPos = (int) (prod(c.qShape, 0, rank - 1));
        int vPos = (int) (prod(c.vShape, 0, rank - 1));
        int wi = 0;
        float[] wq = c.w[wi++], bq = c.useBias ? c.w[wi++] : null;
        float[] wk = c.w[wi++], bk = c.useBias ? c.w[wi++] : null;
        float[] wg = null, bg = null;
        if (c.useGate) {
            wg = c.w[wi++];
            bg = c.useBias ? c.w[wi++] : null;
        }
        float[] wv = c.w[wi++], bv = c.useBias ? c.w[wi++] : null;
        float[] wo = c.w[wi++], bo = c.useBias ? c.w[wi] : null;
        double[] qp = project(c.q, qPos, dq, wq, bq, c.n * c.h);
        double[] kp = project(key, vPos, dkey, wk, bk, c.kv * c.h);
        double[] vp = project(c.v, vPos, dv, wv, bv, c.kv * c.hv);
        double[] gp = c.useGate ? project(c.q, qPos, dq, wg, bg, c.n * c.hv) : null;

        // Split positions into (batch key, attention index) for query and value.
        boolean[] isAxis = new boolean[rank];
        for (int a : c.axes) {
            isAxis[a] = true;
        }
        long t = 1, s = 1;
        for (int a : c.axes) {
            t *= c.qShape[a];
            s *= c.vShape[a];
        }
        long groups = c.qShape[0];
        for (int i = 1; i < rank - 1; i++) {
            if (!isAxis[i]) {
                groups *= c.qShape[i];
            }
        }
        int[][] qIndex = positions(c.qShape, isAxis, (int) groups, (int) t);
        int[][] vIndex = positions(c.vShape, isAxis, (int) groups, (int) s);
        int r = c.n / c.kv;
        double scale = 1 / Math.sqrt(c.h);
        float[] scores = new float[(int) (groups * c.n * t * s)];
        double[] attended = new double[qPos * c.n * c.hv];
        double[] logits = new double[(int) s];
        boolean[] keep = new boolean[(int) s];
        for (int g = 0; g < groups; g++) {
            int b = (int) (g / (groups / c.qShape[0]));
            for (int u = 0; u < c.n; u++) {
                int kvh = u / r;
                for (int i = 0; i < t; i++) {
                    int qp0 = qIndex[g][i];
                    boolean any = false;
                    for (int j = 0; j < s; j++) {
                        int vp0 = vIndex[g][j];
                        double dot = 0;
                        for (int x = 0; x < c.h; x++) {
                            dot += qp[(qp0 * c.n + u) * c.h + x] * kp[(vp0 * c.kv + kvh) * c.h + x];
                        }
                        long flat = ((long) (g * c.n + u) * t + i) * s + j;
                        keep[j] = (c.attentionMask == null || c.attentionMask[(int) flat])
                                && (c.queryMask == null || c.queryMask[(int) (b * t + i)])
                                && (c.valueMask == null || c.valueMask[(int) (b * s + j)])
                                && (c.keyMask == null || c.keyMask[(int) (b * s + j)])
                                && (!c.causal || j <= i)
                                && (c.window == 0 || Math.abs(i - j) < c.window);
                        any |= keep[j];
                        logits[j] = dot * scale;
                    }
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < s; j++) {
                        if (keep[j]) {
                            max = Math.max(max, logits[j]);
                        }
                    }
                    double sum = 0;
                    for (int j = 0; j < s; j++) {
                        sum += keep[j] ? Math.exp(logits[j] - max) : 0;
                    }
                    for (int j = 0; j < s; j++) {
                        double p;
                        if (any) {
                            p = keep[j] ? Math.exp(logits[j] - max) / sum : 0;
                        } else {
                            p = c.fastPath ? 1.0 / s : 0; // uniform (replace) vs zeros (Softmax layer)
                        }
                        scores[(int) (((long) (g * c.n + u) * t + i) * s + j)] = (float) p;
                        for (int y = 0; y < c.hv; y++) {
                            attended[(qp0 * c.n + u) * c.hv + y] += p * vp[(vIndex[g][j] * c.kv + kvh) * c.hv + y];
                        }
                    }
                }
            }
        }
        if (c.useGate) {
            for (int i = 0; i < attended.length; i++) {
                attended[i] *= 1 / (1 + Math.exp(-gp[i]));
            }
        }
        int outCols = (int) prod(c.out, 0, c.out.length);
        float[] output = new float[qPos * outCols];
        for (int p = 0; p < qPos; p++) {
            for (int o = 0; o < outCols; o++) {
                double acc = bo == null ? 0 : bo[o];
                for (int x = 0; x < c.n * c.hv; x++) {
                    acc += attended[p * c.n * c.hv + x] * wo[x * outCols + o];
                }
                output[p * outCols + o] = (float) acc;
            }
        }
        long[] scoresShape = scoresShape(c.qShape, c.vShape, isAxis, c.axes, c.n);
        return new Result(output, scores, scoresShape);
    }

    static long[] scoresShape(long[] q, long[] v, boolean[] isAxis, int[] axes, int n) {
        int rank = q.length;
        long[] shape = new long[rank - 1 - axes.length + 1 + 2 * axes.length];
        int p = 0;
        shape[p++] = q[0];
        for (int i = 1; i < rank - 1; i++) {
            if (!isAxis[i]) {
                shape[p++] = q[i];
            }
        }
        shape[p++] = n;
        for (int a : axes) {
            shape[p++] = q[a];
        }
        for (int a : axes) {
            shape[p++] = v[a];
        }
        return shape;
    }

    /** [group][attention index] -> flat position, groups ordered (B, non-attention axes...). */
    private static int[][] positions(long[] shape, boolean[] isAxis, int groups, int count) {
        int rank = shape.length;
        int total = (int) prod(shape, 0, rank - 1);
        int[][] out = new int[groups][count];
        int[] idx = new int[rank - 1];
        for (int p = 0; p < total; p++) {
            long g = 0, a = 0;
            for (int i = 0; i < rank - 1; i++) {
                if (i == 0 || !isAxis[i]) {
                    g = g * shape[i] + idx[i];
                } else {
                    a = a * shape[i] + idx[i];
                }
            }
            out[(int) g][(int) a] = p;
            for (int i = rank - 2; i >= 0 && ++idx[i] == shape[i]; i--) {
                idx[i] = 0;
            }
        }
        return out;
    }

    private static double[] project(float[] x, int rows, int in, float[] kernel, float[] bias, int cols) {
        double[] out = new double[rows * cols];
        for (int p = 0; p < rows; p++) {
            for (int o = 0; o < cols; o++) {
                double acc = bias == null ? 0 : bias[o];
                for (int d = 0; d < in; d++) {
                    acc += (double) x[p * in + d] * kernel[d * cols + o];
                }
                out[p * cols + o] = acc;
            }
        }
        return out;
    }

    static long prod(long[] s, int from, int to) {
        long p = 1;
        for (int i = from; i < to; i++) {
            p *= s[i];
        }
        return p;
    }

    static String describe(Call c) {
        return "q " + Arrays.toString(c.qShape) + " v " + Arrays.toString(c.vShape) + " n " + c.n + " kv " + c.kv
                + " h " + c.h + " hv " + c.hv + " axes " + Arrays.toString(c.axes) + " out " + Arrays.toString(c.out)
                + " bias " + c.useBias + " gate " + c.useGate + " causal " + c.causal + " window " + c.window
                + " fast " + c.fastPath + " qm " + (c.queryMask != null) + " vm " + (c.valueMask != null) + " km "
                + (c.keyMask != null) + " am " + (c.attentionMask != null);
    }
}
