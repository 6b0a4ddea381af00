package dev.attn4j.layers;

import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Keras 3.15 {@code keras.layers.GroupQueryAttention} (class {@code GroupedQueryAttention}):
 * grouped-query attention, where N query heads share K key/value heads (query head u
 * uses key/value head u / (N / K)); K = N is multi-head attention, K = 1 multi-query
 * attention.
 *
 * <p>Dimensions: B batch; T query length; S key/value length; D, Dk, Dv query, key and
 * value features; N {@code numQueryHeads}; K {@code numKeyValueHeads}; H {@code headDim}.
 *
 * <p>Arguments (Keras names in parentheses):
 * <ul>
 *   <li>{@code headDim} ({@code head_dim}), {@code numQueryHeads}
 *       ({@code num_query_heads}), {@code numKeyValueHeads} ({@code num_key_value_heads}):
 *       required positive ints; numKeyValueHeads must divide numQueryHeads;
 *   <li>{@code dropout} (0), {@code useBias} (true), {@code useGate} (false),
 *       {@code slidingWindow} (null), {@code flashAttention} (false), initializers,
 *       regularizers, constraints and {@code seed}: as in {@link MultiHeadAttention};
 *       {@code name}, {@code trainable}; {@code dtype}: float32 only.
 * </ul>
 * Weights, in Keras order: query/kernel (D, N, H), query/bias (N, H), key/kernel
 * (Dk, K, H), key/bias (K, H), [gate/kernel (D, N, H), gate/bias (N, H)], value/kernel
 * (Dv, K, H), value/bias (K, H), attention_output/kernel (N, H, D), attention_output/bias (D).
 *
 * <p>Call: 3-D inputs only, as Keras's equations are: query (B, T, D), value (B, S, Dv),
 * optional key (B, S, Dk). Masks as in {@link MultiHeadAttention} (attentionMask (T, S),
 * (B, T, S) or (B, N, T, S); queryMask as the mask on the query tensor; valueMask,
 * keyMask), with Keras's float-mask quirk: a float attentionMask with no other mask
 * source (no padding mask, causal or sliding window) keeps positions where it is > 0.5
 * on the einsum path (Keras's Softmax receives it uncast) but where it is non-zero on
 * the fused path. Output (B, T, D) (Keras requires D = Dv only when tracing shapes; an
 * eager call, like this one, does not). Scores (B, N, T, S), pre-dropout. Keys and values
 * are never repeated in memory: each query head reads its shared head in place.
 *
 * <p>Thread safety and memory: see {@link AttentionLayer}.
 */
public final class GroupQueryAttention extends MultiHeadBase {
    private static final Set<String> CONFIG_KEYS = Set.of("name", "trainable", "dtype", "head_dim",
            "num_query_heads", "num_key_value_heads", "use_bias", "use_gate", "sliding_window", "dropout",
            "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
            "activity_regularizer", "kernel_constraint", "bias_constraint", "seed", "flash_attention");

    private final int headDim;
    private final int numQueryHeads;
    private final int numKeyValueHeads;

    private GroupQueryAttention(Builder b) {
        super("GroupQueryAttention", "grouped_query_attention", b);
        requirePositive("headDim", b.headDim);
        requirePositive("numQueryHeads", b.numQueryHeads);
        requirePositive("numKeyValueHeads", b.numKeyValueHeads);
        if (b.numQueryHeads % b.numKeyValueHeads != 0) {
            throw new IllegalArgumentException("GroupQueryAttention: `num_query_heads` must be divisible by "
                    + "`num_key_value_heads` (numQueryHeads = " + b.numQueryHeads + ", numKeyValueHeads = "
                    + b.numKeyValueHeads + ")");
        }
        this.headDim = b.headDim;
        this.numQueryHeads = b.numQueryHeads;
        this.numKeyValueHeads = b.numKeyValueHeads;
    }

    private static void requirePositive(String what, Integer v) {
        if (v == null || v <= 0) {
            throw new IllegalArgumentException("GroupQueryAttention: " + what + " must be a positive integer, but is "
                    + v);
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Keras {@code GroupedQueryAttention.from_config}; unknown keys are an error naming them. */
    public static GroupQueryAttention fromConfig(Map<String, ?> config) {
        String l = "GroupQueryAttention";
        Objects.requireNonNull(config, "GroupQueryAttention.fromConfig: config must not be null");
        Configs.rejectUnknown(l, config, CONFIG_KEYS);
        Configs.checkDtype(l, config);
        return builder().readCommonConfig(l, config)
                .headDim(Configs.intOrNull(l, config, "head_dim"))
                .numQueryHeads(Configs.intOrNull(l, config, "num_query_heads"))
                .numKeyValueHeads(Configs.intOrNull(l, config, "num_key_value_heads"))
                .build();
    }

    public int headDim() {
        return headDim;
    }

    public int numQueryHeads() {
        return numQueryHeads;
    }

    public int numKeyValueHeads() {
        return numKeyValueHeads;
    }

    @Override
    int queryHeads() {
        return numQueryHeads;
    }

    @Override
    int keyValueHeads() {
        return numKeyValueHeads;
    }

    @Override
    int keySize() {
        return headDim;
    }

    @Override
    int valueSize() {
        return headDim;
    }

    @Override
    long[] outputFeatures(long queryFeatures) {
        return new long[] {queryFeatures};
    }

    @Override
    boolean floatMaskGreaterThanHalf(boolean fastPath, boolean autoMasks) {
        // Keras GQA casts the attention mask only when it merges it with another mask
        // or hands it to dot_product_attention; alone on the einsum path it reaches
        // Softmax as floats, which keeps mask > 0.5.
        return !fastPath && !autoMasks;
    }

    @Override
    int[] attentionAxes(String action, int rank) {
        if (rank != 3) {
            throw new IllegalArgumentException(action + ": GroupQueryAttention takes 3-D inputs (batch, length, "
                    + "features), as Keras's equations do, but got rank " + rank);
        }
        return new int[] {1};
    }

    @Override
    List<WeightSpec> weightSpecs(long[] q, long[] v, long[] k) {
        long[] key = k == null ? v : k;
        return projectionSpecs(q[q.length - 1], key[key.length - 1], v[v.length - 1]);
    }

    @Override
    public Map<String, Object> getConfig() {
        Map<String, Object> c = Configs.base(this);
        c.put("head_dim", headDim);
        c.put("num_query_heads", numQueryHeads);
        c.put("num_key_value_heads", numKeyValueHeads);
        c.put("use_bias", useBias);
        c.put("use_gate", useGate);
        c.put("sliding_window", slidingWindow);
        c.put("dropout", dropout);
        putCommonConfig(c);
        return c;
    }

    @Override
    public String toString() {
        return "GroupQueryAttention[name=" + name() + ", headDim=" + headDim + ", numQueryHeads=" + numQueryHeads
                + ", numKeyValueHeads=" + numKeyValueHeads + ", built=" + isBuilt() + "]";
    }

    /** Keras's constructor arguments. */
    public static final class Builder extends ProjectionLayerBuilder<Builder> {
        private Integer headDim;
        private Integer numQueryHeads;
        private Integer numKeyValueHeads;

        private Builder() {}

        @Override
        Builder self() {
            return this;
        }

        public Builder headDim(Integer headDim) {
            this.headDim = headDim;
            return this;
        }

        public Builder numQueryHeads(Integer numQueryHeads) {
            this.numQueryHeads = numQueryHeads;
            return this;
        }

        public Builder numKeyValueHeads(Integer numKeyValueHeads) {
            this.numKeyValueHeads = numKeyValueHeads;
            return this;
        }

        @Override
        public GroupQueryAttention build() {
            return new GroupQueryAttention(this);
        }
    }
}
