package dev.attn4j;

/**
 * How masked attention logits are treated before the softmax. Keras uses three
 * conventions; they agree on rows with at least one kept position and differ on
 * fully masked rows, so each layer names the one it reproduces.
 */
public enum MaskConvention {
    /**
     * {@code keras.layers.Attention} and {@code AdditiveAttention}: a masked logit
     * becomes {@code s - 1e9}, computed in float32. A fully masked row of small logits
     * becomes uniform; large logits (|s| above about 32) keep float32 rounding
     * differences, exactly as Keras does.
     */
    SUBTRACT,
    /**
     * {@code keras.layers.Softmax} (the multi-head layers' einsum path): a masked logit
     * is replaced by {@code -1e9} and its probability is set to 0 after the softmax
     * ({@code where(mask, p, 0)}, also in a row made NaN by a kept NaN). A fully masked
     * row is all zeros.
     */
    REPLACE_THEN_ZERO,
    /**
     * {@code keras.ops.dot_product_attention} (the multi-head layers' fused path): a
     * masked logit is replaced by {@code -0.7 * Float.MAX_VALUE}; no zeroing. A fully
     * masked row is uniform.
     */
    REPLACE
}
