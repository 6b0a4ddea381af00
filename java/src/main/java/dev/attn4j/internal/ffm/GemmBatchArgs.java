package dev.attn4j.internal.ffm;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The native argument block of one single-group {@code cblas_sgemm_batch} call: the
 * group's parameter arrays (one entry each) and the A, B, C pointer arrays. Reused
 * from call to call and grown on demand, so a steady stream of calls allocates no
 * native memory. Not thread-safe: one instance per thread (see
 * {@code NativeBackend}). Its memory belongs to an automatic arena and is freed
 * when the instance becomes unreachable.
 */
public final class GemmBatchArgs {
    private static final int PARAMS = 11;
    private static final long POINTERS_OFFSET = 64;

    private MemorySegment transA, transB, m, n, k, alpha, lda, ldb, beta, ldc, groupSize;
    private MemorySegment aPointers, bPointers, cPointers;
    private int capacity;

    public GemmBatchArgs(int initialCapacity) {
        allocate(Math.max(1, initialCapacity));
    }

    private void allocate(int count) {
        MemorySegment block = Arena.ofAuto().allocate(POINTERS_OFFSET + 3L * count * Long.BYTES, 64);
        MemorySegment[] params = new MemorySegment[PARAMS];
        for (int i = 0; i < PARAMS; i++) {
            params[i] = block.asSlice((long) i * Integer.BYTES, Integer.BYTES);
        }
        transA = params[0]; transB = params[1]; m = params[2]; n = params[3]; k = params[4];
        alpha = params[5]; lda = params[6]; ldb = params[7]; beta = params[8]; ldc = params[9];
        groupSize = params[10];
        long bytes = (long) count * Long.BYTES;
        aPointers = block.asSlice(POINTERS_OFFSET, bytes);
        bPointers = block.asSlice(POINTERS_OFFSET + bytes, bytes);
        cPointers = block.asSlice(POINTERS_OFFSET + 2 * bytes, bytes);
        capacity = count;
    }

    /** Makes room for {@code count} products (keeps nothing of the previous call). */
    public void ensureCapacity(int count) {
        if (count > capacity) {
            allocate(Math.max(count, capacity + capacity / 2));
        }
    }

    void setGroup(int tA, int tB, int mm, int nn, int kk, float a, int la, int lb, float b, int lc, int count) {
        transA.set(ValueLayout.JAVA_INT, 0, tA);
        transB.set(ValueLayout.JAVA_INT, 0, tB);
        m.set(ValueLayout.JAVA_INT, 0, mm);
        n.set(ValueLayout.JAVA_INT, 0, nn);
        k.set(ValueLayout.JAVA_INT, 0, kk);
        alpha.set(ValueLayout.JAVA_FLOAT, 0, a);
        lda.set(ValueLayout.JAVA_INT, 0, la);
        ldb.set(ValueLayout.JAVA_INT, 0, lb);
        beta.set(ValueLayout.JAVA_FLOAT, 0, b);
        ldc.set(ValueLayout.JAVA_INT, 0, lc);
        groupSize.set(ValueLayout.JAVA_INT, 0, count);
    }

    /** Sets the addresses of product {@code i}'s operands. */
    public void setPointers(int i, long a, long b, long c) {
        aPointers.setAtIndex(ValueLayout.JAVA_LONG, i, a);
        bPointers.setAtIndex(ValueLayout.JAVA_LONG, i, b);
        cPointers.setAtIndex(ValueLayout.JAVA_LONG, i, c);
    }

    MemorySegment transA() { return transA; }
    MemorySegment transB() { return transB; }
    MemorySegment m() { return m; }
    MemorySegment n() { return n; }
    MemorySegment k() { return k; }
    MemorySegment alpha() { return alpha; }
    MemorySegment lda() { return lda; }
    MemorySegment ldb() { return ldb; }
    MemorySegment beta() { return beta; }
    MemorySegment ldc() { return ldc; }
    MemorySegment groupSize() { return groupSize; }
    MemorySegment aPointers() { return aPointers; }
    MemorySegment bPointers() { return bPointers; }
    MemorySegment cPointers() { return cPointers; }
}
