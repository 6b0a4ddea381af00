package dev.attn4j.layers;

import dev.attn4j.Tensor;

/**
 * What an attention layer call returns: the output and, when asked for
 * ({@link CallArgs#withReturnAttentionScores}), the attention scores, both in the
 * arena the caller passed.
 *
 * @param output                     the attention output
 * @param attentionScores            the attention weights as Keras returns them, or null
 * @param activityRegularizationLoss the penalty of the layer's activity regularizer on
 *                                   this call's activations, as Keras adds to
 *                                   {@code layer.losses} (0 without one)
 */
public record AttentionResult(Tensor output, Tensor attentionScores, double activityRegularizationLoss) {

    /** A result without activity regularization. */
    public AttentionResult(Tensor output, Tensor attentionScores) {
        this(output, attentionScores, 0);
    }
}
