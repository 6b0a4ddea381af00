package dev.attn4j.layers;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Keras 3.15 {@code keras.layers.MultiHeadAttention}.
 *
 * <p>Dimensions: B batch; T query positions; S key/value positions; D, Dk, Dv query,
 * key and value features; N heads; H {@code keyDim}; Hv {@code valueDim}. N-D inputs
 * (B, positions..., features) attend over {@code attentionAxes}.
 *
 * <p>Arguments (Keras names in parentheses):
 * <ul>
 *   <li>{@code numHeads} ({@code num_heads}, required, > 0), {@code keyDim}
 *       ({@code key_dim}, required, > 0), {@code valueDim} ({@code value_dim}, default
 *       keyDim);
 *   <li>{@code dropout} (0): rate in [0, 1) on the attention weights in training;
 *   <li>{@code useBias} ({@code use_bias}, true);
 *   <li>{@code outputShape} ({@code output_shape}, null = the query's feature size; an
 *       int or a tuple of the output feature dims);
 *   <li>{@code attentionAxes} ({@code attention_axes}, null = every axis between batch
 *       and features; ints, negative counted from the end of the input rank): resolved
 *       at build exactly as Keras does, and {@link #getConfig()} shows the resolved tuple
 *       after build. Resolved axes must lie strictly between the batch and the feature
 *       axis, without repeats; they must be increasing (a reordered tuple would permute
 *       Keras's score layout; attn4j rejects it with {@link UnsupportedOperationException});
 *   <li>{@code kernelInitializer} / {@code biasInitializer} (glorot_uniform / zeros; Keras
 *       names or dicts, see {@link Initializer}), {@code kernelRegularizer} /
 *       {@code biasRegularizer} / {@code activityRegularizer} (see {@link Regularizer};
 *       penalties from {@link #regularizationLosses()} and
 *       {@link AttentionResult#activityRegularizationLoss()}), {@code kernelConstraint} /
 *       {@code biasConstraint} (see {@link Constraint}; applied by {@link #applyConstraints()});
 *   <li>{@code useGate} ({@code use_gate}, false): a sigmoid gate (its own projection of
 *       the query) multiplies the attention output before the output projection;
 *   <li>{@code slidingWindow} ({@code sliding_window}, null): each query position attends
 *       only to keys with |i - j| < window (ANDed with the other masks);
 *   <li>{@code flashAttention} ({@code flash_attention}, false): accepted and computed on
 *       the same fused path; as in Keras it excludes dropout and returned scores;
 *   <li>{@code seed} (null): seed of dropout and of the initial weights;
 *       {@code name}, {@code trainable}; {@code dtype}: float32 only.
 * </ul>
 * Weights, in Keras order: query/kernel (D, N, H), query/bias (N, H), key/kernel (Dk, N, H),
 * key/bias, [gate/kernel (D, N, Hv), gate/bias], value/kernel (Dv, N, Hv), value/bias,
 * attention_output/kernel (N, Hv, out...), attention_output/bias (out...); no biases
 * without useBias. Initial values use Keras's formulas (fans as EinsumDense computes them)
 * with attn4j's random generator: the same distributions, not Keras's random bits.
 *
 * <p>Call ({@link CallArgs}): query (B, T..., D), value (B, S..., Dv), optional key
 * (B, S..., Dk; the value when absent). Masks:
 * <ul>
 *   <li>{@code attentionMask}: (T, S), (B, T, S) or (B, N, T, S) for 3-D inputs (for N-D,
 *       the scores layout with Keras's head-axis insertion), bool or float32: non-zero
 *       means attend;
 *   <li>{@code queryMask} (B, T): the Java form of Keras's mask attached to the query
 *       tensor: masked query rows attend to nothing (what that gives depends on the code
 *       path, see {@link MultiHeadBase}). Keras ignores a {@code query_mask=} call
 *       argument; attn4j has only this one, explicit, form. When the value (or the key)
 *       is the same {@code Tensor} object as the query (self-attention), the query mask
 *       also serves as value (key) mask unless one is given, as Keras's mask propagation
 *       does;
 *   <li>{@code valueMask}, {@code keyMask} (B, S): key positions to ignore.
 * </ul>
 * Padding masks are for 3-D inputs only; {@code useCausalMask} (top-left, j <= i) and
 * slidingWindow need 3-D inputs or attention axes (1,) ({@link UnsupportedOperationException}
 * otherwise: Keras builds them from axis 1 only). Scores (returnAttentionScores) are
 * pre-dropout, laid out as Keras: (B, N, T, S) for 3-D; (B, other axes..., N,
 * T axes..., S axes...) in general, e.g. (B, A2, N, T1, S1) or (B, N, T1, T2, S1, S2),
 * with the softmax over all key axes jointly.
 *
 * <p>Thread safety and memory: see {@link AttentionLayer}.
 */
public final class MultiHeadAttention extends MultiHeadBase {
    private static final Set<String> CONFIG_KEYS = Set.of("name", "trainable", "dtype", "num_heads", "key_dim",
            "value_dim", "dropout", "use_bias", "use_gate", "output_shape", "attention_axes", "sliding_window",
            "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
            "activity_regularizer", "kernel_constraint", "bias_constraint", "seed", "flash_attention");

    private final int numHeads;
    private final int keyDim;
    private final int valueDim;
    private final long[] outputShape;
    private final int[] attentionAxesArg;
    private volatile int[] resolvedAxes;

    private MultiHeadAttention(Builder b) {
        super("MultiHeadAttention", "multi_head_attention", b);
        if (b.numHeads == null || b.numHeads <= 0) {
            throw new IllegalArgumentException("MultiHeadAttention: numHeads must be a positive integer, but is "
                    + b.numHeads);
        }
        if (b.keyDim == null || b.keyDim <= 0) {
            throw new IllegalArgumentException("MultiHeadAttention: keyDim must be a positive integer, but is "
                    + b.keyDim);
        }
        if (b.valueDim != null && b.valueDim <= 0) {
            throw new IllegalArgumentException("MultiHeadAttention: valueDim must be null or a positive integer, but is "
                    + b.valueDim);
        }
        if (b.outputShape != null) {
            if (b.outputShape.length == 0) {
                throw new IllegalArgumentException("MultiHeadAttention: outputShape must be null, an int or a "
                        + "non-empty tuple of positive ints, but is []");
            }
            for (long d : b.outputShape) {
                if (d <= 0) {
                    throw new IllegalArgumentException("MultiHeadAttention: outputShape must hold positive ints, "
                            + "but is " + Arrays.toString(b.outputShape));
                }
            }
        }
        this.numHeads = b.numHeads;
        this.keyDim = b.keyDim;
        this.valueDim = b.valueDim != null ? b.valueDim : b.keyDim;
        this.outputShape = b.outputShape == null ? null : b.outputShape.clone();
        this.attentionAxesArg = b.attentionAxes == null ? null : b.attentionAxes.clone();
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Keras {@code MultiHeadAttention.from_config}. Unknown keys are an error naming them;
     * {@code flash_attention}, which Keras takes as an argument but does not write, is
     * accepted too.
     */
    public static MultiHeadAttention fromConfig(Map<String, ?> config) {
        String l = "MultiHeadAttention";
        Objects.requireNonNull(config, "MultiHeadAttention.fromConfig: config must not be null");
        Configs.rejectUnknown(l, config, CONFIG_KEYS);
        Configs.checkDtype(l, config);
        Builder b = builder().readCommonConfig(l, config)
                .numHeads(Configs.intOrNull(l, config, "num_heads"))
                .keyDim(Configs.intOrNull(l, config, "key_dim"))
                .valueDim(Configs.intOrNull(l, config, "value_dim"));
        long[] out = Configs.intTuple(l, config, "output_shape");
        if (out != null) {
            b.outputShape(out);
        }
        long[] axes = Configs.intTuple(l, config, "attention_axes");
        if (axes != null) {
            for (long axis : axes) {
                if (axis != (int) axis) { // a cast would wrap it to some other, maybe valid, axis
                    throw new IllegalArgumentException(l + ".fromConfig: 'attention_axes' must hold ints, but is "
                            + Arrays.toString(axes));
                }
            }
            b.attentionAxes(Arrays.stream(axes).mapToInt(x -> (int) x).toArray());
        }
        return b.build();
    }

    public int numHeads() {
        return numHeads;
    }

    public int keyDim() {
        return keyDim;
    }

    public int valueDim() {
        return valueDim;
    }

    /** The attention axes: as given before build, resolved after (Keras's rule). */
    public int[] attentionAxes() {
        int[] r = resolvedAxes;
        return r != null ? r.clone() : attentionAxesArg == null ? null : attentionAxesArg.clone();
    }

    @Override
    int queryHeads() {
        return numHeads;
    }

    @Override
    int keyValueHeads() {
        return numHeads;
    }

    @Override
    int keySize() {
        return keyDim;
    }

    @Override
    int valueSize() {
        return valueDim;
    }

    @Override
    long[] outputFeatures(long queryFeatures) {
        return outputShape != null ? outputShape.clone() : new long[] {queryFeatures};
    }

    @Override
    boolean floatMaskGreaterThanHalf(boolean fastPath, boolean autoMasks) {
        return false; // MHA casts every attention mask to bool: non-zero attends
    }

    @Override
    int[] attentionAxes(String action, int rank) {
        int[] built = resolvedAxes;
        if (built != null) {
            return built;
        }
        return resolve(action, rank);
    }

    /** Keras: None -> (1, ..., rank - 2); a negative axis a -> rank + a. */
    private int[] resolve(String action, int rank) {
        int[] axes;
        if (attentionAxesArg == null) {
            axes = new int[rank - 2];
            for (int i = 0; i < axes.length; i++) {
                axes[i] = i + 1;
            }
            return axes;
        }
        axes = new int[attentionAxesArg.length];
        for (int i = 0; i < axes.length; i++) {
            int a = attentionAxesArg[i] >= 0 ? attentionAxesArg[i] : rank + attentionAxesArg[i];
            if (a < 1 || a > rank - 2) {
                throw new IllegalArgumentException(action + ": attentionAxes " + Arrays.toString(attentionAxesArg)
                        + " resolve to axis " + a + " for inputs of rank " + rank + "; attention axes must lie "
                        + "strictly between the batch axis 0 and the feature axis " + (rank - 1));
            }
            for (int j = 0; j < i; j++) {
                if (axes[j] == a) {
                    throw new IllegalArgumentException(action + ": attentionAxes " + Arrays.toString(attentionAxesArg)
                            + " name axis " + a + " twice");
                }
                if (axes[j] > a) {
                    throw new UnsupportedOperationException(action + ": attentionAxes "
                            + Arrays.toString(attentionAxesArg) + " are not in increasing order; Keras would permute"
                            + " its score layout accordingly, which attn4j does not reproduce. Sort them");
                }
            }
            axes[i] = a;
        }
        return axes;
    }

    @Override
    List<WeightSpec> weightSpecs(long[] q, long[] v, long[] k) {
        resolvedAxes = resolve(getClass().getSimpleName() + ".build", q.length);
        long[] key = k == null ? v : k;
        return projectionSpecs(q[q.length - 1], key[key.length - 1], v[v.length - 1]);
    }

    @Override
    public Map<String, Object> getConfig() {
        Map<String, Object> c = Configs.base(this);
        c.put("num_heads", numHeads);
        c.put("key_dim", keyDim);
        c.put("value_dim", valueDim);
        c.put("dropout", dropout);
        c.put("use_bias", useBias);
        c.put("use_gate", useGate);
        c.put("output_shape", outputShape == null ? null : Arrays.stream(outputShape).boxed().toList());
        int[] axes = attentionAxes();
        c.put("attention_axes", axes == null ? null : Arrays.stream(axes).boxed().toList());
        c.put("sliding_window", slidingWindow);
        putCommonConfig(c);
        return c;
    }

    @Override
    public String toString() {
        return "MultiHeadAttention[name=" + name() + ", numHeads=" + numHeads + ", keyDim=" + keyDim + ", valueDim="
                + valueDim + ", built=" + isBuilt() + "]";
    }

    /** Keras's constructor arguments. */
    public static final class Builder extends ProjectionLayerBuilder<Builder> {
        private Integer numHeads;
        private Integer keyDim;
        private Integer valueDim;
        private long[] outputShape;
        private int[] attentionAxes;

        private Builder() {}

        @Override
        Builder self() {
            return this;
        }

        public Builder numHeads(Integer numHeads) {
            this.numHeads = numHeads;
            return this;
        }

        public Builder keyDim(Integer keyDim) {
            this.keyDim = keyDim;
            return this;
        }

        /** Null: the key dim. */
        public Builder valueDim(Integer valueDim) {
            this.valueDim = valueDim;
            return this;
        }

        /** The output feature dims (one int, or a tuple); none: the query's feature size. */
        public Builder outputShape(long... outputShape) {
            this.outputShape = outputShape == null ? null : outputShape.clone();
            return this;
        }

        /** Null for Keras's default; negative axes count from the end of the input rank. */
        public Builder attentionAxes(int... attentionAxes) {
            this.attentionAxes = attentionAxes == null ? null : attentionAxes.clone();
            return this;
        }

        @Override
        public MultiHeadAttention build() {
            return new MultiHeadAttention(this);
        }
    }
}
