package dev.attn4j.layers;

import java.util.List;
import java.util.Map;
import java.util.Objects;

/** Creates attention layers from Keras class names and {@code get_config()} dictionaries. */
public final class Layers {
    /** The Keras class names attn4j can build. */
    public static final List<String> SUPPORTED = List.of("Attention", "AdditiveAttention", "MultiHeadAttention",
            "GroupQueryAttention", "GroupedQueryAttention");

    private Layers() {}

    /**
     * The layer Keras would build from {@code from_config(config)} for this class name.
     *
     * @throws IllegalArgumentException for a class attn4j does not implement, or a bad config
     */
    public static AttentionLayer fromConfig(String className, Map<String, ?> config) {
        Objects.requireNonNull(className, "Layers.fromConfig: className must not be null");
        return switch (className) {
            case "Attention" -> Attention.fromConfig(config);
            case "AdditiveAttention" -> AdditiveAttention.fromConfig(config);
            case "MultiHeadAttention" -> MultiHeadAttention.fromConfig(config);
            // Keras exports the class GroupedQueryAttention under both names.
            case "GroupQueryAttention", "GroupedQueryAttention" -> GroupQueryAttention.fromConfig(config);
            default -> throw new IllegalArgumentException("Layers.fromConfig: unsupported layer class '" + className
                    + "'; supported: " + SUPPORTED);
        };
    }
}
