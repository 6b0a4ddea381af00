package dev.attn4j;

import dev.attn4j.layers.AdditiveAttention;
import dev.attn4j.layers.Attention;
import dev.attn4j.layers.AttentionLayer;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.Constraint;
import dev.attn4j.layers.ForwardPass;
import dev.attn4j.layers.Gradients;
import dev.attn4j.layers.GroupQueryAttention;
import dev.attn4j.layers.Initializer;
import dev.attn4j.layers.Layers;
import dev.attn4j.layers.MultiHeadAttention;
import dev.attn4j.layers.Regularizer;
import dev.attn4j.layers.Weight;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * The child JVM of {@link CrashFuzzTest}: feeds random, mostly invalid calls through the
 * public API and counts what each one threw. Arguments: seed, number of calls.
 *
 * <p>Each call starts from a valid argument set (small, odd shapes, every mask kind) and
 * mutates it with some probability: ranks, dimensions (0, negative, 2^31 - 1, 2^31,
 * 2^40, ...), dtypes, masks, closed arenas, nulls, layer arguments, configs. Outcomes are
 * counted per exception class ("OK" for a call that returned); a class outside
 * {@link #EXPECTED} is printed with its stack trace (the first few) and listed as
 * UNEXPECTED. A native crash ends the JVM without "FUZZ DONE", which the parent test
 * detects from the exit code.
 *
 * <p>Memory is never lied about for a shape that could be valid: a tensor too large to
 * allocate (over {@link #CAP} bytes) is only made, as a view over a small allocation, when
 * one of its dimensions exceeds {@link Integer#MAX_VALUE}, which every operation taking
 * it must reject from the shape alone (the documented 32-bit limits); other oversized
 * shapes are shrunk. Such views are never read through get/set or passed as softmax
 * scores (whose batch count is 64-bit and so legitimately unbounded).
 */
public final class FuzzMain {
    static final Set<String> EXPECTED = Set.of("IllegalArgumentException", "IllegalStateException",
            "NullPointerException", "IndexOutOfBoundsException", "UnsupportedOperationException");
    static final long CAP = 1 << 20;
    private static final long[] HUGE = {Integer.MAX_VALUE, 1L << 31, (1L << 32) + 1, 1L << 40, Long.MAX_VALUE / 3};

    private final SplittableRandom r;
    private final Map<String, Integer> counts = new TreeMap<>();
    /** Where each exception type was thrown from (the innermost attn4j or JDK frame), for reading. */
    private final Map<String, Integer> origins = new TreeMap<>();
    private final List<String> unexpected = new ArrayList<>();
    private Arena arena;

    private FuzzMain(long seed) {
        this.r = new SplittableRandom(seed);
    }

    public static void main(String[] args) {
        long seed = Long.parseLong(args[0]);
        int calls = Integer.parseInt(args[1]);
        FuzzMain f = new FuzzMain(seed);
        long start = System.nanoTime();
        for (int i = 0; i < calls; i++) {
            f.one(i);
        }
        System.out.println("FUZZ seed " + seed + ", " + calls + " calls, " + (System.nanoTime() - start) / 1_000_000
                + " ms");
        f.counts.forEach((k, v) -> System.out.println("COUNT " + k + " " + v));
        if (Boolean.getBoolean("fuzz.origins")) {
            f.origins.forEach((k, v) -> System.out.println("ORIGIN " + k + " " + v));
        }
        for (String u : f.unexpected) {
            System.out.println("UNEXPECTED " + u);
        }
        System.out.println("FUZZ DONE");
        System.out.flush();
    }

    private void one(int index) {
        String outcome;
        try (Arena a = Arena.ofConfined()) {
            arena = a;
            int kind = r.nextInt(100);
            if (kind < 10) {
                tensorCreation();
            } else if (kind < 18) {
                tensorViews();
            } else if (kind < 28) {
                matmul();
            } else if (kind < 36) {
                softmax();
            } else if (kind < 88) {
                layer();
            } else if (kind < 96) {
                config();
            } else {
                misc();
            }
            outcome = "OK";
        } catch (Throwable t) {
            outcome = t.getClass().getSimpleName();
            StackTraceElement[] st = t.getStackTrace();
            String where = st.length == 0 ? "?" : st[0].getClassName() + "." + st[0].getMethodName();
            for (StackTraceElement e : st) {
                if (e.getClassName().startsWith("dev.attn4j.") && !e.getClassName().startsWith("dev.attn4j.FuzzMain")) {
                    where = e.getClassName() + "." + e.getMethodName() + " via " + where;
                    break;
                }
            }
            origins.merge(outcome + " " + where, 1, Integer::sum);
            if (!EXPECTED.contains(outcome) && !outcome.equals("OK")) {
                if (unexpected.size() < 20) {
                    java.io.StringWriter w = new java.io.StringWriter();
                    t.printStackTrace(new java.io.PrintWriter(w));
                    unexpected.add("call " + index + ": " + w);
                }
            }
        }
        counts.merge(outcome, 1, Integer::sum);
    }

    // ---- random values ------------------------------------------------------------------

    private boolean chance(double p) {
        return r.nextDouble() < p;
    }

    private long dim() {
        int x = r.nextInt(100);
        if (x < 75) {
            return 1 + r.nextInt(6);
        } else if (x < 83) {
            return 0;
        } else if (x < 90) {
            return 7 + r.nextInt(30);
        } else if (x < 93) {
            return -1 - r.nextInt(3);
        }
        return HUGE[r.nextInt(HUGE.length)];
    }

    private long[] shape(int rank) {
        long[] s = new long[rank];
        for (int i = 0; i < rank; i++) {
            s[i] = dim();
        }
        return s;
    }

    private long[] randomShape() {
        return shape(r.nextInt(6));
    }

    /** Perturbs a valid shape: one dimension, the rank, or nothing. */
    private long[] mutate(long[] s, double p) {
        if (!chance(p)) {
            return s;
        }
        long[] m = s.clone();
        switch (r.nextInt(4)) {
            case 0 -> {
                if (m.length > 0) {
                    m[r.nextInt(m.length)] = dim();
                }
            }
            case 1 -> m = Arrays.copyOf(m, Math.max(0, m.length - 1));
            case 2 -> {
                m = Arrays.copyOf(m, m.length + 1);
                m[m.length - 1] = 1 + r.nextInt(3);
            }
            default -> {
                if (m.length > 0) {
                    int i = r.nextInt(m.length);
                    m[i] = m[i] + 1;
                }
            }
        }
        return m;
    }

    private static long elements(long[] s) {
        long n = 1;
        for (long d : s) {
            if (d < 0) {
                return -1;
            }
            if (d == 0) {
                return 0;
            }
            n = Math.multiplyHigh(n, d) != 0 || n * d < 0 ? Long.MAX_VALUE : n * d;
        }
        return n;
    }

    private static boolean beyondInt(long[] s) {
        for (long d : s) {
            if (d > Integer.MAX_VALUE) {
                return true;
            }
        }
        return false;
    }

    /** A random float or bool tensor of roughly this shape; may be null, closed, oversized. */
    private Tensor tensor(long[] s, DType dtype, boolean allowHugeView) {
        if (chance(0.01)) {
            return null;
        }
        if (chance(0.03)) {
            dtype = dtype == DType.FLOAT32 ? DType.BOOL : DType.FLOAT32;
        }
        long n = elements(s);
        if (n < 0) {
            return Tensor.allocate(arena, s); // negative dimension: rejected by Tensor itself
        }
        if (n > CAP / 4) {
            if (allowHugeView && beyondInt(s)) {
                MemorySegment lie = arena.allocate(64, 64).reinterpret(Long.MAX_VALUE);
                return dtype == DType.FLOAT32 ? Tensor.wrap(lie, s) : Tensor.wrapMask(lie, s);
            }
            s = shrink(s);
        }
        boolean closed = chance(0.03);
        Arena owner = closed ? Arena.ofConfined() : arena;
        Tensor t;
        if (dtype == DType.FLOAT32) {
            t = Tensor.allocate(owner, s);
            float[] data = new float[(int) t.size()];
            for (int i = 0; i < data.length; i++) {
                data[i] = chance(0.01) ? special() : (float) r.nextDouble(-2, 2);
            }
            t.copyFrom(data);
        } else {
            boolean[] data = new boolean[(int) elements(s)];
            for (int i = 0; i < data.length; i++) {
                data[i] = chance(0.75);
            }
            t = Tensor.ofMask(owner, data, s);
        }
        if (closed) {
            owner.close();
        }
        return t;
    }

    private float special() {
        float[] s = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MAX_VALUE, -0f, 1e-45f};
        return s[r.nextInt(s.length)];
    }

    private Tensor floats(long... s) {
        return tensor(s, DType.FLOAT32, true);
    }

    private Tensor bools(long... s) {
        return tensor(s, DType.BOOL, true);
    }

    // ---- operations -----------------------------------------------------------------------

    private void tensorCreation() {
        long[] s = chance(0.02) ? null : randomShape();
        switch (r.nextInt(6)) {
            case 0 -> Tensor.allocate(chance(0.03) ? null : arena, bounded(s, 4));
            // the data length is checked before allocating: any shape may go in
            case 1 -> Tensor.of(arena, chance(0.02) ? null : new float[r.nextInt(40)], s);
            case 2 -> Tensor.ofMask(arena, new boolean[r.nextInt(40)], s);
            case 3 -> Tensor.allocateMask(arena, bounded(s, 1));
            case 4 -> {
                MemorySegment seg = segment();
                Tensor.wrap(seg, s);
            }
            default -> Tensor.wrapMask(segment(), s);
        }
    }

    /**
     * The shape itself when Tensor must reject it (a negative dimension, a count or byte
     * size beyond a long) or it is small; a representable but oversized shape is shrunk:
     * asking for exabytes legitimately ends in the JDK's OutOfMemoryError, which is not
     * what this fuzzer looks for.
     */
    private long[] bounded(long[] s, int bytesPerElement) {
        if (s == null) {
            return null;
        }
        long n = elements(s);
        return n < 0 || n <= CAP / 4 || n > Long.MAX_VALUE / bytesPerElement ? s : shrink(s);
    }

    private long[] shrink(long[] s) {
        long[] t = s.clone();
        for (int i = 0; i < t.length; i++) {
            t[i] = Math.min(t[i], 1 + r.nextInt(7));
        }
        return t;
    }

    private MemorySegment segment() {
        return switch (r.nextInt(7)) {
            case 0 -> null;
            case 1 -> MemorySegment.ofArray(new float[r.nextInt(10)]);
            case 2 -> {
                Arena other = Arena.ofConfined();
                MemorySegment m = other.allocate(64, 8);
                other.close();
                yield m;
            }
            case 3 -> arena.allocate(64, 8).asSlice(1 + r.nextInt(3));
            case 4 -> arena.allocate(r.nextInt(64), 4).asReadOnly();
            default -> arena.allocate(r.nextInt(256), 8);
        };
    }

    private void tensorViews() {
        Tensor t = tensor(randomShape(), chance(0.7) ? DType.FLOAT32 : DType.BOOL, true);
        if (t == null) {
            return;
        }
        boolean lie = beyondInt(t.shape()) && elements(t.shape()) > CAP / 4;
        switch (r.nextInt(lie ? 5 : 9)) {
            case 0 -> t.slice(r.nextInt(5) - 1);
            case 1 -> t.slice(r.nextInt(5) - 1, r.nextInt(6) - 1);
            case 2 -> t.reshape(randomShape());
            case 3 -> t.dim(r.nextInt(9) - 4);
            case 4 -> t.toFloatArray();
            case 5 -> t.get(index(t));
            case 6 -> t.set(special(), index(t));
            case 7 -> t.getBoolean(index(t));
            default -> t.copyFrom(new float[r.nextInt(20)]);
        }
    }

    private long[] index(Tensor t) {
        long[] i = new long[chance(0.9) ? t.rank() : r.nextInt(4)];
        for (int a = 0; a < i.length; a++) {
            long d = a < t.rank() ? t.dim(a) : 3;
            i[a] = chance(0.9) && d > 0 ? r.nextLong(d) : d + r.nextInt(3) - 1;
        }
        return i;
    }

    private void matmul() {
        int lead = r.nextInt(3);
        long[] batch = new long[lead];
        for (int i = 0; i < lead; i++) {
            batch[i] = 1 + r.nextInt(3);
        }
        long m = 1 + r.nextInt(9);
        long n = 1 + r.nextInt(9);
        long k = 1 + r.nextInt(9);
        boolean ta = r.nextBoolean();
        boolean tb = r.nextBoolean();
        boolean bShared = chance(0.3);
        long[] a = cat(batch, ta ? new long[] {k, m} : new long[] {m, k});
        long[] b = cat(bShared ? new long[0] : batch, tb ? new long[] {n, k} : new long[] {k, n});
        long[] o = cat(batch, new long[] {m, n});
        double p = 0.4;
        Tensor ta1 = tensor(mutate(a, p), DType.FLOAT32, true);
        Tensor tb1 = tensor(mutate(b, p), DType.FLOAT32, true);
        Tensor to = tensor(mutate(o, p), DType.FLOAT32, true);
        if (chance(0.5)) {
            Ops.matmul(ta1, ta, tb1, tb, to);
        } else {
            Ops.matmul(ta1, tb1, to);
        }
    }

    private void softmax() {
        int lead = r.nextInt(3);
        long[] batch = new long[lead];
        for (int i = 0; i < lead; i++) {
            batch[i] = 1 + r.nextInt(3);
        }
        long tq = 1 + r.nextInt(9);
        long tv = 1 + r.nextInt(20);
        long[] scores = mutate(cat(batch, new long[] {tq, tv}), 0.3);
        Tensor s = tensor(scores, DType.FLOAT32, false); // a 64-bit batch is legal: never a lying view
        Tensor mask = null;
        if (chance(0.6)) {
            long[] ms = switch (r.nextInt(3)) {
                case 0 -> cat(batch, new long[] {tq, tv});
                case 1 -> cat(batch, new long[] {tv});
                default -> cat(batch, new long[] {1, tv});
            };
            if (lead > 0 && chance(0.3)) {
                ms[r.nextInt(lead)] = 1;
            }
            mask = tensor(mutate(ms, 0.3), chance(0.9) ? DType.BOOL : DType.FLOAT32, true);
        }
        MaskConvention[] cs = MaskConvention.values();
        Ops.maskedSoftmax(s, chance(0.05) ? special() : (float) r.nextDouble(-2, 2), mask, r.nextBoolean(),
                chance(0.03) ? null : cs[r.nextInt(cs.length)]);
    }

    private static long[] cat(long[] a, long[] b) {
        long[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    private Integer smallInt() {
        int x = r.nextInt(100);
        if (x < 80) {
            return 1 + r.nextInt(4);
        } else if (x < 87) {
            return 0;
        } else if (x < 93) {
            return -1 - r.nextInt(5);
        } else if (x < 97) {
            return null;
        }
        return Integer.MAX_VALUE - r.nextInt(2);
    }

    private double rate() {
        int x = r.nextInt(10);
        return x < 6 ? 0 : x < 8 ? r.nextDouble(0, 0.9) : new double[] {1, -0.1, Double.NaN, 1.5,
                Double.POSITIVE_INFINITY}[r.nextInt(5)];
    }

    private Object initializer() {
        Object[] specs = {"glorot_uniform", "zeros", "he_normal", "orthogonal", "bogus", 42, null,
                Map.of("class_name", "RandomNormal", "config", Map.of("stddev", 0.1)),
                Map.of("class_name", "VarianceScaling", "config", Map.of("mode", "fan_sideways")),
                Map.of("config", Map.of())};
        return specs[r.nextInt(specs.length)];
    }

    private Object regularizer() {
        Object[] specs = {null, null, "l2", "l1", "l3", Map.of("class_name", "L1L2", "config", Map.of("l1", 0.1)),
                "orthogonal_regularizer", 7};
        return specs[r.nextInt(specs.length)];
    }

    private Object constraint() {
        Object[] specs = {null, null, "max_norm", "non_neg", "max", Map.of("class_name", "UnitNorm",
                "config", Map.of("axis", 5))};
        return specs[r.nextInt(specs.length)];
    }

    private AttentionLayer newLayer(int kind, int[] axes) {
        return switch (kind) {
            case 0 -> Attention.builder().useScale(r.nextBoolean()).scoreMode(chance(0.95) ? "dot" : "general")
                    .dropout(rate()).seed(1L).build();
            case 1 -> Attention.builder().useScale(r.nextBoolean()).scoreMode("concat").dropout(rate()).seed(2L)
                    .build();
            case 2 -> AdditiveAttention.builder().useScale(r.nextBoolean()).dropout(rate()).seed(3L).build();
            case 3 -> MultiHeadAttention.builder().numHeads(smallInt()).keyDim(smallInt())
                    .valueDim(chance(0.5) ? null : smallInt()).dropout(rate()).useBias(r.nextBoolean())
                    .useGate(chance(0.2)).outputShape(chance(0.7) ? null : new long[] {dim()})
                    .attentionAxes(axes).slidingWindow(chance(0.8) ? null : smallInt())
                    .flashAttention(chance(0.05)).kernelInitializer(chance(0.8) ? "glorot_uniform" : initializer())
                    .biasInitializer(chance(0.9) ? "zeros" : initializer())
                    .kernelRegularizer(chance(0.8) ? null : regularizer())
                    .activityRegularizer(chance(0.9) ? null : regularizer())
                    .kernelConstraint(chance(0.9) ? null : constraint()).seed(4L).build();
            default -> GroupQueryAttention.builder().headDim(smallInt()).numQueryHeads(smallInt())
                    .numKeyValueHeads(smallInt()).dropout(rate()).useBias(r.nextBoolean()).useGate(chance(0.2))
                    .slidingWindow(chance(0.8) ? null : smallInt()).flashAttention(chance(0.05)).seed(5L).build();
        };
    }

    private void layer() {
        int kind = r.nextInt(5);
        boolean multi = kind >= 3;
        int rank = multi && kind == 3 && chance(0.3) ? 4 + r.nextInt(2) : (chance(0.2) && !multi ? 4 : 3);
        int[] axes = null;
        if (kind == 3 && rank > 3 && chance(0.7)) {
            axes = new int[1 + r.nextInt(2)];
            for (int i = 0; i < axes.length; i++) {
                axes[i] = chance(0.8) ? 1 + r.nextInt(rank - 2) : r.nextInt(2 * rank + 1) - rank;
            }
            Arrays.sort(axes);
            if (chance(0.1)) {
                axes = new int[] {axes[axes.length - 1], axes[0]};
            }
        }
        try (AttentionLayer layer = newLayer(kind, axes)) {
            // A valid geometry first: single-head (lead..., Tq, D) / (lead..., Tv, Dv); multi-head
            // (B, positions..., D) where only the attention axes may differ between query and value.
            long b = 1 + r.nextInt(3);
            long[] q = new long[rank];
            long[] v = new long[rank];
            boolean[] attentionAxis = new boolean[rank];
            if (multi) {
                if (axes == null) {
                    Arrays.fill(attentionAxis, 1, rank - 1, true);
                } else {
                    for (int x : axes) {
                        int resolved = x < 0 ? x + rank : x;
                        if (resolved > 0 && resolved < rank - 1) {
                            attentionAxis[resolved] = true;
                        }
                    }
                }
            } else {
                attentionAxis[rank - 2] = true;
            }
            for (int i = 0; i < rank - 1; i++) {
                q[i] = i == 0 ? b : 1 + r.nextInt(6);
                v[i] = attentionAxis[i] ? 1 + r.nextInt(6) : q[i];
            }
            long d = 1 + r.nextInt(7);
            q[rank - 1] = d;
            boolean withKey = chance(0.4);
            v[rank - 1] = !multi && !withKey ? d : 1 + r.nextInt(7); // single-head: the value is the key
            long[] k = v.clone();
            k[rank - 1] = multi ? 1 + r.nextInt(7) : d;
            double p = 0.15;
            long[] qs = mutate(q, p);
            long[] vs = mutate(v, p);
            long[] ks = withKey ? mutate(k, p) : null;
            int action = r.nextInt(10);
            if (action == 0) {
                layer.computeOutputShape(chance(0.02) ? null : qs, vs, ks);
                return;
            }
            if (action == 1) {
                layer.build(qs, vs, ks);
                setWeights(layer);
                return;
            }
            if (chance(0.3)) {
                layer.build(qs, vs, ks);
                setWeights(layer);
            }
            Tensor tq = floats(qs);
            Tensor tv = chance(0.1) && Arrays.equals(qs, vs) ? tq : floats(vs);
            Tensor tk = ks == null ? null : floats(ks);
            CallArgs args = CallArgs.of(tq, tv).withKey(tk).withTraining(chance(0.2))
                    .withReturnAttentionScores(r.nextBoolean()).withUseCausalMask(chance(0.3));
            // padding masks: (lead..., Tq) and (lead..., Tv); for 3-D multi-head inputs (B, T), (B, S)
            long[] queryMask = Arrays.copyOf(q, rank - 1);
            long[] valueMask = Arrays.copyOf(v, rank - 1);
            long tLen = q[rank - 2];
            long sLen = v[rank - 2];
            if (chance(0.3)) {
                args = args.withQueryMask(bools(mutate(queryMask, p)));
            }
            if (chance(0.3)) {
                args = args.withValueMask(bools(mutate(valueMask, p)));
            }
            if (chance(multi ? 0.2 : 0.03)) {
                args = args.withKeyMask(bools(mutate(valueMask, p)));
            }
            if (chance(multi ? 0.3 : 0.03)) {
                long n = layer instanceof GroupQueryAttention g ? g.numQueryHeads()
                        : layer instanceof MultiHeadAttention m ? m.numHeads() : 1;
                long[] ms = switch (r.nextInt(3)) {
                    case 0 -> new long[] {tLen, sLen};
                    case 1 -> new long[] {b, tLen, sLen};
                    default -> new long[] {b, n, tLen, sLen};
                };
                args = args.withAttentionMask(tensor(mutate(ms, p), chance(0.7) ? DType.BOOL : DType.FLOAT32, true));
            }
            if (action < 7) {
                layer.call(chance(0.01) ? null : arena, args);
            } else if (action == 7) {
                // The backward pass: forward, then a gradient of a (mostly) valid shape; now and
                // then another layer's forward pass, or weights changed in between.
                ForwardPass fwd = layer.forward(chance(0.01) ? null : arena, args);
                Tensor dOut = tensor(mutate(fwd.output().shape(), p), chance(0.95) ? DType.FLOAT32 : DType.BOOL, true);
                if (chance(0.05)) {
                    setWeights(layer);
                }
                Gradients g = layer.backward(chance(0.01) ? null : arena, chance(0.02) ? null : fwd, dOut);
                g.query().toFloatArray();
            } else {
                long[] out = layer.computeOutputShape(qs, vs, ks);
                long[] sc = layer.computeAttentionScoresShape(qs, vs, ks);
                Tensor o = tensor(mutate(out, p), DType.FLOAT32, true);
                Tensor s = args.returnAttentionScores() || chance(0.1) ? tensor(mutate(sc, p), DType.FLOAT32, true)
                        : null;
                layer.callInto(args, o, s);
            }
            if (chance(0.2)) {
                layer.close();
                layer.call(arena, args); // closed layer
            }
        }
    }

    private void setWeights(AttentionLayer layer) {
        if (chance(0.5)) {
            return;
        }
        List<Weight> w = layer.weights();
        if (chance(0.5)) {
            float[][] values = new float[w.size() + (chance(0.1) ? 1 : 0)][];
            for (int i = 0; i < values.length; i++) {
                long n = i < w.size() ? w.get(i).size() : 1;
                values[i] = chance(0.05) ? null : new float[(int) n + (chance(0.1) ? 1 : 0)];
            }
            layer.setWeights(values);
        } else {
            List<Tensor> values = new ArrayList<>();
            for (Weight x : w) {
                values.add(tensor(mutate(x.shape(), 0.1), DType.FLOAT32, true));
            }
            layer.setWeights(values);
        }
    }

    private Object configValue() {
        Object[] values = {null, 0, 1, 2, 3, -1, 1.5, 0.1, Double.NaN, "dot", "concat", "x", true, false,
                List.of(1), List.of(1, 2), List.of(-1), List.of("a"), List.of((1L << 32) + 1), 1L << 40,
                new java.math.BigInteger("18446744073709551618"), Map.of("name", "float32"), "float32", "float16",
                Map.of(), 1e30};
        return values[r.nextInt(values.length)];
    }

    private void config() {
        String[] classes = {"Attention", "AdditiveAttention", "MultiHeadAttention", "GroupQueryAttention",
                "GroupedQueryAttention", "Dense", null};
        String[] keys = {"name", "trainable", "dtype", "use_scale", "score_mode", "dropout", "seed", "num_heads",
                "key_dim", "value_dim", "use_bias", "use_gate", "output_shape", "attention_axes", "sliding_window",
                "kernel_initializer", "bias_initializer", "kernel_regularizer", "head_dim", "num_query_heads",
                "num_key_value_heads", "flash_attention", "bogus_key"};
        Map<String, Object> c = new HashMap<>();
        String cls = classes[r.nextInt(classes.length)];
        if (r.nextBoolean()) {
            c.put("num_heads", 2);
            c.put("key_dim", 2);
            c.put("head_dim", 2);
            c.put("num_query_heads", 4);
            c.put("num_key_value_heads", 2);
            if ("MultiHeadAttention".equals(cls)) {
                c.keySet().removeAll(Set.of("head_dim", "num_query_heads", "num_key_value_heads"));
            } else {
                c.keySet().removeAll(Set.of("num_heads", "key_dim"));
            }
        }
        int n = r.nextInt(4);
        for (int i = 0; i < n; i++) {
            c.put(keys[r.nextInt(keys.length)], configValue());
        }
        AttentionLayer layer;
        if (chance(0.3)) {
            // The JSON form: a layer's own config written out, then maybe damaged.
            String json = null;
            if (chance(0.9)) {
                try (AttentionLayer source = newLayer(r.nextInt(5), null)) {
                    json = Layers.toConfigJson(source);
                }
            }
            if (json != null && chance(0.7)) {
                StringBuilder sb = new StringBuilder(json);
                switch (r.nextInt(3)) {
                    case 0 -> sb.setLength(r.nextInt(sb.length()));
                    case 1 -> {
                        String junk = "{}[],:\"0-9eE.ntfx ";
                        sb.setCharAt(r.nextInt(sb.length()), junk.charAt(r.nextInt(junk.length())));
                    }
                    default -> sb.insert(r.nextInt(sb.length()), r.nextBoolean() ? "1e400" : "18446744073709551618");
                }
                json = sb.toString();
            }
            layer = Layers.fromConfigJson(cls == null || chance(0.5) ? jsonClass(json) : cls, json);
        } else {
            layer = Layers.fromConfig(cls, chance(0.02) ? null : c);
        }
        try (layer) {
            layer.getConfig();
            if (chance(0.5)) {
                layer.build(new long[] {2, 3, 4}, new long[] {2, 5, 4}, null);
            }
        }
    }

    /** The class whose config this JSON most likely is (for a damaged one, any). */
    private String jsonClass(String json) {
        if (json == null) {
            return "Attention";
        }
        return json.contains("num_heads") ? "MultiHeadAttention" : json.contains("head_dim") ? "GroupQueryAttention"
                : json.contains("score_mode") ? "Attention" : "AdditiveAttention";
    }

    private void misc() {
        switch (r.nextInt(5)) {
            case 0 -> Attn4j.setNumThreads(r.nextInt(4) - 2); // -2 .. 1: never more threads than 1
            case 1 -> {
                long[] s = randomShape();
                long n = elements(s);
                // beyond the int range Initializer must refuse; in between, shrink (no gigabyte arrays)
                Initializer.of(initializer()).generate(n < 0 || n <= CAP / 4 || n > Integer.MAX_VALUE ? s : shrink(s),
                        r.nextLong());
            }
            case 2 -> Regularizer.of(regularizer());
            case 3 -> Constraint.of(constraint());
            default -> Attn4j.info();
        }
    }
}
