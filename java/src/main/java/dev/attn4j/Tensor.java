package dev.attn4j;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * An off-heap, dense, row-major (C order) tensor: a {@link MemorySegment} and a
 * shape. Elements are {@link DType#FLOAT32} or {@link DType#BOOL} (one byte each).
 *
 * <p><b>Memory.</b> A tensor never owns its memory: the caller's {@link Arena} does.
 * Tensors made by {@code allocate}/{@code of} live in the arena passed in;
 * {@link #wrap} and {@link #wrapMask} use an existing native segment without
 * copying, for off-heap pipelines that already hold their data. Once the arena is
 * closed, every method that touches the data throws {@link IllegalStateException}.
 *
 * <p><b>Views.</b> {@link #slice(long)}, {@link #slice(long, long)} and
 * {@link #reshape} share memory with this tensor; writes through one are seen
 * through the other.
 *
 * <p><b>Threads.</b> A tensor is immutable apart from its data; concurrent reads are
 * safe, concurrent writes to the same elements are the caller's business (as with
 * any array). Access from threads other than the owner of a confined arena fails
 * as {@link MemorySegment} access does.
 */
public final class Tensor {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final MemorySegment segment;
    private final long[] shape;
    private final DType dtype;
    private final long size;

    private Tensor(MemorySegment segment, long[] shape, DType dtype, long size) {
        this.segment = segment;
        this.shape = shape;
        this.dtype = dtype;
        this.size = size;
    }

    // ---- creation ---------------------------------------------------------------------

    /** A zero-filled float32 tensor in {@code arena}. */
    public static Tensor allocate(Arena arena, long... shape) {
        return allocate("Tensor.allocate", arena, DType.FLOAT32, shape);
    }

    /** A float32 tensor in {@code arena} holding a copy of {@code data}. */
    public static Tensor of(Arena arena, float[] data, long... shape) {
        Objects.requireNonNull(data, "Tensor.of: data must not be null");
        requireLength("Tensor.of", data.length, shape); // before allocating: a wrong shape costs no memory
        Tensor t = allocate("Tensor.of", arena, DType.FLOAT32, shape);
        MemorySegment.copy(data, 0, t.segment, ValueLayout.JAVA_FLOAT, 0, data.length);
        return t;
    }

    /** An all-false boolean mask in {@code arena}. */
    public static Tensor allocateMask(Arena arena, long... shape) {
        return allocate("Tensor.allocateMask", arena, DType.BOOL, shape);
    }

    /** A boolean mask in {@code arena} holding a copy of {@code data}. */
    public static Tensor ofMask(Arena arena, boolean[] data, long... shape) {
        Objects.requireNonNull(data, "Tensor.ofMask: data must not be null");
        requireLength("Tensor.ofMask", data.length, shape);
        Tensor t = allocate("Tensor.ofMask", arena, DType.BOOL, shape);
        for (int i = 0; i < data.length; i++) {
            t.segment.set(ValueLayout.JAVA_BYTE, i, data[i] ? (byte) 1 : (byte) 0);
        }
        return t;
    }

    /**
     * A float32 tensor over the first {@code product(shape) * 4} bytes of an existing
     * native segment, without copying. The segment must be native (off-heap), alive,
     * 4-byte aligned and large enough.
     */
    public static Tensor wrap(MemorySegment segment, long... shape) {
        return wrap("Tensor.wrap", segment, DType.FLOAT32, shape);
    }

    /** A boolean mask (one byte per element, non-zero = true) over an existing native segment, without copying. */
    public static Tensor wrapMask(MemorySegment segment, long... shape) {
        return wrap("Tensor.wrapMask", segment, DType.BOOL, shape);
    }

    private static Tensor allocate(String action, Arena arena, DType dtype, long[] shape) {
        Objects.requireNonNull(arena, () -> action + ": arena must not be null");
        long[] s = checkShape(action, shape);
        long n = elementCount(action, s);
        long bytes = bytes(action, n, dtype);
        MemorySegment segment;
        try {
            segment = arena.allocate(bytes, 64);
        } catch (IllegalStateException e) {
            throw new IllegalStateException(action + ": the arena is closed (" + e.getMessage() + ")", e);
        }
        return new Tensor(segment, s, dtype, n);
    }

    private static Tensor wrap(String action, MemorySegment segment, DType dtype, long[] shape) {
        Objects.requireNonNull(segment, () -> action + ": segment must not be null");
        long[] s = checkShape(action, shape);
        long n = elementCount(action, s);
        long bytes = bytes(action, n, dtype);
        if (!segment.isNative()) {
            throw new IllegalArgumentException(action + ": segment must be native (off-heap), but is a heap segment; "
                    + "copy heap arrays with Tensor.of instead");
        }
        if (!segment.scope().isAlive()) {
            throw new IllegalStateException(action + ": segment's arena is already closed");
        }
        if (segment.address() % dtype.byteSize() != 0) {
            throw new IllegalArgumentException(action + ": segment must be aligned to " + dtype.byteSize()
                    + " bytes for " + dtype + ", but its address is 0x" + Long.toHexString(segment.address()));
        }
        if (segment.byteSize() < bytes) {
            throw new IllegalArgumentException(action + ": segment too small for shape " + Arrays.toString(s)
                    + " of " + dtype + ": needs " + bytes + " bytes, has " + segment.byteSize());
        }
        return new Tensor(segment.asSlice(0, bytes), s, dtype, n);
    }

    private static long[] checkShape(String action, long[] shape) {
        Objects.requireNonNull(shape, () -> action + ": shape must not be null");
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                throw new IllegalArgumentException(action + ": shape must have dimensions >= 0, but "
                        + Arrays.toString(shape) + " has " + shape[i] + " at axis " + i);
            }
        }
        return shape.clone();
    }

    private static long elementCount(String action, long[] shape) {
        long n = 1;
        for (long d : shape) {
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException(action + ": shape " + Arrays.toString(shape)
                        + " has more elements than a long can count", e);
            }
        }
        return n;
    }

    private static long bytes(String action, long n, DType dtype) {
        try {
            return Math.multiplyExact(n, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(action + ": " + n + " elements of " + dtype + " overflow a byte count", e);
        }
    }

    private static void requireLength(String action, int length, long[] shape) {
        long[] s = checkShape(action, shape);
        long n = elementCount(action, s);
        if (length != n) {
            throw new IllegalArgumentException(action + ": data has " + length + " elements, but shape "
                    + Arrays.toString(s) + " needs " + n);
        }
    }

    private static void requireLength(String action, int length, Tensor t) {
        if (length != t.size) {
            throw new IllegalArgumentException(action + ": data has " + length + " elements, but shape "
                    + Arrays.toString(t.shape) + " needs " + t.size);
        }
    }

    // ---- properties -------------------------------------------------------------------

    /** The segment holding exactly this tensor's bytes (a view; do not close anything through it). */
    public MemorySegment segment() {
        return segment;
    }

    public DType dtype() {
        return dtype;
    }

    /** A copy of the shape. */
    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** The size of {@code axis}; negative axes count from the end, as in Keras. */
    public long dim(int axis) {
        int a = axis < 0 ? axis + shape.length : axis;
        if (a < 0 || a >= shape.length) {
            throw new IndexOutOfBoundsException("dim: axis must be in [" + -shape.length + ", " + shape.length
                    + "), but is " + axis + " for shape " + Arrays.toString(shape));
        }
        return shape[a];
    }

    /** The number of elements. */
    public long size() {
        return size;
    }

    /** True while the arena behind this tensor is open. */
    public boolean isAlive() {
        return segment.scope().isAlive();
    }

    /** Throws {@link IllegalStateException} naming {@code action} if the arena is closed. */
    void checkAlive(String action) {
        if (!segment.scope().isAlive()) {
            throw new IllegalStateException(action + ": the arena of " + this + " is closed");
        }
    }

    // ---- data -------------------------------------------------------------------------

    /** A copy of the elements as floats (float32 tensors only). */
    public float[] toFloatArray() {
        requireType("toFloatArray", DType.FLOAT32);
        checkAlive("toFloatArray");
        requireArraySize("toFloatArray");
        float[] out = new float[(int) size];
        MemorySegment.copy(segment, ValueLayout.JAVA_FLOAT, 0, out, 0, out.length);
        return out;
    }

    /** A copy of the elements as booleans (boolean masks only). */
    public boolean[] toBooleanArray() {
        requireType("toBooleanArray", DType.BOOL);
        checkAlive("toBooleanArray");
        requireArraySize("toBooleanArray");
        boolean[] out = new boolean[(int) size];
        for (int i = 0; i < out.length; i++) {
            out[i] = segment.get(ValueLayout.JAVA_BYTE, i) != 0;
        }
        return out;
    }

    /** Copies {@code data} into this float32 tensor. */
    public void copyFrom(float[] data) {
        Objects.requireNonNull(data, "copyFrom: data must not be null");
        requireType("copyFrom", DType.FLOAT32);
        checkAlive("copyFrom");
        requireLength("copyFrom", data.length, this);
        MemorySegment.copy(data, 0, segment, ValueLayout.JAVA_FLOAT, 0, data.length);
    }

    /** The float32 element at {@code index} (one index per axis). */
    public float get(long... index) {
        requireType("get", DType.FLOAT32);
        checkAlive("get");
        return segment.getAtIndex(F32, offset("get", index));
    }

    /** Sets the float32 element at {@code index} (one index per axis). */
    public void set(float value, long... index) {
        requireType("set", DType.FLOAT32);
        checkAlive("set");
        segment.setAtIndex(F32, offset("set", index), value);
    }

    /** The boolean element at {@code index} (one index per axis). */
    public boolean getBoolean(long... index) {
        requireType("getBoolean", DType.BOOL);
        checkAlive("getBoolean");
        return segment.get(ValueLayout.JAVA_BYTE, offset("getBoolean", index)) != 0;
    }

    private long offset(String action, long[] index) {
        Objects.requireNonNull(index, () -> action + ": index must not be null");
        if (index.length != shape.length) {
            throw new IllegalArgumentException(action + ": expected " + shape.length + " indices for shape "
                    + Arrays.toString(shape) + ", got " + index.length);
        }
        long off = 0;
        for (int i = 0; i < index.length; i++) {
            if (index[i] < 0 || index[i] >= shape[i]) {
                throw new IndexOutOfBoundsException(action + ": index " + Arrays.toString(index)
                        + " is out of bounds for shape " + Arrays.toString(shape) + " at axis " + i);
            }
            off = off * shape[i] + index[i];
        }
        return off;
    }

    private void requireType(String action, DType expected) {
        if (dtype != expected) {
            throw new IllegalArgumentException(action + ": needs a " + expected + " tensor, but this one is " + dtype);
        }
    }

    private void requireArraySize(String action) {
        if (size > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException(action + ": " + size + " elements do not fit in a Java array");
        }
    }

    // ---- views ------------------------------------------------------------------------

    /** The sub-tensor at {@code index} along axis 0 (rank one lower), sharing memory. */
    public Tensor slice(long index) {
        if (shape.length == 0) {
            throw new IllegalArgumentException("slice: a scalar tensor has no axis 0 to slice");
        }
        if (index < 0 || index >= shape[0]) {
            throw new IndexOutOfBoundsException("slice: index must be in [0, " + shape[0] + "), but is " + index);
        }
        checkAlive("slice");
        long[] s = Arrays.copyOfRange(shape, 1, shape.length);
        long n = size / shape[0];
        return new Tensor(segment.asSlice(index * n * dtype.byteSize(), n * dtype.byteSize()), s, dtype, n);
    }

    /** Rows {@code from} (inclusive) to {@code to} (exclusive) along axis 0, sharing memory. */
    public Tensor slice(long from, long to) {
        if (shape.length == 0) {
            throw new IllegalArgumentException("slice: a scalar tensor has no axis 0 to slice");
        }
        if (from < 0 || to > shape[0] || from > to) {
            throw new IndexOutOfBoundsException("slice: range must satisfy 0 <= from <= to <= " + shape[0]
                    + ", but is [" + from + ", " + to + ")");
        }
        checkAlive("slice");
        long[] s = shape.clone();
        s[0] = to - from;
        long row = shape[0] == 0 ? 0 : size / shape[0];
        long n = row * s[0];
        return new Tensor(segment.asSlice(from * row * dtype.byteSize(), n * dtype.byteSize()), s, dtype, n);
    }

    /** The same elements under another shape with the same element count, sharing memory. */
    public Tensor reshape(long... newShape) {
        long[] s = checkShape("reshape", newShape);
        long n = elementCount("reshape", s);
        if (n != size) {
            throw new IllegalArgumentException("reshape: shape " + Arrays.toString(s) + " has " + n
                    + " elements, but " + Arrays.toString(shape) + " has " + size);
        }
        checkAlive("reshape");
        return new Tensor(segment, s, dtype, n);
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + ", shape=" + Arrays.toString(shape) + "]";
    }
}
