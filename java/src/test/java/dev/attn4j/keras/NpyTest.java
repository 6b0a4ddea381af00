package dev.attn4j.keras;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.attn4j.DType;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link Npy} against files NumPy 2.4.6 wrote (src/test/resources/npy, see its
 * README): values from the saved Keras cases, NumPy's exact bytes on writing, and the
 * files Npy must refuse.
 */
class NpyTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    static Path npy(String name) throws URISyntaxException {
        return Path.of(NpyTest.class.getResource("/npy/" + name).toURI());
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> savedCase(String model) throws IOException, URISyntaxException {
        return JSON.readValue(KerasSavedModelTest.saved(model + ".case.json").toFile(), Map.class);
    }

    static float[] floats(Object values) {
        List<?> list = (List<?>) values;
        float[] out = new float[list.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) list.get(i)).floatValue();
        }
        return out;
    }

    static long[] longs(Object values) {
        return ((List<?>) values).stream().mapToLong(v -> ((Number) v).longValue()).toArray();
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> additiveWeight(String h5Path) throws IOException, URISyntaxException {
        for (Object l : (List<Object>) savedCase("attn_additive").get("layers")) {
            for (Object w : (List<Object>) ((Map<String, Object>) l).get("weights")) {
                if (h5Path.equals(((Map<String, Object>) w).get("h5_path"))) {
                    return (Map<String, Object>) w;
                }
            }
        }
        throw new AssertionError("no weight " + h5Path);
    }

    // ---- reading ------------------------------------------------------------------------

    @Test
    @SuppressWarnings("unchecked")
    void readsTheCaseInput() throws Exception {
        Map<String, Object> inputs = (Map<String, Object>) savedCase("mha_self").get("inputs");
        Map<String, Object> x = (Map<String, Object>) inputs.get("x");
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Npy.read(npy("mha_self_x.npy"), arena);
            assertEquals(DType.FLOAT32, t.dtype());
            assertArrayEquals(new long[] {2, 6, 16}, t.shape());
            assertArrayEquals(longs(x.get("shape")), t.shape());
            assertArrayEquals(floats(x.get("values")), t.toFloatArray());
        }
    }

    @Test
    void readsA0dArrayAsRank0() throws Exception {
        float expected = floats(additiveWeight("layers/attention/vars/0").get("values"))[0];
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Npy.read(npy("attention_scale.npy"), arena);
            assertEquals(0, t.rank());
            assertEquals(1, t.size());
            assertEquals(expected, t.get());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"additive_scale.npy", "additive_scale_v2.npy", "additive_scale_v3.npy"})
    void readsA1dArrayInEveryFormatVersion(String file) throws Exception {
        float[] expected = floats(additiveWeight("layers/additive_attention/vars/0").get("values"));
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Npy.read(npy(file), arena);
            assertArrayEquals(new long[] {8}, t.shape());
            assertArrayEquals(expected, t.toFloatArray());
        }
    }

    @Test
    void readsABoolMask() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Npy.read(npy("mask.npy"), arena);
            assertEquals(DType.BOOL, t.dtype());
            assertArrayEquals(new long[] {2, 3}, t.shape());
            assertArrayEquals(new boolean[] {true, false, true, false, false, true}, t.toBooleanArray());
        }
    }

    @Test
    void readsAnEmptyArray() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Npy.read(npy("empty.npy"), arena);
            assertArrayEquals(new long[] {0, 3}, t.shape());
            assertEquals(0, t.size());
        }
    }

    @Test
    void readsArraysOneAfterAnotherFromAStream() throws Exception {
        byte[] a = Files.readAllBytes(npy("mask.npy"));
        byte[] b = Files.readAllBytes(npy("additive_scale.npy"));
        byte[] both = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, both, a.length, b.length);
        try (Arena arena = Arena.ofConfined(); InputStream in = new ByteArrayInputStream(both)) {
            assertEquals(DType.BOOL, Npy.read(in, arena).dtype());
            assertArrayEquals(new long[] {8}, Npy.read(in, arena).shape());
            assertEquals(-1, in.read());
        }
    }

    @Test
    void parsesHeadersNumpyDidNotWriteButPythonWouldRead() throws Exception {
        // Other key order, double quotes, spacing, no trailing comma, Python 2 longs, no padding.
        String header = "{ \"shape\" : ( 2L ,3L ) ,\"fortran_order\":False, \"descr\" : u'<f4' }\n";
        float[] data = {1, 2, 3, 4, 5, 6};
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Npy.read(new ByteArrayInputStream(npyBytes(1, header, floatBytes(data))), arena);
            assertArrayEquals(new long[] {2, 3}, t.shape());
            assertArrayEquals(data, t.toFloatArray());
        }
    }

    @Test
    void acceptsFortranOrderWhenItLaysOutTheSameBytes() throws Exception {
        String header = "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3, 1), }";
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Npy.read(new ByteArrayInputStream(npyBytes(1, header, floatBytes(7, 8, 9))), arena);
            assertArrayEquals(new float[] {7, 8, 9}, t.toFloatArray());
        }
    }

    // ---- writing ------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"mha_self_x.npy", "attention_scale.npy", "additive_scale.npy", "mask.npy", "empty.npy"})
    void writesTheBytesNumpyWrites(String file) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Npy.read(npy(file), arena);
            Path out = tmp.resolve(file);
            Npy.write(out, t);
            assertArrayEquals(Files.readAllBytes(npy(file)), Files.readAllBytes(out), file);
        }
    }

    @Test
    void roundTripsFloatsAndMasks() throws Exception {
        SplittableRandom random = new SplittableRandom(11);
        long[][] shapes = {{}, {1}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 1, 2}, {70_000}, {4, 0}};
        try (Arena arena = Arena.ofConfined()) {
            for (long[] shape : shapes) {
                int n = (int) Arrays.stream(shape).reduce(1, Math::multiplyExact);
                Tensor f = Tensor.of(arena, TestData.floats(random, n, -3, 3), shape);
                Path p = tmp.resolve("f.npy");
                Npy.write(p, f);
                Tensor back = Npy.read(p, arena);
                assertArrayEquals(shape, back.shape(), Arrays.toString(shape));
                assertArrayEquals(f.toFloatArray(), back.toFloatArray(), Arrays.toString(shape));
                assertEquals(0, Files.size(p) % 4, "data starts 64-aligned, so the size is a multiple of 4");

                Tensor m = Tensor.ofMask(arena, TestData.booleans(random, n, 0.5), shape);
                Npy.write(p, m);
                assertArrayEquals(m.toBooleanArray(), Npy.read(p, arena).toBooleanArray(), Arrays.toString(shape));
            }
        }
    }

    @Test
    void writesMaskBytesAsZeroOrOne() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Tensor m = Tensor.allocateMask(arena, 3);
            m.segment().set(ValueLayout.JAVA_BYTE, 0, (byte) 7);
            m.segment().set(ValueLayout.JAVA_BYTE, 2, (byte) -1);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            Npy.write(out, m);
            byte[] bytes = out.toByteArray();
            assertArrayEquals(new byte[] {1, 0, 1}, Arrays.copyOfRange(bytes, bytes.length - 3, bytes.length));
        }
    }

    @Test
    void headerIsAlignedTo64AndEndsInNewline() {
        for (long[] shape : new long[][] {{}, {5}, {2, 3}, {123456789, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}) {
            byte[] h = Npy.header("<f4", shape);
            assertEquals(0, h.length % 64, Arrays.toString(shape));
            assertEquals('\n', h[h.length - 1]);
            assertEquals(1, h[6]);
        }
        String text = new String(Npy.header("<f4", new long[] {5}), StandardCharsets.ISO_8859_1);
        assertTrue(text.contains("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"), text);
        text = new String(Npy.header("|b1", new long[0]), StandardCharsets.ISO_8859_1);
        assertTrue(text.contains("'shape': (), }"), text);
    }

    @Test
    void switchesToVersion2WhenTheHeaderOutgrows64KiB() throws Exception {
        long[] shape = new long[23_000]; // "1, " each: about 69 000 header bytes
        Arrays.fill(shape, 1);
        shape[0] = 2;
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.of(arena, new float[] {1.5f, -2.5f}, shape);
            Path p = tmp.resolve("wide.npy");
            Npy.write(p, t);
            byte[] bytes = Files.readAllBytes(p);
            assertEquals(2, bytes[6]);
            assertEquals(0, (bytes.length - 8) % 64);
            Tensor back = Npy.read(p, arena);
            assertArrayEquals(shape, back.shape());
            assertArrayEquals(new float[] {1.5f, -2.5f}, back.toFloatArray());
        }
    }

    // ---- refusals -----------------------------------------------------------------------

    @Test
    void refusesFloat64NamingTheDtype() {
        IOException e = assertThrows(IOException.class, () -> readFile("f8.npy"));
        assertContains(e, "'<f8'", "'<f4'", "'|b1'", "f8.npy", "astype");
    }

    @Test
    void refusesBigEndianFloat32() {
        IOException e = assertThrows(IOException.class, () -> readFile("big_endian_f4.npy"));
        assertContains(e, "'>f4'", "'<f4'");
    }

    @Test
    void refusesFortranOrderSayingHowToFixIt() {
        IOException e = assertThrows(IOException.class, () -> readFile("fortran.npy"));
        assertContains(e, "Fortran order", "np.ascontiguousarray", "fortran.npy");
    }

    @Test
    void refusesTruncatedData() throws Exception {
        byte[] full = Files.readAllBytes(npy("mha_self_x.npy"));
        Path cut = tmp.resolve("cut.npy");
        Files.write(cut, Arrays.copyOf(full, full.length - 10));
        try (Arena arena = Arena.ofConfined()) {
            EOFException e = assertThrows(EOFException.class, () -> Npy.read(cut, arena));
            assertContains(e, "truncated", "768", "758", "cut.npy");
            e = assertThrows(EOFException.class,
                    () -> Npy.read(new ByteArrayInputStream(Arrays.copyOf(full, full.length - 10)), arena));
            assertContains(e, "truncated", "768");
        }
    }

    @Test
    void refusesTruncatedHeaders() throws Exception {
        byte[] full = Files.readAllBytes(npy("mha_self_x.npy"));
        try (Arena arena = Arena.ofConfined()) {
            for (int len : new int[] {0, 4, 9, 40}) {
                IOException e = assertThrows(IOException.class,
                        () -> Npy.read(new ByteArrayInputStream(Arrays.copyOf(full, len)), arena), "length " + len);
                assertTrue(e instanceof EOFException || len == 0, e.toString());
            }
        }
    }

    @Test
    void refusesWhatIsNotNpy() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            IOException e = assertThrows(IOException.class, () -> Npy.read(
                    KerasSavedModelTest.saved("mha_self.keras"), arena));
            assertContains(e, "zip");
            e = assertThrows(IOException.class, () -> Npy.read(
                    KerasSavedModelTest.saved("mha_self.weights.h5"), arena));
            assertContains(e, "not an .npy file");
            byte[] v4 = Files.readAllBytes(npy("mask.npy"));
            v4[6] = 4;
            e = assertThrows(IOException.class, () -> Npy.read(new ByteArrayInputStream(v4), arena));
            assertContains(e, "version 4.0");
        }
    }

    @Test
    void refusesBadHeaders() throws Exception {
        String[] headers = {
            "{'descr': '<f4', 'shape': (2,), }", // no fortran_order
            "{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", // a list, not a tuple
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", // structured
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", // unterminated
            "{'descr': '<f4', 'fortran_order': nope, 'shape': (2,), }",
        };
        String[] expected = {"'fortran_order'", "tuple", ">= 0", "structured", "not a Python literal", "unknown name"};
        try (Arena arena = Arena.ofConfined()) {
            for (int i = 0; i < headers.length; i++) {
                byte[] bytes = npyBytes(1, headers[i], floatBytes(1, 2));
                IOException e = assertThrows(IOException.class,
                        () -> Npy.read(new ByteArrayInputStream(bytes), arena), headers[i]);
                assertContains(e, expected[i]);
            }
        }
    }

    // ---- helpers ------------------------------------------------------------------------

    private static void readFile(String name) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Npy.read(npy(name), arena);
        }
    }

    private static void assertContains(Throwable e, String... parts) {
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "expected '" + p + "' in: " + e.getMessage());
        }
    }

    private static byte[] floatBytes(float... values) {
        byte[] out = new byte[values.length * 4];
        for (int i = 0; i < values.length; i++) {
            int bits = Float.floatToRawIntBits(values[i]);
            for (int b = 0; b < 4; b++) {
                out[4 * i + b] = (byte) (bits >>> (8 * b));
            }
        }
        return out;
    }

    /** An .npy file with this header text as is (no padding added) and data. */
    private static byte[] npyBytes(int version, String header, byte[] data) {
        byte[] text = header.getBytes(StandardCharsets.ISO_8859_1);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) version, 0});
        out.write(text.length & 0xff);
        out.write(text.length >>> 8);
        if (version > 1) {
            out.write(0);
            out.write(0);
        }
        out.writeBytes(text);
        out.writeBytes(data);
        return out.toByteArray();
    }
}
