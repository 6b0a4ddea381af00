package dev.attn4j.keras;

import dev.attn4j.DType;
import dev.attn4j.Tensor;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * NumPy {@code .npy} files: float32 arrays as {@link DType#FLOAT32} tensors, bool
 * arrays as {@link DType#BOOL} masks.
 *
 * <p><b>Reading</b> accepts format versions 1.0, 2.0 and 3.0 and the dtypes
 * {@code '<f4'} (little-endian float32) and {@code '|b1'} (bool), in C order. Anything
 * else is an {@link IOException} that names what the file holds and how to convert it
 * in Python. A 0-d array becomes a rank-0 tensor.
 *
 * <p><b>Writing</b> produces the bytes {@code np.save} produces for the same dtype and
 * shape: version 1.0 (2.0 only when the header does not fit in 64 KiB), the header
 * dict with its keys sorted, C order, padded with spaces to a multiple of 64 bytes.
 */
public final class Npy {
    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final String FLOAT32_DESCR = "<f4";
    private static final String BOOL_DESCR = "|b1";
    private static final String SUPPORTED = "'<f4' (float32, little-endian) and '|b1' (bool)";
    /** NumPy aligns the start of the data to this many bytes. */
    private static final int ALIGN = 64;
    /**
     * NumPy pads the header with room for axis 0 to grow to this many digits, so that
     * appending rows can rewrite the shape in place; reproduced for byte-identical files.
     */
    private static final int GROWTH_AXIS_MAX_DIGITS = 21;
    /** Bytes moved per bulk copy between the stream and the tensor; a multiple of 4. */
    private static final int CHUNK = 1 << 16;
    private static final ValueLayout.OfFloat LE_FLOAT =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Npy() {}

    // ---- reading ----------------------------------------------------------------------

    /** Reads the array in {@code file} into a new tensor in {@code arena}. */
    public static Tensor read(Path file, Arena arena) throws IOException {
        Objects.requireNonNull(file, "Npy.read: file must not be null");
        Objects.requireNonNull(arena, "Npy.read: arena must not be null");
        try (InputStream in = new BufferedInputStream(Files.newInputStream(file))) {
            return read(in, file.toString(), Files.size(file), arena);
        }
    }

    /**
     * Reads one array from {@code in} into a new tensor in {@code arena}. Reads exactly
     * the header and the data, so several arrays written one after the other can be
     * read in turn; the stream is not closed.
     */
    public static Tensor read(InputStream in, Arena arena) throws IOException {
        Objects.requireNonNull(in, "Npy.read: in must not be null");
        Objects.requireNonNull(arena, "Npy.read: arena must not be null");
        return read(in, "<stream>", -1, arena);
    }

    /** {@code fileSize} < 0: unknown, so a truncated stream is only found while copying. */
    private static Tensor read(InputStream in, String source, long fileSize, Arena arena) throws IOException {
        Header h = readHeader(in, source);
        long bytes = dataBytes(source, h);
        // Check a file's size before allocating: a damaged header must not reserve gigabytes.
        if (fileSize >= 0 && fileSize - h.dataOffset < bytes) {
            throw truncated(source, h, bytes, Math.max(0, fileSize - h.dataOffset));
        }
        Tensor t = h.dtype == DType.FLOAT32 ? Tensor.allocate(arena, h.shape) : Tensor.allocateMask(arena, h.shape);
        byte[] buf = new byte[(int) Math.min(CHUNK, Math.max(bytes, 1))];
        for (long done = 0; done < bytes; ) {
            int n = (int) Math.min(buf.length, bytes - done);
            int got = in.readNBytes(buf, 0, n);
            if (got < n) {
                throw truncated(source, h, bytes, done + got);
            }
            if (h.dtype == DType.FLOAT32) {
                // Element-wise layouts make the copy swap bytes on a big-endian machine.
                MemorySegment.copy(MemorySegment.ofArray(buf), LE_FLOAT, 0, t.segment(),
                        ValueLayout.JAVA_FLOAT_UNALIGNED, done, n / 4);
            } else {
                MemorySegment.copy(buf, 0, t.segment(), ValueLayout.JAVA_BYTE, done, n);
            }
            done += n;
        }
        return t;
    }

    private static long dataBytes(String source, Header h) throws IOException {
        try {
            long n = h.dtype.byteSize();
            for (long d : h.shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        } catch (ArithmeticException e) {
            throw new IOException("Npy.read: " + source + ": shape " + Arrays.toString(h.shape)
                    + " is too large to address", e);
        }
    }

    private static EOFException truncated(String source, Header h, long needed, long found) {
        return new EOFException("Npy.read: " + source + ": truncated data: shape " + Arrays.toString(h.shape)
                + " of '" + h.descr + "' needs " + needed + " bytes after the header, but only " + found
                + " are there");
    }

    /** What the header says, and where the data starts (bytes from the start of the array). */
    private record Header(String descr, DType dtype, long[] shape, long dataOffset) {}

    private static Header readHeader(InputStream in, String source) throws IOException {
        byte[] magic = in.readNBytes(8);
        if (magic.length < 8 || !Arrays.equals(magic, 0, 6, MAGIC, 0, 6)) {
            if (magic.length >= 2 && magic[0] == 'P' && magic[1] == 'K') {
                throw new IOException("Npy.read: " + source + ": this is a zip archive (an .npz file?), not an .npy "
                        + "file; read its entries one by one");
            }
            if (magic.length < 8 && Arrays.equals(magic, 0, magic.length, MAGIC, 0, Math.min(magic.length, 6))) {
                throw new EOFException("Npy.read: " + source + ": truncated header: the file ends after "
                        + magic.length + " bytes");
            }
            throw new IOException("Npy.read: " + source + ": not an .npy file (it does not start with \\x93NUMPY)");
        }
        int major = magic[6] & 0xff;
        int minor = magic[7] & 0xff;
        int lengthBytes = switch (major) {
            case 1 -> 2;
            case 2, 3 -> 4;
            default -> throw new IOException("Npy.read: " + source + ": .npy format version " + major + "." + minor
                    + " is not supported; supported versions are 1.0, 2.0 and 3.0");
        };
        if (minor != 0) {
            throw new IOException("Npy.read: " + source + ": .npy format version " + major + "." + minor
                    + " is not supported; supported versions are 1.0, 2.0 and 3.0");
        }
        byte[] len = in.readNBytes(lengthBytes);
        if (len.length < lengthBytes) {
            throw new EOFException(
                    "Npy.read: " + source + ": truncated header: the file ends inside the header length");
        }
        long headerLength = 0;
        for (int i = lengthBytes - 1; i >= 0; i--) {
            headerLength = (headerLength << 8) | (len[i] & 0xff);
        }
        if (headerLength > Integer.MAX_VALUE - 8) {
            throw new IOException("Npy.read: " + source + ": header length " + headerLength + " is not plausible");
        }
        byte[] headerBytes = in.readNBytes((int) headerLength);
        if (headerBytes.length < headerLength) {
            throw new EOFException("Npy.read: " + source + ": truncated header: it declares " + headerLength
                    + " bytes, but the file ends after " + headerBytes.length);
        }
        // Versions 1 and 2 store the header in latin-1; version 3 added UTF-8 for field names.
        String text = new String(headerBytes, major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        Object parsed;
        try {
            parsed = new LiteralParser(text).parseAll();
        } catch (IllegalArgumentException e) {
            throw new IOException("Npy.read: " + source + ": the header is not a Python literal (" + e.getMessage()
                    + "): " + text.strip(), e);
        }
        if (!(parsed instanceof Map<?, ?> dict)) {
            throw new IOException("Npy.read: " + source + ": the header is not a dict: " + text.strip());
        }
        for (String key : List.of("descr", "fortran_order", "shape")) {
            if (!dict.containsKey(key)) {
                throw new IOException("Npy.read: " + source + ": the header has no '" + key + "' key: " + text.strip());
            }
        }
        long[] shape = shape(source, dict.get("shape"));
        Object descrValue = dict.get("descr");
        if (!(descrValue instanceof String descr)) {
            throw new IOException("Npy.read: " + source + ": structured dtype " + repr(descrValue)
                    + " is not supported; supported dtypes are " + SUPPORTED);
        }
        DType dtype = switch (descr) {
            case FLOAT32_DESCR -> DType.FLOAT32;
            case BOOL_DESCR -> DType.BOOL;
            default -> throw new IOException("Npy.read: " + source + ": dtype '" + descr + "' is not supported; "
                    + "supported dtypes are " + SUPPORTED + ". Convert in Python with "
                    + "np.save(path, a.astype('<f4')) (or a.astype(bool) for masks)");
        };
        if (!(dict.get("fortran_order") instanceof Boolean fortran)) {
            throw new IOException("Npy.read: " + source + ": 'fortran_order' must be True or False, but is "
                    + repr(dict.get("fortran_order")));
        }
        // With at most one axis longer than 1, Fortran and C order lay out the same bytes.
        if (fortran && Arrays.stream(shape).filter(d -> d > 1).count() > 1) {
            throw new IOException("Npy.read: " + source + ": Fortran order (column-major) arrays are not supported "
                    + "(shape " + Arrays.toString(shape) + "); save a C-order copy in Python with "
                    + "np.save(path, np.ascontiguousarray(a))");
        }
        return new Header(descr, dtype, shape, 8L + lengthBytes + headerLength);
    }

    private static long[] shape(String source, Object value) throws IOException {
        if (!(value instanceof Tuple(List<Object> items))) {
            throw new IOException("Npy.read: " + source + ": 'shape' must be a tuple of ints, but is " + repr(value));
        }
        long[] shape = new long[items.size()];
        for (int i = 0; i < shape.length; i++) {
            if (!(items.get(i) instanceof Long d) || d < 0) {
                throw new IOException("Npy.read: " + source + ": 'shape' must be a tuple of ints >= 0, but is "
                        + repr(value));
            }
            shape[i] = d;
        }
        return shape;
    }

    // ---- writing ----------------------------------------------------------------------

    /**
     * Writes {@code t} to {@code file} as NumPy would save it: float32 as {@code '<f4'},
     * bool as {@code '|b1'}, C order. Replaces an existing file.
     */
    public static void write(Path file, Tensor t) throws IOException {
        Objects.requireNonNull(file, "Npy.write: file must not be null");
        Objects.requireNonNull(t, "Npy.write: tensor must not be null");
        requireAlive(t); // before the file is created or emptied
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file))) {
            write(out, t);
        }
    }

    /** Writes {@code t} to {@code out} as {@link #write(Path, Tensor)} does; the stream is not closed. */
    public static void write(OutputStream out, Tensor t) throws IOException {
        Objects.requireNonNull(out, "Npy.write: out must not be null");
        Objects.requireNonNull(t, "Npy.write: tensor must not be null");
        requireAlive(t);
        out.write(header(t.dtype() == DType.FLOAT32 ? FLOAT32_DESCR : BOOL_DESCR, t.shape()));
        MemorySegment data = t.segment();
        long bytes = data.byteSize();
        byte[] buf = new byte[(int) Math.min(CHUNK, Math.max(bytes, 1))];
        for (long done = 0; done < bytes; ) {
            int n = (int) Math.min(buf.length, bytes - done);
            if (t.dtype() == DType.FLOAT32) {
                MemorySegment.copy(data, ValueLayout.JAVA_FLOAT_UNALIGNED, done, MemorySegment.ofArray(buf),
                        LE_FLOAT, 0, n / 4);
            } else {
                MemorySegment.copy(data, ValueLayout.JAVA_BYTE, done, buf, 0, n);
                // A mask may hold any non-zero byte for true; NumPy's bool is exactly 0 or 1.
                for (int i = 0; i < n; i++) {
                    buf[i] = buf[i] != 0 ? (byte) 1 : (byte) 0;
                }
            }
            out.write(buf, 0, n);
            done += n;
        }
    }

    private static void requireAlive(Tensor t) {
        if (!t.isAlive()) {
            throw new IllegalStateException("Npy.write: the arena of " + t + " is closed");
        }
    }

    /** The magic, version, length and padded header dict, as numpy.lib.format writes them. */
    static byte[] header(String descr, long[] shape) {
        StringBuilder dict = new StringBuilder("{'descr': '").append(descr)
                .append("', 'fortran_order': False, 'shape': (");
        for (int i = 0; i < shape.length; i++) {
            dict.append(i == 0 ? "" : ", ").append(shape[i]);
        }
        dict.append(shape.length == 1 ? ",), }" : "), }");
        if (shape.length > 0) {
            dict.repeat(' ', GROWTH_AXIS_MAX_DIGITS - Long.toString(shape[0]).length());
        }
        byte[] v1 = wrap(dict, 1);
        return v1 != null ? v1 : wrap(dict, 2);
    }

    /** The full header in format {@code version}, or null when its length field cannot hold it. */
    private static byte[] wrap(CharSequence dict, int version) {
        int lengthBytes = version == 1 ? 2 : 4;
        int prefix = MAGIC.length + 2 + lengthBytes;
        long textLength = dict.length() + 1L; // + the final '\n'
        // Like NumPy, a header that already ends on the boundary still gets a full block of padding.
        long pad = ALIGN - (prefix + textLength) % ALIGN;
        long total = textLength + pad;
        if (version == 1 && total > 0xffff) {
            return null;
        }
        byte[] out = new byte[Math.toIntExact(prefix + total)];
        System.arraycopy(MAGIC, 0, out, 0, MAGIC.length);
        out[6] = (byte) version;
        out[7] = 0;
        for (int i = 0; i < lengthBytes; i++) {
            out[8 + i] = (byte) (total >>> (8 * i));
        }
        byte[] text = dict.toString().getBytes(StandardCharsets.ISO_8859_1);
        System.arraycopy(text, 0, out, prefix, text.length);
        Arrays.fill(out, prefix + text.length, out.length - 1, (byte) ' ');
        out[out.length - 1] = '\n';
        return out;
    }

    // ---- the header dict: a Python literal ----------------------------------------------

    /** A Python tuple, kept apart from lists because the shape must be a tuple. */
    private record Tuple(List<Object> items) {}

    private static String repr(Object v) {
        if (v instanceof String s) {
            return "'" + s + "'";
        }
        if (v instanceof Tuple(List<Object> items)) {
            StringBuilder b = new StringBuilder("(");
            for (int i = 0; i < items.size(); i++) {
                b.append(i == 0 ? "" : ", ").append(repr(items.get(i)));
            }
            return b.append(items.size() == 1 ? ",)" : ")").toString();
        }
        if (v instanceof Boolean b) {
            return b ? "True" : "False";
        }
        if (v == null) {
            return "None";
        }
        if (v instanceof List<?> list) {
            List<String> parts = new ArrayList<>();
            list.forEach(o -> parts.add(repr(o)));
            return "[" + String.join(", ", parts) + "]";
        }
        return String.valueOf(v);
    }

    /**
     * The subset of Python literals NumPy headers use: dicts, tuples, lists, strings
     * (with an optional u/b prefix and backslash escapes), ints (a Python 2 {@code L}
     * suffix is tolerated), True, False and None. Errors are IllegalArgumentExceptions.
     */
    private static final class LiteralParser {
        private final String s;
        private int pos;

        LiteralParser(String s) {
            this.s = s;
        }

        Object parseAll() {
            Object v = value();
            skipSpace();
            if (pos != s.length()) {
                throw error("unexpected text after the literal");
            }
            return v;
        }

        private Object value() {
            skipSpace();
            if (pos >= s.length()) {
                throw error("unexpected end");
            }
            char c = s.charAt(pos);
            switch (c) {
                case '{':
                    return dict();
                case '(':
                    return sequence('(', ')');
                case '[':
                    return sequence('[', ']');
                case '\'', '"':
                    return string();
                default:
                    break;
            }
            if ((c == 'u' || c == 'U' || c == 'b' || c == 'B') && pos + 1 < s.length()
                    && (s.charAt(pos + 1) == '\'' || s.charAt(pos + 1) == '"')) {
                pos++;
                return string();
            }
            if (c == '-' || c == '+' || Character.isDigit(c)) {
                return integer();
            }
            if (Character.isLetter(c)) {
                int start = pos;
                while (pos < s.length() && Character.isLetterOrDigit(s.charAt(pos))) {
                    pos++;
                }
                String word = s.substring(start, pos);
                return switch (word) {
                    case "True" -> Boolean.TRUE;
                    case "False" -> Boolean.FALSE;
                    case "None" -> null;
                    default -> throw error("unknown name '" + word + "'", start);
                };
            }
            throw error("unexpected character '" + c + "'");
        }

        private Map<String, Object> dict() {
            pos++; // '{'
            Map<String, Object> map = new LinkedHashMap<>();
            while (true) {
                skipSpace();
                if (peek('}')) {
                    pos++;
                    return map;
                }
                int keyAt = pos;
                if (!(value() instanceof String key)) {
                    throw error("dict keys must be strings", keyAt);
                }
                skipSpace();
                expect(':');
                Object v = value();
                if (map.containsKey(key)) {
                    throw error("duplicate key '" + key + "'", keyAt);
                }
                map.put(key, v);
                skipSpace();
                if (peek(',')) {
                    pos++;
                } else if (!peek('}')) {
                    throw error("expected ',' or '}'");
                }
            }
        }

        private Object sequence(char open, char close) {
            pos++; // open
            List<Object> items = new ArrayList<>();
            boolean trailingComma = false;
            while (true) {
                skipSpace();
                if (peek(close)) {
                    pos++;
                    // "(5)" is just 5 in Python; only "(5,)" is a one-element tuple.
                    if (open == '(' && items.size() == 1 && !trailingComma) {
                        return items.getFirst();
                    }
                    return open == '(' ? new Tuple(Collections.unmodifiableList(items)) : items;
                }
                items.add(value());
                skipSpace();
                trailingComma = false;
                if (peek(',')) {
                    pos++;
                    trailingComma = true;
                } else if (!peek(close)) {
                    throw error("expected ',' or '" + close + "'");
                }
            }
        }

        private String string() {
            char quote = s.charAt(pos++);
            StringBuilder b = new StringBuilder();
            while (true) {
                if (pos >= s.length()) {
                    throw error("unterminated string");
                }
                char c = s.charAt(pos++);
                if (c == quote) {
                    return b.toString();
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                if (pos >= s.length()) {
                    throw error("unterminated string");
                }
                char e = s.charAt(pos++);
                switch (e) {
                    case 'n' -> b.append('\n');
                    case 't' -> b.append('\t');
                    case 'r' -> b.append('\r');
                    case '0' -> b.append('\0');
                    case 'x' -> b.append((char) hex(2));
                    case 'u' -> b.append((char) hex(4));
                    default -> b.append(e); // \\, \', \" and anything else taken literally
                }
            }
        }

        private int hex(int digits) {
            if (pos + digits > s.length()) {
                throw error("truncated escape");
            }
            try {
                int v = Integer.parseInt(s.substring(pos, pos + digits), 16);
                pos += digits;
                return v;
            } catch (NumberFormatException e) {
                throw error("bad escape");
            }
        }

        private Long integer() {
            int start = pos;
            if (peek('-') || peek('+')) {
                pos++;
            }
            while (pos < s.length() && Character.isDigit(s.charAt(pos))) {
                pos++;
            }
            String digits = s.substring(start, pos);
            if (pos < s.length() && (s.charAt(pos) == 'L' || s.charAt(pos) == 'l')) {
                pos++; // Python 2 long suffix, seen in old version 1.0 files
            }
            try {
                return Long.parseLong(digits);
            } catch (NumberFormatException e) {
                throw error("bad integer '" + digits + "'", start);
            }
        }

        private void skipSpace() {
            while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
                pos++;
            }
        }

        private boolean peek(char c) {
            return pos < s.length() && s.charAt(pos) == c;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
            pos++;
        }

        private IllegalArgumentException error(String what) {
            return error(what, pos);
        }

        private IllegalArgumentException error(String what, int at) {
            return new IllegalArgumentException(what + " at offset " + at);
        }
    }
}
