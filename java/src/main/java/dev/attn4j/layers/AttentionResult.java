package dev.attn4j.layers;

import dev.attn4j.Tensor;

/**
 * What an attention layer call returns: the output and, when asked for
 * ({@link CallArgs#withReturnAttentionScores}), the attention scores, both in the
 * arena the caller passed.
 *
 * @param output          the attention output
 * @param attentionScores the attention weights as Keras returns them, or null
 */
public record AttentionResult(Tensor output, Tensor attentionScores) {}
