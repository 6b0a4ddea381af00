package dev.attn4j.conformance;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/** Reads golden case files: a JSON object with a {@code cases} array. */
public final class GoldenCases {
    private static final ObjectMapper JSON = new ObjectMapper();

    private GoldenCases() {}

    /**
     * The cases in {@code path}: a case file, or a folder whose {@code *.json} files are
     * read in name order (files without a {@code cases} array, such as an index, are
     * passed over in a folder but an error when named directly).
     */
    public static List<GoldenCase> load(Path path) throws IOException {
        List<GoldenCase> cases = new ArrayList<>();
        if (Files.isDirectory(path)) {
            List<Path> files;
            try (Stream<Path> s = Files.list(path)) {
                files = s.filter(p -> p.toString().endsWith(".json")).sorted().toList();
            }
            for (Path f : files) {
                Map<String, Object> root = read(f);
                if (root.get("cases") instanceof List<?>) {
                    cases.addAll(parse(f, root));
                }
            }
        } else {
            Map<String, Object> root = read(path);
            if (!(root.get("cases") instanceof List<?>)) {
                throw new IOException(path + ": not a golden case file (no \"cases\" array)");
            }
            cases.addAll(parse(path, root));
        }
        return cases;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> read(Path file) throws IOException {
        Object root = JSON.readValue(file.toFile(), Object.class);
        if (!(root instanceof Map<?, ?>)) {
            throw new IOException(file + ": expected a JSON object");
        }
        return (Map<String, Object>) root;
    }

    @SuppressWarnings("unchecked")
    private static List<GoldenCase> parse(Path file, Map<String, Object> root) throws IOException {
        List<GoldenCase> out = new ArrayList<>();
        int index = 0;
        for (Object o : (List<Object>) root.get("cases")) {
            String where = file + " case #" + index++;
            if (!(o instanceof Map<?, ?>)) {
                throw new IOException(where + ": expected an object");
            }
            Map<String, Object> c = (Map<String, Object>) o;
            String id = c.get("id") instanceof String s ? s : where;
            List<GoldenCase.Array> weights = new ArrayList<>();
            if (c.get("weights") instanceof List<?> ws) {
                for (Object w : ws) {
                    weights.add(array(where, (Map<String, Object>) w, null));
                }
            }
            out.add(new GoldenCase(file.toString(), id, (String) c.get("class_name"),
                    (Map<String, Object>) c.get("config"), c.get("build_input_shapes"), weights,
                    arrays(where, c.get("inputs")), arrays(where, c.get("masks")),
                    c.get("call_kwargs") instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of(),
                    arrays(where, c.get("expected"))));
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, GoldenCase.Array> arrays(String where, Object node) throws IOException {
        Map<String, GoldenCase.Array> out = new LinkedHashMap<>();
        if (node instanceof Map<?, ?> m) {
            for (Map.Entry<String, Object> e : ((Map<String, Object>) m).entrySet()) {
                out.put(e.getKey(), array(where, (Map<String, Object>) e.getValue(), e.getKey()));
            }
        }
        return out;
    }

    private static GoldenCase.Array array(String where, Map<String, Object> a, String key) throws IOException {
        String name = a.get("name") instanceof String s ? s : key;
        if (!(a.get("shape") instanceof List<?> shapeList) || !(a.get("values") instanceof List<?> values)) {
            throw new IOException(where + ": array '" + name + "' needs \"shape\" and \"values\"");
        }
        long[] shape = new long[shapeList.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = ((Number) shapeList.get(i)).longValue();
        }
        String dtype = a.get("dtype") instanceof String d ? d : "float32";
        float[] floats = null;
        boolean[] bools = null;
        if (dtype.equals("bool")) {
            bools = new boolean[values.size()];
            for (int i = 0; i < bools.length; i++) {
                bools[i] = Boolean.TRUE.equals(values.get(i));
            }
        } else {
            floats = new float[values.size()];
            for (int i = 0; i < floats.length; i++) {
                Object v = values.get(i);
                floats[i] = v instanceof Number n ? n.floatValue() : parseSpecial(where, name, v);
            }
        }
        String same = a.get("same_tensor_as") instanceof String s ? s : null;
        return new GoldenCase.Array(name, shape, dtype, floats, bools, same);
    }

    /** JSON has no NaN or infinity; case writers spell them as strings. */
    private static float parseSpecial(String where, String name, Object v) throws IOException {
        if (v instanceof String s) {
            switch (s) {
                case "NaN", "nan": return Float.NaN;
                case "Infinity", "inf": return Float.POSITIVE_INFINITY;
                case "-Infinity", "-inf": return Float.NEGATIVE_INFINITY;
                default: break;
            }
        }
        throw new IOException(where + ": array '" + name + "' has a non-numeric value " + v);
    }
}
