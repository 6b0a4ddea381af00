package dev.attn4j.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Per-thread scratch memory for intermediate results that never leave a call (for
 * example the score matrix when the caller does not ask for it). Each thread keeps
 * one growing block, so steady calls of the same size allocate nothing; the block
 * belongs to an automatic arena and is freed once its thread is gone.
 *
 * <p>Use: {@code MemorySegment s = Scratch.floats(n);} valid until the same thread
 * asks for scratch again. Calls do not nest on one thread, so one block suffices.
 */
public final class Scratch {
    private static final ThreadLocal<Scratch> LOCAL = ThreadLocal.withInitial(Scratch::new);

    private MemorySegment block = MemorySegment.NULL;

    private Scratch() {}

    /** A segment of {@code count} floats (contents undefined), owned by this thread. */
    public static MemorySegment floats(long count) {
        return LOCAL.get().bytes(count * Float.BYTES);
    }

    /**
     * This thread's scratch block of at least {@code bytes} bytes, to be cut into several
     * 64-byte aligned regions with {@link Carver}.
     */
    public static Carver carver(long bytes) {
        return new Carver(LOCAL.get().bytes(bytes));
    }

    /** Bytes a region of {@code bytes} takes in a {@link Carver}, alignment included. */
    public static long regionSize(long bytes) {
        return (bytes + 63) & ~63L;
    }

    /** Cuts consecutive aligned regions out of one scratch block. */
    public static final class Carver {
        private final MemorySegment block;
        private long offset;

        private Carver(MemorySegment block) {
            this.block = block;
        }

        public MemorySegment floats(long count) {
            return bytes(count * Float.BYTES);
        }

        public MemorySegment bytes(long size) {
            MemorySegment s = block.asSlice(offset, size);
            offset += regionSize(size);
            return s;
        }
    }

    private MemorySegment bytes(long size) {
        if (block.byteSize() < size) {
            long grown = Math.max(size, block.byteSize() + block.byteSize() / 2);
            block = Arena.ofAuto().allocate(grown, 64);
        }
        return block.asSlice(0, size);
    }
}
