package dev.attn4j.layers;

/**
 * The constructor arguments every attention layer takes (Keras's base-layer arguments
 * plus dropout and seed); each layer's {@code Builder} adds its own.
 *
 * @param <B> the concrete builder, returned by every setter for chaining
 */
public abstract class LayerBuilder<B extends LayerBuilder<B>> {
    String name;
    boolean trainable = true;
    Long seed;
    double dropout;

    LayerBuilder() {}

    abstract B self();

    /** Layer name; null for Keras's default (the snake_case class name, then _1, _2, ...). */
    public B name(String name) {
        this.name = name;
        return self();
    }

    /** Keras's {@code trainable} flag, kept for the config (attn4j does not train). */
    public B trainable(boolean trainable) {
        this.trainable = trainable;
        return self();
    }

    /** Seed of the dropout draws and the initial weights, or null for a random one. */
    public B seed(Long seed) {
        this.seed = seed;
        return self();
    }

    /** Dropout rate on the attention weights in training, in [0, 1). */
    public B dropout(double dropout) {
        this.dropout = dropout;
        return self();
    }

    /** @throws IllegalArgumentException naming the argument when one is out of range */
    public abstract AttentionLayer build();
}
