package dev.attn4j.layers;

import dev.attn4j.Attn4j;
import dev.attn4j.DType;
import dev.attn4j.MaskConvention;
import dev.attn4j.Tensor;
import dev.attn4j.internal.Scratch;
import dev.attn4j.internal.backend.Backend;
import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.GemmRoute;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * What {@link MultiHeadAttention} and {@link GroupQueryAttention} share: the
 * projection sublayers (query, key, optional gate, value, attention_output), the mask
 * rules, the two Keras code paths, and the native pipeline.
 *
 * <p>Dimension letters: B batch; T query positions (the product of the query's
 * attention axes); S key/value positions; N query heads; K key/value heads (K = N for
 * MHA; N / K query heads share each key/value head in GQA); H key (and query) size per
 * head; Hv value size per head.
 *
 * <p>Pipeline (all off-heap, no per-element Java loop):
 * <ol>
 *   <li>projections as one GEMM each over all heads, bias (+ sigmoid for the gate) fused;
 *       on the fast path, self-attention's three as one GEMM over the packed kernel, the
 *       key bias left out, the value bias folded into the output bias and the query bias
 *       added by the flash kernel (see {@code Derived} and {@code run});
 *   <li>scores = Q K^T through the batched GEMM, one product per (batch, head); GQA
 *       points each query head at its shared K/V head, never copying K/V;
 *   <li>the fused softmax with every mask source (attention mask, query/value/key
 *       padding masks, causal, sliding window) ANDed inside the kernel;
 *   <li>dropout (training, the einsum path), then P V through the batched GEMM straight
 *       into the (B, T, N, Hv) layout the output projection reads;
 *   <li>gate multiply and the output projection.
 * </ol>
 *
 * <p><b>The two Keras code paths.</b> Keras computes these layers with
 * {@code ops.dot_product_attention} when dropout is 0, attention scores are not
 * returned and the input is 3-D (the "fast path"), and with einsum + Softmax otherwise.
 * They differ only on fully masked rows (every key masked for some query, e.g. a masked
 * query position or an all-false padding mask): the fast path gives uniform weights
 * (output = output projection of the mean value), the einsum path gives all-zero
 * weights (output = the output bias). attn4j follows the same rule, so it returns what
 * Keras returns in every case.
 */
abstract sealed class MultiHeadBase extends AttentionLayer permits MultiHeadAttention, GroupQueryAttention {

    final double dropout;
    final boolean useBias;
    final boolean useGate;
    final Integer slidingWindow;
    final boolean flashAttention;
    final Initializer kernelInitializer;
    final Initializer biasInitializer;
    final Regularizer kernelRegularizer;
    final Regularizer biasRegularizer;
    final Regularizer activityRegularizer;
    final Constraint kernelConstraint;
    final Constraint biasConstraint;
    private final Slots slots;
    /** The plan of the last call's shapes, reused while calls repeat them; see {@link LastPlan}. */
    private volatile LastPlan lastPlan;

    MultiHeadBase(String layer, String defaultName, ProjectionLayerBuilder<?> b) {
        super(b.name != null ? b.name : Names.unique(defaultName), b.trainable, b.seed);
        double dropout = b.dropout;
        Integer slidingWindow = b.slidingWindow;
        boolean flashAttention = b.flashAttention;
        if (!(dropout >= 0 && dropout < 1)) {
            throw new IllegalArgumentException(layer + ": dropout must be a rate in [0, 1), but is " + dropout);
        }
        if (slidingWindow != null && slidingWindow <= 0) {
            throw new IllegalArgumentException(layer + ": slidingWindow must be null or a positive integer, but is "
                    + slidingWindow);
        }
        if (flashAttention && dropout > 0) {
            throw new IllegalArgumentException(layer + ": dropout is not supported with flashAttention (Keras's rule); "
                    + "set dropout to 0 or flashAttention to false");
        }
        this.dropout = dropout;
        this.useBias = b.useBias;
        this.useGate = b.useGate;
        this.slidingWindow = slidingWindow;
        this.flashAttention = flashAttention;
        this.kernelInitializer = Initializer.of(b.kernelInitializer == null ? "glorot_uniform" : b.kernelInitializer);
        this.biasInitializer = Initializer.of(b.biasInitializer == null ? "zeros" : b.biasInitializer);
        this.kernelRegularizer = Regularizer.ofNullable(b.kernelRegularizer);
        this.biasRegularizer = Regularizer.ofNullable(b.biasRegularizer);
        this.activityRegularizer = Regularizer.ofNullable(b.activityRegularizer);
        this.kernelConstraint = Constraint.ofNullable(b.kernelConstraint);
        this.biasConstraint = Constraint.ofNullable(b.biasConstraint);
        this.slots = computeSlots();
    }

    /** Keras's {@code dropout}: the rate applied to the attention weights in training. */
    public final double dropout() {
        return dropout;
    }

    public final boolean useBias() {
        return useBias;
    }

    public final boolean useGate() {
        return useGate;
    }

    /** Keras's {@code sliding_window}: keys within {@code slidingWindow - 1} positions, or null. */
    public final Integer slidingWindow() {
        return slidingWindow;
    }

    public final boolean flashAttention() {
        return flashAttention;
    }

    // ---- cached decoding (the pipeline is CachedAttention's) -------------------------------

    /**
     * Incremental causal decoding over a {@link KvCache} of this layer: query, value and
     * key (null: the value) hold the Tq >= 1 new positions of each batch row, (B, Tq, D),
     * (B, Tq, Dv), (B, Tq, Dk); their projected keys and values are appended at each row's
     * length, the new positions attend causally over the row's cache and themselves (and
     * the sliding window, over absolute positions), and {@code output} (B, Tq, out...)
     * receives the result, equal to the matching rows of one causal self-attention call
     * over the whole sequence. {@code newLengths} (null: Tq for every row) says how many
     * of the Tq positions of each row are real (right padding, ragged prompts): only those
     * are appended; the output of the padding positions is unspecified.
     *
     * <p>Inference only (no dropout, no masks besides causality; no activity loss). Nothing
     * is allocated on the Java heap. The layer may serve many caches from many threads;
     * a cache serves one call at a time (see {@link KvCache}).
     *
     * @throws IllegalArgumentException for shapes other than the layer's and the cache's,
     *         or a cache of another layer
     * @throws IllegalStateException when a row cannot take Tq more positions, or the cache
     *         or layer is closed
     */
    public final void callCachedInto(KvCache cache, Tensor query, Tensor value, Tensor key, int[] newLengths,
                                     Tensor output) {
        CachedAttention.callInto(this, cache, query, value, key, newLengths, output);
    }

    /**
     * {@link #callCachedInto} with the output allocated in {@code arena}; {@code value}
     * also serves as key, and every row takes all Tq positions.
     */
    public final Tensor callCached(java.lang.foreign.Arena arena, KvCache cache, Tensor query, Tensor value) {
        return CachedAttention.call(this, arena, cache, query, value, null, null);
    }

    /** The slots of the weights, for {@link CachedAttention}. */
    final Slots slots() {
        return slots;
    }

    // ---- heads and sizes --------------------------------------------------------------

    /** N: query heads. */
    abstract int queryHeads();

    /** K: key/value heads (N for MHA). */
    abstract int keyValueHeads();

    /** H: key (and query) size per head. */
    abstract int keySize();

    /** Hv: value size per head. */
    abstract int valueSize();

    /** The output feature shape for a query with feature size D. */
    abstract long[] outputFeatures(long queryFeatures);

    /**
     * Whether a float attention mask keeps positions where it is > 0.5 (Keras's Softmax
     * rule, which GQA's einsum path reaches uncast) instead of where it is non-zero.
     */
    abstract boolean floatMaskGreaterThanHalf(boolean fastPath, boolean autoMasks);

    // ---- weights ------------------------------------------------------------------------

    /** Indexes of the weights in Keras order; -1 where absent. */
    record Slots(int queryKernel, int queryBias, int keyKernel, int keyBias, int gateKernel, int gateBias,
                 int valueKernel, int valueBias, int outputKernel, int outputBias) {}

    private Slots computeSlots() {
        int i = 0;
        int qk = i++;
        int qb = useBias ? i++ : -1;
        int kk = i++;
        int kb = useBias ? i++ : -1;
        int gk = useGate ? i++ : -1;
        int gb = useGate && useBias ? i++ : -1;
        int vk = i++;
        int vb = useBias ? i++ : -1;
        int ok = i++;
        int ob = useBias ? i : -1;
        return new Slots(qk, qb, kk, kb, gk, gb, vk, vb, ok, ob);
    }

    /**
     * The projection weights, in Keras order (query, key, gate, value, attention_output;
     * kernel then bias), with initial values from the initializers. Fans follow Keras's
     * EinsumDense: kernel input axes are the contracted ones, output axes the rest.
     */
    final List<WeightSpec> projectionSpecs(long queryFeatures, long keyFeatures, long valueFeatures) {
        int n = queryHeads();
        int kv = keyValueHeads();
        long[] out = outputFeatures(queryFeatures);
        List<WeightSpec> specs = new ArrayList<>();
        addDense(specs, "query", new long[] {queryFeatures, n, keySize()}, 1, 0);
        addDense(specs, "key", new long[] {keyFeatures, kv, keySize()}, 1, 1);
        if (useGate) {
            addDense(specs, "gate", new long[] {queryFeatures, n, valueSize()}, 1, 2);
        }
        addDense(specs, "value", new long[] {valueFeatures, kv, valueSize()}, 1, 3);
        long[] outKernel = new long[2 + out.length];
        outKernel[0] = n;
        outKernel[1] = valueSize();
        System.arraycopy(out, 0, outKernel, 2, out.length);
        addDense(specs, "attention_output", outKernel, 2, 4);
        return specs;
    }

    private void addDense(List<WeightSpec> specs, String sublayer, long[] kernelShape, int inputRank, int index) {
        int[] inputAxes = new int[inputRank];
        int[] outputAxes = new int[kernelShape.length - inputRank];
        for (int i = 0; i < kernelShape.length; i++) {
            if (i < inputRank) {
                inputAxes[i] = i;
            } else {
                outputAxes[i - inputRank] = i;
            }
        }
        // Keras clones the initializer per sublayer; each gets its own stream here.
        long seed = effectiveSeed() + 0x9E3779B97F4A7C15L * (2L * index + 1);
        specs.add(new WeightSpec("kernel", sublayer + "/kernel", kernelShape,
                kernelInitializer.generate(kernelShape, inputAxes, outputAxes, seed)));
        if (useBias) {
            long[] biasShape = Arrays.copyOfRange(kernelShape, inputRank, kernelShape.length);
            specs.add(new WeightSpec("bias", sublayer + "/bias", biasShape,
                    biasInitializer.generate(biasShape, null, null, seed + 1)));
        }
    }

    /**
     * The weight penalties of the kernel and bias regularizers (Keras's {@code layer.losses}
     * for the weights), one entry per regularized weight in Keras order. Empty before build.
     */
    public final List<Double> regularizationLosses() {
        checkOpen("regularizationLosses");
        List<Double> losses = new ArrayList<>();
        for (Weight w : weights()) {
            Regularizer r = w.name().equals("kernel") ? kernelRegularizer : biasRegularizer;
            if (r != null) {
                losses.add(r.penalty(w.toFloatArray()));
            }
        }
        return losses;
    }

    /**
     * Applies the kernel and bias constraints to the weights in place, as Keras's
     * optimizer does after each update. A no-op without constraints. Not to be called
     * while calls are running (see {@link AttentionLayer}).
     */
    public final void applyConstraints() {
        checkOpen("applyConstraints");
        synchronized (weightsLock()) {
            boolean changed = false;
            for (Weight w : weights()) {
                Constraint c = w.name().equals("kernel") ? kernelConstraint : biasConstraint;
                if (c != null) {
                    float[] values = w.toFloatArray();
                    c.apply(values, w.shape());
                    w.storage().copyFrom(values);
                    changed = true;
                }
            }
            if (changed) {
                weightsUpdated();
            }
        }
    }

    // ---- weights derived for the fast path ----------------------------------------------

    /**
     * What the fast path computes from the Keras weights, refreshed by
     * {@link #weightsChanged} whenever they change (build, setWeights, applyConstraints),
     * never stale: {@code qkvKernel} (D, N H + K H + K Hv), the query, key and value kernels
     * side by side, row by row, for the one GEMM of self-attention (null unless the three
     * take the same feature size D); {@code foldedOutputBias} (out), the output bias plus
     * the value bias pushed through the output kernel, bo + sum_{n, e} bv[n / r, e]
     * Wo[n, e, :] (null without biases or with the gate): softmax rows sum to 1, so
     * sum_j p_j (v_j + bv) = sum_j p_j v_j + bv, and the value bias can leave the value
     * projection for the output bias.
     */
    private record Derived(MemorySegment qkvKernel, MemorySegment foldedOutputBias) {}

    private volatile Derived derived;

    @Override
    final void weightsChanged() {
        Slots w = slots;
        Tensor wq = weight(w.queryKernel()).storage();
        Tensor wk = weight(w.keyKernel()).storage();
        Tensor wv = weight(w.valueKernel()).storage();
        int n = queryHeads();
        int kv = keyValueHeads();
        int hk = keySize();
        int hv = valueSize();
        Derived old = derived;
        MemorySegment qkv = null;
        long dim = wq.dim(0);
        if (wk.dim(0) == dim && wv.dim(0) == dim) {
            int cq = n * hk;
            int ck = kv * hk;
            int cv = kv * hv;
            int width = cq + ck + cv;
            qkv = old != null && old.qkvKernel() != null ? old.qkvKernel()
                    : allocateDerived(dim * width * Float.BYTES);
            for (long row = 0; row < dim; row++) {
                MemorySegment.copy(wq.segment(), row * cq * Float.BYTES, qkv, row * width * Float.BYTES,
                        (long) cq * Float.BYTES);
                MemorySegment.copy(wk.segment(), row * ck * Float.BYTES, qkv, (row * width + cq) * Float.BYTES,
                        (long) ck * Float.BYTES);
                MemorySegment.copy(wv.segment(), row * cv * Float.BYTES, qkv, (row * width + cq + ck) * Float.BYTES,
                        (long) cv * Float.BYTES);
            }
        }
        MemorySegment folded = null;
        if (useBias && !useGate) {
            MemorySegment wo = weight(w.outputKernel()).storage().segment();
            MemorySegment bo = weight(w.outputBias()).storage().segment();
            MemorySegment bv = weight(w.valueBias()).storage().segment();
            long out = bo.byteSize() / Float.BYTES;
            int r = n / kv;
            double[] sum = new double[(int) out];
            for (int c = 0; c < out; c++) {
                sum[c] = bo.getAtIndex(ValueLayout.JAVA_FLOAT, c);
            }
            for (int head = 0; head < n; head++) {
                for (int e = 0; e < hv; e++) {
                    double b = bv.getAtIndex(ValueLayout.JAVA_FLOAT, (long) (head / r) * hv + e);
                    long row = ((long) head * hv + e) * out;
                    for (int c = 0; c < out; c++) {
                        sum[c] += b * wo.getAtIndex(ValueLayout.JAVA_FLOAT, row + c);
                    }
                }
            }
            folded = old != null && old.foldedOutputBias() != null ? old.foldedOutputBias()
                    : allocateDerived(out * Float.BYTES);
            for (int c = 0; c < out; c++) {
                folded.setAtIndex(ValueLayout.JAVA_FLOAT, c, (float) sum[c]);
            }
        }
        derived = new Derived(qkv, folded);
    }

    /** The Keras config entries shared by both layers, after the layer-specific ones. */
    final void putCommonConfig(Map<String, Object> c) {
        c.put("kernel_initializer", kernelInitializer.toConfig());
        c.put("bias_initializer", biasInitializer.toConfig());
        c.put("kernel_regularizer", kernelRegularizer == null ? null : kernelRegularizer.toConfig());
        c.put("bias_regularizer", biasRegularizer == null ? null : biasRegularizer.toConfig());
        c.put("activity_regularizer", activityRegularizer == null ? null : activityRegularizer.toConfig());
        c.put("kernel_constraint", kernelConstraint == null ? null : kernelConstraint.toConfig());
        c.put("bias_constraint", biasConstraint == null ? null : biasConstraint.toConfig());
        c.put("seed", seed());
    }

    // ---- call geometry ------------------------------------------------------------------

    /**
     * The layout of one call. Inputs are (B, q..., D); the attention axes of the query
     * span T positions and of the value S positions. When the attention axes are
     * consecutive, every (batch, head) block is a strided matrix inside the projections:
     * {@code outer} = B times the non-attention dims before the axes, {@code after} = the
     * product of the non-attention dims after them. Otherwise the projections are
     * permuted so that the attention axes come last ({@code permutation} != null).
     */
    record Geometry(long[] queryShape, long[] valueShape, long[] keyShape, long rowsQ, long rowsV,
                    int outer, int after, int t, int s, int[] attentionAxes, int[] permutation,
                    long[] scoresShape, long[] outputShape, int outCols, boolean fastPath) {

        int blocks() {
            return outer * after;
        }
    }

    /** The attention axes resolved for inputs of this rank (MHA: configurable; GQA: (1,)). */
    abstract int[] attentionAxes(String action, int rank);

    final Geometry geometry(String action, long[] q, long[] v, long[] k, boolean returnScores) {
        if (q == null || v == null) {
            throw new NullPointerException(action + ": query and value shapes must not be null");
        }
        long[] key = k == null ? v : k;
        int rank = q.length;
        if (rank < 3) {
            throw new IllegalArgumentException(action + ": query must have rank >= 3 (batch, positions..., features), "
                    + "but has shape " + Arrays.toString(q));
        }
        if (v.length != rank || key.length != rank) {
            throw new IllegalArgumentException(action + ": query, value and key must have the same rank, but have "
                    + "shapes query " + Arrays.toString(q) + ", value " + Arrays.toString(v)
                    + (k == null ? "" : ", key " + Arrays.toString(k)));
        }
        for (long[] shape : new long[][] {q, v, key}) {
            for (long d : shape) {
                if (d < 1 || d > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException(action + ": every dimension must be in [1, "
                            + Integer.MAX_VALUE + "], but a shape is " + Arrays.toString(shape));
                }
            }
        }
        if (!Arrays.equals(Arrays.copyOfRange(v, 1, rank - 1), Arrays.copyOfRange(key, 1, rank - 1))) {
            throw new IllegalArgumentException(action + ": all dimensions of value and key except the last must be "
                    + "equal, but value is " + Arrays.toString(v) + " and key " + Arrays.toString(key));
        }
        int[] axes = attentionAxes(action, rank);
        boolean[] isAxis = new boolean[rank];
        for (int a : axes) {
            isAxis[a] = true;
        }
        if (v[0] != q[0] || key[0] != q[0]) {
            throw new IllegalArgumentException(action + ": the batch sizes of query " + Arrays.toString(q)
                    + " and value/key " + Arrays.toString(v) + " differ");
        }
        for (int i = 1; i < rank - 1; i++) {
            if (!isAxis[i] && v[i] != q[i]) {
                throw new IllegalArgumentException(action + ": axis " + i + " is not an attention axis, so query "
                        + Arrays.toString(q) + " and value " + Arrays.toString(v) + " must agree on it");
            }
        }
        long t = 1;
        long s = 1;
        for (int a : axes) {
            t = times(t, q[a]);
            s = times(s, v[a]);
        }
        boolean consecutive = axes[axes.length - 1] - axes[0] == axes.length - 1;
        long before = q[0];
        long after = 1;
        for (int i = 1; i < rank - 1; i++) {
            if (isAxis[i]) {
                continue;
            }
            if (consecutive && i > axes[0]) {
                after = times(after, q[i]);
            } else {
                before = times(before, q[i]);
            }
        }
        int[] permutation = null;
        if (!consecutive) {
            // positions (B, q...) -> (B, non-attention..., attention...); each position
            // carries its N * H projected features along.
            permutation = new int[rank - 1];
            int p = 0;
            for (int i = 0; i < rank - 1; i++) {
                if (!isAxis[i]) {
                    permutation[p++] = i;
                }
            }
            for (int a : axes) {
                permutation[p++] = a;
            }
        }
        long rowsQ = 1;
        long rowsV = 1;
        for (int i = 0; i < rank - 1; i++) {
            rowsQ = times(rowsQ, q[i]);
            rowsV = times(rowsV, v[i]);
        }
        long blocks = times(times(before, after), queryHeads());
        long headWidth = Math.max(keySize(), valueSize());
        if (t <= Integer.MAX_VALUE && s <= Integer.MAX_VALUE && t * s > Integer.MAX_VALUE) {
            // One head's scores are one (T, S) matrix of the batched GEMM and the softmax.
            throw new IllegalArgumentException(action + ": T * S = " + t * s + " (query positions T = " + t
                    + ", key positions S = " + s + ") exceeds the 32-bit integer range the native calls take ("
                    + Integer.MAX_VALUE + "), for query " + Arrays.toString(q) + " and value " + Arrays.toString(v));
        }
        if (times(before, after) > Integer.MAX_VALUE || blocks > Integer.MAX_VALUE || t > Integer.MAX_VALUE
                || s > Integer.MAX_VALUE || times(times(rowsQ, headWidth), queryHeads()) > Integer.MAX_VALUE
                || times(times(rowsV, headWidth), keyValueHeads()) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(action + ": the projected inputs of shapes " + Arrays.toString(q)
                    + " and " + Arrays.toString(v) + " exceed the 32-bit sizes the native calls take");
        }
        // Scores: (B, non-attention..., N, attention(q)..., attention(v)...)
        List<Long> scores = new ArrayList<>();
        scores.add(q[0]);
        for (int i = 1; i < rank - 1; i++) {
            if (!isAxis[i]) {
                scores.add(q[i]);
            }
        }
        scores.add((long) queryHeads());
        for (int a : axes) {
            scores.add(q[a]);
        }
        for (int a : axes) {
            scores.add(v[a]);
        }
        long[] out = outputFeatures(q[rank - 1]);
        long[] outputShape = Arrays.copyOf(q, rank - 1 + out.length);
        System.arraycopy(out, 0, outputShape, rank - 1, out.length);
        long outCols = 1;
        for (long d : out) {
            outCols = times(outCols, d);
        }
        if (outCols > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(action + ": the output features " + Arrays.toString(out)
                    + " exceed the 32-bit sizes the native calls take");
        }
        boolean fastPath = dropout == 0 && !returnScores && rank == 3;
        return new Geometry(q.clone(), v.clone(), key.clone(), rowsQ, rowsV, (int) before, (int) after, (int) t,
                (int) s, axes, permutation, scores.stream().mapToLong(Long::longValue).toArray(), outputShape,
                (int) outCols, fastPath);
    }

    /**
     * {@code a * b} for positive sizes, saturating at {@link Long#MAX_VALUE}: the size
     * checks above compare products with the 32-bit range and must never see a wrapped one.
     */
    private static long times(long a, long b) {
        long high = Math.multiplyHigh(a, b);
        long low = a * b;
        return high != 0 || low < 0 ? Long.MAX_VALUE : low;
    }

    @Override
    public final long[] computeOutputShape(long[] queryShape, long[] valueShape, long[] keyShape) {
        return geometry(getClass().getSimpleName() + ".computeOutputShape", queryShape, valueShape, keyShape, false)
                .outputShape();
    }

    @Override
    public final long[] computeAttentionScoresShape(long[] queryShape, long[] valueShape, long[] keyShape) {
        return geometry(getClass().getSimpleName() + ".computeAttentionScoresShape", queryShape, valueShape,
                keyShape, true).scoresShape();
    }

    @Override
    final void checkBuiltShapes(String action, long[][] built, long[] q, long[] v, long[] k) {
        long[] bk = built[2] == null ? built[1] : built[2];
        long[] key = k == null ? v : k;
        if (q.length != built[0].length) {
            throw new IllegalArgumentException(action + ": layer '" + name() + "' was built for inputs of rank "
                    + built[0].length + " (its attention axes are resolved for it), but the query has shape "
                    + Arrays.toString(q));
        }
        String[] what = {"query", "value", "key"};
        long[][] now = {q, v, key};
        long[][] then = {built[0], built[1], bk};
        for (int i = 0; i < 3; i++) {
            if (now[i][now[i].length - 1] != then[i][then[i].length - 1]) {
                throw new IllegalArgumentException(action + ": layer '" + name() + "' was built for " + what[i]
                        + " features " + then[i][then[i].length - 1] + ", but the " + what[i] + " has shape "
                        + Arrays.toString(now[i]));
            }
        }
    }

    // ---- calls ----------------------------------------------------------------------

    /** What {@link #plan} worked out for {@link #run}: computed once per call. */
    private record Prepared(Geometry geometry, Masks masks) {}

    /** The masks of one call, resolved to what the kernel reads. */
    private record Masks(Tensor queryMask, Tensor valueMask, Tensor keyMask, Tensor attentionMask, boolean auto) {}

    /** A call without mask tensors, without and with the causal mask or sliding window. */
    private static final Masks NO_MASKS = new Masks(null, null, null, null, false);
    private static final Masks NO_MASKS_POSITIONAL = new Masks(null, null, null, null, true);

    /**
     * The plan of the last validated call: its geometry, and the finished plans for a
     * call without mask tensors. The geometry is a function of the input shapes, the
     * returnAttentionScores flag and the layer's fixed arguments, and a layer is mostly
     * called with the same shapes again and again; a call whose shapes match skips
     * working it out (and the shape checks, which it passed before), so a steady call
     * allocates nothing on the Java heap. Immutable (its arrays are never written nor
     * handed out) and published through a volatile field: threads share it safely, and
     * threads calling with other shapes merely replace it.
     */
    private record LastPlan(Geometry geometry, boolean returnScores, Plan unmasked, Plan positional) {

        static LastPlan of(Geometry g, boolean returnScores) {
            return new LastPlan(g, returnScores, plan(g, NO_MASKS), plan(g, NO_MASKS_POSITIONAL));
        }

        static Plan plan(Geometry g, Masks masks) {
            return new Plan(g.outputShape(), g.scoresShape(), new Prepared(g, masks));
        }

        /** Whether a call with these inputs (key: the value when absent) has this plan's geometry. */
        boolean fits(Tensor query, Tensor value, Tensor key, boolean scores) {
            return scores == returnScores && hasShape(query, geometry.queryShape())
                    && hasShape(value, geometry.valueShape()) && hasShape(key, geometry.keyShape());
        }

        Plan with(Masks masks) {
            return masks == NO_MASKS ? unmasked : masks == NO_MASKS_POSITIONAL ? positional : plan(geometry, masks);
        }
    }

    private Masks masks(String action, CallArgs args, Geometry g) {
        Tensor queryMask = args.queryMask();
        Tensor valueMask = args.valueMask();
        Tensor keyMask = args.keyMask();
        // Keras: the query's mask is a mask attached to the query tensor; when the value
        // (or the key) is that very tensor, it carries the same mask.
        if (queryMask != null && valueMask == null && args.value() == args.query()) {
            valueMask = queryMask;
        }
        if (queryMask != null && keyMask == null && args.key() != null && args.key() == args.query()) {
            keyMask = queryMask;
        }
        int rank = g.queryShape().length;
        boolean padding = queryMask != null || valueMask != null || keyMask != null;
        if (padding && rank != 3) {
            throw new UnsupportedOperationException(action + ": query/value/key padding masks are supported for 3-D "
                    + "inputs only; Keras 3.15 broadcasts them against axis 1 of N-D inputs, which is not a "
                    + "per-position mask. Pass an attentionMask in the scores layout instead");
        }
        boolean positional = args.useCausalMask() || slidingWindow != null;
        if (positional && rank != 3 && !(g.attentionAxes().length == 1 && g.attentionAxes()[0] == 1)) {
            throw new UnsupportedOperationException(action + ": useCausalMask and slidingWindow need 3-D inputs or "
                    + "attention axes (1,): Keras 3.15 builds them from axis 1 only");
        }
        long b = g.queryShape()[0];
        checkPaddingMask(action, "queryMask", queryMask, b, g.t());
        checkPaddingMask(action, "valueMask", valueMask, b, g.s());
        checkPaddingMask(action, "keyMask", keyMask, b, g.s());
        Tensor attention = args.attentionMask();
        if (attention != null) {
            checkMaskType(action, "attentionMask", attention);
            checkMaskAlive(action, "attentionMask", attention);
            expandKeras(action, attention.shape(), g);
        } else if (!padding) {
            return positional ? NO_MASKS_POSITIONAL : NO_MASKS;
        }
        return new Masks(queryMask, valueMask, keyMask, attention, padding || positional);
    }

    /** A padding mask must be (batch, positions); the dims are compared one by one (no arrays per call). */
    private static void checkPaddingMask(String action, String what, Tensor mask, long batch, long positions) {
        if (mask == null) {
            return;
        }
        checkMaskType(action, what, mask);
        if (mask.rank() != 2 || mask.dim(0) != batch || mask.dim(1) != positions) {
            throw new IllegalArgumentException(action + ": " + what + " must have shape "
                    + Arrays.toString(new long[] {batch, positions}) + " (batch, positions), but has "
                    + Arrays.toString(mask.shape()));
        }
        checkMaskAlive(action, what, mask);
    }

    private static void checkMaskType(String action, String what, Tensor mask) {
        if (mask.dtype() != DType.BOOL && mask.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(action + ": " + what + " must be bool or float32, but is " + mask);
        }
    }

    private static void checkMaskAlive(String action, String what, Tensor mask) {
        if (!mask.isAlive()) {
            throw new IllegalStateException(action + ": the arena of " + what + " " + mask + " is closed");
        }
    }

    /**
     * Keras's expansion of an attention mask to the scores' rank: a head axis (of size 1)
     * is inserted in front of the query attention axes until the ranks agree; every axis
     * must then be 1 or the scores' size.
     */
    private static long[] expandKeras(String action, long[] mask, Geometry g) {
        long[] scores = g.scoresShape();
        int k = g.attentionAxes().length;
        if (mask.length > scores.length || mask.length < 2 * k) {
            throw new IllegalArgumentException(action + ": attentionMask of shape " + Arrays.toString(mask)
                    + " does not fit the attention scores " + Arrays.toString(scores) + " (expected e.g. (T, S), "
                    + "(B, T, S) or (B, N, T, S) for 3-D inputs)");
        }
        List<Long> dims = new ArrayList<>();
        for (long d : mask) {
            dims.add(d);
        }
        while (dims.size() < scores.length) {
            dims.add(dims.size() - 2 * k, 1L);
        }
        long[] expanded = dims.stream().mapToLong(Long::longValue).toArray();
        for (int i = 0; i < scores.length; i++) {
            if (expanded[i] != 1 && expanded[i] != scores[i]) {
                throw new IllegalArgumentException(action + ": attentionMask of shape " + Arrays.toString(mask)
                        + " cannot broadcast to the attention scores " + Arrays.toString(scores) + " (Keras inserts"
                        + " the head axis before the query positions; axis " + i + " must be 1 or " + scores[i] + ")");
            }
        }
        return expanded;
    }

    @Override
    final Plan plan(String action, CallArgs args) {
        checkOpen(action);
        Tensor q = args.query();
        Tensor v = args.value();
        Tensor k = args.key();
        requireFloat(action, "query", q);
        requireFloat(action, "value", v);
        if (k != null) {
            requireFloat(action, "key", k);
        }
        if (flashAttention && args.returnAttentionScores()) {
            throw new IllegalArgumentException(action + ": returning attention scores is not supported with "
                    + "flashAttention (Keras's rule); disable flashAttention to get them");
        }
        boolean returnScores = args.returnAttentionScores();
        LastPlan last = lastPlan;
        if (last != null && last.fits(q, v, k == null ? v : k, returnScores)) {
            // Shapes seen before: geometry() and ensureBuilt() passed for them and would again.
            return last.with(masks(action, args, last.geometry()));
        }
        long[] ks = k == null ? null : k.shape();
        Geometry g = geometry(action, q.shape(), v.shape(), ks, returnScores);
        Masks masks = masks(action, args, g);
        ensureBuilt(action, q.shape(), v.shape(), ks);
        last = LastPlan.of(g, returnScores);
        lastPlan = last; // only once built and valid
        return last.with(masks);
    }

    @Override
    final double run(Plan plan, CallArgs args, Tensor output, Tensor scoresOut, Object savedFor) {
        Saved sv = (Saved) savedFor;
        Prepared prepared = (Prepared) plan.detail();
        Geometry g = prepared.geometry();
        Masks m = prepared.masks();
        Backend be = Backends.get();
        Slots w = slots;
        int n = queryHeads();
        int kv = keyValueHeads();
        int r = n / kv;
        int hk = keySize();
        int hv = valueSize();
        int t = g.t();
        int s = g.s();
        int blocks = g.blocks() * n;
        long scoreCount = (long) blocks * t * s;
        Tensor key = args.key() != null ? args.key() : args.value();
        int dq = (int) g.queryShape()[g.queryShape().length - 1];
        int dk = (int) g.keyShape()[g.keyShape().length - 1];
        int dv = (int) g.valueShape()[g.valueShape().length - 1];
        boolean permute = g.permutation() != null;
        boolean dropping = args.training() && dropout > 0;

        long qCount = g.rowsQ() * n * hk;
        long kCount = g.rowsV() * kv * hk;
        long vCount = g.rowsV() * kv * hv;
        long oCount = g.rowsQ() * n * hv;
        long maskBytes = maskScratchBytes(m, g);
        // Keras's fast path with only key-padding and causal masks: the fused tiled kernel,
        // which never builds the (T, S) scores (same results: REPLACE semantics, uniform
        // weights on fully masked rows).
        boolean flash = flashPath(g, m, scoresOut != null);

        // Fewer passes, Keras's numbers (see Derived): the key bias adds q_i . bk to every
        // logit of row i, which the softmax cancels (masked logits are replaced, not
        // shifted), so it is left out; the value bias joins the output bias wherever every
        // softmax row sums to 1 (the fast path, where fully masked rows are uniform, or no
        // mask at all) and nothing sees the projections (no dropout, gate or activity
        // regularizer); the flash kernel adds the query bias as it packs q (unless the
        // activity regularizer needs the biased projection). Self-attention
        // (query, value and key one tensor) projects all three in one GEMM over the packed
        // kernel, into (rows, N H + K H + K Hv) that the flash kernel reads in place.
        Derived dw = derived;
        // A forward pass for backward keeps the plain projections (biases included).
        boolean plain = activityRegularizer == null && sv == null;
        boolean dropKeyBias = useBias && plain;
        boolean noMask = m.attentionMask() == null && m.queryMask() == null && m.valueMask() == null
                && m.keyMask() == null && !args.useCausalMask() && slidingWindow == null;
        boolean foldValueBias = dw.foldedOutputBias() != null && plain && !dropping && (g.fastPath() || noMask);
        boolean queryBiasInKernel = flash && useBias && plain;
        boolean fused = flash && sv == null && !permute && dw.qkvKernel() != null && (!useBias || foldValueBias)
                && sameTensor(args.query(), args.value()) && sameTensor(key, args.value());
        long width = (long) n * hk + (long) kv * hk + (long) kv * hv;

        long projections = fused ? Scratch.regionSize(4 * g.rowsQ() * width)
                : Scratch.regionSize(4 * qCount) + Scratch.regionSize(4 * kCount) + Scratch.regionSize(4 * vCount);
        long need = projections
                + 2 * Scratch.regionSize(4 * oCount)
                + (!flash && (scoresOut == null || dropping) ? Scratch.regionSize(4 * scoreCount) : 0)
                + (permute ? Scratch.regionSize(4 * Math.max(Math.max(qCount, kCount), Math.max(vCount, oCount))) : 0)
                + maskBytes;
        Scratch.Carver scratch = Scratch.carver(need);
        MemorySegment qp;
        MemorySegment kp;
        MemorySegment vp;
        long ldq = (long) n * hk; // row strides (floats) of the projections
        long ldk = (long) kv * hk;
        long ldv = (long) kv * hv;
        if (fused) {
            qp = scratch.floats(g.rowsQ() * width);
            kp = scratch.view(qp, 4 * ldq);
            vp = scratch.view(qp, 4 * (ldq + ldk));
            ldq = ldk = ldv = width;
        } else if (sv != null) {
            qp = sv.qp;
            kp = sv.kp;
            vp = sv.vp;
        } else {
            qp = scratch.floats(qCount);
            kp = scratch.floats(kCount);
            vp = scratch.floats(vCount);
        }
        MemorySegment attended = sv != null ? sv.attended : scratch.floats(oCount);
        MemorySegment gate = !useGate ? MemorySegment.NULL : sv != null ? sv.gate : scratch.floats(oCount);
        // The gate's product goes to its own buffer when the pre-gate output is kept.
        MemorySegment gated = sv != null && useGate ? scratch.floats(oCount) : attended;
        MemorySegment probs = flash ? MemorySegment.NULL
                : scoresOut == null || dropping ? scratch.floats(scoreCount) : scoresOut.segment();
        MemorySegment scores = scoresOut != null ? scoresOut.segment() : probs;
        MemorySegment tmp = permute
                ? scratch.floats(Math.max(Math.max(qCount, kCount), Math.max(vCount, oCount))) : MemorySegment.NULL;

        // 1. Projections, one GEMM each over all heads (self-attention: one for all three).
        if (fused) {
            project(be, args.query().segment(), g.rowsQ(), dq, dw.qkvKernel(), MemorySegment.NULL, (int) width, qp,
                    Backend.Activation.LINEAR);
        } else {
            project(be, args.query().segment(), g.rowsQ(), dq, kernel(w.queryKernel()),
                    queryBiasInKernel ? MemorySegment.NULL : bias(w.queryBias()), n * hk, qp,
                    Backend.Activation.LINEAR);
            project(be, key.segment(), g.rowsV(), dk, kernel(w.keyKernel()),
                    dropKeyBias ? MemorySegment.NULL : bias(w.keyBias()), kv * hk, kp, Backend.Activation.LINEAR);
            project(be, args.value().segment(), g.rowsV(), dv, kernel(w.valueKernel()),
                    foldValueBias ? MemorySegment.NULL : bias(w.valueBias()), kv * hv, vp,
                    Backend.Activation.LINEAR);
        }
        if (useGate) {
            project(be, args.query().segment(), g.rowsQ(), dq, kernel(w.gateKernel()), bias(w.gateBias()), n * hv,
                    gate, Backend.Activation.SIGMOID);
        }
        if (permute) {
            permuteRows(qp, tmp, g.queryShape(), g.permutation(), n * hk);
            permuteRows(kp, tmp, g.valueShape(), g.permutation(), kv * hk);
            permuteRows(vp, tmp, g.valueShape(), g.permutation(), kv * hv);
        }

        int after = g.after();
        int inner = after * n;
        float scale = (float) (1.0 / Math.sqrt(hk));
        if (flash) {
            // 2-4 fused: softmax(scale Q K^T) V per (batch, head) straight into (B, T, N, Hv);
            // GQA heads read their shared K/V head in place (3-D: after = 1, inner = N).
            be.flashAttention(qp, ldq, t * ldq, hk,
                    kp, ldk, s * ldk, hk,
                    vp, ldv, s * ldv, hv,
                    attended, (long) n * hv, (long) t * n * hv, hv,
                    blocks, n, r, t, s, hk, hv, scale, queryBiasInKernel ? bias(w.queryBias()) : MemorySegment.NULL,
                    colMask(be, m, g, scratch), n, args.useCausalMask(), sv != null ? sv.lse : MemorySegment.NULL,
                    Attn4j.numThreads());
        } else {
            // 2. Scores Q K^T per (batch, head); GQA heads point at their shared K head.
            be.sgemmBatched(false, true, t, s, hk, 1f,
                    qp, after * n * hk, (long) t * after * n * hk, hk,
                    kp, after * kv * hk, (long) s * after * kv * hk, hk, r,
                    0f, scores, s, (long) inner * t * s, (long) t * s,
                    g.outer(), inner, GemmRoute.AUTO);

            // 3. Fused scale + masks + softmax.
            softmax(be, scores, MemorySegment.NULL, blocks, t, s, scale, m, g, args.useCausalMask(), scratch);

            // 4. Dropout (returned scores stay pre-dropout), then P V into (B, T, N, Hv).
            if (dropping) {
                if (probs != scores) {
                    MemorySegment.copy(scores, 0, probs, 0, scoreCount * Float.BYTES);
                }
                long stream = nextDropoutStream();
                if (sv != null) {
                    sv.dropoutStream = stream;
                }
                be.dropout(probs, scoreCount, (float) dropout, effectiveSeed(), stream);
            }
            be.sgemmBatched(false, false, t, hv, s, 1f,
                    probs, s, (long) inner * t * s, (long) t * s,
                    vp, after * kv * hv, (long) s * after * kv * hv, hv, r,
                    0f, attended, after * n * hv, (long) t * after * n * hv, hv,
                    g.outer(), inner, GemmRoute.AUTO);
        }
        if (permute) {
            unpermuteRows(attended, tmp, g.queryShape(), g.permutation(), n * hv);
        }

        // 5. Gate and output projection.
        if (useGate) {
            if (gated != attended) {
                MemorySegment.copy(attended, 0, gated, 0, 4 * oCount);
            }
            be.mul(gated, gate, oCount);
        }
        project(be, gated, g.rowsQ(), n * hv, kernel(w.outputKernel()),
                foldValueBias ? dw.foldedOutputBias() : bias(w.outputBias()), g.outCols(), output.segment(),
                Backend.Activation.LINEAR);

        if (activityRegularizer == null) {
            return 0;
        }
        double loss = activityRegularizer.penalty(qp.toArray(ValueLayout.JAVA_FLOAT))
                + activityRegularizer.penalty(kp.toArray(ValueLayout.JAVA_FLOAT))
                + activityRegularizer.penalty(vp.toArray(ValueLayout.JAVA_FLOAT))
                + activityRegularizer.penalty(output.toFloatArray());
        if (useGate) {
            loss += activityRegularizer.penalty(gate.toArray(ValueLayout.JAVA_FLOAT));
        }
        return loss;
    }

    /**
     * Whether a call runs on the fused flash kernel: Keras's fast path (3-D, dropout 0, no
     * returned scores) with key-padding and causal masks at most.
     */
    private boolean flashPath(Geometry g, Masks m, boolean returnScores) {
        return g.fastPath() && !returnScores && m.attentionMask() == null && m.queryMask() == null
                && slidingWindow == null;
    }

    /**
     * What a forward pass keeps for the backward pass, in the caller's arena: the
     * projections as the attention core read them (biased; permuted when the attention
     * axes are not consecutive), the gate (after its sigmoid), the attention output before
     * the gate (rows in input order), the flash kernel's row statistics, the dropout stream.
     */
    private static final class Saved {
        final MemorySegment qp;
        final MemorySegment kp;
        final MemorySegment vp;
        final MemorySegment gate;
        final MemorySegment attended;
        final MemorySegment lse;
        final boolean flash;
        long dropoutStream = -1;

        Saved(MemorySegment qp, MemorySegment kp, MemorySegment vp, MemorySegment gate, MemorySegment attended,
              MemorySegment lse, boolean flash) {
            this.qp = qp;
            this.kp = kp;
            this.vp = vp;
            this.gate = gate;
            this.attended = attended;
            this.lse = lse;
            this.flash = flash;
        }
    }

    @Override
    final Object saveFor(java.lang.foreign.Arena arena, Plan plan, CallArgs args) {
        Prepared prepared = (Prepared) plan.detail();
        Geometry g = prepared.geometry();
        int n = queryHeads();
        int kv = keyValueHeads();
        long oCount = g.rowsQ() * n * valueSize();
        boolean flash = flashPath(g, prepared.masks(), args.returnAttentionScores());
        return new Saved(floats(arena, g.rowsQ() * n * keySize()), floats(arena, g.rowsV() * kv * keySize()),
                floats(arena, g.rowsV() * kv * valueSize()), useGate ? floats(arena, oCount) : MemorySegment.NULL,
                floats(arena, oCount), flash ? floats(arena, (long) g.blocks() * n * g.t()) : MemorySegment.NULL,
                flash);
    }

    private static MemorySegment floats(java.lang.foreign.Arena arena, long count) {
        return arena.allocate(Math.max(1, count) * Float.BYTES, 64);
    }

    /**
     * The backward pass over the saved activations, the forward's steps in reverse: the
     * output projection, the gate, the attention core (the flash kernel's backward with
     * its saved row statistics, O(T) memory; otherwise the scores and weights recomputed
     * by the batched GEMM and the softmax, with the forward's masks and dropout stream,
     * then the softmax's backward kernel), and the three input projections. Weight
     * gradients are GEMMs over all rows; bias gradients column sums (a GEMM with ones).
     */
    @Override
    final void backward(Plan plan, CallArgs args, ForwardPass forward, Tensor outputGradient, Tensor dQuery,
                        Tensor dValue, Tensor dKey, List<Tensor> dWeights) {
        Prepared prepared = (Prepared) plan.detail();
        Geometry g = prepared.geometry();
        Masks m = prepared.masks();
        Saved sv = (Saved) forward.saved();
        Backend be = Backends.get();
        Slots w = slots;
        int n = queryHeads();
        int kv = keyValueHeads();
        int r = n / kv;
        int hk = keySize();
        int hv = valueSize();
        int t = g.t();
        int s = g.s();
        int blocks = g.blocks() * n;
        long scoreCount = (long) blocks * t * s;
        Tensor key = args.key() != null ? args.key() : args.value();
        int dq = (int) g.queryShape()[g.queryShape().length - 1];
        int dk = (int) g.keyShape()[g.keyShape().length - 1];
        int dv = (int) g.valueShape()[g.valueShape().length - 1];
        boolean permute = g.permutation() != null;
        boolean dropping = sv.dropoutStream >= 0;
        long rowsQ = g.rowsQ();
        long rowsV = g.rowsV();
        long qCount = rowsQ * n * hk;
        long kCount = rowsV * kv * hk;
        long vCount = rowsV * kv * hv;
        long oCount = rowsQ * n * hv;
        long widest = Math.max(Math.max(qCount, kCount), Math.max(vCount, oCount));
        long need = 2 * Scratch.regionSize(4 * oCount) + Scratch.regionSize(4 * qCount)
                + Scratch.regionSize(4 * kCount) + Scratch.regionSize(4 * vCount)
                + Scratch.regionSize(4 * Math.max(rowsQ, rowsV))
                + (sv.flash ? 0 : Scratch.regionSize(4 * scoreCount) * (dropping ? 3 : 2))
                + (permute ? Scratch.regionSize(4 * widest) : 0)
                + 2 * maskScratchBytes(m, g); // softmax() resolves the masks twice: forward again, then backward
        Scratch.Carver scratch = Scratch.carver(need);
        MemorySegment ones = scratch.floats(Math.max(rowsQ, rowsV));
        ones.asSlice(0, 4 * Math.max(rowsQ, rowsV)).elements(ValueLayout.JAVA_FLOAT)
                .forEach(e -> e.set(ValueLayout.JAVA_FLOAT, 0, 1f));

        // Output projection: out = A Wo + bo, with A the attention output (times the gate).
        MemorySegment a = sv.attended;
        MemorySegment gated = a;
        if (useGate) {
            gated = scratch.floats(oCount);
            MemorySegment.copy(a, 0, gated, 0, 4 * oCount);
            be.mul(gated, sv.gate, oCount);
        }
        MemorySegment dY = outputGradient.segment();
        int outCols = g.outCols();
        MemorySegment dA = scratch.floats(oCount);
        projectBackward(be, gated, rowsQ, n * hv, dY, outCols, kernel(w.outputKernel()),
                dWeights.get(w.outputKernel()).segment(), biasGradient(dWeights, w.outputBias()), dA, false, ones);
        boolean queryStarted = false;
        if (useGate) {
            MemorySegment dZ = gated; // the product is no longer needed
            be.gateBackward(a, sv.gate, dA, dZ, oCount);
            projectBackward(be, args.query().segment(), rowsQ, dq, dZ, n * hv, kernel(w.gateKernel()),
                    dWeights.get(w.gateKernel()).segment(), biasGradient(dWeights, w.gateBias()), dQuery.segment(),
                    false, ones);
            queryStarted = true;
        }

        // The attention core, in the layout the forward ran it.
        MemorySegment dqp = scratch.floats(qCount);
        MemorySegment dkp = scratch.floats(kCount);
        MemorySegment dvp = scratch.floats(vCount);
        MemorySegment tmp = permute ? scratch.floats(widest) : MemorySegment.NULL;
        if (permute) {
            permuteRows(dA, tmp, g.queryShape(), g.permutation(), n * hv);
        }
        int after = g.after();
        int inner = after * n;
        float scale = (float) (1.0 / Math.sqrt(hk));
        if (sv.flash) {
            be.flashAttentionBackward(sv.qp, (long) n * hk, (long) t * n * hk, hk,
                    sv.kp, (long) kv * hk, (long) s * kv * hk, hk,
                    sv.vp, (long) kv * hv, (long) s * kv * hv, hv,
                    a, dA, (long) n * hv, (long) t * n * hv, hv,
                    dqp, dkp, dvp, blocks, n, r, t, s, hk, hv, scale,
                    colMask(be, m, g, scratch), n, args.useCausalMask(), sv.lse, Attn4j.numThreads());
        } else {
            MemorySegment probs = scratch.floats(scoreCount);
            MemorySegment dProbs = scratch.floats(scoreCount);
            be.sgemmBatched(false, true, t, s, hk, 1f,
                    sv.qp, after * n * hk, (long) t * after * n * hk, hk,
                    sv.kp, after * kv * hk, (long) s * after * kv * hk, hk, r,
                    0f, probs, s, (long) inner * t * s, (long) t * s,
                    g.outer(), inner, GemmRoute.AUTO);
            softmax(be, probs, MemorySegment.NULL, blocks, t, s, scale, m, g, args.useCausalMask(), scratch);
            MemorySegment used = probs;
            if (dropping) {
                used = scratch.floats(scoreCount);
                MemorySegment.copy(probs, 0, used, 0, 4 * scoreCount);
                be.dropout(used, scoreCount, (float) dropout, effectiveSeed(), sv.dropoutStream);
            }
            // dP = dA V^T per (batch, head); GQA heads read their shared V head.
            be.sgemmBatched(false, true, t, s, hv, 1f,
                    dA, after * n * hv, (long) t * after * n * hv, hv,
                    sv.vp, after * kv * hv, (long) s * after * kv * hv, hv, r,
                    0f, dProbs, s, (long) inner * t * s, (long) t * s,
                    g.outer(), inner, GemmRoute.AUTO);
            // dV = sum over the r query heads of a key/value head of P^T dA (one GEMM batch per
            // head of the group, accumulating: no two products of a batch write one matrix).
            for (int rep = 0; rep < r; rep++) {
                be.sgemmBatched(true, false, s, hv, t, 1f,
                        used.asSlice(4L * rep * t * s), s, (long) inner * t * s, (long) r * t * s,
                        dA.asSlice(4L * rep * hv), after * n * hv, (long) t * after * n * hv, (long) r * hv, 1,
                        rep == 0 ? 0f : 1f, dvp, after * kv * hv, (long) s * after * kv * hv, hv,
                        g.outer(), after * kv, GemmRoute.AUTO);
            }
            if (dropping) {
                be.dropout(dProbs, scoreCount, (float) dropout, effectiveSeed(), sv.dropoutStream);
            }
            // dL/d(q . k), masked logits (constants in Keras) getting none.
            softmax(be, probs, dProbs, blocks, t, s, scale, m, g, args.useCausalMask(), scratch);
            be.sgemmBatched(false, false, t, hk, s, 1f,
                    dProbs, s, (long) inner * t * s, (long) t * s,
                    sv.kp, after * kv * hk, (long) s * after * kv * hk, hk, r,
                    0f, dqp, after * n * hk, (long) t * after * n * hk, hk,
                    g.outer(), inner, GemmRoute.AUTO);
            for (int rep = 0; rep < r; rep++) {
                be.sgemmBatched(true, false, s, hk, t, 1f,
                        dProbs.asSlice(4L * rep * t * s), s, (long) inner * t * s, (long) r * t * s,
                        sv.qp.asSlice(4L * rep * hk), after * n * hk, (long) t * after * n * hk, (long) r * hk, 1,
                        rep == 0 ? 0f : 1f, dkp, after * kv * hk, (long) s * after * kv * hk, hk,
                        g.outer(), after * kv, GemmRoute.AUTO);
            }
        }
        if (permute) {
            unpermuteRows(dqp, tmp, g.queryShape(), g.permutation(), n * hk);
            unpermuteRows(dkp, tmp, g.valueShape(), g.permutation(), kv * hk);
            unpermuteRows(dvp, tmp, g.valueShape(), g.permutation(), kv * hv);
        }

        // The input projections. Without a key argument the value is the key too.
        projectBackward(be, args.query().segment(), rowsQ, dq, dqp, n * hk, kernel(w.queryKernel()),
                dWeights.get(w.queryKernel()).segment(), biasGradient(dWeights, w.queryBias()), dQuery.segment(),
                queryStarted, ones);
        projectBackward(be, args.value().segment(), rowsV, dv, dvp, kv * hv, kernel(w.valueKernel()),
                dWeights.get(w.valueKernel()).segment(), biasGradient(dWeights, w.valueBias()), dValue.segment(),
                false, ones);
        projectBackward(be, key.segment(), rowsV, dk, dkp, kv * hk, kernel(w.keyKernel()),
                dWeights.get(w.keyKernel()).segment(), biasGradient(dWeights, w.keyBias()),
                args.key() != null ? dKey.segment() : dValue.segment(), args.key() == null, ones);
    }

    private static MemorySegment biasGradient(List<Tensor> dWeights, int slot) {
        return slot < 0 ? MemorySegment.NULL : dWeights.get(slot).segment();
    }

    /**
     * The backward pass of {@link #project} (linear): for y = x kernel + bias over
     * (rows, in) x (in, cols), dKernel = x^T dy, dBias = the column sums of dy (ones^T dy;
     * skipped when NULL), and dx = dy kernel^T, written or, with {@code accumulate}, added.
     */
    private static void projectBackward(Backend be, MemorySegment x, long rows, int in, MemorySegment dy, int cols,
                                        MemorySegment kernel, MemorySegment dKernel, MemorySegment dBias,
                                        MemorySegment dx, boolean accumulate, MemorySegment ones) {
        be.sgemmBatched(true, false, in, cols, (int) rows, 1f,
                x, in, 0, 0,
                dy, cols, 0, 0, 1,
                0f, dKernel, cols, 0, 0, 1, 1, GemmRoute.AUTO);
        if (!dBias.equals(MemorySegment.NULL)) {
            be.sgemmBatched(false, false, 1, cols, (int) rows, 1f,
                    ones, (int) rows, 0, 0,
                    dy, cols, 0, 0, 1,
                    0f, dBias, cols, 0, 0, 1, 1, GemmRoute.AUTO);
        }
        be.sgemmBatched(false, true, (int) rows, in, cols, 1f,
                dy, cols, 0, 0,
                kernel, cols, 0, 0, 1,
                accumulate ? 1f : 0f, dx, in, 0, 0, 1, 1, GemmRoute.AUTO);
    }

    /** dst (rows, cols) = x (rows, in) @ kernel (in, cols) + bias (NULL: none), then the activation. */
    static void project(Backend be, MemorySegment x, long rows, int in, MemorySegment kernel,
                        MemorySegment bias, int cols, MemorySegment dst, Backend.Activation activation) {
        if (rows <= Backend.SMALL_GEMM_MAX_ROWS) {
            // A few rows (a decode step, a short call): the kernel streamed once, bias fused.
            be.smallGemm(x, (int) rows, in, kernel, cols, bias, dst);
            if (activation != Backend.Activation.LINEAR) {
                be.biasAct(dst, rows, cols, MemorySegment.NULL, activation);
            }
            return;
        }
        be.sgemmBatched(false, false, (int) rows, cols, in, 1f,
                x, in, 0, 0,
                kernel, cols, 0, 0, 1,
                0f, dst, cols, 0, 0, 1, 1, GemmRoute.AUTO);
        if (!bias.equals(MemorySegment.NULL) || activation != Backend.Activation.LINEAR) {
            be.biasAct(dst, rows, cols, bias, activation);
        }
    }

    final MemorySegment kernel(int slot) {
        return weight(slot).storage().segment();
    }

    /** The bias weight of a slot; NULL for slot -1 (no bias). */
    final MemorySegment bias(int slot) {
        return slot < 0 ? MemorySegment.NULL : weight(slot).storage().segment();
    }

    /** The same tensor: the same memory with the same shape (dims compared without copies). */
    private static boolean sameTensor(Tensor a, Tensor b) {
        if (a == b) {
            return true;
        }
        if (a.segment().address() != b.segment().address() || a.segment().byteSize() != b.segment().byteSize()
                || a.dtype() != b.dtype() || a.rank() != b.rank()) {
            return false;
        }
        for (int i = 0; i < a.rank(); i++) {
            if (a.dim(i) != b.dim(i)) {
                return false;
            }
        }
        return true;
    }

    // ---- masks ------------------------------------------------------------------------

    private long maskScratchBytes(Masks m, Geometry g) {
        long bytes = regionSize(m.queryMask()) + regionSize(m.valueMask()) + regionSize(m.keyMask());
        if (m.attentionMask() != null) {
            bytes += Scratch.regionSize(m.attentionMask().size());
            long[] scores = g.scoresShape();
            long full = 1;
            for (long d : scores) {
                full *= d;
            }
            bytes += Scratch.regionSize(full);
        }
        return bytes + Scratch.regionSize(g.queryShape()[0] * g.s());
    }

    /** Scratch bytes for a converted copy of a mask; 0 without one. */
    private static long regionSize(Tensor mask) {
        return mask == null ? 0 : Scratch.regionSize(mask.size());
    }

    /** A bool view of a mask: bool masks as they are, float ones converted (!= 0 or > 0.5). */
    private static MemorySegment bools(Backend be, Tensor mask, boolean greaterThanHalf, Scratch.Carver scratch) {
        if (mask.dtype() == DType.BOOL) {
            return mask.segment();
        }
        MemorySegment out = scratch.bytes(mask.size());
        be.maskFromFloat(mask.segment(), out, mask.size(), greaterThanHalf);
        return out;
    }

    /** The key padding mask (B, S) bytes: value mask AND key mask, or NULL without either. */
    private static MemorySegment colMask(Backend be, Masks m, Geometry g, Scratch.Carver scratch) {
        if (m.valueMask() == null && m.keyMask() == null) {
            return MemorySegment.NULL;
        }
        MemorySegment vm = m.valueMask() == null ? null : bools(be, m.valueMask(), false, scratch);
        MemorySegment km = m.keyMask() == null ? null : bools(be, m.keyMask(), false, scratch);
        if (vm == null || km == null) {
            return vm != null ? vm : km;
        }
        long count = g.queryShape()[0] * g.s(); // B * S bytes, not a (T, S) loop
        MemorySegment both = scratch.bytes(count);
        for (long i = 0; i < count; i++) {
            boolean keep = vm.get(ValueLayout.JAVA_BYTE, i) != 0 && km.get(ValueLayout.JAVA_BYTE, i) != 0;
            both.set(ValueLayout.JAVA_BYTE, i, keep ? (byte) 1 : (byte) 0);
        }
        return both;
    }

    /**
     * The fused masked softmax of the scores in place, with every mask source of the call;
     * or, when {@code dScores} is not NULL, its backward pass with the same masks
     * ({@code scores} then holds the forward's probabilities, and {@code dScores} receives
     * dL/d(the raw scores) in place of dL/d(probabilities)).
     */
    private void softmax(Backend be, MemorySegment scores, MemorySegment dScores, int blocks, int t, int s,
                         float scale, Masks m, Geometry g, boolean causal, Scratch.Carver scratch) {
        int n = queryHeads();
        MemorySegment rowMask = m.queryMask() == null ? MemorySegment.NULL : bools(be, m.queryMask(), false, scratch);
        MemorySegment colMask = colMask(be, m, g, scratch);
        MemorySegment mask = MemorySegment.NULL;
        long batchStride = 0;
        long rowStride = 0;
        long div = 1;
        if (m.attentionMask() != null) {
            Tensor am = m.attentionMask();
            boolean gtHalf = am.dtype() == DType.FLOAT32 && floatMaskGreaterThanHalf(g.fastPath(), m.auto());
            MemorySegment bytes = bools(be, am, gtHalf, scratch);
            long[] expanded = expandKeras("call", am.shape(), g);
            long[] strides = kernelStrides(expanded, g);
            if (strides != null) {
                mask = bytes;
                batchStride = strides[0];
                rowStride = strides[1];
                div = strides[2];
            } else {
                mask = broadcast(bytes, expanded, g.scoresShape(), scratch);
                batchStride = (long) t * s;
                rowStride = s;
            }
        }
        MaskConvention convention = g.fastPath() ? MaskConvention.REPLACE : MaskConvention.REPLACE_THEN_ZERO;
        long window = slidingWindow == null ? 0 : slidingWindow;
        if (dScores.equals(MemorySegment.NULL)) {
            be.maskedSoftmax(scores, blocks, t, s, scale, mask, batchStride, rowStride, div, rowMask, colMask, n,
                    causal, window, convention);
        } else {
            be.softmaxBackward(scores, dScores, blocks, t, s, scale, mask, batchStride, rowStride, div, rowMask,
                    colMask, n, causal, window, convention);
        }
    }

    /**
     * The kernel's (batch stride, row stride, batch divisor) for an expanded attention
     * mask, or null when it needs materialising: the key part must be full, the query
     * part full or all 1, the leading part equal to the scores' up to some axis and 1
     * after it.
     */
    private static long[] kernelStrides(long[] mask, Geometry g) {
        long[] scores = g.scoresShape();
        int k = g.attentionAxes().length;
        int lead = scores.length - 2 * k;
        for (int i = lead + k; i < scores.length; i++) {
            if (mask[i] != scores[i]) {
                return null;
            }
        }
        boolean fullRows = true;
        boolean noRows = true;
        for (int i = lead; i < lead + k; i++) {
            fullRows &= mask[i] == scores[i];
            noRows &= mask[i] == 1;
        }
        if (!fullRows && !noRows) {
            return null;
        }
        int q = 0;
        while (q < lead && mask[q] == scores[q]) {
            q++;
        }
        long div = 1;
        for (int i = q; i < lead; i++) {
            if (mask[i] != 1) {
                return null;
            }
            div *= scores[i];
        }
        long rows = fullRows ? g.t() : 1;
        return new long[] {q == 0 ? 0 : rows * g.s(), fullRows && g.t() > 1 ? g.s() : 0, q == 0 ? 1 : div};
    }

    /** Materialises a broadcast mask to the full scores shape (rare layouts only). */
    private static MemorySegment broadcast(MemorySegment src, long[] mask, long[] scores, Scratch.Carver scratch) {
        long total = 1;
        for (long d : scores) {
            total *= d;
        }
        MemorySegment out = scratch.bytes(total);
        int rank = scores.length;
        long[] srcStride = new long[rank];
        long stride = 1;
        for (int i = rank - 1; i >= 0; i--) {
            srcStride[i] = mask[i] == 1 ? 0 : stride;
            stride *= mask[i];
        }
        long[] index = new long[rank];
        for (long o = 0; o < total; o++) {
            long from = 0;
            for (int i = 0; i < rank; i++) {
                from += index[i] * srcStride[i];
            }
            out.set(ValueLayout.JAVA_BYTE, o, src.get(ValueLayout.JAVA_BYTE, from));
            for (int i = rank - 1; i >= 0 && ++index[i] == scores[i]; i--) {
                index[i] = 0;
            }
        }
        return out;
    }

    // ---- permutation of non-consecutive attention axes ---------------------------------

    /**
     * Reorders the rows of a projection (B, dims..., [N*H]) so that the axes follow
     * {@code permutation} (attention axes last), copying runs of {@code width} floats.
     */
    private static void permuteRows(MemorySegment data, MemorySegment tmp, long[] inputShape, int[] permutation,
                                    int width) {
        long[] dims = Arrays.copyOf(inputShape, inputShape.length - 1);
        long rows = 1;
        for (long d : dims) {
            rows *= d;
        }
        MemorySegment.copy(data, 0, tmp, 0, rows * width * Float.BYTES);
        movePositions(tmp, data, dims, permutation, width, false);
    }

    /** The inverse of {@link #permuteRows}, for the attention output. */
    private static void unpermuteRows(MemorySegment data, MemorySegment tmp, long[] inputShape, int[] permutation,
                                      int width) {
        long[] dims = Arrays.copyOf(inputShape, inputShape.length - 1);
        long rows = 1;
        for (long d : dims) {
            rows *= d;
        }
        MemorySegment.copy(data, 0, tmp, 0, rows * width * Float.BYTES);
        movePositions(tmp, data, dims, permutation, width, true);
    }

    private static void movePositions(MemorySegment from, MemorySegment to, long[] dims, int[] permutation,
                                      int width, boolean inverse) {
        int rank = dims.length;
        long[] permuted = new long[rank];
        for (int i = 0; i < rank; i++) {
            permuted[i] = dims[permutation[i]];
        }
        long[] strideOriginal = new long[rank];
        long[] stridePermuted = new long[rank];
        long a = 1;
        long b = 1;
        for (int i = rank - 1; i >= 0; i--) {
            strideOriginal[i] = a;
            a *= dims[i];
            stridePermuted[i] = b;
            b *= permuted[i];
        }
        long[] index = new long[rank]; // over the original dims
        long bytes = (long) width * Float.BYTES;
        for (long o = 0; o < a; o++) {
            long p = 0;
            for (int i = 0; i < rank; i++) {
                // original axis permutation[i] sits at position i of the permuted layout
                p += index[permutation[i]] * stridePermuted[i];
            }
            if (inverse) {
                MemorySegment.copy(from, p * bytes, to, o * bytes, bytes);
            } else {
                MemorySegment.copy(from, o * bytes, to, p * bytes, bytes);
            }
            for (int i = rank - 1; i >= 0 && ++index[i] == dims[i]; i--) {
                index[i] = 0;
            }
        }
    }
}
