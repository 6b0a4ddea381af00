package dev.attn4j.layers;

import dev.attn4j.DType;
import dev.attn4j.MaskConvention;
import dev.attn4j.Tensor;
import dev.attn4j.internal.Scratch;
import dev.attn4j.internal.backend.Backend;
import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.GemmRoute;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;

/**
 * The call pipeline shared by {@link Attention} and {@link AdditiveAttention} (Keras's
 * {@code Attention._apply_scores} and friends), over inputs flattened to
 * B = product of the leading (batch) axes:
 * <ol>
 *   <li>scores (B, Tq, Tv) from query and key, by the subclass (batched GEMM or the
 *       fused tanh kernel);
 *   <li>fused scale + value mask + causal mask + softmax, masked logits {@code s - 1e9}
 *       in float32 ({@link MaskConvention#SUBTRACT});
 *   <li>dropout on the weights in training (the returned scores are post-dropout);
 *   <li>output = weights . value (batched GEMM);
 *   <li>output rows of masked query positions multiplied by 0 (the returned scores keep
 *       them).
 * </ol>
 */
abstract sealed class SingleHeadAttention extends AttentionLayer permits Attention, AdditiveAttention {

    private final double dropout;
    /** The plan of the last call's shapes, reused while calls repeat them; see {@link LastPlan}. */
    private volatile LastPlan lastPlan;

    SingleHeadAttention(String name, boolean trainable, Long seed, double dropout) {
        super(name, trainable, seed);
        this.dropout = dropout;
    }

    /** Keras's {@code dropout}: the rate applied to the attention weights in training. */
    public final double dropout() {
        return dropout;
    }

    static double checkDropout(String layer, double rate) {
        if (!(rate >= 0 && rate < 1)) {
            throw new IllegalArgumentException(layer + ": dropout must be a rate in [0, 1), but is " + rate);
        }
        return rate;
    }

    /**
     * Computes raw scores (B, Tq, Tv) into {@code scores} and returns the factor the
     * fused softmax applies before masking (Keras's {@code scores *= scale}).
     */
    abstract float scores(Backend backend, MemorySegment q, MemorySegment k, MemorySegment scores,
                          int batch, int tq, int tv, int dim);

    /**
     * The backward pass of {@link #scores}: given {@code dLogits} = dL/d(factor * scores)
     * (B, Tq, Tv), writes dL/dq into {@code dq}, dL/dk into {@code dk} (both (B, T, dim))
     * and the weights' gradients into {@code dWeights} (Keras order); {@code dScalars} is
     * scratch for two floats.
     */
    abstract void scoresBackward(Backend backend, MemorySegment q, MemorySegment k, MemorySegment dLogits,
                                 MemorySegment dq, MemorySegment dk, MemorySegment dScalars, List<Tensor> dWeights,
                                 int batch, int tq, int tv, int dim);

    // ---- shapes ---------------------------------------------------------------------

    private String layerName() {
        return getClass().getSimpleName();
    }

    /** Checks query/value/key shapes; returns {lead rank, Tq, Tv, dim, dimV}. */
    final long[] checkShapes(String action, long[] q, long[] v, long[] k) {
        if (q == null || v == null) {
            throw new NullPointerException(action + ": query and value shapes must not be null");
        }
        long[] key = k == null ? v : k;
        String keyName = k == null ? "value (used as key)" : "key";
        if (q.length < 3) {
            throw new IllegalArgumentException(action + ": query must have rank >= 3 (batch..., Tq, dim), but has shape "
                    + Arrays.toString(q));
        }
        if (v.length != q.length || key.length != q.length) {
            throw new IllegalArgumentException(action + ": query, value and key must have the same rank, but have "
                    + "shapes query " + Arrays.toString(q) + ", value " + Arrays.toString(v)
                    + (k == null ? "" : ", key " + Arrays.toString(k)));
        }
        for (int i = 0; i < q.length - 2; i++) {
            if (v[i] != q[i] || key[i] != q[i]) {
                throw new IllegalArgumentException(action + ": batch dimensions must match, but axis " + i
                        + " is " + q[i] + " in query " + Arrays.toString(q) + ", " + v[i] + " in value "
                        + Arrays.toString(v) + (k == null ? "" : ", " + k[i] + " in key " + Arrays.toString(k)));
            }
        }
        for (long[] s : new long[][] {q, v, key}) {
            for (long d : s) {
                if (d < 1 || d > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException(action + ": every dimension must be in [1, "
                            + Integer.MAX_VALUE + "], but a shape is " + Arrays.toString(s));
                }
            }
        }
        long tq = q[q.length - 2];
        long tv = v[v.length - 2];
        long dim = q[q.length - 1];
        if (key[key.length - 2] != tv) {
            throw new IllegalArgumentException(action + ": key and value must have the same length Tv, but key "
                    + Arrays.toString(key) + " has " + key[key.length - 2] + " and value " + Arrays.toString(v)
                    + " has " + tv);
        }
        if (key[key.length - 1] != dim) {
            throw new IllegalArgumentException(action + ": the " + keyName + " feature dimension must equal the "
                    + "query's (" + dim + "), but " + keyName + " has shape " + Arrays.toString(key));
        }
        long batch = 1;
        boolean partial = false;
        for (int i = 0; i < q.length - 2; i++) {
            // Every dimension is in [1, 2^31 - 1]: stop multiplying once past the int range,
            // so the product can neither overflow nor wrap.
            partial |= batch > Integer.MAX_VALUE;
            batch = partial ? batch : batch * q[i];
        }
        if (batch > Integer.MAX_VALUE || tq * tv > Integer.MAX_VALUE) {
            String batchText = partial
                    ? "the product of " + Arrays.toString(Arrays.copyOf(q, q.length - 2)) : Long.toString(batch);
            throw new IllegalArgumentException(action + ": batch (" + batchText + ") and Tq * Tv (" + tq * tv
                    + ") must each fit the 32-bit integers the native calls take (" + Integer.MAX_VALUE + ")");
        }
        return new long[] {q.length - 2, tq, tv, dim, v[v.length - 1]};
    }

    @Override
    public final long[] computeOutputShape(long[] queryShape, long[] valueShape, long[] keyShape) {
        checkShapes(layerName() + ".computeOutputShape", queryShape, valueShape, keyShape);
        long[] out = queryShape.clone();
        out[out.length - 1] = valueShape[valueShape.length - 1];
        return out;
    }

    @Override
    public final long[] computeAttentionScoresShape(long[] queryShape, long[] valueShape, long[] keyShape) {
        checkShapes(layerName() + ".computeAttentionScoresShape", queryShape, valueShape, keyShape);
        long[] out = queryShape.clone();
        out[out.length - 1] = valueShape[valueShape.length - 2];
        return out;
    }

    // ---- calls ----------------------------------------------------------------------

    private static void requireMask(String action, String what, Tensor mask, long[] expected) {
        if (mask == null) {
            return;
        }
        if (mask.dtype() != DType.BOOL) {
            throw new IllegalArgumentException(action + ": " + what + " must be a bool tensor of shape "
                    + Arrays.toString(expected) + ", but is " + mask);
        }
        if (!hasShape(mask, expected)) {
            throw new IllegalArgumentException(action + ": " + what + " must have shape " + Arrays.toString(expected)
                    + ", but has " + Arrays.toString(mask.shape()));
        }
        if (!mask.isAlive()) {
            throw new IllegalStateException(action + ": the arena of " + what + " " + mask + " is closed");
        }
    }

    /**
     * The last validated call's input shapes (the key's: the value's when absent), the
     * mask shapes they imply, and their plan. The checks and shapes are functions of
     * the input shapes, and a layer is mostly called with the same shapes again and
     * again; a call whose shapes match skips them (it passed them before), so a steady
     * call allocates nothing on the Java heap. Immutable (its arrays are never written
     * nor handed out) and published through a volatile field: threads share it safely,
     * and threads calling with other shapes merely replace it.
     */
    private record LastPlan(long[] queryShape, long[] valueShape, long[] keyShape, long[] queryMaskShape,
                            long[] valueMaskShape, Plan plan) {

        boolean fits(Tensor query, Tensor value, Tensor key) {
            return hasShape(query, queryShape) && hasShape(value, valueShape) && hasShape(key, keyShape);
        }
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
        if (args.keyMask() != null || args.attentionMask() != null) {
            throw new IllegalArgumentException(action + ": " + layerName() + " takes queryMask and valueMask only "
                    + "(Keras: mask=[query_mask, value_mask]); got "
                    + (args.keyMask() != null ? "keyMask" : "attentionMask"));
        }
        LastPlan last = lastPlan;
        if (last != null && last.fits(q, v, k == null ? v : k)) {
            // Shapes seen before: checkShapes() and ensureBuilt() passed for them and would again.
            requireMask(action, "queryMask", args.queryMask(), last.queryMaskShape());
            requireMask(action, "valueMask", args.valueMask(), last.valueMaskShape());
            return last.plan();
        }
        long[] qs = q.shape();
        long[] vs = v.shape();
        long[] ks = k == null ? null : k.shape();
        long[] dims = checkShapes(action, qs, vs, ks);
        int lead = (int) dims[0];
        long[] queryMaskShape = Arrays.copyOf(qs, lead + 1);
        long[] valueMaskShape = Arrays.copyOf(vs, lead + 1);
        requireMask(action, "queryMask", args.queryMask(), queryMaskShape);
        requireMask(action, "valueMask", args.valueMask(), valueMaskShape);
        ensureBuilt(action, qs, vs, ks);
        int batch = 1;
        for (int i = 0; i < lead; i++) {
            batch *= (int) qs[i];
        }
        Dims sizes = new Dims(batch, (int) dims[1], (int) dims[2], (int) dims[3], (int) dims[4]);
        Plan plan = new Plan(computeOutputShape(qs, vs, ks), computeAttentionScoresShape(qs, vs, ks), sizes);
        lastPlan = new LastPlan(qs, vs, ks == null ? vs : ks, queryMaskShape, valueMaskShape, plan); // once valid
        return plan;
    }

    /** What a forward pass keeps: the dropout stream of a training call (-1: none). */
    private static final class Saved {
        long dropoutStream = -1;
    }

    @Override
    final Object saveFor(java.lang.foreign.Arena arena, Plan plan, CallArgs args) {
        return new Saved();
    }

    /** A call's sizes, flattened: batch (the leading axes' product), Tq, Tv, D, Dv; part of its plan. */
    private record Dims(int batch, int tq, int tv, int dim, int dimV) {}

    @Override
    final double run(Plan plan, CallArgs args, Tensor output, Tensor scoresOut, Object saved) {
        Tensor q = args.query();
        Tensor v = args.value();
        Tensor k = args.key() != null ? args.key() : v;
        Dims d = (Dims) plan.detail();
        int batch = d.batch();
        int tq = d.tq();
        int dim = d.dim();
        int tv = d.tv();
        int dimV = d.dimV();
        long scoreCount = (long) batch * tq * tv;
        MemorySegment s = scoresOut != null ? scoresOut.segment() : Scratch.floats(scoreCount);

        Backend backend = Backends.get();
        float scale = scores(backend, q.segment(), k.segment(), s, batch, tq, tv, dim);
        MemorySegment valueMask = args.valueMask() == null ? MemorySegment.NULL : args.valueMask().segment();
        backend.maskedSoftmax(s, batch, tq, tv, scale, valueMask, tv, 0, 1, args.useCausalMask(),
                MaskConvention.SUBTRACT);
        if (args.training() && dropout > 0) {
            long stream = nextDropoutStream();
            if (saved != null) {
                ((Saved) saved).dropoutStream = stream;
            }
            backend.dropout(s, scoreCount, (float) dropout, effectiveSeed(), stream);
        }
        backend.sgemmBatched(false, false, tq, dimV, tv, 1f,
                s, tv, (long) tq * tv, 0,
                v.segment(), dimV, (long) tv * dimV, 0, 1,
                0f, output.segment(), dimV, (long) tq * dimV, 0,
                batch, 1, GemmRoute.AUTO);
        if (args.queryMask() != null) {
            backend.mulRowMask(output.segment(), (long) batch * tq, dimV, args.queryMask().segment());
        }
        return 0;
    }

    /**
     * The backward pass, recomputing the weights from the inputs (O(B Tq Tv) scratch):
     * the query mask's row multiply, the products with the value, dropout with the
     * forward's stream, the softmax (Keras's {@code s - 1e9} passes the gradient on as if
     * unmasked), then the score function's own backward.
     */
    @Override
    final void backward(Plan plan, CallArgs args, ForwardPass forward, Tensor outputGradient, Tensor dQuery,
                        Tensor dValue, Tensor dKey, List<Tensor> dWeights) {
        Tensor q = args.query();
        Tensor v = args.value();
        Tensor k = args.key() != null ? args.key() : v;
        Dims d = (Dims) plan.detail();
        int batch = d.batch();
        int tq = d.tq();
        int dim = d.dim();
        int tv = d.tv();
        int dimV = d.dimV();
        long scoreCount = (long) batch * tq * tv;
        long outCount = (long) batch * tq * dimV;
        long stream = ((Saved) forward.saved()).dropoutStream;
        boolean dropping = stream >= 0;
        boolean rowMask = args.queryMask() != null;
        Scratch.Carver scratch = Scratch.carver(Scratch.regionSize(4 * scoreCount) * (dropping ? 3 : 2)
                + (rowMask ? Scratch.regionSize(4 * outCount) : 0) + Scratch.regionSize(4L * batch * tv * dim)
                + Scratch.regionSize(2 * Float.BYTES));
        MemorySegment probs = scratch.floats(scoreCount);
        MemorySegment dProbs = scratch.floats(scoreCount);
        MemorySegment dk = args.key() != null ? dKey.segment() : scratch.floats((long) batch * tv * dim);
        MemorySegment dScalars = scratch.floats(2);

        // Forward again: the weights P (pre-dropout) and, in training, the dropped Pd.
        Backend be = Backends.get();
        float factor = scores(be, q.segment(), k.segment(), probs, batch, tq, tv, dim);
        MemorySegment valueMask = args.valueMask() == null ? MemorySegment.NULL : args.valueMask().segment();
        be.maskedSoftmax(probs, batch, tq, tv, factor, valueMask, tv, 0, 1, args.useCausalMask(),
                MaskConvention.SUBTRACT);
        MemorySegment weightsUsed = probs;
        if (dropping) {
            weightsUsed = scratch.floats(scoreCount);
            MemorySegment.copy(probs, 0, weightsUsed, 0, 4 * scoreCount);
            be.dropout(weightsUsed, scoreCount, (float) dropout, effectiveSeed(), stream);
        }

        // output = (Pd V) * queryMask: the mask multiplies the gradient too (a masked copy;
        // without the mask the caller's gradient is read in place).
        MemorySegment dOut = outputGradient.segment();
        if (rowMask) {
            dOut = scratch.floats(outCount);
            MemorySegment.copy(outputGradient.segment(), 0, dOut, 0, 4 * outCount);
            be.mulRowMask(dOut, (long) batch * tq, dimV, args.queryMask().segment());
        }
        // dV = Pd^T dO; dPd = dO V^T, then through dropout (the same mask and 1 / (1 - rate)).
        be.sgemmBatched(true, false, tv, dimV, tq, 1f,
                weightsUsed, tv, (long) tq * tv, 0,
                dOut, dimV, (long) tq * dimV, 0, 1,
                0f, dValue.segment(), dimV, (long) tv * dimV, 0,
                batch, 1, GemmRoute.AUTO);
        be.sgemmBatched(false, true, tq, tv, dimV, 1f,
                dOut, dimV, (long) tq * dimV, 0,
                v.segment(), dimV, (long) tv * dimV, 0, 1,
                0f, dProbs, tv, (long) tq * tv, 0,
                batch, 1, GemmRoute.AUTO);
        if (dropping) {
            be.dropout(dProbs, scoreCount, (float) dropout, effectiveSeed(), stream);
        }
        // dL/d(logits), logits = factor * scores (masked ones: minus 1e9, derivative 1).
        be.softmaxBackward(probs, dProbs, batch, tq, tv, 1f, valueMask, tv, 0, 1, MemorySegment.NULL,
                MemorySegment.NULL, 1, args.useCausalMask(), 0, MaskConvention.SUBTRACT);
        scoresBackward(be, q.segment(), k.segment(), dProbs, dQuery.segment(), dk, dScalars, dWeights, batch, tq,
                tv, dim);
        if (args.key() == null) {
            // The value served as key: its gradient has both shares.
            be.add(dk, dValue.segment(), (long) batch * tv * dim);
        }
    }
}
