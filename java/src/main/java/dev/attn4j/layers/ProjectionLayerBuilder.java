package dev.attn4j.layers;

import java.util.Map;

/**
 * The constructor arguments {@link MultiHeadAttention} and {@link GroupQueryAttention}
 * share: the projection sublayers' bias, initializers, regularizers and constraints,
 * the gate, the sliding window and flash attention.
 *
 * @param <B> the concrete builder, returned by every setter for chaining
 */
public abstract class ProjectionLayerBuilder<B extends ProjectionLayerBuilder<B>> extends LayerBuilder<B> {
    boolean useBias = true;
    Object kernelInitializer = "glorot_uniform";
    Object biasInitializer = "zeros";
    Object kernelRegularizer;
    Object biasRegularizer;
    Object activityRegularizer;
    Object kernelConstraint;
    Object biasConstraint;
    boolean useGate;
    Integer slidingWindow;
    boolean flashAttention;

    ProjectionLayerBuilder() {}

    public B useBias(boolean useBias) {
        this.useBias = useBias;
        return self();
    }

    /** A Keras initializer name ("glorot_uniform"), its config dict, or an {@link Initializer}. */
    public B kernelInitializer(Object kernelInitializer) {
        this.kernelInitializer = kernelInitializer;
        return self();
    }

    /** A Keras initializer name ("zeros"), its config dict, or an {@link Initializer}. */
    public B biasInitializer(Object biasInitializer) {
        this.biasInitializer = biasInitializer;
        return self();
    }

    /** A Keras regularizer name ("l2"), its config dict, a {@link Regularizer}, or null. */
    public B kernelRegularizer(Object kernelRegularizer) {
        this.kernelRegularizer = kernelRegularizer;
        return self();
    }

    public B biasRegularizer(Object biasRegularizer) {
        this.biasRegularizer = biasRegularizer;
        return self();
    }

    /** Regularizes the sublayers' activations; see {@link AttentionResult#activityRegularizationLoss()}. */
    public B activityRegularizer(Object activityRegularizer) {
        this.activityRegularizer = activityRegularizer;
        return self();
    }

    /** A Keras constraint name ("max_norm"), its config dict, a {@link Constraint}, or null. */
    public B kernelConstraint(Object kernelConstraint) {
        this.kernelConstraint = kernelConstraint;
        return self();
    }

    public B biasConstraint(Object biasConstraint) {
        this.biasConstraint = biasConstraint;
        return self();
    }

    /** A sigmoid gate (its own projection of the query) multiplies the attention output. */
    public B useGate(boolean useGate) {
        this.useGate = useGate;
        return self();
    }

    /** Keys within {@code slidingWindow - 1} positions of each query (|i - j| < window), or null. */
    public B slidingWindow(Integer slidingWindow) {
        this.slidingWindow = slidingWindow;
        return self();
    }

    /** Accepted and computed on the fused path; excludes dropout and returned scores, as in Keras. */
    public B flashAttention(boolean flashAttention) {
        this.flashAttention = flashAttention;
        return self();
    }

    /** Reads the Keras config entries both multi-head layers share. */
    B readCommonConfig(String layer, Map<String, ?> config) {
        return name(Configs.string(layer, config, "name", null))
                .trainable(Configs.bool(layer, config, "trainable", true))
                .dropout(Configs.number(layer, config, "dropout", 0))
                .useBias(Configs.bool(layer, config, "use_bias", true))
                .useGate(Configs.bool(layer, config, "use_gate", false))
                .slidingWindow(Configs.intOrNull(layer, config, "sliding_window"))
                .flashAttention(Configs.bool(layer, config, "flash_attention", false))
                .kernelInitializer(config.get("kernel_initializer"))
                .biasInitializer(config.get("bias_initializer"))
                .kernelRegularizer(config.get("kernel_regularizer"))
                .biasRegularizer(config.get("bias_regularizer"))
                .activityRegularizer(config.get("activity_regularizer"))
                .kernelConstraint(config.get("kernel_constraint"))
                .biasConstraint(config.get("bias_constraint"))
                .seed(Configs.integerOrNull(layer, config, "seed"));
    }
}
