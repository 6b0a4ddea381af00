package dev.attn4j;

/** Element types of a {@link Tensor}. */
public enum DType {
    /** IEEE 754 binary32, native byte order, 4-byte aligned. */
    FLOAT32(4),
    /** One byte per element: 0 is false, any other value is true. */
    BOOL(1);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    @Override
    public String toString() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
