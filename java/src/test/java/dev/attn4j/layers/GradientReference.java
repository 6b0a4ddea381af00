package dev.attn4j.layers;

import java.util.Arrays;
import java.util.function.DoubleSupplier;

/**
 * Test-side truth for the backward passes: a plain double-precision restatement of the
 * forward of Keras 3.15.1 Attention (dot / concat), AdditiveAttention, MultiHeadAttention
 * and GroupQueryAttention, an analytic backward of each written from the chain rule, and
 * central finite differences of {@code L = sum(dOut * forward(...).output())} to check it.
 * Self-contained (no code shared with attn4j or the other test references); all arrays are
 * flattened row-major (C order).
 *
 * <p>Gradient conventions (what Keras's autodiff gives):
 * <ul>
 *   <li>Single-head: a masked logit is {@code s - 1e9}, whose derivative is 1, so the
 *       logit gradient {@code P (dP - sum P dP)} flows into the score as if unmasked,
 *       with P as computed (for a partially masked row P = 0 there, so it is 0; for a
 *       fully masked row it is not). Query-masked output rows have zero gradient.</li>
 *   <li>Multi-head: masked logits are replaced by a constant, so their gradient is 0; a
 *       fully masked row has zero logit gradient on both paths (fast: uniform constant P,
 *       slow: P = 0).</li>
 *   <li>Dropout: {@code Pd = P * keep / (1 - rate)} multiplies V; P (pre-dropout) is what
 *       {@link Forward#probs()} returns.</li>
 * </ul>
 */
final class GradientReference {

    private GradientReference() {}

    /** Attention score_mode "dot" / "concat", or AdditiveAttention. */
    enum Mode { DOT, CONCAT, ADDITIVE }

    /**
     * A single-head call. q (B, Tq, D), v (B, Tv, Dv), k (B, Tv, D) or null (then v is the
     * key, D == Dv, and the key gradient adds into dv). Weights in Keras order: Attention
     * [scale (1) if useScale, concat_score_weight (1) if CONCAT]; AdditiveAttention
     * [scale (D) if useScale]. Absent weights act as 1.
     */
    static final class Single {
        Mode mode;
        int b, tq, tv, d, dv;
        double[] q, v, k;
        boolean useScale;
        double[][] w = new double[0][];
        boolean[] queryMask;             // (B, Tq) or null: zeroes output rows
        boolean[] valueMask;             // (B, Tv) or null
        boolean causal;                  // keep j <= i (top-left)
        /** Masked logit = fl32(fl32(s) - 1e9f) (as Keras float32; fully masked rows become uniform)
         *  instead of the exact s - 1e9 (the offset then cancels on fully masked rows: P = softmax(s)). */
        boolean float32MaskRounding;
        boolean[] dropoutKeep;           // (B, Tq, Tv) or null (= no dropout / inference)
        double rate;                     // dropout rate, used with dropoutKeep

        Single copy() {
            Single c = new Single();
            c.mode = mode;
            c.b = b;
            c.tq = tq;
            c.tv = tv;
            c.d = d;
            c.dv = dv;
            c.q = q.clone();
            c.v = v.clone();
            c.k = k == null ? null : k.clone();
            c.useScale = useScale;
            c.w = new double[w.length][];
            for (int i = 0; i < w.length; i++) {
                c.w[i] = w[i].clone();
            }
            c.queryMask = queryMask;
            c.valueMask = valueMask;
            c.causal = causal;
            c.float32MaskRounding = float32MaskRounding;
            c.dropoutKeep = dropoutKeep;
            c.rate = rate;
            return c;
        }
    }

    /**
     * A MultiHeadAttention / GroupQueryAttention call (MHA: kv == n). Inputs (B, positions...,
     * features), key with vShape's positions and dk features, or k null (v is the key).
     * Weights in Keras order: query/kernel (Dq, N, H), [query/bias (N, H)], key/kernel
     * (Dk, K, H), [key/bias (K, H)], [gate/kernel (Dq, N, Hv), [gate/bias (N, Hv)]],
     * value/kernel (Dv, K, Hv), [value/bias (K, Hv)], attention_output/kernel (N, Hv, out...),
     * [attention_output/bias (out...)]. Scores layout (B, non-attention axes..., N, T, S) with
     * T / S the attention axes of q / v flattened; attentionMask and dropoutKeep use it.
     * queryMask (B, T), valueMask / keyMask (B, S) index batch and flattened attention
     * position (Keras has these for 3-D inputs). causal (j <= i) and window (|i - j| < w)
     * use the flattened attention indices.
     */
    static final class Multi {
        long[] qShape, vShape;
        int dk;                          // key features (ignored when k == null)
        double[] q, v, k;
        int n, kv, h, hv;                // query heads, kv heads, key dim, value dim
        long[] out;                      // output feature dims
        int[] axes;                      // resolved, increasing attention axes
        double[][] w;
        boolean useBias, useGate;
        boolean[] queryMask, valueMask, keyMask;
        boolean[] attentionMask;         // full keep mask in the scores layout, or null
        boolean causal;
        int window;                      // 0 = none
        boolean fastPath;                // fully masked row: uniform P (fast) vs P = 0 (slow)
        boolean[] dropoutKeep;           // scores layout, or null; slow path only
        double rate;

        Multi copy() {
            Multi c = new Multi();
            c.qShape = qShape;
            c.vShape = vShape;
            c.dk = dk;
            c.q = q.clone();
            c.v = v.clone();
            c.k = k == null ? null : k.clone();
            c.n = n;
            c.kv = kv;
            c.h = h;
            c.hv = hv;
            c.out = out;
            c.axes = axes;
            c.w = new double[w.length][];
            for (int i = 0; i < w.length; i++) {
                c.w[i] = w[i].clone();
            }
            c.useBias = useBias;
            c.useGate = useGate;
            c.queryMask = queryMask;
            c.valueMask = valueMask;
            c.keyMask = keyMask;
            c.attentionMask = attentionMask;
            c.causal = causal;
            c.window = window;
            c.fastPath = fastPath;
            c.dropoutKeep = dropoutKeep;
            c.rate = rate;
            return c;
        }
    }

    /** Output and pre-dropout probabilities (single-head (B, Tq, Tv); multi-head scores layout). */
    record Forward(double[] output, double[] probs) {}

    /** Gradients of L; dk null when no key was given (its part is in dv); dW in Keras weight order. */
    record Grads(double[] dq, double[] dv, double[] dk, double[][] dW) {}

    // =====================================================================================
    // Single-head: Attention (dot, concat) and AdditiveAttention
    // =====================================================================================

    static Forward forward(Single c) {
        SingleWeights sw = new SingleWeights(c);
        double[] key = c.k == null ? c.v : c.k;
        double[] out = new double[c.b * c.tq * c.dv];
        double[] probs = new double[c.b * c.tq * c.tv];
        double[] s = new double[c.tv];
        double[] p = new double[c.tv];
        boolean[] keep = new boolean[c.tv];
        for (int n = 0; n < c.b; n++) {
            for (int i = 0; i < c.tq; i++) {
                singleRow(c, sw, key, n, i, s, keep, p);
                int row = n * c.tq + i;
                System.arraycopy(p, 0, probs, row * c.tv, c.tv);
                if (c.queryMask != null && !c.queryMask[row]) {
                    continue; // output row stays 0
                }
                for (int j = 0; j < c.tv; j++) {
                    double pd = p[j] * singleDrop(c, row, j);
                    for (int y = 0; y < c.dv; y++) {
                        out[row * c.dv + y] += pd * c.v[(n * c.tv + j) * c.dv + y];
                    }
                }
            }
        }
        return new Forward(out, probs);
    }

    static Grads backward(Single c, double[] dOut) {
        SingleWeights sw = new SingleWeights(c);
        boolean hasKey = c.k != null;
        double[] key = hasKey ? c.k : c.v;
        double[] dq = new double[c.q.length];
        double[] dv = new double[c.v.length];
        double[] dk = hasKey ? new double[c.k.length] : null;
        double[] dKey = hasKey ? dk : dv;
        double dScale = 0, dConcat = 0;
        double[] dAdd = new double[c.d];
        double[] s = new double[c.tv];
        double[] p = new double[c.tv];
        double[] dl = new double[c.tv];
        boolean[] keep = new boolean[c.tv];
        for (int n = 0; n < c.b; n++) {
            for (int i = 0; i < c.tq; i++) {
                int row = n * c.tq + i;
                if (c.queryMask != null && !c.queryMask[row]) {
                    continue; // output row multiplied by 0: nothing flows back
                }
                singleRow(c, sw, key, n, i, s, keep, p);
                // out[i, y] = sum_j Pd[i, j] v[j, y], Pd = P * drop
                double dot = 0;
                for (int j = 0; j < c.tv; j++) {
                    double drop = singleDrop(c, row, j);
                    double dPd = 0;
                    for (int y = 0; y < c.dv; y++) {
                        double g = dOut[row * c.dv + y];
                        dPd += g * c.v[(n * c.tv + j) * c.dv + y];
                        dv[(n * c.tv + j) * c.dv + y] += p[j] * drop * g;
                    }
                    dl[j] = dPd * drop;          // dP
                    dot += p[j] * dl[j];
                }
                for (int j = 0; j < c.tv; j++) {
                    dl[j] = p[j] * (dl[j] - dot); // softmax backward; d(s - 1e9)/ds = 1
                }
                // score backward
                for (int j = 0; j < c.tv; j++) {
                    double ds = dl[j];
                    if (ds == 0) {
                        continue;
                    }
                    int qi = row * c.d, kj = (n * c.tv + j) * c.d;
                    switch (c.mode) {
                        case DOT -> {
                            double qk = 0;
                            for (int x = 0; x < c.d; x++) {
                                qk += c.q[qi + x] * key[kj + x];
                                dq[qi + x] += ds * sw.scale * key[kj + x];
                                dKey[kj + x] += ds * sw.scale * c.q[qi + x];
                            }
                            dScale += ds * qk;
                        }
                        case CONCAT -> {
                            for (int x = 0; x < c.d; x++) {
                                double a = c.q[qi + x] + key[kj + x];
                                double t = Math.tanh(sw.scale * a);
                                double g = ds * sw.concat * (1 - t * t); // d/d(scale * a)
                                dq[qi + x] += g * sw.scale;
                                dKey[kj + x] += g * sw.scale;
                                dScale += g * a;
                                dConcat += ds * t;
                            }
                        }
                        case ADDITIVE -> {
                            for (int x = 0; x < c.d; x++) {
                                double t = Math.tanh(c.q[qi + x] + key[kj + x]);
                                double wd = sw.add == null ? 1 : sw.add[x];
                                double g = ds * wd * (1 - t * t);
                                dq[qi + x] += g;
                                dKey[kj + x] += g;
                                dAdd[x] += ds * t;
                            }
                        }
                    }
                }
            }
        }
        double[][] dW = new double[c.w.length][];
        int wi = 0;
        if (c.mode == Mode.ADDITIVE) {
            if (c.useScale) {
                dW[wi++] = dAdd;
            }
        } else {
            if (c.useScale) {
                dW[wi++] = new double[] {dScale};
            }
            if (c.mode == Mode.CONCAT) {
                dW[wi++] = new double[] {dConcat};
            }
        }
        return new Grads(dq, dv, dk, dW);
    }

    static Grads finiteDifference(Single c, double[] dOut, double h) {
        Single x = c.copy();
        double[][] params = params(x.q, x.v, x.k, x.w);
        double[][] g = finiteDifference(params, () -> loss(forward(x).output(), dOut), h);
        return grads(g, x.k != null, x.w.length);
    }

    /** Scalars/vector of the single-head weights, absent ones as 1. */
    private static final class SingleWeights {
        final double scale, concat;
        final double[] add;

        SingleWeights(Single c) {
            int expected = c.mode == Mode.ADDITIVE ? (c.useScale ? 1 : 0)
                    : (c.useScale ? 1 : 0) + (c.mode == Mode.CONCAT ? 1 : 0);
            if (c.w.length != expected) {
                throw new IllegalArgumentException("expected " + expected + " weights, got " + c.w.length);
            }
            if (c.k == null && c.d != c.dv) {
                throw new IllegalArgumentException("key = value needs d == dv");
            }
            if (c.mode == Mode.ADDITIVE) {
                scale = 1;
                concat = 1;
                add = c.useScale ? c.w[0] : null;
                if (add != null && add.length != c.d) {
                    throw new IllegalArgumentException("additive scale must have d elements");
                }
            } else {
                scale = c.useScale ? c.w[0][0] : 1;
                concat = c.mode == Mode.CONCAT ? c.w[c.useScale ? 1 : 0][0] : 1;
                add = null;
            }
        }
    }

    private static double singleDrop(Single c, int row, int j) {
        if (c.dropoutKeep == null) {
            return 1;
        }
        return c.dropoutKeep[row * c.tv + j] ? 1 / (1 - c.rate) : 0;
    }

    /** Scores s, keep flags and softmax P of query row (n, i). */
    private static void singleRow(Single c, SingleWeights sw, double[] key, int n, int i,
                                  double[] s, boolean[] keep, double[] p) {
        boolean any = false;
        for (int j = 0; j < c.tv; j++) {
            double acc = 0;
            int qi = (n * c.tq + i) * c.d, kj = (n * c.tv + j) * c.d;
            for (int x = 0; x < c.d; x++) {
                double a = c.q[qi + x], b = key[kj + x];
                acc += switch (c.mode) {
                    case DOT -> a * b;
                    case CONCAT -> Math.tanh(sw.scale * (a + b));
                    case ADDITIVE -> (sw.add == null ? 1 : sw.add[x]) * Math.tanh(a + b);
                };
            }
            s[j] = switch (c.mode) {
                case DOT -> acc * sw.scale;
                case CONCAT -> acc * sw.concat;
                case ADDITIVE -> acc;
            };
            keep[j] = (c.valueMask == null || c.valueMask[n * c.tv + j]) && (!c.causal || j <= i);
            any |= keep[j];
        }
        double max = Double.NEGATIVE_INFINITY;
        if (c.float32MaskRounding) {
            for (int j = 0; j < c.tv; j++) {
                p[j] = keep[j] ? s[j] : (double) ((float) s[j] - 1e9f); // logits, Keras float32
                max = Math.max(max, p[j]);
            }
            for (int j = 0; j < c.tv; j++) {
                p[j] = Math.exp(p[j] - max);
            }
        } else if (any) {
            for (int j = 0; j < c.tv; j++) {
                if (keep[j]) {
                    max = Math.max(max, s[j]);
                }
            }
            for (int j = 0; j < c.tv; j++) {
                p[j] = keep[j] ? Math.exp(s[j] - max) : Math.exp(s[j] - 1e9 - max); // the latter is 0
            }
        } else {
            // every logit is s - 1e9: the common offset cancels exactly, P = softmax(s)
            for (int j = 0; j < c.tv; j++) {
                max = Math.max(max, s[j]);
            }
            for (int j = 0; j < c.tv; j++) {
                p[j] = Math.exp(s[j] - max);
            }
        }
        double sum = 0;
        for (int j = 0; j < c.tv; j++) {
            sum += p[j];
        }
        for (int j = 0; j < c.tv; j++) {
            p[j] /= sum;
        }
    }

    // =====================================================================================
    // Multi-head: MultiHeadAttention and GroupQueryAttention
    // =====================================================================================

    static Forward forward(Multi c) {
        MState st = new MState(c);
        return new Forward(st.output, st.p);
    }

    static Grads backward(Multi c, double[] dOut) {
        MState st = new MState(c);
        int n = c.n, kv = c.kv, h = c.h, hv = c.hv, nhv = n * hv;
        // output projection: out[p, o] = bo[o] + sum_x gated[p, x] wo[x, o]
        double[] dWo = new double[st.wo.length];
        double[] dbo = st.bo == null ? null : new double[st.bo.length];
        double[] dGated = new double[st.qPos * nhv];
        for (int p = 0; p < st.qPos; p++) {
            for (int o = 0; o < st.outCols; o++) {
                double g = dOut[p * st.outCols + o];
                if (dbo != null) {
                    dbo[o] += g;
                }
                for (int x = 0; x < nhv; x++) {
                    dWo[x * st.outCols + o] += st.gated[p * nhv + x] * g;
                    dGated[p * nhv + x] += g * st.wo[x * st.outCols + o];
                }
            }
        }
        // gate: gated = attended * sigmoid(gp)
        double[] dAtt = dGated;
        double[] dgp = null;
        if (c.useGate) {
            dAtt = new double[dGated.length];
            dgp = new double[dGated.length];
            for (int x = 0; x < dGated.length; x++) {
                double sg = sigmoid(st.gp[x]);
                dAtt[x] = dGated[x] * sg;
                dgp[x] = dGated[x] * st.attended[x] * sg * (1 - sg);
            }
        }
        // attention: attended[i, u, :] = sum_j Pd[i, j] vp[j, kvh, :]; logits = scale * qp . kp
        double[] dqp = new double[st.qp.length];
        double[] dkp = new double[st.kp.length];
        double[] dvp = new double[st.vp.length];
        double[] dP = new double[st.s];
        for (int g = 0; g < st.groups; g++) {
            for (int u = 0; u < n; u++) {
                int kvh = u / st.ratio;
                for (int i = 0; i < st.t; i++) {
                    int row = (g * n + u) * st.t + i;
                    int a0 = (st.qIndex[g][i] * n + u) * hv;
                    double dot = 0;
                    for (int j = 0; j < st.s; j++) {
                        int flat = row * st.s + j;
                        int v0 = (st.vIndex[g][j] * kv + kvh) * hv;
                        double acc = 0;
                        for (int y = 0; y < hv; y++) {
                            acc += dAtt[a0 + y] * st.vp[v0 + y];
                            dvp[v0 + y] += st.pd[flat] * dAtt[a0 + y];
                        }
                        dP[j] = acc * st.drop(flat);
                        dot += st.p[flat] * dP[j];
                    }
                    if (!st.anyKept[row]) {
                        continue; // P is a constant (uniform or 0): no logit gradient
                    }
                    int q0 = (st.qIndex[g][i] * n + u) * h;
                    for (int j = 0; j < st.s; j++) {
                        int flat = row * st.s + j;
                        if (!st.keep[flat]) {
                            continue; // logit replaced by a constant
                        }
                        double dl = st.p[flat] * (dP[j] - dot) * st.scale;
                        int k0 = (st.vIndex[g][j] * kv + kvh) * h;
                        for (int x = 0; x < h; x++) {
                            dqp[q0 + x] += dl * st.kp[k0 + x];
                            dkp[k0 + x] += dl * st.qp[q0 + x];
                        }
                    }
                }
            }
        }
        // input projections
        boolean hasKey = c.k != null;
        double[] dq = new double[c.q.length];
        double[] dv = new double[c.v.length];
        double[] dk = hasKey ? new double[c.k.length] : null;
        double[] dWq = new double[st.wq.length], dbq = c.useBias ? new double[n * h] : null;
        double[] dWk = new double[st.wk.length], dbk = c.useBias ? new double[kv * h] : null;
        double[] dWv = new double[st.wv.length], dbv = c.useBias ? new double[kv * hv] : null;
        projectBack(c.q, st.qPos, st.dq, st.wq, dqp, n * h, dq, dWq, dbq);
        projectBack(st.key, st.vPos, st.dkf, st.wk, dkp, kv * h, hasKey ? dk : dv, dWk, dbk);
        projectBack(c.v, st.vPos, st.dvf, st.wv, dvp, kv * hv, dv, dWv, dbv);
        double[] dWg = null, dbg = null;
        if (c.useGate) {
            dWg = new double[st.wg.length];
            dbg = c.useBias ? new double[nhv] : null;
            projectBack(c.q, st.qPos, st.dq, st.wg, dgp, nhv, dq, dWg, dbg);
        }
        double[][] dW = new double[c.w.length][];
        int wi = 0;
        dW[wi++] = dWq;
        if (c.useBias) {
            dW[wi++] = dbq;
        }
        dW[wi++] = dWk;
        if (c.useBias) {
            dW[wi++] = dbk;
        }
        if (c.useGate) {
            dW[wi++] = dWg;
            if (c.useBias) {
                dW[wi++] = dbg;
            }
        }
        dW[wi++] = dWv;
        if (c.useBias) {
            dW[wi++] = dbv;
        }
        dW[wi++] = dWo;
        if (c.useBias) {
            dW[wi] = dbo;
        }
        return new Grads(dq, dv, dk, dW);
    }

    static Grads finiteDifference(Multi c, double[] dOut, double h) {
        Multi x = c.copy();
        double[][] params = params(x.q, x.v, x.k, x.w);
        double[][] g = finiteDifference(params, () -> loss(forward(x).output(), dOut), h);
        return grads(g, x.k != null, x.w.length);
    }

    /** Number of weights in Keras order for the config's flags. */
    static int multiWeightCount(boolean useBias, boolean useGate) {
        return (useBias ? 8 : 4) + (useGate ? (useBias ? 2 : 1) : 0);
    }

    /** The forward pass with everything the backward needs. */
    private static final class MState {
        final Multi c;
        final int dq, dvf, dkf, qPos, vPos, t, s, groups, outCols, ratio;
        final double scale;
        final int[][] qIndex, vIndex;
        final double[] key, wq, bq, wk, bk, wg, bg, wv, bv, wo, bo;
        final double[] qp, kp, vp, gp;
        final boolean[] keep, anyKept;   // scores layout; per (g, u, i) row
        final double[] p, pd;            // pre- and post-dropout probabilities
        final double[] attended, gated, output;

        MState(Multi c) {
            this.c = c;
            int rank = c.qShape.length;
            if (c.vShape.length != rank || c.n % c.kv != 0) {
                throw new IllegalArgumentException("bad shapes or heads");
            }
            if (c.fastPath && c.dropoutKeep != null) {
                throw new IllegalArgumentException("dropout runs on the slow path only");
            }
            if (c.w.length != multiWeightCount(c.useBias, c.useGate)) {
                throw new IllegalArgumentException("expected " + multiWeightCount(c.useBias, c.useGate)
                        + " weights, got " + c.w.length);
            }
            dq = (int) c.qShape[rank - 1];
            dvf = (int) c.vShape[rank - 1];
            dkf = c.k == null ? dvf : c.dk;
            key = c.k == null ? c.v : c.k;
            qPos = (int) prod(c.qShape, 0, rank - 1);
            vPos = (int) prod(c.vShape, 0, rank - 1);
            outCols = (int) prod(c.out, 0, c.out.length);
            int wi = 0;
            wq = c.w[wi++];
            bq = c.useBias ? c.w[wi++] : null;
            wk = c.w[wi++];
            bk = c.useBias ? c.w[wi++] : null;
            if (c.useGate) {
                wg = c.w[wi++];
                bg = c.useBias ? c.w[wi++] : null;
            } else {
                wg = null;
                bg = null;
            }
            wv = c.w[wi++];
            bv = c.useBias ? c.w[wi++] : null;
            wo = c.w[wi++];
            bo = c.useBias ? c.w[wi] : null;
            checkLen(wq, dq * c.n * c.h, "query/kernel");
            checkLen(wk, dkf * c.kv * c.h, "key/kernel");
            checkLen(wv, dvf * c.kv * c.hv, "value/kernel");
            checkLen(wo, c.n * c.hv * outCols, "attention_output/kernel");
            if (wg != null) {
                checkLen(wg, dq * c.n * c.hv, "gate/kernel");
            }
            qp = project(c.q, qPos, dq, wq, bq, c.n * c.h);
            kp = project(key, vPos, dkf, wk, bk, c.kv * c.h);
            vp = project(c.v, vPos, dvf, wv, bv, c.kv * c.hv);
            gp = c.useGate ? project(c.q, qPos, dq, wg, bg, c.n * c.hv) : null;

            boolean[] isAxis = new boolean[rank];
            int prev = 0;
            for (int a : c.axes) {
                if (a <= prev || a >= rank - 1) {
                    throw new IllegalArgumentException("attention axes must be increasing in [1, rank-2]");
                }
                isAxis[a] = true;
                prev = a;
            }
            int tt = 1, ss = 1, gg = (int) c.qShape[0];
            for (int a : c.axes) {
                tt *= (int) c.qShape[a];
                ss *= (int) c.vShape[a];
            }
            for (int i = 1; i < rank - 1; i++) {
                if (!isAxis[i]) {
                    if (c.qShape[i] != c.vShape[i]) {
                        throw new IllegalArgumentException("non-attention axes must match");
                    }
                    gg *= (int) c.qShape[i];
                }
            }
            t = tt;
            s = ss;
            groups = gg;
            qIndex = positions(c.qShape, isAxis, groups, t);
            vIndex = positions(c.vShape, isAxis, groups, s);
            ratio = c.n / c.kv;
            scale = 1 / Math.sqrt(c.h);
            int perBatch = groups / (int) c.qShape[0];

            int n = c.n, h = c.h, hv = c.hv;
            keep = new boolean[groups * n * t * s];
            anyKept = new boolean[groups * n * t];
            p = new double[keep.length];
            pd = new double[keep.length];
            attended = new double[qPos * n * hv];
            double[] logits = new double[s];
            for (int g = 0; g < groups; g++) {
                int b = g / perBatch;
                for (int u = 0; u < n; u++) {
                    int kvh = u / ratio;
                    for (int i = 0; i < t; i++) {
                        int row = (g * n + u) * t + i;
                        int q0 = (qIndex[g][i] * n + u) * h;
                        boolean any = false;
                        double max = Double.NEGATIVE_INFINITY;
                        for (int j = 0; j < s; j++) {
                            int flat = row * s + j;
                            int k0 = (vIndex[g][j] * c.kv + kvh) * h;
                            double dot = 0;
                            for (int x = 0; x < h; x++) {
                                dot += qp[q0 + x] * kp[k0 + x];
                            }
                            logits[j] = dot * scale;
                            keep[flat] = (c.attentionMask == null || c.attentionMask[flat])
                                    && (c.queryMask == null || c.queryMask[b * t + i])
                                    && (c.valueMask == null || c.valueMask[b * s + j])
                                    && (c.keyMask == null || c.keyMask[b * s + j])
                                    && (!c.causal || j <= i)
                                    && (c.window == 0 || Math.abs(i - j) < c.window);
                            if (keep[flat]) {
                                any = true;
                                max = Math.max(max, logits[j]);
                            }
                        }
                        anyKept[row] = any;
                        double sum = 0;
                        for (int j = 0; j < s; j++) {
                            sum += keep[row * s + j] ? Math.exp(logits[j] - max) : 0;
                        }
                        int a0 = (qIndex[g][i] * n + u) * hv;
                        for (int j = 0; j < s; j++) {
                            int flat = row * s + j;
                            double pj;
                            if (any) {
                                pj = keep[flat] ? Math.exp(logits[j] - max) / sum : 0;
                            } else {
                                pj = c.fastPath ? 1.0 / s : 0;
                            }
                            p[flat] = pj;
                            pd[flat] = pj * drop(flat);
                            int v0 = (vIndex[g][j] * c.kv + kvh) * hv;
                            for (int y = 0; y < hv; y++) {
                                attended[a0 + y] += pd[flat] * vp[v0 + y];
                            }
                        }
                    }
                }
            }
            if (c.useGate) {
                gated = new double[attended.length];
                for (int x = 0; x < attended.length; x++) {
                    gated[x] = attended[x] * sigmoid(gp[x]);
                }
            } else {
                gated = attended;
            }
            int nhv = n * hv;
            output = new double[qPos * outCols];
            for (int q = 0; q < qPos; q++) {
                for (int o = 0; o < outCols; o++) {
                    double acc = bo == null ? 0 : bo[o];
                    for (int x = 0; x < nhv; x++) {
                        acc += gated[q * nhv + x] * wo[x * outCols + o];
                    }
                    output[q * outCols + o] = acc;
                }
            }
        }

        double drop(int flat) {
            if (c.dropoutKeep == null) {
                return 1;
            }
            return c.dropoutKeep[flat] ? 1 / (1 - c.rate) : 0;
        }
    }

    /** [group][attention index] -> flat position; groups ordered (B, non-attention axes...). */
    private static int[][] positions(long[] shape, boolean[] isAxis, int groups, int count) {
        int rank = shape.length;
        int total = (int) prod(shape, 0, rank - 1);
        int[][] out = new int[groups][count];
        int[] idx = new int[rank - 1];
        for (int p = 0; p < total; p++) {
            int g = 0, a = 0;
            for (int i = 0; i < rank - 1; i++) {
                if (i == 0 || !isAxis[i]) {
                    g = g * (int) shape[i] + idx[i];
                } else {
                    a = a * (int) shape[i] + idx[i];
                }
            }
            out[g][a] = p;
            for (int i = rank - 2; i >= 0 && ++idx[i] == shape[i]; i--) {
                idx[i] = 0;
            }
        }
        return out;
    }

    private static double[] project(double[] x, int rows, int in, double[] kernel, double[] bias, int cols) {
        double[] out = new double[rows * cols];
        for (int p = 0; p < rows; p++) {
            for (int o = 0; o < cols; o++) {
                double acc = bias == null ? 0 : bias[o];
                for (int d = 0; d < in; d++) {
                    acc += x[p * in + d] * kernel[d * cols + o];
                }
                out[p * cols + o] = acc;
            }
        }
        return out;
    }

    /** Backward of {@link #project}: adds into dx, dKernel, dBias (dBias may be null). */
    private static void projectBack(double[] x, int rows, int in, double[] kernel, double[] dOut, int cols,
                                    double[] dx, double[] dKernel, double[] dBias) {
        for (int p = 0; p < rows; p++) {
            for (int o = 0; o < cols; o++) {
                double g = dOut[p * cols + o];
                if (g == 0) {
                    continue;
                }
                if (dBias != null) {
                    dBias[o] += g;
                }
                for (int d = 0; d < in; d++) {
                    dKernel[d * cols + o] += x[p * in + d] * g;
                    dx[p * in + d] += g * kernel[d * cols + o];
                }
            }
        }
    }

    private static void checkLen(double[] a, long n, String what) {
        if (a.length != n) {
            throw new IllegalArgumentException(what + ": expected " + n + " values, got " + a.length);
        }
    }

    private static double sigmoid(double x) {
        return 1 / (1 + Math.exp(-x));
    }

    static long prod(long[] s, int from, int to) {
        long p = 1;
        for (int i = from; i < to; i++) {
            p *= s[i];
        }
        return p;
    }

    // =====================================================================================
    // Finite differences
    // =====================================================================================

    /** L = sum(dOut * output). */
    static double loss(double[] output, double[] dOut) {
        if (output.length != dOut.length) {
            throw new IllegalArgumentException("dOut has " + dOut.length + " values, output " + output.length);
        }
        double l = 0;
        for (int i = 0; i < output.length; i++) {
            l += output[i] * dOut[i];
        }
        return l;
    }

    private static double[][] params(double[] q, double[] v, double[] k, double[][] w) {
        double[][] p = new double[3 + w.length][];
        p[0] = q;
        p[1] = v;
        p[2] = k;
        System.arraycopy(w, 0, p, 3, w.length);
        return p;
    }

    private static Grads grads(double[][] g, boolean hasKey, int weights) {
        return new Grads(g[0], g[1], hasKey ? g[2] : null, Arrays.copyOfRange(g, 3, 3 + weights));
    }

    /** Central differences (L(x + h) - L(x - h)) / 2h (h as represented) of every element of every (non-null) array, in place. */
    private static double[][] finiteDifference(double[][] params, DoubleSupplier loss, double h) {
        double[][] grads = new double[params.length][];
        for (int a = 0; a < params.length; a++) {
            double[] x = params[a];
            if (x == null) {
                continue;
            }
            grads[a] = new double[x.length];
            for (int e = 0; e < x.length; e++) {
                double saved = x[e], up = saved + h, down = saved - h;
                x[e] = up;
                double plus = loss.getAsDouble();
                x[e] = down;
                double minus = loss.getAsDouble();
                x[e] = saved;
                grads[a][e] = (plus - minus) / (up - down); // the step actually taken
            }
        }
        return grads;
    }
}
