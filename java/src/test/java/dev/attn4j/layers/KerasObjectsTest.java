package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Initializer, Regularizer and Constraint: Keras identifiers, configs and formulas. */
class KerasObjectsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    // As in /work/shared/keras-golden/multi_head_attention.json (Keras 3.15.1 MHA config).
    private static final String GOLDEN_GLOROT = "{\"module\": \"keras.initializers\", \"class_name\": "
            + "\"GlorotUniform\", \"config\": {\"seed\": null, \"input_axes\": null, \"output_axes\": null}, "
            + "\"registered_name\": null}";
    private static final String GOLDEN_ZEROS = "{\"module\": \"keras.initializers\", \"class_name\": \"Zeros\", "
            + "\"config\": {}, \"registered_name\": null}";

    private static Map<String, Object> parse(String json) throws Exception {
        @SuppressWarnings("unchecked")
        Map<String, Object> m = JSON.readValue(json, Map.class);
        return m;
    }

    private static String compact(String json) throws Exception {
        return JSON.writeValueAsString(JSON.readTree(json));
    }

    /** The JSON Keras would write for this config, compared as text: key order and number types count. */
    private static void assertConfigJson(String expectedJson, Map<String, Object> actual) throws Exception {
        assertEquals(compact(expectedJson), JSON.writeValueAsString(actual));
    }

    private static Map<String, Object> dict(String className, Map<String, Object> config) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("class_name", className);
        m.put("config", config);
        return m;
    }

    private static Map<String, Object> cfg(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    // ---------------------------------------------------------------- Initializer: names

    @Test
    void everyInitializerNameResolvesToItsKerasClass() {
        Map<String, String> names = new LinkedHashMap<>();
        names.put("glorot_uniform", "GlorotUniform");
        names.put("glorot_normal", "GlorotNormal");
        names.put("he_uniform", "HeUniform");
        names.put("he_normal", "HeNormal");
        names.put("lecun_uniform", "LecunUniform");
        names.put("lecun_normal", "LecunNormal");
        names.put("random_normal", "RandomNormal");
        names.put("random_uniform", "RandomUniform");
        names.put("truncated_normal", "TruncatedNormal");
        names.put("variance_scaling", "VarianceScaling");
        names.put("zeros", "Zeros");
        names.put("ones", "Ones");
        names.put("constant", "Constant");
        // Keras's aliases.
        names.put("normal", "RandomNormal");
        names.put("uniform", "RandomUniform");
        names.put("zero", "Zeros");
        names.put("one", "Ones");
        for (Map.Entry<String, String> e : names.entrySet()) {
            Initializer snake = Initializer.of(e.getKey());
            Initializer camel = Initializer.of(e.getValue());
            assertEquals(e.getValue(), snake.className(), e.getKey());
            assertEquals(camel, snake, e.getKey());
            // Short dict, full dict, dict without config, dict with config null.
            assertEquals(camel, Initializer.of(dict(e.getKey(), Map.of())));
            assertEquals(camel, Initializer.of(camel.toConfig()));
            assertEquals(camel, Initializer.of(Map.of("class_name", e.getValue())));
            assertEquals(camel, Initializer.of(dict(e.getValue(), null)));
        }
        Initializer g = Initializer.of("glorot_uniform");
        assertSame(g, Initializer.of(g));
        assertNull(Initializer.ofNullable(null));
        assertThrows(NullPointerException.class, () -> Initializer.of(null));
    }

    @Test
    void unknownInitializerNamesAndKeysAreRefusedWithTheKnownOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Initializer.of("glorot"));
        assertTrue(e.getMessage().contains("'glorot'"), e.getMessage());
        assertTrue(e.getMessage().contains("GlorotUniform/glorot_uniform"), e.getMessage());
        assertTrue(e.getMessage().contains("RandomNormal/normal/random_normal"), e.getMessage());
        // Keras's names are case-sensitive.
        assertThrows(IllegalArgumentException.class, () -> Initializer.of("Glorot_Uniform"));

        e = assertThrows(IllegalArgumentException.class,
                () -> Initializer.of(dict("GlorotUniform", cfg("scale", 2.0, "seed", 1))));
        assertTrue(e.getMessage().contains("[scale]"), e.getMessage());
        assertTrue(e.getMessage().contains("[seed, input_axes, output_axes]"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> Initializer.of(dict("Zeros", cfg("value", 1))));
        assertTrue(e.getMessage().contains("[value]") && e.getMessage().contains("Zeros"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class,
                () -> Initializer.of(Map.of("class_name", "Zeros", "confg", Map.of())));
        assertTrue(e.getMessage().contains("[confg]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Initializer.of(Map.of("config", Map.of())));
        Map<String, Object> nullModule = new HashMap<>(Map.of("class_name", "Zeros"));
        nullModule.put("module", null);
        assertThrows(IllegalArgumentException.class, () -> Initializer.of(nullModule));
        assertThrows(IllegalArgumentException.class, () -> Initializer.of(42));
    }

    @Test
    void orthogonalIdentityAndStftAreUnsupportedWithAReason() {
        for (String name : List.of("orthogonal", "Orthogonal", "OrthogonalInitializer", "identity", "Identity",
                "IdentityInitializer", "STFT", "stft", "STFTInitializer", "Initializer")) {
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                    () -> Initializer.of(name), name);
            assertTrue(e.getMessage().contains("'" + name + "'") && e.getMessage().contains("not"), e.getMessage());
        }
        assertThrows(UnsupportedOperationException.class,
                () -> Initializer.of(dict("Orthogonal", cfg("gain", 1.0, "seed", null))));
    }

    @Test
    void badInitializerValuesAreRefused() {
        assertThrows(IllegalArgumentException.class,
                () -> Initializer.of(dict("VarianceScaling", cfg("scale", 0.0))));
        assertThrows(IllegalArgumentException.class,
                () -> Initializer.of(dict("VarianceScaling", cfg("mode", "fan_sum"))));
        assertThrows(IllegalArgumentException.class,
                () -> Initializer.of(dict("VarianceScaling", cfg("distribution", "laplace"))));
        assertThrows(IllegalArgumentException.class,
                () -> Initializer.of(dict("RandomNormal", cfg("stddev", "big"))));
        assertThrows(IllegalArgumentException.class,
                () -> Initializer.of(dict("RandomNormal", cfg("stddev", null))));
        assertThrows(IllegalArgumentException.class, () -> Initializer.of(dict("RandomNormal", cfg("seed", 1.5))));
        assertThrows(IllegalArgumentException.class, () -> Initializer.of(dict("HeNormal",
                cfg("seed", Map.of("class_name", "SeedGenerator", "config", Map.of("seed", 1))))));
        assertThrows(IllegalArgumentException.class,
                () -> Initializer.of(dict("GlorotUniform", cfg("input_axes", List.of("a")))));
    }

    // ---------------------------------------------------------------- Initializer: configs

    @Test
    void glorotUniformAndZerosSerializeExactlyAsTheGoldenKerasConfig() throws Exception {
        assertConfigJson(GOLDEN_GLOROT, Initializer.of("glorot_uniform").toConfig());
        assertConfigJson(GOLDEN_ZEROS, Initializer.of("zeros").toConfig());
        // And the golden dicts read back to the same objects.
        assertEquals(Initializer.of("GlorotUniform"), Initializer.of(parse(GOLDEN_GLOROT)));
        assertEquals(Initializer.of("Zeros"), Initializer.of(parse(GOLDEN_ZEROS)));
        assertConfigJson(GOLDEN_GLOROT, Initializer.of(parse(GOLDEN_GLOROT)).toConfig());
    }

    @Test
    void everyInitializerWritesKerasGetConfigKeysInOrder() throws Exception {
        String preset = "{\"seed\": null, \"input_axes\": null, \"output_axes\": null}";
        Map<String, String> expected = new LinkedHashMap<>();
        for (String p : List.of("GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
                "LecunNormal")) {
            expected.put(p, preset);
        }
        expected.put("RandomNormal", "{\"seed\": null, \"mean\": 0.0, \"stddev\": 0.05}");
        expected.put("TruncatedNormal", "{\"seed\": null, \"mean\": 0.0, \"stddev\": 0.05}");
        expected.put("RandomUniform", "{\"seed\": null, \"minval\": -0.05, \"maxval\": 0.05}");
        expected.put("VarianceScaling", "{\"seed\": null, \"scale\": 1.0, \"mode\": \"fan_in\", "
                + "\"distribution\": \"truncated_normal\", \"input_axes\": null, \"output_axes\": null}");
        expected.put("Constant", "{\"value\": 0.0}");
        expected.put("Zeros", "{}");
        expected.put("Ones", "{}");
        for (Map.Entry<String, String> e : expected.entrySet()) {
            assertConfigJson("{\"module\": \"keras.initializers\", \"class_name\": \"" + e.getKey()
                    + "\", \"config\": " + e.getValue() + ", \"registered_name\": null}",
                    Initializer.of(e.getKey()).toConfig());
        }
    }

    @Test
    void initializerConfigsRoundTripWithTheirValues() throws Exception {
        List<String> dicts = List.of(
                "{\"class_name\": \"VarianceScaling\", \"config\": {\"seed\": 7, \"scale\": 2, \"mode\": \"fan_out\","
                        + " \"distribution\": \"uniform\", \"input_axes\": [0], \"output_axes\": [1, 2]}}",
                "{\"class_name\": \"RandomNormal\", \"config\": {\"seed\": 3, \"mean\": 1, \"stddev\": 0.5}}",
                "{\"class_name\": \"RandomUniform\", \"config\": {\"seed\": null, \"minval\": -1.0, \"maxval\": 2}}",
                "{\"class_name\": \"TruncatedNormal\", \"config\": {\"mean\": 0.0, \"stddev\": 1.0}}",
                "{\"class_name\": \"Constant\", \"config\": {\"value\": 10.0}}",
                "{\"class_name\": \"HeNormal\", \"config\": {\"seed\": 12345678901, \"input_axes\": [-1],"
                        + " \"output_axes\": [0]}}");
        for (String d : dicts) {
            Initializer init = Initializer.of(parse(d));
            Map<String, Object> config = init.toConfig();
            assertEquals("keras.initializers", config.get("module"));
            assertEquals(init, Initializer.of(config), d);
            assertEquals(config, Initializer.of(config).toConfig(), d);
            // The values come back as written (an int stays an int).
            @SuppressWarnings("unchecked")
            Map<String, Object> inner = (Map<String, Object>) config.get("config");
            Map<String, Object> given = parse(d);
            @SuppressWarnings("unchecked")
            Map<String, Object> givenInner = (Map<String, Object>) given.get("config");
            for (Map.Entry<String, Object> e : givenInner.entrySet()) {
                assertEquals(JSON.writeValueAsString(e.getValue()), JSON.writeValueAsString(inner.get(e.getKey())),
                        d + " key " + e.getKey());
            }
        }
        // Keras normalises the distribution's spelling, and so serializes it.
        Initializer vs = Initializer.of(dict("VarianceScaling", cfg("distribution", "Normal")));
        @SuppressWarnings("unchecked")
        Map<String, Object> inner = (Map<String, Object>) vs.toConfig().get("config");
        assertEquals("truncated_normal", inner.get("distribution"));
        // A missing key keeps the default, in Keras's key order.
        assertEquals(List.of("seed", "scale", "mode", "distribution", "input_axes", "output_axes"),
                new ArrayList<>(inner.keySet()));
        // toConfig is a fresh copy.
        Map<String, Object> c1 = Initializer.of("ones").toConfig();
        c1.put("class_name", "Zeros");
        assertEquals("Ones", Initializer.of("ones").toConfig().get("class_name"));
    }

    // ---------------------------------------------------------------- Initializer: fans and values

    @Test
    void fansFollowKerasComputeFans() {
        assertArrayEquals(new long[] {4, 6}, Initializer.computeFans(new long[] {4, 2, 3}, new int[] {0},
                new int[] {1, 2}));
        assertArrayEquals(new long[] {4, 6}, Initializer.computeFans(new long[] {4, 2, 3}, new int[] {-3},
                new int[] {-2, -1}));
        // Without axes (or with only one of them): the rank rule.
        assertArrayEquals(new long[] {8, 12}, Initializer.computeFans(new long[] {4, 2, 3}, null, null));
        assertArrayEquals(new long[] {8, 12}, Initializer.computeFans(new long[] {4, 2, 3}, new int[] {0}, null));
        assertArrayEquals(new long[] {1, 1}, Initializer.computeFans(new long[] {}, null, null));
        assertArrayEquals(new long[] {5, 5}, Initializer.computeFans(new long[] {5}, null, null));
        assertArrayEquals(new long[] {3, 7}, Initializer.computeFans(new long[] {3, 7}, null, null));
        assertArrayEquals(new long[] {2 * 3 * 4, 2 * 3 * 5},
                Initializer.computeFans(new long[] {2, 3, 4, 5}, null, null));
        assertThrows(IllegalArgumentException.class,
                () -> Initializer.computeFans(new long[] {4, 2, 3}, new int[] {3}, new int[] {1}));
    }

    private static double mean(float[] v) {
        double s = 0;
        for (float x : v) {
            s += x;
        }
        return s / v.length;
    }

    private static double stddev(float[] v) {
        double m = mean(v);
        double s = 0;
        for (float x : v) {
            s += (x - m) * (x - m);
        }
        return Math.sqrt(s / v.length);
    }

    private static double maxAbs(float[] v) {
        double m = 0;
        for (float x : v) {
            m = Math.max(m, Math.abs(x));
        }
        return m;
    }

    private static final long[] SHAPE = {400, 250}; // 100k values, fan_in 400, fan_out 250

    /** Keras's uniform limit, computed as VarianceScaling does: sqrt(3 * (scale / max(1, n))). */
    private static double kerasLimit(double scale, double n) {
        return Math.sqrt(3.0 * (scale / Math.max(1.0, n)));
    }

    /** Uniform limits are exact bounds, and the draws fill the range (variance limit^2 / 3). */
    @Test
    void uniformVarianceScalingUsesKerasLimits() {
        Map<String, Double> limits = Map.of(
                "glorot_uniform", kerasLimit(1.0, (400 + 250) / 2.0),
                "he_uniform", kerasLimit(2.0, 400),
                "lecun_uniform", kerasLimit(1.0, 400));
        for (Map.Entry<String, Double> e : limits.entrySet()) {
            float[] v = Initializer.of(e.getKey()).generate(SHAPE, 11);
            assertEquals(100_000, v.length);
            double limit = e.getValue();
            float bound = (float) limit;
            for (float x : v) {
                assertTrue(x >= -bound && x <= bound, e.getKey() + ": " + x + " outside +-" + limit);
            }
            assertTrue(maxAbs(v) > 0.999 * limit, e.getKey() + " does not reach its limit");
            assertEquals(0.0, mean(v), 0.01 * limit, e.getKey());
            assertEquals(limit / Math.sqrt(3), stddev(v), 0.02 * limit / Math.sqrt(3), e.getKey());
        }
    }

    /** Truncated normals keep the variance (stddev sqrt(scale / n)) and stay within 2 raw stddevs. */
    @Test
    void normalVarianceScalingUsesKerasStddevsAndTruncation() {
        Map<String, Double> stddevs = Map.of(
                "glorot_normal", Math.sqrt(2.0 / (400 + 250)),
                "he_normal", Math.sqrt(2.0 / 400),
                "lecun_normal", Math.sqrt(1.0 / 400));
        for (Map.Entry<String, Double> e : stddevs.entrySet()) {
            float[] v = Initializer.of(e.getKey()).generate(SHAPE, 12);
            double target = e.getValue();
            double raw = target / 0.87962566103423978;
            float bound = (float) (0.0 + raw * 2.0);
            for (float x : v) {
                assertTrue(Math.abs(x) <= bound, e.getKey() + ": " + x + " beyond 2 stddev " + bound);
            }
            assertTrue(maxAbs(v) > 0.99 * bound, e.getKey() + " truncated too early");
            assertEquals(0.0, mean(v), 0.01 * target, e.getKey());
            assertEquals(target, stddev(v), 0.02 * target, e.getKey());
        }
        // untruncated_normal, fan_out and fan_avg through VarianceScaling's config.
        float[] v = Initializer.of(dict("VarianceScaling",
                cfg("scale", 3.0, "mode", "fan_out", "distribution", "untruncated_normal"))).generate(SHAPE, 13);
        double target = Math.sqrt(3.0 / 250);
        assertEquals(target, stddev(v), 0.02 * target);
        assertTrue(maxAbs(v) > 3 * target, "untruncated draws go beyond 2 stddev");
        v = Initializer.of(dict("VarianceScaling", cfg("scale", 0.5, "mode", "fan_avg", "distribution", "uniform")))
                .generate(SHAPE, 14);
        double limit = kerasLimit(0.5, 325.0);
        assertTrue(maxAbs(v) <= (float) limit && maxAbs(v) > 0.999 * limit);
        // Fans below 1 are taken as 1 (Keras's max(1, n)): an empty fan does not divide by 0.
        v = Initializer.of("he_uniform").generate(new long[] {0, 5}, 1);
        assertEquals(0, v.length);
        v = Initializer.of("lecun_uniform").generate(new long[] {}, 1);
        assertEquals(1, v.length);
        assertTrue(Math.abs(v[0]) <= (float) Math.sqrt(3.0));
    }

    @Test
    void randomNormalUniformAndTruncatedNormalMatchTheirParameters() {
        float[] v = Initializer.of("random_normal").generate(SHAPE, 21);
        assertEquals(0.0, mean(v), 0.001);
        assertEquals(0.05, stddev(v), 0.001);
        assertTrue(maxAbs(v) > 0.1, "an untruncated normal goes past 2 stddev");

        v = Initializer.of(dict("RandomNormal", cfg("mean", 1.0, "stddev", 2.0))).generate(SHAPE, 21);
        assertEquals(1.0, mean(v), 0.03);
        assertEquals(2.0, stddev(v), 0.04);

        v = Initializer.of("random_uniform").generate(SHAPE, 22);
        for (float x : v) {
            assertTrue(x >= -0.05f && x <= 0.05f, "uniform value " + x);
        }
        assertEquals(0.1 / Math.sqrt(12), stddev(v), 0.02 * 0.1 / Math.sqrt(12));

        v = Initializer.of(dict("RandomUniform", cfg("minval", 2, "maxval", 3))).generate(SHAPE, 22);
        for (float x : v) {
            assertTrue(x >= 2f && x <= 3f, "uniform value " + x);
        }
        assertEquals(2.5, mean(v), 0.005);

        v = Initializer.of("truncated_normal").generate(SHAPE, 23);
        for (float x : v) {
            assertTrue(Math.abs(x) <= 0.1f, "truncated value " + x);
        }
        assertTrue(maxAbs(v) > 0.099, "truncated at 2 stddev, not before");
        // A standard normal truncated to [-2, 2] has stddev 0.87962566...
        assertEquals(0.05 * 0.87962566103423978, stddev(v), 0.02 * 0.05);

        v = Initializer.of(dict("TruncatedNormal", cfg("mean", 5.0, "stddev", 0.0))).generate(new long[] {10}, 1);
        for (float x : v) {
            assertEquals(5f, x);
        }
    }

    @Test
    void constantInitializersFillTheirValue() {
        assertArrayEquals(new float[6], Initializer.of("zeros").generate(new long[] {2, 3}, 1));
        float[] ones = new float[6];
        Arrays.fill(ones, 1f);
        assertArrayEquals(ones, Initializer.of("ones").generate(new long[] {2, 3}, 1));
        float[] tens = new float[4];
        Arrays.fill(tens, 10f);
        assertArrayEquals(tens, Initializer.of(dict("Constant", cfg("value", 10))).generate(new long[] {4}, 1));
        assertArrayEquals(new float[1], Initializer.of("constant").generate(new long[] {}, 1));
        assertThrows(IllegalArgumentException.class,
                () -> Initializer.of("zeros").generate(new long[] {2, -1}, 1));
    }

    @Test
    void axesDecideTheFansOfGeneratedValues() {
        long[] kernel = {100, 10, 30};
        double withAxes = kerasLimit(1.0, (100 + 300) / 2.0);
        double rankRule = kerasLimit(1.0, (1000 + 3000) / 2.0);
        Initializer glorot = Initializer.of("glorot_uniform");
        float[] v = glorot.generate(kernel, new int[] {0}, new int[] {1, 2}, 5);
        assertTrue(maxAbs(v) <= (float) withAxes && maxAbs(v) > 0.99 * withAxes);
        v = glorot.generate(kernel, 5);
        assertTrue(maxAbs(v) <= (float) rankRule && maxAbs(v) > 0.99 * rankRule);
        // Axes in the initializer's own config win over the call's.
        Initializer configured = Initializer.of(dict("GlorotUniform",
                cfg("input_axes", List.of(0), "output_axes", List.of(1, 2))));
        v = configured.generate(kernel, 5);
        assertTrue(maxAbs(v) <= (float) withAxes && maxAbs(v) > 0.99 * withAxes);
        assertArrayEquals(v, configured.generate(kernel, new int[] {0, 1}, new int[] {2}, 5));
    }

    @Test
    void valuesAreDeterministicPerSeed() {
        for (String name : List.of("glorot_uniform", "glorot_normal", "random_normal", "random_uniform",
                "truncated_normal", "variance_scaling")) {
            Initializer init = Initializer.of(name);
            float[] a = init.generate(new long[] {7, 9}, 99);
            assertArrayEquals(a, init.generate(new long[] {7, 9}, 99), name);
            assertArrayEquals(a, Initializer.of(name).generate(new long[] {7, 9}, 99), name);
            assertFalse(Arrays.equals(a, init.generate(new long[] {7, 9}, 100)), name);
        }
        // A seed in the config is used instead of the call's, as a seeded Keras initializer
        // gives the same values on every call.
        Initializer seeded = Initializer.of(dict("RandomNormal", cfg("seed", 42)));
        assertArrayEquals(seeded.generate(new long[] {5}, 1), seeded.generate(new long[] {5}, 2));
        assertArrayEquals(seeded.generate(new long[] {5}, 1),
                Initializer.of("random_normal").generate(new long[] {5}, 42));
        assertNotEquals(seeded, Initializer.of("random_normal"));
    }

    // ---------------------------------------------------------------- Regularizer

    @Test
    void regularizerNamesAndDicts() throws Exception {
        assertEquals("L1", Regularizer.of("l1").className());
        assertEquals(Regularizer.of("l1"), Regularizer.of("L1"));
        assertEquals("L2", Regularizer.of("l2").className());
        assertEquals(Regularizer.of("l2"), Regularizer.of("L2"));
        assertEquals("L1L2", Regularizer.of("l1l2").className());
        assertEquals(Regularizer.of("l1l2"), Regularizer.of("L1L2"));
        assertEquals(0.01, Regularizer.of("l2").l2());
        assertEquals((float) 0.01, Regularizer.of("l1").l1());
        assertEquals(0.0, Regularizer.of("L1L2").l1());
        assertEquals(0.0, Regularizer.of("L1L2").l2());

        Regularizer l2 = Regularizer.of(parse("{\"module\": \"keras.regularizers\", \"class_name\": \"L2\", "
                + "\"config\": {\"l2\": 0.001}, \"registered_name\": null}"));
        assertEquals(0.001, l2.l2());
        assertEquals(l2, Regularizer.of(dict("l2", cfg("l2", 0.001))));
        Regularizer both = Regularizer.of(dict("L1L2", cfg("l1", 0.5)));
        assertEquals(0.5, both.l1());
        assertEquals(0.0, both.l2());
        assertEquals(0.01, Regularizer.of(dict("L2", cfg("l2", null))).l2(), "null means the default, as in Keras");
        assertSame(l2, Regularizer.of(l2));
        assertNull(Regularizer.ofNullable(null));
        assertThrows(NullPointerException.class, () -> Regularizer.of(null));

        Regularizer alias = Regularizer.of("l1_l2"); // the Python alias name, accepted by attn4j
        assertEquals("L1L2", alias.className());
        assertEquals(0.0, alias.l1());
        assertEquals(0.0, alias.l2());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Regularizer.of("l3"));
        assertTrue(e.getMessage().contains("'l3'") && e.getMessage().contains("l1l2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Regularizer.of(dict("L2", cfg("l1", 0.1))));
        assertTrue(e.getMessage().contains("[l1]") && e.getMessage().contains("[l2]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Regularizer.of(dict("L2", cfg("l2", -0.1))));
        assertThrows(IllegalArgumentException.class,
                () -> Regularizer.of(dict("L1", cfg("l1", Double.POSITIVE_INFINITY))));
        assertThrows(IllegalArgumentException.class, () -> Regularizer.of(dict("L1L2", cfg("l2", Double.NaN))));
        assertThrows(IllegalArgumentException.class, () -> Regularizer.of(dict("L1", cfg("l1", "0.1"))));
        assertThrows(UnsupportedOperationException.class, () -> Regularizer.of("orthogonal_regularizer"));
        assertThrows(UnsupportedOperationException.class, () -> Regularizer.of("OrthogonalRegularizer"));
    }

    @Test
    void regularizerConfigsAreKerasExact() throws Exception {
        // Keras keeps L1's factor as a float32 tensor and serializes float(tensor).
        assertConfigJson("{\"module\": \"keras.regularizers\", \"class_name\": \"L1\", "
                + "\"config\": {\"l1\": 0.009999999776482582}, \"registered_name\": null}",
                Regularizer.of("l1").toConfig());
        assertConfigJson("{\"module\": \"keras.regularizers\", \"class_name\": \"L2\", "
                + "\"config\": {\"l2\": 0.01}, \"registered_name\": null}", Regularizer.of("l2").toConfig());
        assertConfigJson("{\"module\": \"keras.regularizers\", \"class_name\": \"L1L2\", "
                + "\"config\": {\"l1\": 0.0, \"l2\": 0.0}, \"registered_name\": null}",
                Regularizer.of("l1l2").toConfig());
        // Integers become floats (Keras's validate_float_arg returns float(value)).
        assertConfigJson("{\"module\": \"keras.regularizers\", \"class_name\": \"L1L2\", "
                + "\"config\": {\"l1\": 1.0, \"l2\": 2.0}, \"registered_name\": null}",
                Regularizer.of(dict("L1L2", cfg("l2", 2, "l1", 1))).toConfig());
        for (String name : List.of("l1", "l2", "l1l2")) {
            Regularizer r = Regularizer.of(dict(name, cfg()));
            assertEquals(r, Regularizer.of(r.toConfig()));
            assertEquals(r.toConfig(), Regularizer.of(r.toConfig()).toConfig());
        }
    }

    @Test
    void regularizerPenaltiesMatchHandComputedValues() {
        float[] w = {1f, -2f, 3f}; // sum |w| = 6, sum w^2 = 14
        assertEquals(3.0, Regularizer.of(dict("L1", cfg("l1", 0.5))).penalty(w));
        assertEquals(3.5, Regularizer.of(dict("L2", cfg("l2", 0.25))).penalty(w));
        assertEquals(6.5, Regularizer.of(dict("L1L2", cfg("l1", 0.5, "l2", 0.25))).penalty(w));
        assertEquals(0.0, Regularizer.of("l1l2").penalty(w));
        // Keras's docstring examples: L2(2.) on ones(5, 5) is 50; L1(0.01) on ones(5, 5) is 0.25.
        float[] ones = new float[25];
        Arrays.fill(ones, 1f);
        assertEquals(50.0, Regularizer.of(dict("L2", cfg("l2", 2.0))).penalty(ones));
        assertEquals(0.25, Regularizer.of("l1").penalty(ones), 1e-8);
        // The result is a float32 value: 0.01 * 14 rounded to float.
        double p = Regularizer.of("l2").penalty(w);
        assertEquals((double) (float) p, p);
        assertEquals((float) 0.01 * 14f, (float) p);
        // L1L2 leaves out a term whose factor is 0, so an infinite weight gives inf, not NaN.
        float[] inf = {Float.POSITIVE_INFINITY};
        assertEquals(Double.POSITIVE_INFINITY, Regularizer.of(dict("L1L2", cfg("l2", 0.5))).penalty(inf));
        assertTrue(Double.isNaN(Regularizer.of(dict("L1", cfg("l1", 0.0))).penalty(inf)));
        assertEquals(0.0, Regularizer.of("l2").penalty(new float[0]));
    }

    // ---------------------------------------------------------------- Constraint

    @Test
    void constraintNamesAndDicts() throws Exception {
        Map<String, String> names = Map.of("max_norm", "MaxNorm", "min_max_norm", "MinMaxNorm", "non_neg", "NonNeg",
                "unit_norm", "UnitNorm", "constraint", "Constraint");
        for (Map.Entry<String, String> e : names.entrySet()) {
            Constraint snake = Constraint.of(e.getKey());
            assertEquals(e.getValue(), snake.className());
            assertEquals(snake, Constraint.of(e.getValue()));
            assertEquals(snake, Constraint.of(snake.toConfig()));
            assertEquals(snake, Constraint.of(dict(e.getKey(), Map.of())));
        }
        Constraint c = Constraint.of("max_norm");
        assertSame(c, Constraint.of(c));
        assertNull(Constraint.ofNullable(null));
        assertThrows(NullPointerException.class, () -> Constraint.of(null));

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Constraint.of("maxnorm"));
        assertTrue(e.getMessage().contains("'maxnorm'") && e.getMessage().contains("max_norm"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> Constraint.of(dict("MaxNorm", cfg("max_value", 3, "min_value", 1))));
        assertTrue(e.getMessage().contains("[min_value]") && e.getMessage().contains("[max_value, axis]"),
                e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Constraint.of(dict("UnitNorm", cfg("axis", "0"))));
        assertThrows(IllegalArgumentException.class, () -> Constraint.of(dict("MaxNorm", cfg("max_value", null))));
    }

    @Test
    void constraintConfigsAreKerasExact() throws Exception {
        assertConfigJson("{\"module\": \"keras.constraints\", \"class_name\": \"MaxNorm\", "
                + "\"config\": {\"max_value\": 2, \"axis\": 0}, \"registered_name\": null}",
                Constraint.of("max_norm").toConfig());
        assertConfigJson("{\"module\": \"keras.constraints\", \"class_name\": \"MinMaxNorm\", \"config\": "
                + "{\"min_value\": 0.0, \"max_value\": 1.0, \"rate\": 1.0, \"axis\": 0}, \"registered_name\": null}",
                Constraint.of("min_max_norm").toConfig());
        assertConfigJson("{\"module\": \"keras.constraints\", \"class_name\": \"UnitNorm\", "
                + "\"config\": {\"axis\": 0}, \"registered_name\": null}", Constraint.of("unit_norm").toConfig());
        assertConfigJson("{\"module\": \"keras.constraints\", \"class_name\": \"NonNeg\", "
                + "\"config\": {}, \"registered_name\": null}", Constraint.of("non_neg").toConfig());
        String withList = "{\"module\": \"keras.constraints\", \"class_name\": \"MaxNorm\", "
                + "\"config\": {\"max_value\": 1.5, \"axis\": [0, 1]}, \"registered_name\": null}";
        Constraint c = Constraint.of(parse(withList));
        assertConfigJson(withList, c.toConfig());
        assertEquals(c, Constraint.of(c.toConfig()));
        String allAxes = "{\"module\": \"keras.constraints\", \"class_name\": \"UnitNorm\", "
                + "\"config\": {\"axis\": null}, \"registered_name\": null}";
        assertConfigJson(allAxes, Constraint.of(parse(allAxes)).toConfig());
    }

    private static final float EPS = 1e-7f;

    @Test
    void maxNormScalesColumnsOrRowsAboveTheMax() {
        // [[3, 0], [4, 1]]: column norms 5 and 1, row norms 3 and sqrt(17).
        float[] w = {3f, 0f, 4f, 1f};
        long[] shape = {2, 2};
        Constraint.of("max_norm").apply(w, shape); // max_value 2, axis 0
        float f0 = 2f / (EPS + 5f);
        float f1 = 1f / (EPS + 1f);
        assertArrayEquals(new float[] {3f * f0, 0f * f1, 4f * f0, 1f * f1}, w);
        assertArrayEquals(new float[] {1.2f, 0f, 1.6f, 1f}, w, 1e-6f);

        w = new float[] {3f, 0f, 4f, 1f};
        Constraint.of(dict("MaxNorm", cfg("max_value", 3.5, "axis", 1))).apply(w, shape);
        float r0 = 3f / (EPS + 3f);
        float n1 = (float) Math.sqrt(17f);
        float r1 = 3.5f / (EPS + n1);
        assertArrayEquals(new float[] {3f * r0, 0f * r0, 4f * r1, 1f * r1}, w);

        // axis -1 is axis 1; [0, 1] and null take the norm of the whole matrix.
        float[] a = {3f, 0f, 4f, 1f};
        float[] b = {3f, 0f, 4f, 1f};
        Constraint.of(dict("MaxNorm", cfg("max_value", 3.5, "axis", -1))).apply(a, shape);
        Constraint.of(dict("MaxNorm", cfg("max_value", 3.5, "axis", List.of(1)))).apply(b, shape);
        assertArrayEquals(w, a);
        assertArrayEquals(w, b);
        float whole = 1f / (EPS + (float) Math.sqrt(26f));
        for (Object axis : Arrays.asList(List.of(0, 1), null)) {
            float[] x = {3f, 0f, 4f, 1f};
            Constraint.of(dict("MaxNorm", cfg("max_value", 1, "axis", axis))).apply(x, shape);
            assertArrayEquals(new float[] {3f * whole, 0f, 4f * whole, 1f * whole}, x, "axis " + axis);
        }
    }

    @Test
    void unitNormMinMaxNormAndNonNegMatchHandComputedValues() {
        long[] shape = {2, 2};
        float[] w = {3f, 0f, 4f, 1f};
        Constraint.of("unit_norm").apply(w, shape);
        assertArrayEquals(new float[] {3f / (EPS + 5f), 0f, 4f / (EPS + 5f), 1f / (EPS + 1f)}, w);
        assertArrayEquals(new float[] {0.6f, 0f, 0.8f, 1f}, w, 1e-6f);

        // min 2, max 3, rate 0.5: column 0 (norm 5) wants 0.5 * 3 + 0.5 * 5 = 4,
        // column 1 (norm 1) wants 0.5 * 2 + 0.5 * 1 = 1.5.
        w = new float[] {3f, 0f, 4f, 1f};
        Constraint.of(dict("MinMaxNorm", cfg("min_value", 2.0, "max_value", 3.0, "rate", 0.5))).apply(w, shape);
        assertArrayEquals(new float[] {2.4f, 0f, 3.2f, 1.5f}, w, 1e-6f);
        float c0 = (0.5f * 3f + 0.5f * 5f) / (EPS + 5f);
        float c1 = (0.5f * 2f + 0.5f * 1f) / (EPS + 1f);
        assertArrayEquals(new float[] {3f * c0, 0f * c1, 4f * c0, 1f * c1}, w);
        // Defaults (0, 1, rate 1): norms above 1 come down to 1, norms within stay.
        w = new float[] {3f, 0.1f, 4f, 0.2f};
        Constraint.of("min_max_norm").apply(w, shape);
        assertArrayEquals(new float[] {0.6f, 0.1f, 0.8f, 0.2f}, w, 1e-6f);

        w = new float[] {-1f, 2f, -0.5f, 0f};
        Constraint.of("non_neg").apply(w, shape);
        assertArrayEquals(new float[] {0f, 2f, 0f, 0f}, w);

        w = new float[] {-1f, 2f, -0.5f, 0f};
        Constraint.of("constraint").apply(w, shape);
        assertArrayEquals(new float[] {-1f, 2f, -0.5f, 0f}, w, "the base Constraint leaves weights alone");
    }

    /** Norms over two of three axes, against an independent triple loop. */
    @Test
    void normsOverSeveralAxesOfA3dWeight() {
        long[] shape = {2, 3, 4};
        float[] w = new float[24];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) Math.sin(i + 1) * 3;
        }
        float[] expected = w.clone();
        // axis [0, 2]: one norm per index of axis 1.
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int i = 0; i < 2; i++) {
                for (int k = 0; k < 4; k++) {
                    float x = w[i * 12 + j * 4 + k];
                    s += x * x;
                }
            }
            float norm = (float) Math.sqrt((float) s);
            float factor = Math.min(Math.max(norm, 0f), 1.5f) / (EPS + norm);
            for (int i = 0; i < 2; i++) {
                for (int k = 0; k < 4; k++) {
                    expected[i * 12 + j * 4 + k] *= factor;
                }
            }
        }
        Constraint.of(dict("MaxNorm", cfg("max_value", 1.5, "axis", List.of(0, 2)))).apply(w, shape);
        assertArrayEquals(expected, w);
    }

    @Test
    void constraintApplyChecksItsArguments() {
        Constraint unit = Constraint.of("unit_norm");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> unit.apply(new float[3], new long[] {2, 2}));
        assertTrue(e.getMessage().contains("3") && e.getMessage().contains("[2, 2]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> Constraint.of(dict("UnitNorm", cfg("axis", 2))).apply(new float[4], new long[] {2, 2}));
        assertTrue(e.getMessage().contains("axis 2") && e.getMessage().contains("rank 2"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Constraint.of(dict("UnitNorm", cfg("axis",
                List.of(1, -1)))).apply(new float[4], new long[] {2, 2}));
        assertThrows(IllegalArgumentException.class, () -> unit.apply(new float[1], new long[] {}));
        unit.apply(new float[0], new long[] {0, 3}); // empty weights are fine
    }
}
