package dev.attn4j.layers;

import dev.attn4j.internal.backend.Backend;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Keras 3.15 {@code keras.layers.AdditiveAttention}: Bahdanau-style single-head
 * attention, {@code s[i, j] = sum_d scale_d * tanh(q[i, d] + k[j, d])}.
 *
 * <p>Dimensions: B... leading (batch) axes; Tq query length; Tv value (and key) length;
 * D query and key features; Dv value features.
 *
 * <p>Arguments (Keras names in parentheses), all optional:
 * <ul>
 *   <li>{@code useScale} ({@code use_scale}, true): learn the vector weight {@code scale}
 *       of shape (D); without it every scale_d is 1;
 *   <li>{@code dropout} ({@code dropout}, 0): rate in [0, 1) applied to the attention
 *       weights in training;
 *   <li>{@code seed} ({@code seed}, null): seed of the dropout draws and of the initial
 *       {@code scale};
 *   <li>{@code name}, {@code trainable}: as every Keras layer; {@code dtype}: only the
 *       float32 policy (any other is an error in {@link #fromConfig}).
 * </ul>
 * Weights: {@code scale} (shape (D), only with useScale), initialised like Keras's
 * glorot_uniform: uniform in [-sqrt(3 / D), sqrt(3 / D)] (the same distribution; not
 * the same random bits as Keras, so load trained values with {@link #setWeights}).
 *
 * <p>Call, masks, dropout and the exact Keras 3.15.1 semantics: as {@link Attention}
 * (value mask and causal mask: {@code s - 1e9} in float32; query mask zeroes output
 * rows only; returned scores post-dropout). The config has no score mode.
 */
public final class AdditiveAttention extends SingleHeadAttention {
    private static final Set<String> CONFIG_KEYS = Set.of("name", "trainable", "dtype", "use_scale", "dropout", "seed");

    private final boolean useScale;

    private AdditiveAttention(Builder b) {
        super(b.name != null ? b.name : Names.unique("additive_attention"), b.trainable, b.seed,
                checkDropout("AdditiveAttention", b.dropout));
        this.useScale = b.useScale;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** An AdditiveAttention with Keras's defaults (learned scale, no dropout). */
    public static AdditiveAttention create() {
        return builder().build();
    }

    /** Keras {@code AdditiveAttention.from_config}; unknown keys are an error naming them. */
    public static AdditiveAttention fromConfig(Map<String, ?> config) {
        String l = "AdditiveAttention";
        Objects.requireNonNull(config, "AdditiveAttention.fromConfig: config must not be null");
        Configs.rejectUnknown(l, config, CONFIG_KEYS);
        Configs.checkDtype(l, config);
        return builder()
                .name(Configs.string(l, config, "name", null))
                .trainable(Configs.bool(l, config, "trainable", true))
                .useScale(Configs.bool(l, config, "use_scale", true))
                .dropout(Configs.number(l, config, "dropout", 0))
                .seed(Configs.integerOrNull(l, config, "seed"))
                .build();
    }

    public boolean useScale() {
        return useScale;
    }

    @Override
    public Map<String, Object> getConfig() {
        Map<String, Object> c = Configs.base(this);
        c.put("use_scale", useScale);
        c.put("dropout", dropout());
        c.put("seed", seed());
        return c;
    }

    @Override
    List<WeightSpec> weightSpecs(long[] q, long[] v, long[] k) {
        if (!useScale) {
            return List.of();
        }
        int dim = (int) q[q.length - 1];
        float limit = (float) Math.sqrt(3.0 / dim); // glorot_uniform, fan_in = fan_out = D
        SplittableRandom random = new SplittableRandom(effectiveSeed());
        float[] initial = new float[dim];
        for (int i = 0; i < dim; i++) {
            initial[i] = (float) random.nextDouble(-limit, limit);
        }
        return List.of(new WeightSpec("scale", new long[] {dim}, initial));
    }

    @Override
    void checkBuiltShapes(String action, long[][] built, long[] q, long[] v, long[] k) {
        long builtDim = built[0][built[0].length - 1];
        long dim = q[q.length - 1];
        if (useScale && dim != builtDim) {
            throw new IllegalArgumentException(action + ": layer '" + name() + "' was built for query features D = "
                    + builtDim + " (its scale has that shape), but the query has D = " + dim);
        }
    }

    @Override
    float scores(Backend backend, MemorySegment q, MemorySegment k, MemorySegment scores,
                 int batch, int tq, int tv, int dim) {
        MemorySegment weights = useScale ? weight(0).storage().segment() : MemorySegment.NULL;
        backend.tanhScores(q, k, scores, batch, tq, tv, dim, weights, 1f, 1f);
        return 1f;
    }

    @Override
    void scoresBackward(Backend backend, MemorySegment q, MemorySegment k, MemorySegment dLogits,
                        MemorySegment dq, MemorySegment dk, MemorySegment dScalars,
                        List<dev.attn4j.Tensor> dWeights,
                        int batch, int tq, int tv, int dim) {
        MemorySegment weights = useScale ? weight(0).storage().segment() : MemorySegment.NULL;
        MemorySegment dScale = useScale ? dWeights.get(0).segment() : MemorySegment.NULL;
        backend.tanhScoresBackward(q, k, dLogits, dq, dk, dScale, MemorySegment.NULL, batch, tq, tv, dim, weights,
                1f, 1f);
    }

    @Override
    public String toString() {
        return "AdditiveAttention[name=" + name() + ", useScale=" + useScale + ", dropout=" + dropout() + ", built="
                + isBuilt() + "]";
    }

    /** Keras's constructor arguments. */
    public static final class Builder extends LayerBuilder<Builder> {
        private boolean useScale = true;

        private Builder() {}

        @Override
        Builder self() {
            return this;
        }

        public Builder useScale(boolean useScale) {
            this.useScale = useScale;
            return this;
        }

        @Override
        public AdditiveAttention build() {
            return new AdditiveAttention(this);
        }
    }
}
