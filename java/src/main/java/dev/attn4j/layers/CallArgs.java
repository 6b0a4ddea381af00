package dev.attn4j.layers;

import dev.attn4j.Tensor;
import java.util.Objects;

/**
 * The inputs and call options of an attention layer call, in Keras terms. Immutable:
 * each {@code withX} returns a copy, so one instance may be shared between threads.
 *
 * <pre>{@code
 * CallArgs args = CallArgs.of(query, value)
 *         .withKey(key)                       // optional; value is used when absent
 *         .withValueMask(valueMask)           // (batch..., Tv) bool
 *         .withUseCausalMask(true)
 *         .withReturnAttentionScores(true);
 * }</pre>
 *
 * <p>Which masks a layer takes is documented on the layer: {@link Attention} and
 * {@link AdditiveAttention} take {@code queryMask} and {@code valueMask}; the
 * multi-head layers also {@code keyMask} and {@code attentionMask}. A mask a layer does
 * not take is an {@link IllegalArgumentException}, never silently ignored.
 */
public final class CallArgs {
    private final Tensor query;
    private final Tensor value;
    private final Tensor key;
    private final Tensor queryMask;
    private final Tensor valueMask;
    private final Tensor keyMask;
    private final Tensor attentionMask;
    private final boolean training;
    private final boolean returnAttentionScores;
    private final boolean useCausalMask;

    private CallArgs(Tensor query, Tensor value, Tensor key, Tensor queryMask, Tensor valueMask, Tensor keyMask,
                     Tensor attentionMask, boolean training, boolean returnAttentionScores, boolean useCausalMask) {
        this.query = query;
        this.value = value;
        this.key = key;
        this.queryMask = queryMask;
        this.valueMask = valueMask;
        this.keyMask = keyMask;
        this.attentionMask = attentionMask;
        this.training = training;
        this.returnAttentionScores = returnAttentionScores;
        this.useCausalMask = useCausalMask;
    }

    /** Query and value; for self-attention pass the same tensor twice. */
    public static CallArgs of(Tensor query, Tensor value) {
        Objects.requireNonNull(query, "CallArgs.of: query must not be null");
        Objects.requireNonNull(value, "CallArgs.of: value must not be null");
        return new CallArgs(query, value, null, null, null, null, null, false, false, false);
    }

    public CallArgs withKey(Tensor key) {
        return new CallArgs(query, value, key, queryMask, valueMask, keyMask, attentionMask, training,
                returnAttentionScores, useCausalMask);
    }

    /** (batch..., Tq) bool: which query positions are real (Keras: the mask on the query tensor). */
    public CallArgs withQueryMask(Tensor queryMask) {
        return new CallArgs(query, value, key, queryMask, valueMask, keyMask, attentionMask, training,
                returnAttentionScores, useCausalMask);
    }

    /** (batch..., Tv) bool: which value (and key) positions may be attended to. */
    public CallArgs withValueMask(Tensor valueMask) {
        return new CallArgs(query, value, key, queryMask, valueMask, keyMask, attentionMask, training,
                returnAttentionScores, useCausalMask);
    }

    /** (batch..., Tv) bool key padding mask (multi-head layers). */
    public CallArgs withKeyMask(Tensor keyMask) {
        return new CallArgs(query, value, key, queryMask, valueMask, keyMask, attentionMask, training,
                returnAttentionScores, useCausalMask);
    }

    /** Explicit attention mask (multi-head layers). */
    public CallArgs withAttentionMask(Tensor attentionMask) {
        return new CallArgs(query, value, key, queryMask, valueMask, keyMask, attentionMask, training,
                returnAttentionScores, useCausalMask);
    }

    /** Training mode: dropout is applied (inference, the default, never drops). */
    public CallArgs withTraining(boolean training) {
        return new CallArgs(query, value, key, queryMask, valueMask, keyMask, attentionMask, training,
                returnAttentionScores, useCausalMask);
    }

    public CallArgs withReturnAttentionScores(boolean returnAttentionScores) {
        return new CallArgs(query, value, key, queryMask, valueMask, keyMask, attentionMask, training,
                returnAttentionScores, useCausalMask);
    }

    /** Each query position i attends only to key positions j <= i (top-left aligned). */
    public CallArgs withUseCausalMask(boolean useCausalMask) {
        return new CallArgs(query, value, key, queryMask, valueMask, keyMask, attentionMask, training,
                returnAttentionScores, useCausalMask);
    }

    public Tensor query() { return query; }
    public Tensor value() { return value; }
    /** The key, or null (then the value serves as key). */
    public Tensor key() { return key; }
    public Tensor queryMask() { return queryMask; }
    public Tensor valueMask() { return valueMask; }
    public Tensor keyMask() { return keyMask; }
    public Tensor attentionMask() { return attentionMask; }
    public boolean training() { return training; }
    public boolean returnAttentionScores() { return returnAttentionScores; }
    public boolean useCausalMask() { return useCausalMask; }
}
