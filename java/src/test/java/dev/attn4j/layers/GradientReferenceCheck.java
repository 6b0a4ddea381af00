package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Self-check of {@link GradientReference}: for seeded random small configurations of both
 * families, the analytic backward must match central finite differences (h = 1e-5) of
 * {@code L = sum(dOut * output)} on every input and weight element, within 1e-6 in the
 * mixed measure {@code |a - b| / max(1, |a|, |b|)} (absolute for gradients up to 1,
 * relative above; FD truncation + rounding error is about 1e-9 here). The double forward
 * is also compared with the float references ({@link AttentionReference},
 * {@link MultiHeadReference}) where they apply (no dropout; single-head with float32 mask
 * rounding, which is what AttentionReference does).
 *
 * <p>A JUnit test (pure Java, no native code): the truth {@link GradientTest} compares
 * attn4j's backward passes with is itself checked here.
 */
class GradientReferenceCheck {
    static final int SINGLE_CONFIGS = 600;
    static final int MULTI_CONFIGS = 600;   // MHA
    static final int GQA_CONFIGS = 300;
    static final double H = 1e-5;
    static final double TOL = 1e-6;
    static final double FORWARD_TOL = 1e-6;  // vs the float references, relative to max(1, |x|)

    @Test
    void analyticBackwardMatchesFiniteDifferences() {
        long start = System.nanoTime();
        boolean ok = singleFamily();
        ok &= multiFamily(false, MULTI_CONFIGS, 1_000_000);
        ok &= multiFamily(true, GQA_CONFIGS, 2_000_000);
        System.out.printf("GradientReferenceCheck total %.1f s: %s%n", (System.nanoTime() - start) / 1e9,
                ok ? "PASS" : "FAIL");
        assertTrue(ok, "the reference's analytic backward differs from its finite differences (see the output)");
    }

    /** Worst error and coverage counters of one family. */
    static final class Stats {
        double worstGrad, worstForward;
        long compared, nonTrivial, failures;
        String worstWhat = "";

        void grad(String what, double[] a, double[] b, String name) {
            if (a == null || b == null) {
                if (a != b) {
                    fail(what + ": " + name + " null mismatch");
                }
                return;
            }
            if (a.length != b.length) {
                fail(what + ": " + name + " length " + a.length + " vs " + b.length);
                return;
            }
            for (int i = 0; i < a.length; i++) {
                double e = err(a[i], b[i]);
                compared++;
                if (Math.abs(a[i]) > 1e-3) {
                    nonTrivial++;
                }
                if (!(e <= TOL)) {
                    fail(what + ": " + name + "[" + i + "] analytic " + a[i] + " fd " + b[i]);
                }
                if (e > worstGrad) {
                    worstGrad = e;
                    worstWhat = name;
                }
            }
        }

        void grads(String what, GradientReference.Grads a, GradientReference.Grads f, double[][] w) {
            grad(what, a.dq(), f.dq(), "dq");
            grad(what, a.dv(), f.dv(), "dv");
            grad(what, a.dk(), f.dk(), "dk");
            if (a.dW().length != w.length) {
                fail(what + ": dW count " + a.dW().length);
                return;
            }
            for (int i = 0; i < w.length; i++) {
                if (a.dW()[i].length != w[i].length) {
                    fail(what + ": dW[" + i + "] length");
                }
                grad(what, a.dW()[i], f.dW()[i], "dW[" + i + "]");
            }
        }

        void forward(String what, double[] got, float[] want, String name) {
            if (got.length != want.length) {
                fail(what + ": forward " + name + " length");
                return;
            }
            for (int i = 0; i < got.length; i++) {
                double e = err(got[i], want[i]);
                worstForward = Math.max(worstForward, e);
                if (!(e <= FORWARD_TOL)) {
                    fail(what + ": forward " + name + "[" + i + "] " + got[i] + " vs float reference " + want[i]);
                    return;
                }
            }
        }

        void fail(String msg) {
            if (failures++ < 10) {
                System.out.println("FAIL " + msg);
            }
        }
    }

    static double err(double a, double b) {
        return Math.abs(a - b) / Math.max(1, Math.max(Math.abs(a), Math.abs(b)));
    }

    // ---- single-head ---------------------------------------------------------------------

    static boolean singleFamily() {
        Stats st = new Stats();
        int[] perMode = new int[3];
        int withKey = 0, scaled = 0, causal = 0, qmask = 0, vmask = 0, fullyMasked = 0, dropout = 0,
                f32 = 0, f32FullySwitched = 0, crossChecked = 0;
        long start = System.nanoTime();
        for (int seed = 0; seed < SINGLE_CONFIGS; seed++) {
            SplittableRandom r = new SplittableRandom(seed);
            GradientReference.Single c = new GradientReference.Single();
            c.mode = GradientReference.Mode.values()[seed % 3];
            c.b = 1 + r.nextInt(2);
            c.tq = 1 + r.nextInt(4);
            c.tv = 1 + r.nextInt(4);
            c.d = 1 + r.nextInt(4);
            boolean key = r.nextBoolean();
            c.dv = key ? 1 + r.nextInt(4) : c.d;
            c.useScale = r.nextBoolean();
            c.q = floats(r, c.b * c.tq * c.d, -1, 1);
            c.v = floats(r, c.b * c.tv * c.dv, -1, 1);
            c.k = key ? floats(r, c.b * c.tv * c.d, -1, 1) : null;
            c.w = switch (c.mode) {
                case DOT -> c.useScale ? new double[][] {{signed(r, 0.3, 1.5)}} : new double[0][];
                case CONCAT -> c.useScale ? new double[][] {{signed(r, 0.3, 1.5)}, {signed(r, 0.5, 1.5)}}
                        : new double[][] {{signed(r, 0.5, 1.5)}};
                case ADDITIVE -> c.useScale ? new double[][] {floats(r, c.d, -1, 1)} : new double[0][];
            };
            c.causal = r.nextInt(3) == 0;
            if (r.nextInt(3) == 0) {
                c.queryMask = booleans(r, c.b * c.tq, 0.7);
            }
            if (r.nextInt(3) == 0) {
                c.valueMask = booleans(r, c.b * c.tv, 0.6);
                if (r.nextInt(3) == 0) {
                    Arrays.fill(c.valueMask, 0, c.tv, false); // batch 0 fully masked
                }
            }
            if (r.nextInt(4) == 0) {
                c.dropoutKeep = booleans(r, c.b * c.tq * c.tv, 0.7);
                c.rate = new double[] {0.1, 0.25, 0.5}[r.nextInt(3)];
            }
            c.float32MaskRounding = r.nextBoolean();
            double[] dOut = floats(r, c.b * c.tq * c.dv, -1, 1);
            boolean full = hasFullyMaskedRow(c);
            String what = "seed " + seed + " " + describe(c);

            // Forward cross-check with the float reference (it always rounds like float32).
            if (c.float32MaskRounding && c.dropoutKeep == null) {
                AttentionReference.Result want = AttentionReference.compute(
                        AttentionReference.Mode.valueOf(c.mode.name()), toFloat(c.q), toFloat(c.v),
                        c.k == null ? null : toFloat(c.k), c.b, c.tq, c.tv, c.d, c.dv,
                        (float) (c.mode == GradientReference.Mode.ADDITIVE || !c.useScale ? 1 : c.w[0][0]),
                        (float) (c.mode == GradientReference.Mode.CONCAT ? c.w[c.useScale ? 1 : 0][0] : 1),
                        c.mode == GradientReference.Mode.ADDITIVE && c.useScale ? toFloat(c.w[0]) : null,
                        c.queryMask, c.valueMask, c.causal);
                GradientReference.Forward got = GradientReference.forward(c);
                st.forward(what, got.output(), want.output(), "output");
                st.forward(what, got.probs(), want.scores(), "probs");
                crossChecked++;
            }
            if (full && c.float32MaskRounding) {
                // Fully masked rows are uniform with float32 rounding (|s| < 32 here); the function is
                // piecewise constant there, so the FD check uses exact double masking instead.
                double[] p = GradientReference.forward(c).probs();
                checkUniformFullyMaskedRows(st, what, c, p);
                c.float32MaskRounding = false;
                f32FullySwitched++;
            }
            GradientReference.Grads a = GradientReference.backward(c, dOut);
            GradientReference.Grads f = GradientReference.finiteDifference(c, dOut, H);
            st.grads(what, a, f, c.w);

            perMode[c.mode.ordinal()]++;
            withKey += key ? 1 : 0;
            scaled += c.useScale ? 1 : 0;
            causal += c.causal ? 1 : 0;
            qmask += c.queryMask != null ? 1 : 0;
            vmask += c.valueMask != null ? 1 : 0;
            fullyMasked += full ? 1 : 0;
            dropout += c.dropoutKeep != null ? 1 : 0;
            f32 += c.float32MaskRounding ? 1 : 0;
        }
        System.out.printf("single-head: %d configs (dot %d, concat %d, additive %d; key %d, use_scale %d, causal %d, "
                        + "query mask %d, value mask %d, fully masked rows %d (f32->double for FD %d), dropout %d, "
                        + "f32 rounding %d, forward vs AttentionReference %d, worst %.2e); %d gradient entries "
                        + "(%d with |g| > 1e-3), worst analytic-vs-FD error %.2e (%s) <= %.0e; %.1f s: %s%n",
                SINGLE_CONFIGS, perMode[0], perMode[1], perMode[2], withKey, scaled, causal, qmask, vmask, fullyMasked,
                f32FullySwitched, dropout, f32, crossChecked, st.worstForward, st.compared, st.nonTrivial,
                st.worstGrad, st.worstWhat, TOL, (System.nanoTime() - start) / 1e9,
                st.failures == 0 ? "PASS" : "FAIL (" + st.failures + ")");
        return st.failures == 0;
    }

    static boolean hasFullyMaskedRow(GradientReference.Single c) {
        for (int n = 0; n < c.b; n++) {
            for (int i = 0; i < c.tq; i++) {
                boolean any = false;
                for (int j = 0; j < c.tv; j++) {
                    any |= (c.valueMask == null || c.valueMask[n * c.tv + j]) && (!c.causal || j <= i);
                }
                if (!any) {
                    return true;
                }
            }
        }
        return false;
    }

    static void checkUniformFullyMaskedRows(Stats st, String what, GradientReference.Single c, double[] p) {
        for (int n = 0; n < c.b; n++) {
            if (c.valueMask == null) {
                continue;
            }
            boolean all = true;
            for (int j = 0; j < c.tv; j++) {
                all &= !c.valueMask[n * c.tv + j];
            }
            for (int i = 0; all && i < c.tq; i++) {
                for (int j = 0; j < c.tv; j++) {
                    if (Math.abs(p[(n * c.tq + i) * c.tv + j] - 1.0 / c.tv) > 1e-15) {
                        st.fail(what + ": float32-rounded fully masked row not uniform");
                        return;
                    }
                }
            }
        }
    }

    static String describe(GradientReference.Single c) {
        return c.mode + " b " + c.b + " tq " + c.tq + " tv " + c.tv + " d " + c.d + " dv " + c.dv + " key "
                + (c.k != null) + " scale " + c.useScale + " causal " + c.causal + " qm " + (c.queryMask != null)
                + " vm " + (c.valueMask != null) + " drop " + (c.dropoutKeep != null) + " f32 " + c.float32MaskRounding;
    }

    // ---- multi-head ----------------------------------------------------------------------

    static boolean multiFamily(boolean gqa, int configs, int seedBase) {
        Stats st = new Stats();
        int rank4 = 0, rank5 = 0, multiAxis = 0, withKey = 0, noBias = 0, gate = 0, hNeHv = 0, outOther = 0,
                outRank2 = 0, fast = 0, fullFast = 0, fullSlow = 0, dropout = 0, causal = 0, window = 0, qm = 0,
                vm = 0, km = 0, am = 0, crossChecked = 0;
        int[] ratios = new int[5];
        long start = System.nanoTime();
        for (int seed = seedBase; seed < seedBase + configs; seed++) {
            SplittableRandom r = new SplittableRandom(seed);
            GradientReference.Multi c = new GradientReference.Multi();
            int rank = gqa ? 3 : switch (r.nextInt(10)) {
                case 0, 1, 2 -> 4;
                case 3, 4 -> 5;
                default -> 3;
            };
            c.axes = rank == 3 ? new int[] {1} : rank == 4
                    ? new int[][] {{1}, {2}, {1, 2}}[r.nextInt(3)]
                    : new int[][] {{1}, {2}, {3}, {1, 2}, {1, 3}, {2, 3}, {1, 2, 3}}[r.nextInt(7)];
            boolean[] isAxis = new boolean[rank];
            for (int a : c.axes) {
                isAxis[a] = true;
            }
            c.qShape = new long[rank];
            c.vShape = new long[rank];
            c.qShape[0] = c.vShape[0] = 1 + r.nextInt(2);
            for (int i = 1; i < rank - 1; i++) {
                int max = rank == 3 ? 4 : 3;
                c.qShape[i] = 1 + r.nextInt(max);
                c.vShape[i] = isAxis[i] ? 1 + r.nextInt(max) : c.qShape[i];
            }
            int dq = 1 + r.nextInt(4), dv = 1 + r.nextInt(4);
            c.qShape[rank - 1] = dq;
            c.vShape[rank - 1] = dv;
            boolean key = r.nextBoolean();
            c.dk = key ? 1 + r.nextInt(4) : dv;
            if (gqa) {
                c.kv = 1 + r.nextInt(2);
                c.n = c.kv * (1 + r.nextInt(4));
                c.h = c.hv = 1 + r.nextInt(3);
                c.out = new long[] {dq};
            } else {
                c.n = c.kv = 1 + r.nextInt(3);
                c.h = 1 + r.nextInt(3);
                c.hv = r.nextBoolean() ? c.h : 1 + r.nextInt(3);
                c.out = switch (r.nextInt(3)) {
                    case 0 -> new long[] {dq};
                    case 1 -> new long[] {3};
                    default -> new long[] {2, 3};
                };
            }
            c.useBias = r.nextInt(4) != 0;
            c.useGate = r.nextInt(3) == 0;
            int t = 1, s = 1;
            for (int a : c.axes) {
                t *= (int) c.qShape[a];
                s *= (int) c.vShape[a];
            }
            int b = (int) c.qShape[0];
            boolean positional = rank == 3 || c.axes.length == 1 && c.axes[0] == 1;
            c.causal = positional && r.nextInt(3) == 0;
            c.window = positional && r.nextInt(4) == 0 ? 1 + r.nextInt(3) : 0;
            if (rank == 3) {
                if (r.nextInt(3) == 0) {
                    c.queryMask = booleans(r, b * t, 0.75);
                }
                if (r.nextInt(3) == 0) {
                    c.valueMask = booleans(r, b * s, 0.7);
                    if (r.nextInt(3) == 0) {
                        Arrays.fill(c.valueMask, 0, s, false);
                    }
                }
                if (r.nextInt(4) == 0) {
                    c.keyMask = booleans(r, b * s, 0.7);
                }
            }
            int groups = (int) (GradientReference.prod(c.qShape, 0, rank - 1) / t);
            int scores = groups * c.n * t * s;
            if (r.nextInt(3) == 0) {
                c.attentionMask = booleans(r, scores, 0.7);
                if (r.nextBoolean()) {
                    int row = r.nextInt(groups * c.n * t);
                    Arrays.fill(c.attentionMask, row * s, row * s + s, false); // one fully masked row
                }
            }
            boolean drop = r.nextInt(4) == 0;
            c.fastPath = rank == 3 && !drop && r.nextBoolean();
            if (drop) {
                c.dropoutKeep = booleans(r, scores, 0.7);
                c.rate = new double[] {0.1, 0.25, 0.5}[r.nextInt(3)];
            }
            c.q = floats(r, (int) GradientReference.prod(c.qShape, 0, rank), -1, 1);
            c.v = floats(r, (int) GradientReference.prod(c.vShape, 0, rank), -1, 1);
            c.k = key ? floats(r, (int) (GradientReference.prod(c.vShape, 0, rank - 1) * c.dk), -1, 1) : null;
            int dkf = key ? c.dk : dv;
            int outCols = (int) GradientReference.prod(c.out, 0, c.out.length);
            java.util.List<double[]> w = new java.util.ArrayList<>();
            w.add(floats(r, dq * c.n * c.h, -0.7, 0.7));
            if (c.useBias) {
                w.add(floats(r, c.n * c.h, -0.7, 0.7));
            }
            w.add(floats(r, dkf * c.kv * c.h, -0.7, 0.7));
            if (c.useBias) {
                w.add(floats(r, c.kv * c.h, -0.7, 0.7));
            }
            if (c.useGate) {
                w.add(floats(r, dq * c.n * c.hv, -0.7, 0.7));
                if (c.useBias) {
                    w.add(floats(r, c.n * c.hv, -0.7, 0.7));
                }
            }
            w.add(floats(r, dv * c.kv * c.hv, -0.7, 0.7));
            if (c.useBias) {
                w.add(floats(r, c.kv * c.hv, -0.7, 0.7));
            }
            w.add(floats(r, c.n * c.hv * outCols, -0.7, 0.7));
            if (c.useBias) {
                w.add(floats(r, outCols, -0.7, 0.7));
            }
            c.w = w.toArray(double[][]::new);
            double[] dOut = floats(r, (int) GradientReference.prod(c.qShape, 0, rank - 1) * outCols, -1, 1);
            String what = (gqa ? "GQA" : "MHA") + " seed " + seed + " q " + Arrays.toString(c.qShape) + " v "
                    + Arrays.toString(c.vShape) + " axes " + Arrays.toString(c.axes) + " n " + c.n + " kv " + c.kv
                    + " h " + c.h + " hv " + c.hv + " out " + Arrays.toString(c.out) + " bias " + c.useBias + " gate "
                    + c.useGate + " fast " + c.fastPath + " drop " + drop;

            GradientReference.Forward got = GradientReference.forward(c);
            if (!drop) {
                MultiHeadReference.Call m = new MultiHeadReference.Call();
                m.qShape = c.qShape;
                m.vShape = c.vShape;
                m.dk = c.dk;
                m.q = toFloat(c.q);
                m.v = toFloat(c.v);
                m.k = c.k == null ? null : toFloat(c.k);
                m.n = c.n;
                m.kv = c.kv;
                m.h = c.h;
                m.hv = c.hv;
                m.out = c.out;
                m.axes = c.axes;
                m.w = new float[c.w.length][];
                for (int i = 0; i < c.w.length; i++) {
                    m.w[i] = toFloat(c.w[i]);
                }
                m.useBias = c.useBias;
                m.useGate = c.useGate;
                m.queryMask = c.queryMask;
                m.valueMask = c.valueMask;
                m.keyMask = c.keyMask;
                m.attentionMask = c.attentionMask;
                m.causal = c.causal;
                m.window = c.window;
                m.fastPath = c.fastPath;
                MultiHeadReference.Result want = MultiHeadReference.compute(m);
                st.forward(what, got.output(), want.output(), "output");
                st.forward(what, got.probs(), want.scores(), "probs");
                crossChecked++;
            }
            // fully masked rows: uniform (fast) or zero (slow) probabilities
            boolean anyFull = false;
            for (int row = 0; row < scores / s; row++) {
                double sum = 0;
                boolean uniform = true;
                for (int j = 0; j < s; j++) {
                    double p = got.probs()[row * s + j];
                    sum += p;
                    uniform &= Math.abs(p - 1.0 / s) < 1e-15;
                }
                boolean full = fullyMasked(c, row, s, t, groups);
                anyFull |= full;
                if (full && (c.fastPath ? !uniform : sum != 0)) {
                    st.fail(what + ": fully masked row " + row + " probabilities wrong");
                }
            }
            GradientReference.Grads a = GradientReference.backward(c, dOut);
            GradientReference.Grads f = GradientReference.finiteDifference(c, dOut, H);
            st.grads(what, a, f, c.w);

            rank4 += rank == 4 ? 1 : 0;
            rank5 += rank == 5 ? 1 : 0;
            multiAxis += c.axes.length > 1 ? 1 : 0;
            withKey += key ? 1 : 0;
            noBias += c.useBias ? 0 : 1;
            gate += c.useGate ? 1 : 0;
            hNeHv += c.h != c.hv ? 1 : 0;
            outOther += c.out.length == 1 && c.out[0] != dq ? 1 : 0;
            outRank2 += c.out.length == 2 ? 1 : 0;
            fast += c.fastPath ? 1 : 0;
            fullFast += anyFull && c.fastPath ? 1 : 0;
            fullSlow += anyFull && !c.fastPath ? 1 : 0;
            dropout += drop ? 1 : 0;
            causal += c.causal ? 1 : 0;
            window += c.window > 0 ? 1 : 0;
            qm += c.queryMask != null ? 1 : 0;
            vm += c.valueMask != null ? 1 : 0;
            km += c.keyMask != null ? 1 : 0;
            am += c.attentionMask != null ? 1 : 0;
            ratios[Math.min(4, c.n / c.kv)]++;
        }
        String family = gqa ? "GroupQueryAttention" : "MultiHeadAttention";
        System.out.printf("%s: %d configs (rank4 %d, rank5 %d, multi-axis %d, key %d, no bias %d, gate %d, h!=hv %d, "
                        + "out [3] %d, out [2,3] %d, fast %d, fully masked rows fast %d / slow %d, dropout %d, causal %d, "
                        + "window %d, qm %d, vm %d, km %d, attention mask %d, head ratios 1..4 %s, forward vs "
                        + "MultiHeadReference %d, worst %.2e); %d gradient entries (%d with |g| > 1e-3), worst "
                        + "analytic-vs-FD error %.2e (%s) <= %.0e; %.1f s: %s%n",
                family, configs, rank4, rank5, multiAxis, withKey, noBias, gate, hNeHv, outOther, outRank2, fast,
                fullFast, fullSlow, dropout, causal, window, qm, vm, km, am,
                Arrays.toString(Arrays.copyOfRange(ratios, 1, 5)), crossChecked, st.worstForward, st.compared,
                st.nonTrivial, st.worstGrad, st.worstWhat, TOL, (System.nanoTime() - start) / 1e9,
                st.failures == 0 ? "PASS" : "FAIL (" + st.failures + ")");
        return st.failures == 0;
    }

    /** Whether (g, u, i) row of the scores layout keeps no position, restated from the masks. */
    static boolean fullyMasked(GradientReference.Multi c, int row, int s, int t, int groups) {
        int i = row % t;
        int g = row / t / c.n;
        int b = g / (groups / (int) c.qShape[0]);
        for (int j = 0; j < s; j++) {
            boolean keep = (c.attentionMask == null || c.attentionMask[row * s + j])
                    && (c.queryMask == null || c.queryMask[b * t + i])
                    && (c.valueMask == null || c.valueMask[b * s + j])
                    && (c.keyMask == null || c.keyMask[b * s + j])
                    && (!c.causal || j <= i)
                    && (c.window == 0 || Math.abs(i - j) < c.window);
            if (keep) {
                return false;
            }
        }
        return true;
    }

    // ---- data ----------------------------------------------------------------------------

    /** Uniform values, rounded to float so the float references see exactly the same inputs. */
    static double[] floats(SplittableRandom r, int n, double lo, double hi) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextDouble(lo, hi);
        }
        return a;
    }

    static double signed(SplittableRandom r, double lo, double hi) {
        return (float) ((r.nextBoolean() ? 1 : -1) * r.nextDouble(lo, hi));
    }

    static boolean[] booleans(SplittableRandom r, int n, double pTrue) {
        boolean[] a = new boolean[n];
        for (int i = 0; i < n; i++) {
            a[i] = r.nextDouble() < pTrue;
        }
        return a;
    }

    static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            f[i] = (float) a[i];
        }
        return f;
    }
}
