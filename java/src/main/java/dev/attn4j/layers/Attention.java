package dev.attn4j.layers;

import dev.attn4j.internal.backend.Backend;
import dev.attn4j.internal.backend.GemmRoute;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Keras 3.15 {@code keras.layers.Attention}: Luong-style single-head attention.
 *
 * <p>Dimensions: B... leading (batch) axes, any number of them; Tq query length; Tv
 * value (and key) length; D query and key features; Dv value features.
 *
 * <p>Arguments (Keras names in parentheses), all optional:
 * <ul>
 *   <li>{@code useScale} ({@code use_scale}, false): learn a scalar weight {@code scale}
 *       that multiplies the scores (dot) or the tanh argument (concat);
 *   <li>{@code scoreMode} ({@code score_mode}, "dot"): "dot" gives
 *       {@code s = (q . k^T) * scale} (no 1/sqrt(D)); "concat" gives
 *       {@code s = concat_score_weight * sum_d tanh(scale * (q_i + k_j))} (additive,
 *       despite the name);
 *   <li>{@code dropout} ({@code dropout}, 0): rate in [0, 1) applied to the attention
 *       weights in training;
 *   <li>{@code seed} ({@code seed}, null): seed of the dropout draws;
 *   <li>{@code name}, {@code trainable}: as every Keras layer; {@code dtype}: only the
 *       float32 policy (any other is an error in {@link #fromConfig}).
 * </ul>
 * Weights, in Keras order: {@code scale} (shape (), initially 1, only with useScale),
 * {@code concat_score_weight} (shape (), initially 1, only in concat mode).
 *
 * <p>Call ({@link CallArgs}): query (B..., Tq, D), value (B..., Tv, Dv), optional key
 * (B..., Tv, D; the value is the key when absent, which then needs Dv = D);
 * {@code queryMask} (B..., Tq) and {@code valueMask} (B..., Tv) boolean; training;
 * returnAttentionScores; useCausalMask. Output (B..., Tq, Dv); scores (B..., Tq, Tv)
 * after masking, softmax and (training) dropout, as Keras returns them.
 *
 * <p>Semantics exactly as Keras 3.15.1: masked scores (value mask ANDed with the
 * top-left causal mask {@code j <= i}) become {@code s - 1e9} in float32, so a fully
 * masked row is uniform for small scores and follows float32 rounding for large ones;
 * the query mask multiplies output rows by 0 after attention and leaves the returned
 * scores as they are; training dropout scales kept weights by 1/(1 - rate) and the
 * returned scores are post-dropout. Thread safety and memory: see {@link AttentionLayer}.
 */
public final class Attention extends SingleHeadAttention {
    private static final Set<String> CONFIG_KEYS =
            Set.of("name", "trainable", "dtype", "use_scale", "score_mode", "dropout", "seed");

    private final boolean useScale;
    private final String scoreMode;

    private Attention(Builder b) {
        super(b.name != null ? b.name : Names.unique("attention"), b.trainable, b.seed,
                checkDropout("Attention", b.dropout));
        if (!"dot".equals(b.scoreMode) && !"concat".equals(b.scoreMode)) {
            throw new IllegalArgumentException("Attention: scoreMode must be one of {\"dot\", \"concat\"}, but is "
                    + (b.scoreMode == null ? "null" : "\"" + b.scoreMode + "\""));
        }
        this.useScale = b.useScale;
        this.scoreMode = b.scoreMode;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** An Attention with Keras's defaults (dot, no scale, no dropout). */
    public static Attention create() {
        return builder().build();
    }

    /** Keras {@code Attention.from_config}; unknown keys are an error naming them. */
    public static Attention fromConfig(Map<String, ?> config) {
        String l = "Attention";
        java.util.Objects.requireNonNull(config, "Attention.fromConfig: config must not be null");
        Configs.rejectUnknown(l, config, CONFIG_KEYS);
        Configs.checkDtype(l, config);
        return builder()
                .name(Configs.string(l, config, "name", null))
                .trainable(Configs.bool(l, config, "trainable", true))
                .useScale(Configs.bool(l, config, "use_scale", false))
                .scoreMode(Configs.string(l, config, "score_mode", "dot"))
                .dropout(Configs.number(l, config, "dropout", 0))
                .seed(Configs.integerOrNull(l, config, "seed"))
                .build();
    }

    public boolean useScale() {
        return useScale;
    }

    public String scoreMode() {
        return scoreMode;
    }

    @Override
    public Map<String, Object> getConfig() {
        Map<String, Object> c = Configs.base(this);
        c.put("use_scale", useScale);
        c.put("score_mode", scoreMode);
        c.put("dropout", dropout());
        c.put("seed", seed());
        return c;
    }

    @Override
    List<WeightSpec> weightSpecs(long[] q, long[] v, long[] k) {
        List<WeightSpec> specs = new ArrayList<>();
        if (useScale) {
            specs.add(new WeightSpec("scale", new long[0], new float[] {1f}));
        }
        if (scoreMode.equals("concat")) {
            specs.add(new WeightSpec("concat_score_weight", new long[0], new float[] {1f}));
        }
        return specs;
    }

    @Override
    void checkBuiltShapes(String action, long[][] built, long[] q, long[] v, long[] k) {
        // The weights are scalars: any shapes that fit together are fine.
    }

    @Override
    float scores(Backend backend, MemorySegment q, MemorySegment k, MemorySegment scores,
                 int batch, int tq, int tv, int dim) {
        float scale = useScale ? scalar(weight(0)) : 1f;
        if (scoreMode.equals("dot")) {
            backend.sgemmBatched(false, true, tq, tv, dim, 1f,
                    q, dim, (long) tq * dim, 0,
                    k, dim, (long) tv * dim, 0, 1,
                    0f, scores, tv, (long) tq * tv, 0,
                    batch, 1, GemmRoute.AUTO);
            return scale;
        }
        float weight = scalar(weight(useScale ? 1 : 0));
        backend.tanhScores(q, k, scores, batch, tq, tv, dim, MemorySegment.NULL, scale, weight);
        return 1f;
    }

    /**
     * dot: logits = scale (q . k), so with G = dLogits K, dq = scale G, dk = scale
     * dLogits^T q and dscale = sum(dLogits * (q . k)) = sum(q * G) (no (Tq, Tv) pass).
     * concat: the tanh kernel's backward, whose inner and outer factors are scale and
     * concat_score_weight.
     */
    @Override
    void scoresBackward(Backend backend, MemorySegment q, MemorySegment k, MemorySegment dLogits,
                        MemorySegment dq, MemorySegment dk, MemorySegment dScalars,
                        List<dev.attn4j.Tensor> dWeights,
                        int batch, int tq, int tv, int dim) {
        float scale = useScale ? scalar(weight(0)) : 1f;
        if (scoreMode.equals("dot")) {
            backend.sgemmBatched(false, false, tq, dim, tv, 1f,
                    dLogits, tv, (long) tq * tv, 0,
                    k, dim, (long) tv * dim, 0, 1,
                    0f, dq, dim, (long) tq * dim, 0,
                    batch, 1, GemmRoute.AUTO);
            backend.sgemmBatched(true, false, tv, dim, tq, scale,
                    dLogits, tv, (long) tq * tv, 0,
                    q, dim, (long) tq * dim, 0, 1,
                    0f, dk, dim, (long) tv * dim, 0,
                    batch, 1, GemmRoute.AUTO);
            long n = (long) batch * tq * dim;
            if (useScale) {
                double sum = 0;
                for (long i = 0; i < n; i++) {
                    sum += (double) q.getAtIndex(ValueLayout.JAVA_FLOAT, i) * dq.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                }
                dWeights.get(0).segment().set(ValueLayout.JAVA_FLOAT, 0, (float) sum);
            }
            if (scale != 1f) {
                for (long i = 0; i < n; i++) {
                    dq.setAtIndex(ValueLayout.JAVA_FLOAT, i, scale * dq.getAtIndex(ValueLayout.JAVA_FLOAT, i));
                }
            }
            return;
        }
        float weight = scalar(weight(useScale ? 1 : 0));
        backend.tanhScoresBackward(q, k, dLogits, dq, dk, MemorySegment.NULL, dScalars, batch, tq, tv, dim,
                MemorySegment.NULL, scale, weight);
        if (useScale) {
            dWeights.get(0).segment().set(ValueLayout.JAVA_FLOAT, 0, dScalars.getAtIndex(ValueLayout.JAVA_FLOAT, 0));
        }
        dWeights.get(useScale ? 1 : 0).segment().set(ValueLayout.JAVA_FLOAT, 0,
                dScalars.getAtIndex(ValueLayout.JAVA_FLOAT, 1));
    }

    @Override
    public String toString() {
        return "Attention[name=" + name() + ", useScale=" + useScale + ", scoreMode=" + scoreMode + ", dropout="
                + dropout() + ", built=" + isBuilt() + "]";
    }

    /** Keras's constructor arguments. */
    public static final class Builder extends LayerBuilder<Builder> {
        private boolean useScale;
        private String scoreMode = "dot";

        private Builder() {}

        @Override
        Builder self() {
            return this;
        }

        public Builder useScale(boolean useScale) {
            this.useScale = useScale;
            return this;
        }

        /** "dot" (default) or "concat". */
        public Builder scoreMode(String scoreMode) {
            this.scoreMode = scoreMode;
            return this;
        }

        @Override
        public Attention build() {
            return new Attention(this);
        }
    }
}
