package dev.attn4j.layers;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * A Keras 3 weight constraint ({@code keras.constraints}): {@code MaxNorm(max_value=2,
 * axis=0)}, {@code MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0)},
 * {@code NonNeg()}, {@code UnitNorm(axis=0)}, or Keras's base {@code Constraint()}, which
 * leaves weights unchanged. Read from the identifiers {@code keras.constraints.get} takes
 * (class names and their snake_case forms: {@code "max_norm"}, {@code "min_max_norm"},
 * {@code "non_neg"}, {@code "unit_norm"}, {@code "constraint"}; or serialized dicts) and
 * written back as Keras serializes it.
 *
 * <p><b>Formulas</b> (Keras 3.15.1), with {@code norms = sqrt(sum(w^2, axis,
 * keepdims=True))} and Keras's default {@code epsilon = 1e-7}:
 * <ul>
 *   <li>MaxNorm: {@code w * (clip(norms, 0, max_value) / (epsilon + norms))}</li>
 *   <li>MinMaxNorm: {@code w * (desired / (epsilon + norms))}, {@code desired = rate *
 *       clip(norms, min_value, max_value) + (1 - rate) * norms}</li>
 *   <li>UnitNorm: {@code w / (epsilon + norms)}</li>
 *   <li>NonNeg: {@code maximum(w, 0)}</li>
 * </ul>
 * {@code axis} is an integer, a list of integers (negative ones count from the end) or
 * null for all axes. The arithmetic is float32 in Keras's order; only the sums of squares
 * are taken in double and then rounded to float32, so results can differ from Keras's in
 * the last bit where Keras's float32 summation rounds differently.
 *
 * <p>Instances are immutable and safe to share between threads.
 */
public final class Constraint {
    private static final String MODULE = "keras.constraints";
    private static final String OWNER = "Constraint.of";
    /** Keras's {@code backend.epsilon()} default, added in float32 to the norms. */
    private static final float EPSILON = 1e-7f;

    private static final Map<String, List<String>> KEYS = new LinkedHashMap<>();
    private static final Map<String, String> NAMES = new TreeMap<>();

    static {
        KEYS.put("Constraint", List.of());
        KEYS.put("MaxNorm", List.of("max_value", "axis"));
        KEYS.put("MinMaxNorm", List.of("min_value", "max_value", "rate", "axis"));
        KEYS.put("NonNeg", List.of());
        KEYS.put("UnitNorm", List.of("axis"));
        NAMES.put("Constraint", "Constraint");
        NAMES.put("constraint", "Constraint");
        NAMES.put("MaxNorm", "MaxNorm");
        NAMES.put("max_norm", "MaxNorm");
        NAMES.put("MinMaxNorm", "MinMaxNorm");
        NAMES.put("min_max_norm", "MinMaxNorm");
        NAMES.put("NonNeg", "NonNeg");
        NAMES.put("non_neg", "NonNeg");
        NAMES.put("UnitNorm", "UnitNorm");
        NAMES.put("unit_norm", "UnitNorm");
    }

    private final String className;
    private final double minValue;
    private final double maxValue;
    private final double rate;
    /** Null for all axes. */
    private final int[] axes;
    private final Map<String, Object> config;

    private Constraint(String className, double minValue, double maxValue, double rate, int[] axes,
            Map<String, Object> config) {
        this.className = className;
        this.minValue = minValue;
        this.maxValue = maxValue;
        this.rate = rate;
        this.axes = axes;
        this.config = KerasObjects.freeze(config);
    }

    /**
     * The constraint an identifier names: a name (see the class comment), a serialized
     * dict ({@code {"module": "keras.constraints", "class_name": "MaxNorm", "config":
     * {"max_value": 2, "axis": 0}, "registered_name": null}} or the short
     * {@code {"class_name": ..., "config": {...}}}), or a {@code Constraint} (returned as
     * is). A missing config key takes the class default. Keras does not check the values;
     * here they must be numbers, and {@code axis} an integer, a list of integers or null.
     *
     * @throws NullPointerException for null; use {@link #ofNullable} for optional ones
     * @throws IllegalArgumentException for an unknown name or config key, or a bad value
     */
    public static Constraint of(Object spec) {
        Objects.requireNonNull(spec, "Constraint.of: spec is null; use ofNullable for an optional constraint");
        if (spec instanceof Constraint c) {
            return c;
        }
        KerasObjects.Identifier id = KerasObjects.identifier(OWNER, spec);
        String cls = NAMES.get(id.name());
        if (cls == null) {
            throw new IllegalArgumentException(OWNER + ": unknown constraint '" + id.name() + "'; known names are "
                    + NAMES.keySet());
        }
        Map<String, Object> c = id.config();
        KerasObjects.rejectUnknownKeys(OWNER, cls, c, KEYS.get(cls));
        Map<String, Object> out = new LinkedHashMap<>();
        switch (cls) {
            case "MaxNorm" -> {
                Number max = KerasObjects.number(OWNER, cls, c, "max_value", 2);
                Object axis = KerasObjects.intList(OWNER, cls, c, "axis", 0, true);
                out.put("max_value", max);
                out.put("axis", axis);
                return new Constraint(cls, 0, max.doubleValue(), 1, KerasObjects.ints(axis), out);
            }
            case "MinMaxNorm" -> {
                Number min = KerasObjects.number(OWNER, cls, c, "min_value", 0.0);
                Number max = KerasObjects.number(OWNER, cls, c, "max_value", 1.0);
                Number rate = KerasObjects.number(OWNER, cls, c, "rate", 1.0);
                Object axis = KerasObjects.intList(OWNER, cls, c, "axis", 0, true);
                out.put("min_value", min);
                out.put("max_value", max);
                out.put("rate", rate);
                out.put("axis", axis);
                return new Constraint(cls, min.doubleValue(), max.doubleValue(), rate.doubleValue(),
                        KerasObjects.ints(axis), out);
            }
            case "UnitNorm" -> {
                Object axis = KerasObjects.intList(OWNER, cls, c, "axis", 0, true);
                out.put("axis", axis);
                return new Constraint(cls, 0, 0, 0, KerasObjects.ints(axis), out);
            }
            default -> {
                return new Constraint(cls, 0, 0, 0, null, out);
            }
        }
    }

    /** {@link #of}, except that null gives null (Keras's {@code constraints.get(None)}). */
    public static Constraint ofNullable(Object spec) {
        return spec == null ? null : of(spec);
    }

    /** The Keras class name, e.g. {@code "MaxNorm"}. */
    public String className() {
        return className;
    }

    /**
     * Keras's serialized form, e.g. {@code {"module": "keras.constraints", "class_name":
     * "MaxNorm", "config": {"max_value": 2, "axis": 0}, "registered_name": null}}, with the
     * values as given (an integer stays an integer, as in Python). A fresh, mutable map.
     */
    public Map<String, Object> toConfig() {
        return KerasObjects.envelope(MODULE, className, config);
    }

    /**
     * Projects a weight in place: {@code values} holds the weight of {@code shape} in
     * row-major order.
     *
     * @throws IllegalArgumentException when {@code values.length} is not the shape's size,
     *     or an axis is out of range or repeated for this shape
     */
    public void apply(float[] values, long[] shape) {
        Objects.requireNonNull(values, "Constraint.apply: values is null");
        Objects.requireNonNull(shape, "Constraint.apply: shape is null");
        int n = KerasObjects.elementCount("Constraint.apply", shape);
        if (values.length != n) {
            throw new IllegalArgumentException("Constraint.apply: values has " + values.length + " elements, but shape "
                    + Arrays.toString(shape) + " has " + n);
        }
        switch (className) {
            case "Constraint" -> { }
            case "NonNeg" -> {
                for (int i = 0; i < n; i++) {
                    values[i] = Math.max(values[i], 0f);
                }
            }
            default -> normConstraint(values, shape, n);
        }
    }

    private void normConstraint(float[] w, long[] shape, int n) {
        int rank = shape.length;
        boolean[] reduced = new boolean[rank];
        if (axes == null) {
            Arrays.fill(reduced, true);
        } else {
            for (int axis : axes) {
                int a = KerasObjects.axis("Constraint.apply", className + " axis", axis, rank);
                if (reduced[a]) {
                    throw new IllegalArgumentException("Constraint.apply: " + className + " axis " + axis
                            + " is repeated in " + Arrays.toString(axes));
                }
                reduced[a] = true;
            }
        }
        // Each element belongs to one group: its index with the reduced axes set to 0, in
        // the keepdims shape. The odometer walks the elements in row-major order.
        int groups = 1;
        int[] groupStride = new int[rank];
        for (int a = rank - 1; a >= 0; a--) {
            if (!reduced[a]) {
                groupStride[a] = groups;
                groups *= (int) shape[a];
            }
        }
        int[] group = new int[n];
        int[] coord = new int[rank];
        int g = 0;
        for (int i = 0; i < n; i++) {
            group[i] = g;
            for (int a = rank - 1; a >= 0; a--) {
                coord[a]++;
                g += groupStride[a];
                if (coord[a] < shape[a]) {
                    break;
                }
                g -= groupStride[a] * coord[a];
                coord[a] = 0;
            }
        }
        double[] sums = new double[groups];
        for (int i = 0; i < n; i++) {
            float square = w[i] * w[i];
            sums[group[i]] += square;
        }
        float[] factor = new float[groups];
        float max = (float) maxValue;
        float min = (float) minValue;
        float rateF = (float) rate;
        float keep = (float) (1 - rate);
        for (int k = 0; k < groups; k++) {
            float norm = (float) Math.sqrt((float) sums[k]);
            factor[k] = switch (className) {
                case "MaxNorm" -> clip(norm, 0f, max) / (EPSILON + norm);
                case "MinMaxNorm" -> (rateF * clip(norm, min, max) + keep * norm) / (EPSILON + norm);
                default -> norm; // UnitNorm divides below
            };
        }
        if (className.equals("UnitNorm")) {
            for (int i = 0; i < n; i++) {
                w[i] = w[i] / (EPSILON + factor[group[i]]);
            }
        } else {
            for (int i = 0; i < n; i++) {
                w[i] = w[i] * factor[group[i]];
            }
        }
    }

    /** numpy's clip: {@code min(max(x, lo), hi)}. */
    private static float clip(float x, float lo, float hi) {
        return Math.min(Math.max(x, lo), hi);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Constraint c && className.equals(c.className) && config.equals(c.config);
    }

    @Override
    public int hashCode() {
        return className.hashCode() * 31 + config.hashCode();
    }

    @Override
    public String toString() {
        return className + config;
    }
}
