package dev.attn4j.layers;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * What {@link Initializer}, {@link Regularizer} and {@link Constraint} share: reading a
 * Keras identifier (a name, or the serialized dict
 * {@code {"module", "class_name", "config", "registered_name"}}) and the typed reads of
 * its config, with messages that name the object, the key and the value.
 *
 * <p>Values arrive as a JSON parser gives them (maps, lists, strings, numbers, booleans,
 * null). Numbers are normalised the way a Python {@code int} or {@code float} would
 * serialize again: integral types become {@code Integer} (or {@code Long} when too big),
 * everything else {@code Double}, so that a config written back reads as Keras wrote it
 * ({@code 2} stays {@code 2}, {@code 2.0} stays {@code 2.0}).
 */
final class KerasObjects {
    private KerasObjects() {}

    /** An identifier taken apart: the class name as written and its config (never null). */
    record Identifier(String name, Map<String, Object> config) {}

    private static final Set<String> ENVELOPE_KEYS = Set.of("module", "class_name", "config", "registered_name");

    /**
     * Reads a name or a serialized dict. Keras ignores {@code module} and
     * {@code registered_name} for its built-in objects (it looks the class name up in
     * the module's own table), and so do we; a {@code module} of null, which Keras
     * refuses, is refused here too. A missing or null {@code config} means defaults.
     */
    static Identifier identifier(String owner, Object spec) {
        if (spec instanceof String name) {
            return new Identifier(name, Map.of());
        }
        if (spec instanceof Map<?, ?> map) {
            Set<String> unknown = new TreeSet<>();
            for (Object key : map.keySet()) {
                if (!(key instanceof String s) || !ENVELOPE_KEYS.contains(s)) {
                    unknown.add(String.valueOf(key));
                }
            }
            if (!unknown.isEmpty()) {
                throw new IllegalArgumentException(owner + ": unknown keys " + unknown + " in serialized object "
                        + map + "; known keys are [module, class_name, config, registered_name]");
            }
            if (!(map.get("class_name") instanceof String name)) {
                throw new IllegalArgumentException(owner + ": a serialized object needs a string 'class_name', but got "
                        + map);
            }
            if (map.containsKey("module") && !(map.get("module") instanceof String)) {
                throw new IllegalArgumentException(owner + ": 'module' must be a string (Keras cannot deserialize "
                        + "module=null either), but got " + map);
            }
            Object config = map.get("config");
            if (config == null) {
                return new Identifier(name, Map.of());
            }
            if (!(config instanceof Map<?, ?> inner)) {
                throw new IllegalArgumentException(owner + ": 'config' of " + name + " must be a dict, but is " + config);
            }
            Map<String, Object> copy = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : inner.entrySet()) {
                if (!(e.getKey() instanceof String key)) {
                    throw new IllegalArgumentException(owner + ": config keys of " + name + " must be strings, but got "
                            + e.getKey());
                }
                copy.put(key, e.getValue());
            }
            return new Identifier(name, copy);
        }
        throw new IllegalArgumentException(owner + ": cannot interpret " + describe(spec) + "; expected a name, "
                + "a serialized dict {\"class_name\": ..., \"config\": {...}} or an instance");
    }

    /** Keras's serialized form of a built-in object, in Keras's key order. */
    static Map<String, Object> envelope(String module, String className, Map<String, Object> config) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("module", module);
        m.put("class_name", className);
        m.put("config", copyConfig(config));
        m.put("registered_name", null);
        return m;
    }

    /** A mutable copy (lists copied too), so callers may edit what they get. */
    static Map<String, Object> copyConfig(Map<String, Object> config) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : config.entrySet()) {
            m.put(e.getKey(), e.getValue() instanceof List<?> l ? new ArrayList<>(l) : e.getValue());
        }
        return m;
    }

    /** An unmodifiable snapshot of a config built in Keras's key order (values may be null). */
    static Map<String, Object> freeze(Map<String, Object> config) {
        return Collections.unmodifiableMap(new LinkedHashMap<>(config));
    }

    static void rejectUnknownKeys(String owner, String className, Map<String, Object> config, List<String> known) {
        Set<String> unknown = new TreeSet<>(config.keySet());
        known.forEach(unknown::remove);
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException(owner + ": unknown config keys " + unknown + " for " + className
                    + "; its keys are " + known);
        }
    }

    /** The value of a key that must be a number: a missing key gives the fallback, null is an error. */
    static Number number(String owner, String className, Map<String, Object> config, String key, Number fallback) {
        if (!config.containsKey(key)) {
            return fallback;
        }
        Object v = config.get(key);
        Number n = normalize(v);
        if (n == null) {
            throw new IllegalArgumentException(owner + ": " + className + " config '" + key + "' must be a number, "
                    + "but is " + describe(v));
        }
        return n;
    }

    /** An integer seed or null (Keras also takes a SeedGenerator, which is stateful: not supported). */
    static Long seed(String owner, String className, Map<String, Object> config) {
        Object v = config.get("seed");
        if (v == null) {
            return null;
        }
        Number n = normalize(v);
        if (n instanceof Integer || n instanceof Long) {
            return n.longValue();
        }
        if (v instanceof Map<?, ?>) {
            throw new IllegalArgumentException(owner + ": " + className + " config 'seed' is a serialized "
                    + "SeedGenerator, which attn4j does not support (its state advances per call); give an integer "
                    + "seed or null, but got " + v);
        }
        throw new IllegalArgumentException(owner + ": " + className + " config 'seed' must be an integer or null, "
                + "but is " + describe(v));
    }

    /** A string; a missing key gives the fallback, null or a non-string is an error. */
    static String string(String owner, String className, Map<String, Object> config, String key, String fallback) {
        if (!config.containsKey(key)) {
            return fallback;
        }
        Object v = config.get(key);
        if (v instanceof String s) {
            return s;
        }
        throw new IllegalArgumentException(owner + ": " + className + " config '" + key + "' must be a string, but is "
                + describe(v));
    }

    /**
     * A list of integers, kept as written (for the config), or null. An integer alone is
     * accepted as a one-element list only where {@code scalarAllowed} (a constraint's
     * {@code axis}); it is then returned as is.
     */
    static Object intList(String owner, String className, Map<String, Object> config, String key,
            Object fallback, boolean scalarAllowed) {
        if (!config.containsKey(key)) {
            return fallback;
        }
        Object v = config.get(key);
        if (v == null) {
            return null;
        }
        if (scalarAllowed && normalize(v) instanceof Integer i) {
            return i;
        }
        if (v instanceof List<?> list) {
            List<Integer> out = new ArrayList<>(list.size());
            for (Object o : list) {
                if (!(normalize(o) instanceof Integer i)) {
                    throw new IllegalArgumentException(owner + ": " + className + " config '" + key + "' must hold "
                            + "integers, but holds " + describe(o));
                }
                out.add(i);
            }
            return Collections.unmodifiableList(out);
        }
        if (v instanceof int[] a) {
            List<Integer> out = new ArrayList<>(a.length);
            for (int i : a) {
                out.add(i);
            }
            return Collections.unmodifiableList(out);
        }
        throw new IllegalArgumentException(owner + ": " + className + " config '" + key + "' must be "
                + (scalarAllowed ? "an integer, a list of integers" : "a list of integers") + " or null, but is "
                + describe(v));
    }

    /** The ints of a value {@link #intList} returned (null stays null). */
    static int[] ints(Object intList) {
        if (intList == null) {
            return null;
        }
        if (intList instanceof Integer i) {
            return new int[] {i};
        }
        return ((List<?>) intList).stream().mapToInt(o -> (Integer) o).toArray();
    }

    /** Integer or Long for integral values, Double for the rest, null for a non-number (booleans included). */
    static Number normalize(Object v) {
        if (v instanceof Integer || v instanceof Short || v instanceof Byte) {
            return ((Number) v).intValue();
        }
        if (v instanceof Long l) {
            return l == l.intValue() ? (Number) l.intValue() : l;
        }
        if (v instanceof BigInteger b) {
            return b.bitLength() < 32 ? (Number) b.intValue() : b.bitLength() < 64 ? (Number) b.longValue() : null;
        }
        if (v instanceof Double || v instanceof Float || v instanceof BigDecimal) {
            return ((Number) v).doubleValue();
        }
        return null;
    }

    /** Row-major element count of a shape, checked: dimensions >= 0, at most Integer.MAX_VALUE - 8 elements. */
    static int elementCount(String action, long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException(action + ": shape dimensions must be >= 0, but shape is "
                        + java.util.Arrays.toString(shape));
            }
            n = d == 0 ? 0 : n > (Integer.MAX_VALUE - 8) / d ? Long.MAX_VALUE : n * d;
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(action + ": shape " + java.util.Arrays.toString(shape)
                    + " has too many elements for a Java array");
        }
        return (int) n;
    }

    /** A Python-style axis (negative counts from the end) made non-negative, or an error. */
    static int axis(String action, String what, int axis, int rank) {
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) {
            throw new IllegalArgumentException(action + ": " + what + " " + axis + " is out of range for a shape of "
                    + "rank " + rank);
        }
        return a;
    }

    static String describe(Object v) {
        return v == null ? "null" : v instanceof String s ? "'" + s + "'" : v + " (" + v.getClass().getSimpleName() + ")";
    }
}
