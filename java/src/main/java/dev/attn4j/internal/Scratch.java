package dev.attn4j.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Per-thread scratch memory for intermediate results that never leave a call (for
 * example the score matrix when the caller does not ask for it). Each thread keeps
 * one growing block, so steady calls of the same size allocate nothing; the block
 * belongs to an automatic arena and is freed once its thread is gone.
 *
 * <p>Use: {@code MemorySegment s = Scratch.floats(n);} valid until the same thread
 * asks for scratch again. Calls do not nest on one thread, so one block suffices;
 * native kernels that need a workspace get it from a second block,
 * {@link #workspace(long)}, which a caller's scratch regions never share.
 *
 * <p>No Java heap either, in steady state: each thread reuses one {@link Carver}, and
 * the segment objects handed out are remembered and handed out again while a call
 * asks for the same regions of the same block as the last one (a slice is a new
 * object each time, about 40 bytes, and a layer call cuts several).
 */
public final class Scratch {
    private static final ThreadLocal<Scratch> LOCAL = ThreadLocal.withInitial(Scratch::new);

    private MemorySegment block = MemorySegment.NULL;
    private MemorySegment workspace = MemorySegment.NULL;
    /** The last {@link #floats} segment, handed out again for the same size. */
    private MemorySegment prefix = MemorySegment.NULL;
    private final Carver carver = new Carver();

    private Scratch() {}

    /**
     * This thread's native-kernel workspace: a segment of at least {@code bytes} bytes
     * (64-byte aligned, contents undefined), for kernels that take a caller-owned
     * workspace and its size ({@code attn4j_flash_attention_f32}). A block of its own,
     * separate from the one {@link #floats} and {@link #carver} hand out, so a caller
     * that holds carved regions can call such a kernel without the two overlapping.
     * Valid until this thread asks for a workspace again. The whole block is returned,
     * not a slice, and it grows like the scratch block, so steady calls allocate
     * nothing at all, not even a segment object.
     */
    public static MemorySegment workspace(long bytes) {
        Scratch s = LOCAL.get();
        if (s.workspace.byteSize() < bytes) {
            s.workspace = grow(s.workspace, bytes);
        }
        return s.workspace;
    }

    /** A segment of {@code count} floats (contents undefined), owned by this thread. */
    public static MemorySegment floats(long count) {
        return LOCAL.get().bytes(count * Float.BYTES);
    }

    /**
     * This thread's scratch block of at least {@code bytes} bytes, to be cut into several
     * 64-byte aligned regions with {@link Carver}. The carver is this thread's one
     * instance, reset: the regions of an earlier carver on this thread are then reused.
     */
    public static Carver carver(long bytes) {
        Scratch s = LOCAL.get();
        s.ensure(bytes);
        return s.carver.reset(s.block);
    }

    /** Bytes a region of {@code bytes} takes in a {@link Carver}, alignment included. */
    public static long regionSize(long bytes) {
        return (bytes + 63) & ~63L;
    }

    /**
     * Cuts consecutive aligned regions out of one scratch block. The i-th region of a
     * call is the i-th region of the previous call when offset and size agree, so a
     * steady sequence of calls gets the same segment objects back.
     */
    public static final class Carver {
        private MemorySegment block = MemorySegment.NULL;
        private long offset;
        private int next;
        private MemorySegment[] regions = new MemorySegment[16];

        private Carver() {}

        private Carver reset(MemorySegment block) {
            this.block = block;
            offset = 0;
            next = 0;
            return this;
        }

        /** Drops the remembered regions (the block is replaced: they must not keep it alive). */
        private void forget() {
            Arrays.fill(regions, null);
        }

        public MemorySegment floats(long count) {
            return bytes(count * Float.BYTES);
        }

        /**
         * A view of {@code region} (one of this carver's) from byte {@code offset} to its
         * end, remembered like the regions: the same call sequence gets the same object
         * again, so a steady call allocates nothing. Takes no space of the block.
         */
        public MemorySegment view(MemorySegment region, long offset) {
            if (next == regions.length) {
                regions = Arrays.copyOf(regions, 2 * next);
            }
            long size = region.byteSize() - offset;
            MemorySegment s = regions[next];
            if (s == null || s.byteSize() != size || s.address() != region.address() + offset) {
                s = region.asSlice(offset, size);
                regions[next] = s;
            }
            next++;
            return s;
        }

        public MemorySegment bytes(long size) {
            if (next == regions.length) {
                regions = Arrays.copyOf(regions, 2 * next);
            }
            MemorySegment s = regions[next];
            if (s == null || s.byteSize() != size || s.address() != block.address() + offset) {
                s = block.asSlice(offset, size);
                regions[next] = s;
            }
            next++;
            offset += regionSize(size);
            return s;
        }
    }

    private void ensure(long size) {
        if (block.byteSize() < size) {
            block = grow(block, size);
            prefix = MemorySegment.NULL;
            carver.forget();
        }
    }

    private MemorySegment bytes(long size) {
        ensure(size);
        if (prefix.byteSize() != size || prefix.address() != block.address()) {
            prefix = block.asSlice(0, size);
        }
        return prefix;
    }

    private static MemorySegment grow(MemorySegment old, long size) {
        long grown = Math.max(size, old.byteSize() + old.byteSize() / 2);
        return Arena.ofAuto().allocate(grown, 64);
    }
}
