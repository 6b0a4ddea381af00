package dev.attn4j.layers;

import dev.attn4j.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One weight of a layer, as Keras names it: {@link #name()} is the variable name
 * ({@code "scale"}), {@link #path()} the Keras path ({@code "attention/scale"}),
 * {@link #shape()} its shape ({@code []} for a scalar). The values live in the layer's
 * off-heap memory; {@link #value()} is a read-only view, {@link #toFloatArray()} a copy.
 * Change them through {@link AttentionLayer#setWeights}.
 */
public final class Weight {
    private final String name;
    private final String path;
    private final long[] shape;
    private final Tensor value;

    Weight(String name, String path, long[] shape, MemorySegment storage) {
        this.name = name;
        this.path = path;
        this.shape = shape.clone();
        this.value = Tensor.wrap(storage, shape);
    }

    public String name() {
        return name;
    }

    public String path() {
        return path;
    }

    /** A copy of the shape. */
    public long[] shape() {
        return shape.clone();
    }

    /** Number of elements (1 for a scalar). */
    public long size() {
        return value.size();
    }

    /** A read-only view of the values (valid until the layer is closed). */
    public Tensor value() {
        return Tensor.wrap(value.segment().asReadOnly(), shape);
    }

    /** A copy of the values in row-major order. */
    public float[] toFloatArray() {
        return value.toFloatArray();
    }

    /** The writable storage, for the owning layer. */
    Tensor storage() {
        return value;
    }

    @Override
    public String toString() {
        return path + " " + Arrays.toString(shape);
    }
}
