package dev.attn4j.layers;

import dev.attn4j.Tensor;
import java.util.List;

/**
 * The gradients of a scalar loss L with respect to an attention layer call's inputs and
 * the layer's weights, given dL/d(output) ({@link AttentionLayer#backward}); tensors in
 * the arena the caller passed.
 *
 * <p>{@link #query()}, {@link #value()} and {@link #key()} have the shapes of the call's
 * query, value and key. Without a key the value serves as key, and {@link #value()}
 * holds both contributions ({@link #key()} is then null). When one tensor is passed as
 * several arguments (self-attention: query and value), each argument's gradient is
 * reported on its own; that tensor's total gradient, as an autodiff framework would
 * report it, is their sum. {@link #weights()} follows {@link AttentionLayer#weights()}:
 * same order, names, paths and shapes, each entry holding that weight's gradient.
 *
 * <p>What is differentiated is the layer's output; the activity regularizer's loss
 * ({@link AttentionResult#activityRegularizationLoss()}) and the weight regularizers'
 * penalties are separate loss terms and are not included.
 */
public final class Gradients {
    private final Tensor query;
    private final Tensor value;
    private final Tensor key;
    private final List<Weight> weights;

    Gradients(Tensor query, Tensor value, Tensor key, List<Weight> weights) {
        this.query = query;
        this.value = value;
        this.key = key;
        this.weights = List.copyOf(weights);
    }

    /** dL/d(query). */
    public Tensor query() {
        return query;
    }

    /** dL/d(value) (and, without a key argument, the key's share too). */
    public Tensor value() {
        return value;
    }

    /** dL/d(key), or null when the call had no key argument. */
    public Tensor key() {
        return key;
    }

    /** dL/d(weight) for every weight, in Keras order ({@link Weight#value()}: a read-only view of the gradient). */
    public List<Weight> weights() {
        return weights;
    }

    /**
     * The gradient of the weight with this Keras path ("mha/query/kernel") or, when the
     * name is unique among the layer's weights, this name ("scale").
     *
     * @throws IllegalArgumentException when no weight (or more than one) matches
     */
    public Tensor weight(String pathOrName) {
        Weight found = null;
        int byName = 0;
        Weight named = null;
        for (Weight w : weights) {
            if (w.path().equals(pathOrName)) {
                found = w;
            }
            if (w.name().equals(pathOrName)) {
                byName++;
                named = w;
            }
        }
        if (found == null && byName == 1) {
            found = named;
        }
        if (found == null) {
            throw new IllegalArgumentException("Gradients.weight: no single weight has the path or name \""
                    + pathOrName + "\"; the weights are " + weights);
        }
        return found.storage(); // the caller's own memory: writable (e.g. for clipping)
    }
}
