package dev.attn4j.layers;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * A Keras 3 weight initializer ({@code keras.initializers}), read from the identifiers
 * {@code keras.initializers.get} takes and written back as Keras serializes it.
 *
 * <p><b>Supported.</b> {@code Zeros}, {@code Ones}, {@code Constant(value=0.0)},
 * {@code RandomNormal(mean=0.0, stddev=0.05)}, {@code RandomUniform(minval=-0.05,
 * maxval=0.05)}, {@code TruncatedNormal(mean=0.0, stddev=0.05)},
 * {@code VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal")} and
 * its presets {@code GlorotUniform}, {@code GlorotNormal} (scale 1, fan_avg),
 * {@code HeUniform}, {@code HeNormal} (scale 2, fan_in), {@code LecunUniform},
 * {@code LecunNormal} (scale 1, fan_in). Each is named by its class name, its snake_case
 * name ({@code "glorot_uniform"}) or Keras's aliases ({@code "normal"}, {@code "uniform"},
 * {@code "zero"}, {@code "one"}). {@code Orthogonal}, {@code Identity} and {@code STFT}
 * are Keras initializers attn4j does not implement: {@link #of} throws
 * {@link UnsupportedOperationException} for them.
 *
 * <p><b>Formulas</b> (Keras 3.15.1). VarianceScaling divides {@code scale} by
 * {@code max(1, n)}, where n is fan_in, fan_out or their mean (see {@link #generate} for
 * the fans); then draws from a normal of stddev {@code sqrt(scale) / 0.87962566103423978}
 * truncated at two standard deviations ({@code "truncated_normal"}; the constant is the
 * stddev of a standard normal truncated to [-2, 2], so the result has stddev
 * {@code sqrt(scale)}), a normal of stddev {@code sqrt(scale)}
 * ({@code "untruncated_normal"}) or a uniform on {@code [-sqrt(3 scale), sqrt(3 scale))}
 * ({@code "uniform"}). Truncated normals resample every draw farther than two standard
 * deviations from the mean.
 *
 * <p><b>Random numbers: the same distribution, not the same bits as Keras.</b> Keras draws
 * from its backend's generator (Philox, numpy's PCG64, ...), which Java cannot
 * reproduce. attn4j draws from {@link SplittableRandom} seeded with the initializer's own
 * {@code seed} when its config has one, else with the seed given to {@link #generate}:
 * the values are a deterministic function of that seed and the shape. Like a seeded
 * Keras initializer, a seeded one gives the same values on every call; give different
 * call seeds (and no config seed) for weights that must differ.
 *
 * <p>Instances are immutable and safe to share between threads.
 */
public final class Initializer {
    private static final String MODULE = "keras.initializers";
    private static final String OWNER = "Initializer.of";

    /** Stddev of a standard normal truncated to [-2, 2]; Keras divides by it to keep the variance. */
    private static final double TRUNCATED_STDDEV_FACTOR = 0.87962566103423978;

    private enum Draw { ZEROS, ONES, CONSTANT, NORMAL, UNIFORM, TRUNCATED_NORMAL, VARIANCE_SCALING }

    /** Class name -> config keys in the order its get_config writes them. */
    private static final Map<String, List<String>> KEYS = new LinkedHashMap<>();
    /** Every accepted spelling -> class name. */
    private static final Map<String, String> NAMES = new TreeMap<>();
    /** Keras initializers attn4j does not implement: spelling -> reason. */
    private static final Map<String, String> UNSUPPORTED = new TreeMap<>();

    static {
        List<String> presetKeys = List.of("seed", "input_axes", "output_axes");
        KEYS.put("Constant", List.of("value"));
        KEYS.put("GlorotNormal", presetKeys);
        KEYS.put("GlorotUniform", presetKeys);
        KEYS.put("HeNormal", presetKeys);
        KEYS.put("HeUniform", presetKeys);
        KEYS.put("LecunNormal", presetKeys);
        KEYS.put("LecunUniform", presetKeys);
        KEYS.put("Ones", List.of());
        KEYS.put("RandomNormal", List.of("seed", "mean", "stddev"));
        KEYS.put("RandomUniform", List.of("seed", "minval", "maxval"));
        KEYS.put("TruncatedNormal", List.of("seed", "mean", "stddev"));
        KEYS.put("VarianceScaling",
                List.of("seed", "scale", "mode", "distribution", "input_axes", "output_axes"));
        KEYS.put("Zeros", List.of());
        for (String cls : KEYS.keySet()) {
            NAMES.put(cls, cls);
            NAMES.put(snakeCase(cls), cls);
        }
        // Keras's extra aliases in keras.initializers.ALL_OBJECTS_DICT.
        NAMES.put("normal", "RandomNormal");
        NAMES.put("uniform", "RandomUniform");
        NAMES.put("zero", "Zeros");
        NAMES.put("one", "Ones");

        String orthogonal = "Orthogonal (a QR decomposition of a random normal matrix) is not implemented in attn4j";
        for (String n : List.of("Orthogonal", "orthogonal", "OrthogonalInitializer")) {
            UNSUPPORTED.put(n, orthogonal);
        }
        String identity = "Identity (gain * eye, for 2D weights) is not implemented in attn4j";
        for (String n : List.of("Identity", "identity", "IdentityInitializer")) {
            UNSUPPORTED.put(n, identity);
        }
        String stft = "STFT (Fourier kernels for STFTSpectrogram) is not implemented in attn4j";
        for (String n : List.of("STFT", "stft", "STFTInitializer")) {
            UNSUPPORTED.put(n, stft);
        }
        String base = "Initializer is Keras's abstract base class, which cannot generate values";
        UNSUPPORTED.put("Initializer", base);
        UNSUPPORTED.put("initializer", base);
    }

    private final String className;
    private final Draw draw;
    /** mean / minval / value. */
    private final double a;
    /** stddev / maxval. */
    private final double b;
    private final double scale;
    private final String mode;
    private final String distribution;
    private final Long seed;
    private final int[] inputAxes;
    private final int[] outputAxes;
    private final Map<String, Object> config;

    private Initializer(String className, Draw draw, double a, double b, double scale, String mode,
            String distribution, Long seed, int[] inputAxes, int[] outputAxes, Map<String, Object> config) {
        this.className = className;
        this.draw = draw;
        this.a = a;
        this.b = b;
        this.scale = scale;
        this.mode = mode;
        this.distribution = distribution;
        this.seed = seed;
        this.inputAxes = inputAxes;
        this.outputAxes = outputAxes;
        this.config = KerasObjects.freeze(config);
    }

    /**
     * The initializer an identifier names, as {@code keras.initializers.get} reads it: a
     * name ({@code "glorot_uniform"}, {@code "GlorotUniform"}, {@code "zeros"}, ...), a
     * serialized dict ({@code {"module": "keras.initializers", "class_name":
     * "GlorotUniform", "config": {"seed": null, ...}, "registered_name": null}}, or the
     * short {@code {"class_name": ..., "config": {...}}}), or an {@code Initializer}
     * (returned as is). A name alone gives the class defaults; so does a missing config
     * key.
     *
     * <p>Differences from Keras, all on inputs Keras fails on or cannot serialize:
     * {@code "constant"} without a value gives {@code Constant(0.0)} (Keras's
     * {@code Constant.from_config} requires {@code value}); unknown config keys are
     * refused for {@code Constant} too (Keras ignores them there); a serialized
     * SeedGenerator as {@code seed} is refused (its state advances with every call, which
     * an immutable initializer cannot follow): give an integer or null.
     *
     * @throws IllegalArgumentException for an unknown name, an unknown config key or a bad
     *     value; the message lists what is known
     * @throws UnsupportedOperationException for Keras initializers attn4j does not
     *     implement (Orthogonal, Identity, STFT)
     */
    public static Initializer of(Object spec) {
        Objects.requireNonNull(spec, "Initializer.of: spec is null; use ofNullable for an optional initializer");
        if (spec instanceof Initializer init) {
            return init;
        }
        KerasObjects.Identifier id = KerasObjects.identifier(OWNER, spec);
        String unsupported = UNSUPPORTED.get(id.name());
        if (unsupported != null) {
            throw new UnsupportedOperationException(OWNER + ": initializer '" + id.name() + "' is not supported: "
                    + unsupported);
        }
        String cls = NAMES.get(id.name());
        if (cls == null) {
            throw new IllegalArgumentException(OWNER + ": unknown initializer '" + id.name() + "'; known names are "
                    + knownNames());
        }
        return parse(cls, id.config());
    }

    /** {@link #of}, except that null gives null (Keras's {@code initializers.get(None)}). */
    public static Initializer ofNullable(Object spec) {
        return spec == null ? null : of(spec);
    }

    private static Initializer parse(String cls, Map<String, Object> c) {
        KerasObjects.rejectUnknownKeys(OWNER, cls, c, KEYS.get(cls));
        Map<String, Object> out = new LinkedHashMap<>();
        switch (cls) {
            case "Zeros" -> {
                return new Initializer(cls, Draw.ZEROS, 0, 0, 0, null, null, null, null, null, out);
            }
            case "Ones" -> {
                return new Initializer(cls, Draw.ONES, 0, 0, 0, null, null, null, null, null, out);
            }
            case "Constant" -> {
                Number value = KerasObjects.number(OWNER, cls, c, "value", 0.0);
                out.put("value", value);
                return new Initializer(cls, Draw.CONSTANT, value.doubleValue(), 0, 0, null, null, null, null, null,
                        out);
            }
            case "RandomNormal", "TruncatedNormal" -> {
                Long seed = KerasObjects.seed(OWNER, cls, c);
                Number mean = KerasObjects.number(OWNER, cls, c, "mean", 0.0);
                Number stddev = KerasObjects.number(OWNER, cls, c, "stddev", 0.05);
                out.put("seed", seed);
                out.put("mean", mean);
                out.put("stddev", stddev);
                Draw d = cls.equals("RandomNormal") ? Draw.NORMAL : Draw.TRUNCATED_NORMAL;
                return new Initializer(cls, d, mean.doubleValue(), stddev.doubleValue(), 0, null, null, seed, null,
                        null, out);
            }
            case "RandomUniform" -> {
                Long seed = KerasObjects.seed(OWNER, cls, c);
                Number minval = KerasObjects.number(OWNER, cls, c, "minval", -0.05);
                Number maxval = KerasObjects.number(OWNER, cls, c, "maxval", 0.05);
                out.put("seed", seed);
                out.put("minval", minval);
                out.put("maxval", maxval);
                return new Initializer(cls, Draw.UNIFORM, minval.doubleValue(), maxval.doubleValue(), 0, null, null,
                        seed, null, null, out);
            }
            default -> {
                return parseVarianceScaling(cls, c, out);
            }
        }
    }

    private static Initializer parseVarianceScaling(String cls, Map<String, Object> c, Map<String, Object> out) {
        Long seed = KerasObjects.seed(OWNER, cls, c);
        Object inputAxes = KerasObjects.intList(OWNER, cls, c, "input_axes", null, false);
        Object outputAxes = KerasObjects.intList(OWNER, cls, c, "output_axes", null, false);
        Number scale;
        String mode;
        String distribution;
        switch (cls) {
            case "GlorotUniform" -> { scale = 1.0; mode = "fan_avg"; distribution = "uniform"; }
            case "GlorotNormal" -> { scale = 1.0; mode = "fan_avg"; distribution = "truncated_normal"; }
            case "HeUniform" -> { scale = 2.0; mode = "fan_in"; distribution = "uniform"; }
            case "HeNormal" -> { scale = 2.0; mode = "fan_in"; distribution = "truncated_normal"; }
            case "LecunUniform" -> { scale = 1.0; mode = "fan_in"; distribution = "uniform"; }
            case "LecunNormal" -> { scale = 1.0; mode = "fan_in"; distribution = "truncated_normal"; }
            default -> {
                scale = KerasObjects.number(OWNER, cls, c, "scale", 1.0);
                mode = KerasObjects.string(OWNER, cls, c, "mode", "fan_in");
                distribution = KerasObjects.string(OWNER, cls, c, "distribution", "truncated_normal");
            }
        }
        if (!(scale.doubleValue() > 0.0)) {
            throw new IllegalArgumentException(OWNER + ": " + cls + " config 'scale' must be a positive float, but is "
                    + scale);
        }
        if (!List.of("fan_in", "fan_out", "fan_avg").contains(mode)) {
            throw new IllegalArgumentException(OWNER + ": " + cls + " config 'mode' must be one of [fan_in, fan_out, "
                    + "fan_avg], but is '" + mode + "'");
        }
        // Keras lower-cases the distribution and reads "normal" as "truncated_normal"; it
        // keeps (and serializes) the normalised spelling.
        distribution = distribution.toLowerCase(java.util.Locale.ROOT);
        if (distribution.equals("normal")) {
            distribution = "truncated_normal";
        }
        if (!List.of("truncated_normal", "untruncated_normal", "uniform").contains(distribution)) {
            throw new IllegalArgumentException(OWNER + ": " + cls + " config 'distribution' must be one of "
                    + "[truncated_normal, untruncated_normal, uniform] (or 'normal'), but is '" + distribution + "'");
        }
        out.put("seed", seed);
        if (cls.equals("VarianceScaling")) {
            out.put("scale", scale);
            out.put("mode", mode);
            out.put("distribution", distribution);
        }
        out.put("input_axes", inputAxes);
        out.put("output_axes", outputAxes);
        return new Initializer(cls, Draw.VARIANCE_SCALING, 0, 0, scale.doubleValue(), mode, distribution, seed,
                KerasObjects.ints(inputAxes), KerasObjects.ints(outputAxes), out);
    }

    /** The Keras class name, e.g. {@code "GlorotUniform"}. */
    public String className() {
        return className;
    }

    /**
     * Keras's serialized form: {@code {"module": "keras.initializers", "class_name": ...,
     * "config": {...}, "registered_name": null}}, with the config keys in the order and
     * with the values Keras's {@code get_config} gives (the Glorot/He/Lecun presets write
     * only {@code seed}, {@code input_axes}, {@code output_axes}). A fresh, mutable map.
     */
    public Map<String, Object> toConfig() {
        return KerasObjects.envelope(MODULE, className, config);
    }

    /** {@link #generate(long[], int[], int[], long)} without fan axes (the rank rule). */
    public float[] generate(long[] shape, long seed) {
        return generate(shape, null, null, seed);
    }

    /**
     * Initial values for a weight of {@code shape}, row-major.
     *
     * <p>The fans of the VarianceScaling family follow Keras's {@code compute_fans}: when
     * the initializer's config gives both {@code input_axes} and {@code output_axes} these
     * are used, else the {@code inputAxes} and {@code outputAxes} given here (as Keras's
     * EinsumDense passes them when it builds a kernel); when both are non-null, fan_in and
     * fan_out are the products of the dimensions on those axes (negative axes count from
     * the end). Otherwise rank 0 gives (1, 1), rank 1 (n, n), rank 2
     * ({@code shape[0]}, {@code shape[1]}), and higher ranks, read as convolution kernels,
     * {@code shape[-2] * rf} and {@code shape[-1] * rf} with {@code rf} the product of all
     * dimensions but the last two. Other initializers ignore the axes.
     *
     * @param seed used when the initializer's config has no seed of its own
     * @throws IllegalArgumentException for a negative dimension, a shape too large for an
     *     array, or an axis out of range
     */
    public float[] generate(long[] shape, int[] inputAxes, int[] outputAxes, long seed) {
        Objects.requireNonNull(shape, "Initializer.generate: shape is null");
        int n = KerasObjects.elementCount("Initializer.generate", shape);
        float[] out = new float[n];
        SplittableRandom random = new SplittableRandom(this.seed != null ? this.seed : seed);
        switch (draw) {
            case ZEROS -> { }
            case ONES -> Arrays.fill(out, 1f);
            case CONSTANT -> Arrays.fill(out, (float) a);
            case NORMAL -> normal(random, out, a, b);
            case UNIFORM -> uniform(random, out, a, b);
            case TRUNCATED_NORMAL -> truncatedNormal(random, out, a, b);
            case VARIANCE_SCALING -> {
                boolean own = this.inputAxes != null && this.outputAxes != null;
                long[] fans = computeFans(shape, own ? this.inputAxes : inputAxes, own ? this.outputAxes : outputAxes);
                double n2 = switch (mode) {
                    case "fan_in" -> fans[0];
                    case "fan_out" -> fans[1];
                    default -> (fans[0] + fans[1]) / 2.0;
                };
                double s = scale / Math.max(1.0, n2);
                switch (distribution) {
                    case "truncated_normal" -> truncatedNormal(random, out, 0.0, Math.sqrt(s) / TRUNCATED_STDDEV_FACTOR);
                    case "untruncated_normal" -> normal(random, out, 0.0, Math.sqrt(s));
                    default -> {
                        double limit = Math.sqrt(3.0 * s);
                        uniform(random, out, -limit, limit);
                    }
                }
            }
        }
        return out;
    }

    /**
     * {@code {fan_in, fan_out}} as Keras's {@code compute_fans} gives them; the axes are
     * used only when both are non-null.
     */
    static long[] computeFans(long[] shape, int[] inputAxes, int[] outputAxes) {
        if (inputAxes != null && outputAxes != null) {
            long fanIn = 1;
            for (int axis : inputAxes) {
                fanIn *= shape[KerasObjects.axis("Initializer.generate", "input axis", axis, shape.length)];
            }
            long fanOut = 1;
            for (int axis : outputAxes) {
                fanOut *= shape[KerasObjects.axis("Initializer.generate", "output axis", axis, shape.length)];
            }
            return new long[] {fanIn, fanOut};
        }
        int rank = shape.length;
        if (rank == 0) {
            return new long[] {1, 1};
        }
        if (rank == 1) {
            return new long[] {shape[0], shape[0]};
        }
        if (rank == 2) {
            return new long[] {shape[0], shape[1]};
        }
        long receptiveField = 1;
        for (int i = 0; i < rank - 2; i++) {
            receptiveField *= shape[i];
        }
        return new long[] {shape[rank - 2] * receptiveField, shape[rank - 1] * receptiveField};
    }

    private static void normal(SplittableRandom random, float[] out, double mean, double stddev) {
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) (mean + stddev * random.nextGaussian());
        }
    }

    /** Uniform on [lo, hi), as Keras's {@code random.uniform}. */
    private static void uniform(SplittableRandom random, float[] out, double lo, double hi) {
        double width = hi - lo;
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) (lo + width * random.nextDouble());
        }
    }

    /**
     * A normal truncated to two standard deviations by resampling. The standard draw is
     * tested, not the scaled one, so that stddev 0 (all values equal to the mean) cannot
     * loop; scaling and rounding to float are monotonic, so the bound still holds after.
     */
    private static void truncatedNormal(SplittableRandom random, float[] out, double mean, double stddev) {
        for (int i = 0; i < out.length; i++) {
            double z;
            do {
                z = random.nextGaussian();
            } while (z < -2.0 || z > 2.0);
            out[i] = (float) (mean + stddev * z);
        }
    }

    private static String knownNames() {
        Map<String, StringBuilder> byClass = new TreeMap<>();
        for (Map.Entry<String, String> e : NAMES.entrySet()) {
            if (!e.getKey().equals(e.getValue())) {
                byClass.computeIfAbsent(e.getValue(), k -> new StringBuilder(k)).append('/').append(e.getKey());
            } else {
                byClass.computeIfAbsent(e.getValue(), StringBuilder::new);
            }
        }
        return byClass.values().stream().map(StringBuilder::toString).toList().toString();
    }

    /** Keras's {@code to_snake_case} for the class names used here (no digits, no acronyms). */
    private static String snakeCase(String camel) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < camel.length(); i++) {
            char ch = camel.charAt(i);
            if (Character.isUpperCase(ch) && i > 0) {
                s.append('_');
            }
            s.append(Character.toLowerCase(ch));
        }
        return s.toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Initializer other && className.equals(other.className) && config.equals(other.config);
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
