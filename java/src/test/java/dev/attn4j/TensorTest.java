package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class TensorTest {

    @Test
    void ofCopiesAndReadsBackRowMajor() {
        try (Arena arena = Arena.ofConfined()) {
            float[] data = {1, 2, 3, 4, 5, 6};
            Tensor t = Tensor.of(arena, data, 2, 3);
            data[0] = 99; // a copy: later changes to the array do not reach the tensor
            assertArrayEquals(new long[] {2, 3}, t.shape());
            assertEquals(DType.FLOAT32, t.dtype());
            assertEquals(6, t.size());
            assertEquals(1f, t.get(0, 0));
            assertEquals(6f, t.get(1, 2));
            assertEquals(4f, t.segment().getAtIndex(ValueLayout.JAVA_FLOAT, 3)); // row-major: (1, 0)
            assertEquals(24, t.segment().byteSize());
            assertEquals(3, t.dim(-1));
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, t.toFloatArray());
        }
    }

    @Test
    void wrapIsZeroCopyBothWays() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(4L * 8, 16);
            Tensor t = Tensor.wrap(seg, 2, 4);
            seg.setAtIndex(ValueLayout.JAVA_FLOAT, 5, 7.5f);
            assertEquals(7.5f, t.get(1, 1));
            t.set(-2f, 0, 3);
            assertEquals(-2f, seg.getAtIndex(ValueLayout.JAVA_FLOAT, 3));
            assertEquals(seg.address(), t.segment().address());
        }
    }

    @Test
    void wrapTakesThePrefixOfALargerSegment() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.wrap(arena.allocate(100, 4), 3, 2);
            assertEquals(24, t.segment().byteSize());
        }
    }

    @Test
    void wrapRejectsBadSegments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment small = arena.allocate(20, 4);
            var e = assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(small, 2, 3));
            assertTrue(e.getMessage().contains("needs 24 bytes, has 20"), e.getMessage());

            MemorySegment misaligned = arena.allocate(64, 8).asSlice(2);
            e = assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(misaligned, 2));
            assertTrue(e.getMessage().contains("aligned to 4 bytes"), e.getMessage());

            MemorySegment heap = MemorySegment.ofArray(new float[4]);
            e = assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(heap, 4));
            assertTrue(e.getMessage().contains("heap segment"), e.getMessage());

            assertThrows(NullPointerException.class, () -> Tensor.wrap(null, 4));
            e = assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(small, 2, -1));
            assertTrue(e.getMessage().contains("-1 at axis 1"), e.getMessage());
        }
        MemorySegment closed;
        try (Arena arena = Arena.ofConfined()) {
            closed = arena.allocate(16, 4);
        }
        var e = assertThrows(IllegalStateException.class, () -> Tensor.wrap(closed, 4));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }

    @Test
    void shapeOverflowIsRejected() {
        try (Arena arena = Arena.ofConfined()) {
            var e = assertThrows(IllegalArgumentException.class,
                    () -> Tensor.allocate(arena, Long.MAX_VALUE / 2, 3));
            assertTrue(e.getMessage().contains("more elements than a long can count"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Tensor.of(arena, new float[5], 2, 3));
            assertTrue(e.getMessage().contains("data has 5 elements, but shape [2, 3] needs 6"), e.getMessage());
        }
    }

    @Test
    void useAfterCloseIsAnIllegalStateExceptionNamingTheAction() {
        Tensor t;
        try (Arena arena = Arena.ofConfined()) {
            t = Tensor.of(arena, new float[] {1, 2}, 2);
        }
        assertFalse(t.isAlive());
        var e = assertThrows(IllegalStateException.class, t::toFloatArray);
        assertTrue(e.getMessage().startsWith("toFloatArray: the arena of Tensor[float32, shape=[2]] is closed"),
                e.getMessage());
        assertThrows(IllegalStateException.class, () -> t.get(0));
        assertThrows(IllegalStateException.class, () -> t.slice(0));
        assertThrows(IllegalStateException.class, () -> t.copyFrom(new float[] {1, 2}));
    }

    @Test
    void slicesAndReshapesAreViews() {
        try (Arena arena = Arena.ofConfined()) {
            float[] data = new float[24];
            for (int i = 0; i < data.length; i++) {
                data[i] = i;
            }
            Tensor t = Tensor.of(arena, data, 2, 3, 4);
            Tensor second = t.slice(1);
            assertArrayEquals(new long[] {3, 4}, second.shape());
            assertEquals(12f, second.get(0, 0));
            second.set(-1f, 2, 3);
            assertEquals(-1f, t.get(1, 2, 3));

            Tensor range = t.slice(1, 2);
            assertArrayEquals(new long[] {1, 3, 4}, range.shape());
            assertEquals(t.segment().address() + 48, range.segment().address());

            Tensor flat = t.reshape(6, 4);
            assertEquals(t.get(1, 0, 0), flat.get(3, 0));
            var e = assertThrows(IllegalArgumentException.class, () -> t.reshape(5, 5));
            assertTrue(e.getMessage().contains("has 25 elements, but [2, 3, 4] has 24"), e.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> t.slice(2));
            assertThrows(IndexOutOfBoundsException.class, () -> t.slice(1, 3));
            assertThrows(IndexOutOfBoundsException.class, () -> t.get(0, 3, 0));
            assertThrows(IllegalArgumentException.class, () -> t.get(0, 0));
        }
    }

    @Test
    void masksHoldOneBytePerElement() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor m = Tensor.ofMask(arena, new boolean[] {true, false, true}, 3);
            assertEquals(DType.BOOL, m.dtype());
            assertEquals(3, m.segment().byteSize());
            assertArrayEquals(new boolean[] {true, false, true}, m.toBooleanArray());
            MemorySegment bytes = arena.allocate(3);
            bytes.set(ValueLayout.JAVA_BYTE, 0, (byte) 7); // any non-zero byte is true
            Tensor w = Tensor.wrapMask(bytes, 3);
            assertArrayEquals(new boolean[] {true, false, false}, w.toBooleanArray());
            assertTrue(w.getBoolean(0));
            assertThrows(IllegalArgumentException.class, m::toFloatArray);
            assertThrows(IllegalArgumentException.class, () -> Tensor.allocate(arena, 2).toBooleanArray());
        }
    }
}
