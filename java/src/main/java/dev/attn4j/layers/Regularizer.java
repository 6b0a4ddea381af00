package dev.attn4j.layers;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * A Keras 3 weight regularizer ({@code keras.regularizers}): {@code L1(l1=0.01)},
 * {@code L2(l2=0.01)} or {@code L1L2(l1=0.0, l2=0.0)}, read from the identifiers
 * {@code keras.regularizers.get} takes and written back as Keras serializes it. attn4j does
 * not train; the regularizer is kept for the layer config and {@link #penalty} computes
 * the loss term Keras would add.
 *
 * <p><b>Names.</b> Keras looks a string up among the class names and their
 * {@code to_snake_case} forms: {@code "L1"}, {@code "l1"}, {@code "L2"}, {@code "l2"},
 * {@code "L1L2"} and {@code "l1l2"}. attn4j also accepts {@code "l1_l2"}, the name of the
 * Python alias {@code keras.regularizers.l1_l2} (Keras 3.15.1's {@code get} itself fails
 * on that string), and that {@code "l1l2"} / {@code "l1_l2"} give {@code L1L2()}, whose factors are both 0 (the
 * Keras docstring's "0.01" is wrong). {@code OrthogonalRegularizer} is not implemented:
 * {@link #of} throws {@link UnsupportedOperationException}.
 *
 * <p>Instances are immutable and safe to share between threads.
 */
public final class Regularizer {
    private static final String MODULE = "keras.regularizers";
    private static final String OWNER = "Regularizer.of";

    private static final Map<String, String> NAMES = new TreeMap<>();
    private static final Map<String, String> UNSUPPORTED = new TreeMap<>();

    static {
        NAMES.put("L1", "L1");
        NAMES.put("l1", "L1");
        NAMES.put("L2", "L2");
        NAMES.put("l2", "L2");
        NAMES.put("L1L2", "L1L2");
        NAMES.put("l1l2", "L1L2");
        NAMES.put("l1_l2", "L1L2"); // the Python alias name; an attn4j convenience
        String orthogonal = "OrthogonalRegularizer (a penalty on the dot products of normalised rows or columns) "
                + "is not implemented in attn4j";
        UNSUPPORTED.put("OrthogonalRegularizer", orthogonal);
        UNSUPPORTED.put("orthogonal_regularizer", orthogonal);
        String base = "Regularizer is Keras's base class, which has no config to serialize";
        UNSUPPORTED.put("Regularizer", base);
        UNSUPPORTED.put("regularizer", base);
    }

    private final String className;
    private final double l1;
    private final double l2;

    private Regularizer(String className, double l1, double l2) {
        this.className = className;
        this.l1 = l1;
        this.l2 = l2;
    }

    /**
     * The regularizer an identifier names: a name (see the class comment), a serialized
     * dict ({@code {"module": "keras.regularizers", "class_name": "L2", "config": {"l2":
     * 0.01}, "registered_name": null}} or the short {@code {"class_name": ..., "config":
     * {...}}}), or a {@code Regularizer} (returned as is). A missing or null factor takes
     * the class default, as in Keras.
     *
     * @throws NullPointerException for null; use {@link #ofNullable} for optional ones
     * @throws IllegalArgumentException for an unknown name or config key, or a factor that
     *     is not a finite number >= 0 (Keras's check)
     * @throws UnsupportedOperationException for OrthogonalRegularizer
     */
    public static Regularizer of(Object spec) {
        Objects.requireNonNull(spec, "Regularizer.of: spec is null; use ofNullable for an optional regularizer");
        if (spec instanceof Regularizer r) {
            return r;
        }
        KerasObjects.Identifier id = KerasObjects.identifier(OWNER, spec);
        String unsupported = UNSUPPORTED.get(id.name());
        if (unsupported != null) {
            throw new UnsupportedOperationException(OWNER + ": regularizer '" + id.name() + "' is not supported: "
                    + unsupported);
        }
        String cls = NAMES.get(id.name());
        if (cls == null) {
            throw new IllegalArgumentException(OWNER + ": unknown regularizer '" + id.name() + "'"
                    + "; known names are " + NAMES.keySet());
        }
        Map<String, Object> c = id.config();
        return switch (cls) {
            case "L1" -> {
                KerasObjects.rejectUnknownKeys(OWNER, cls, c, List.of("l1"));
                // Keras keeps L1's factor as a float32 tensor: L1(0.01) computes and
                // serializes with 0.009999999776482582. Rounding here gives the same.
                yield new Regularizer(cls, (float) factor(cls, c, "l1", 0.01), 0.0);
            }
            case "L2" -> {
                KerasObjects.rejectUnknownKeys(OWNER, cls, c, List.of("l2"));
                yield new Regularizer(cls, 0.0, factor(cls, c, "l2", 0.01));
            }
            default -> {
                KerasObjects.rejectUnknownKeys(OWNER, cls, c, List.of("l1", "l2"));
                yield new Regularizer(cls, factor(cls, c, "l1", 0.0), factor(cls, c, "l2", 0.0));
            }
        };
    }

    /** {@link #of}, except that null gives null (Keras's {@code regularizers.get(None)}). */
    public static Regularizer ofNullable(Object spec) {
        return spec == null ? null : of(spec);
    }

    private static double factor(String cls, Map<String, Object> c, String key, double fallback) {
        Object v = c.get(key);
        if (v == null) {
            return fallback;
        }
        Number n = KerasObjects.normalize(v);
        if (n == null || !Double.isFinite(n.doubleValue()) || n.doubleValue() < 0) {
            throw new IllegalArgumentException(OWNER + ": invalid value for " + cls + " argument " + key
                    + ": expected a non-negative float, but got " + key + "=" + KerasObjects.describe(v));
        }
        return n.doubleValue();
    }

    /** The Keras class name: {@code "L1"}, {@code "L2"} or {@code "L1L2"}. */
    public String className() {
        return className;
    }

    /** The L1 factor (0 for L2; for L1 rounded to float32, as Keras keeps it). */
    public double l1() {
        return l1;
    }

    /** The L2 factor (0 for L1). */
    public double l2() {
        return l2;
    }

    /**
     * The penalty Keras adds to the loss for a weight with these values:
     * {@code l1 * sum(|x|) + l2 * sum(x^2)}. Keras computes it in float32; here the sums
     * are taken in double and rounded to float32, then combined in float32 as Keras does
     * (factor cast to float32, product, sum), so the result is a float32 value returned as
     * a double. It may differ from Keras's in the last bits, where Keras's float32
     * summation order rounds differently. As in Keras, L1L2 leaves out a term whose factor
     * is 0 (so an infinite weight with {@code l1 = 0} does not give NaN), while L1 and L2
     * always multiply.
     */
    public double penalty(float[] values) {
        Objects.requireNonNull(values, "Regularizer.penalty: values is null");
        double sumAbs = 0;
        double sumSquares = 0;
        for (float x : values) {
            sumAbs += Math.abs(x);
            sumSquares += (double) x * x;
        }
        float l1Term = (float) l1 * (float) sumAbs;
        float l2Term = (float) l2 * (float) sumSquares;
        return switch (className) {
            case "L1" -> l1Term;
            case "L2" -> l2Term;
            default -> {
                float r = 0f;
                if (l1 != 0.0) {
                    r += l1Term;
                }
                if (l2 != 0.0) {
                    r += l2Term;
                }
                yield r;
            }
        };
    }

    /**
     * Keras's serialized form, e.g. {@code {"module": "keras.regularizers", "class_name":
     * "L2", "config": {"l2": 0.01}, "registered_name": null}}; L1L2 writes {@code l1} then
     * {@code l2}. Factors are floats, as Keras writes them. A fresh, mutable map.
     */
    public Map<String, Object> toConfig() {
        Map<String, Object> c = new LinkedHashMap<>();
        if (!className.equals("L2")) {
            c.put("l1", l1);
        }
        if (!className.equals("L1")) {
            c.put("l2", l2);
        }
        return KerasObjects.envelope(MODULE, className, c);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Regularizer r && className.equals(r.className)
                && Double.compare(l1, r.l1) == 0 && Double.compare(l2, r.l2) == 0;
    }

    @Override
    public int hashCode() {
        return Objects.hash(className, l1, l2);
    }

    @Override
    public String toString() {
        return className + toConfig().get("config");
    }
}
