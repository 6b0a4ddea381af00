package dev.attn4j.layers;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
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

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The layer's Keras {@code get_config()} as a JSON object, as Keras writes it into config.json. */
    public static String toConfigJson(AttentionLayer layer) {
        Objects.requireNonNull(layer, "Layers.toConfigJson: layer must not be null");
        try {
            return JSON.writeValueAsString(layer.getConfig());
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("Layers.toConfigJson: cannot write the config of " + layer, e);
        }
    }

    /**
     * The layer Keras would build from a {@code get_config()} JSON object for this class
     * name (e.g. a layer's {@code "config"} in a .keras file's config.json).
     *
     * @throws IllegalArgumentException for malformed JSON, an unsupported class or a bad config
     */
    @SuppressWarnings("unchecked")
    public static AttentionLayer fromConfigJson(String className, String json) {
        Objects.requireNonNull(json, "Layers.fromConfigJson: json must not be null");
        Object config;
        try {
            config = JSON.readValue(json, Object.class);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("Layers.fromConfigJson: not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (!(config instanceof Map<?, ?>)) {
            throw new IllegalArgumentException("Layers.fromConfigJson: expected a JSON object, got " + json);
        }
        return fromConfig(className, (Map<String, ?>) config);
    }
}
