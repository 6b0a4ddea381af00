package dev.attn4j.conformance;

import java.util.List;
import java.util.Map;

/**
 * One Keras golden case, as written in the golden case files (see the project README):
 * a layer class and config, its weights, inputs, masks and call arguments, and what Keras
 * returned. Arrays are row-major.
 *
 * @param source           the file the case came from
 * @param id               the case id (only for reporting)
 * @param className        the Keras class name, e.g. "Attention"
 * @param config           the layer's {@code get_config()} after build
 * @param buildInputShapes the shapes the layer was built with, as in the file
 * @param weights          the weights in {@code layer.weights} order
 * @param inputs           query, value and optionally key, by name
 * @param masks            masks by name (query_mask, value_mask, key_mask, attention_mask)
 * @param callKwargs       call arguments such as return_attention_scores
 * @param expected         expected arrays by name (output, attention_scores)
 */
public record GoldenCase(String source, String id, String className, Map<String, Object> config,
                         Object buildInputShapes, List<Array> weights, Map<String, Array> inputs,
                         Map<String, Array> masks, Map<String, Object> callKwargs, Map<String, Array> expected) {

    /**
     * An array of the case: shape, dtype ("float32" or "bool"), values, and for inputs the
     * name of another input it is the very same tensor as (self-attention).
     */
    public record Array(String name, long[] shape, String dtype, float[] floats, boolean[] bools,
                        String sameTensorAs) {}
}
