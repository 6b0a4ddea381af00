package dev.attn4j.layers;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Reading and writing Keras {@code get_config()} dictionaries (as parsed from JSON:
 * maps, lists, strings, numbers, booleans, null), with errors that name the key.
 */
final class Configs {
    private Configs() {}

    /** The dtype policy entry Keras 3 writes for float32 layers. */
    static Map<String, Object> float32Policy() {
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("name", "float32");
        Map<String, Object> policy = new LinkedHashMap<>();
        policy.put("module", "keras");
        policy.put("class_name", "DTypePolicy");
        policy.put("config", config);
        policy.put("registered_name", null);
        return policy;
    }

    /** The keys every layer config starts with: name, trainable, dtype. */
    static Map<String, Object> base(AttentionLayer layer) {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("name", layer.name());
        c.put("trainable", layer.trainable());
        c.put("dtype", float32Policy());
        return c;
    }

    static void rejectUnknown(String layer, Map<String, ?> config, Set<String> known) {
        Set<String> unknown = new TreeSet<>(config.keySet());
        unknown.removeAll(known);
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException(layer + ".fromConfig: unknown config keys " + unknown
                    + "; known keys are " + new TreeSet<>(known));
        }
    }

    static String string(String layer, Map<String, ?> config, String key, String fallback) {
        Object v = config.get(key);
        if (v == null) {
            return fallback;
        }
        if (!(v instanceof String s)) {
            throw new IllegalArgumentException(layer + ".fromConfig: '" + key + "' must be a string, but is " + v);
        }
        return s;
    }

    static boolean bool(String layer, Map<String, ?> config, String key, boolean fallback) {
        Object v = config.get(key);
        if (v == null) {
            return fallback;
        }
        if (!(v instanceof Boolean b)) {
            throw new IllegalArgumentException(layer + ".fromConfig: '" + key + "' must be true or false, but is " + v);
        }
        return b;
    }

    static double number(String layer, Map<String, ?> config, String key, double fallback) {
        Object v = config.get(key);
        if (v == null) {
            return fallback;
        }
        if (!(v instanceof Number n)) {
            throw new IllegalArgumentException(layer + ".fromConfig: '" + key + "' must be a number, but is " + v);
        }
        return n.doubleValue();
    }

    /** An integer or null. */
    static Long integerOrNull(String layer, Map<String, ?> config, String key) {
        Object v = config.get(key);
        if (v == null) {
            return null;
        }
        Long exact = exactLong(v);
        if (exact != null) {
            return exact;
        }
        throw new IllegalArgumentException(layer + ".fromConfig: '" + key + "' must be an integer or null, but is " + v);
    }

    /**
     * An integral number within the long range as a long, else null: never a rounded,
     * saturated or wrapped value ({@code BigInteger.longValue()} keeps the low 64 bits,
     * {@code (long) 1e30} saturates).
     */
    private static Long exactLong(Object v) {
        if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
            return ((Number) v).longValue();
        }
        if (v instanceof java.math.BigInteger b) {
            return b.bitLength() < 64 ? b.longValue() : null;
        }
        if (v instanceof Number n) {
            double d = n.doubleValue();
            return d == Math.rint(d) && Math.abs(d) < 0x1p63 ? (long) d : null;
        }
        return null;
    }

    /** Accepts only a float32 policy: "float32", {"name": "float32"}, or a DTypePolicy dict of it. */
    static void checkDtype(String layer, Map<String, ?> config) {
        Object v = config.get("dtype");
        if (v == null || "float32".equals(v)) {
            return;
        }
        if (v instanceof Map<?, ?> m) {
            Object inner = m.get("config");
            Object name = inner instanceof Map<?, ?> im ? im.get("name") : m.get("name");
            Object className = m.get("class_name");
            if ("float32".equals(name) && (className == null || "DTypePolicy".equals(className))) {
                return;
            }
        }
        throw new IllegalArgumentException(layer + ".fromConfig: only the float32 dtype policy is supported, but "
                + "'dtype' is " + v);
    }

    /** A positive-or-any int, or null. */
    static Integer intOrNull(String layer, Map<String, ?> config, String key) {
        Long v = integerOrNull(layer, config, key);
        if (v != null && (v > Integer.MAX_VALUE || v < Integer.MIN_VALUE)) {
            throw new IllegalArgumentException(layer + ".fromConfig: '" + key + "' is out of the int range: " + v);
        }
        return v == null ? null : v.intValue();
    }

    /** An int, a list of ints, or null (Keras writes tuples as lists). */
    static long[] intTuple(String layer, Map<String, ?> config, String key) {
        Object v = config.get(key);
        if (v == null) {
            return null;
        }
        if (v instanceof Number) {
            return new long[] {integerOrNull(layer, config, key)};
        }
        if (v instanceof java.util.List<?> list) {
            long[] out = new long[list.size()];
            for (int i = 0; i < out.length; i++) {
                Object e = list.get(i);
                Long exact = exactLong(e);
                if (exact == null) {
                    throw new IllegalArgumentException(layer + ".fromConfig: '" + key
                            + "' must be an int or a list of ints, but is " + v);
                }
                out[i] = exact;
            }
            return out;
        }
        throw new IllegalArgumentException(layer + ".fromConfig: '" + key + "' must be an int or a list of ints, but is "
                + v);
    }
}
