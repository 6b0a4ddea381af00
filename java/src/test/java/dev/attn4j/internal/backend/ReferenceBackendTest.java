package dev.attn4j.internal.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.attn4j.MaskConvention;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** The reference itself, against hand-computed values. */
class ReferenceBackendTest {
    private final ReferenceBackend ref = new ReferenceBackend();

    @Test
    void productWithTransposes() {
        try (Arena arena = Arena.ofConfined()) {
            // A^T where A (stored 3x2) = [[1 4] [2 5] [3 6]] -> A^T = [[1 2 3] [4 5 6]]
            MemorySegment a = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1, 4, 2, 5, 3, 6);
            // B^T where B (stored 2x3) = [[1 0 1] [0 1 1]] -> B^T = [[1 0] [0 1] [1 1]]
            MemorySegment b = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1, 0, 1, 0, 1, 1);
            MemorySegment c = arena.allocate(16);
            ref.sgemmBatched(true, true, 2, 2, 3, 1f, a, 2, 6, 0, b, 3, 6, 0, 1, 0f, c, 2, 4, 0, 1, 1, GemmRoute.AUTO);
            assertArrayEquals(new float[] {4, 5, 10, 11}, c.toArray(ValueLayout.JAVA_FLOAT));
        }
    }

    @Test
    void softmaxConventions() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mask = arena.allocateFrom(ValueLayout.JAVA_BYTE, (byte) 1, (byte) 0);
            MemorySegment s = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 0f, 0f);
            ref.maskedSoftmax(s, 1, 1, 2, 1f, mask, 0, 0, 1, false, MaskConvention.SUBTRACT);
            assertArrayEquals(new float[] {1, 0}, s.toArray(ValueLayout.JAVA_FLOAT));
            MemorySegment none = arena.allocateFrom(ValueLayout.JAVA_BYTE, (byte) 0, (byte) 0);
            MemorySegment z = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 3f, -3f);
            ref.maskedSoftmax(z, 1, 1, 2, 1f, none, 0, 0, 1, false, MaskConvention.REPLACE_THEN_ZERO);
            assertArrayEquals(new float[] {0, 0}, z.toArray(ValueLayout.JAVA_FLOAT));
            MemorySegment u = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 3f, -3f);
            ref.maskedSoftmax(u, 1, 1, 2, 1f, none, 0, 0, 1, false, MaskConvention.REPLACE);
            assertArrayEquals(new float[] {0.5f, 0.5f}, u.toArray(ValueLayout.JAVA_FLOAT));
        }
    }
}
