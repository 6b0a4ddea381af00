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

    private MemorySegment bytes(long size) {
        if (block.byteSize() < size) {
            long grown = Math.max(size, block.byteSize() + block.byteSize() / 2);
            block = Arena.ofAuto().allocate(grown, 64);
        }
        return block.asSlice(0, size);
    }
}
