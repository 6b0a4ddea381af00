package dev.attn4j.layers;

import dev.attn4j.Tensor;

/**
 * A forward call that kept what its backward pass needs ({@link AttentionLayer#forward}):
 * the call's arguments, its result and, in the arena the caller passed, the layer's
 * saved activations (the multi-head layers' projections and attention output, the
 * softmax statistics of the fused path) and the dropout stream of a training call, so
 * that {@link AttentionLayer#backward} reproduces the same dropout mask.
 *
 * <p>The saved activations live in the caller's arena: close it only after the backward
 * pass. The input tensors are referenced, not copied: they must hold the same values
 * (and stay alive) until then. Immutable; a backward pass may run on any thread that
 * may use those arenas (a confined arena is its owner thread's only: use a shared one to
 * run the backward pass elsewhere), and several backward passes over one forward pass
 * (e.g. for several output gradients, from several threads) are allowed.
 */
public final class ForwardPass {
    private final AttentionLayer layer;
    private final CallArgs args;
    private final AttentionResult result;
    private final Object plan;
    private final Object saved;
    private final long weightsVersion;

    ForwardPass(AttentionLayer layer, CallArgs args, AttentionResult result, Object plan, Object saved,
                long weightsVersion) {
        this.layer = layer;
        this.args = args;
        this.result = result;
        this.plan = plan;
        this.saved = saved;
        this.weightsVersion = weightsVersion;
    }

    /** The layer that made this forward pass; only it can run the backward pass. */
    public AttentionLayer layer() {
        return layer;
    }

    /** The call's arguments (inputs, masks, flags) as given. */
    public CallArgs args() {
        return args;
    }

    /** Output, attention scores and activity loss, as {@link AttentionLayer#call} returns them. */
    public AttentionResult result() {
        return result;
    }

    public Tensor output() {
        return result.output();
    }

    /** The attention scores, or null when the call did not ask for them. */
    public Tensor attentionScores() {
        return result.attentionScores();
    }

    Object plan() {
        return plan;
    }

    Object saved() {
        return saved;
    }

    long weightsVersion() {
        return weightsVersion;
    }
}
