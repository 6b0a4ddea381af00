package dev.attn4j.keras;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.attn4j.NativeTests;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/**
 * Every shared Keras 3.15.1 saved model, loaded from its .keras file and from config +
 * .weights.h5, predicts what Keras predicted (1e-5), layer outputs included.
 */
class KerasModelTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    static Stream<String> models() {
        return Stream.of("mha_self", "gqa_cross", "attn_additive", "encoder_block");
    }

    static Path resource(String name) throws Exception {
        return Path.of(KerasModelTest.class.getResource("/keras-saved/" + name).toURI());
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> caseFile(String id) throws Exception {
        return JSON.readValue(resource(id + ".case.json").toFile(), Map.class);
    }

    @SuppressWarnings("unchecked")
    static Tensor tensor(Arena arena, Object array) {
        Map<String, Object> a = (Map<String, Object>) array;
        List<Object> values = (List<Object>) a.get("values");
        float[] f = new float[values.size()];
        for (int i = 0; i < f.length; i++) {
            f[i] = ((Number) values.get(i)).floatValue();
        }
        long[] shape = ((List<Object>) a.get("shape")).stream().mapToLong(x -> ((Number) x).longValue()).toArray();
        return Tensor.of(arena, f, shape);
    }

    static void assertClose(Tensor expected, Tensor actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what);
        float[] e = expected.toFloatArray();
        float[] a = actual.toFloatArray();
        double worst = 0;
        for (int i = 0; i < e.length; i++) {
            double d = Math.abs((double) a[i] - e[i]);
            worst = Math.max(worst, d);
            int at = i;
            assertTrue(d <= 1e-5 + 1e-5 * Math.abs(e[i]), () -> what + ": index " + at + " attn4j " + a[at]
                    + " Keras " + e[at]);
        }
    }

    @SuppressWarnings("unchecked")
    private static void check(KerasModel model, Map<String, Object> c) {
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> inputs = new LinkedHashMap<>();
            for (Map.Entry<String, Object> e : ((Map<String, Object>) c.get("inputs")).entrySet()) {
                inputs.put(e.getKey(), tensor(arena, e.getValue()));
            }
            assertEquals(c.get("input_order"), model.inputNames());
            List<Tensor> outputs = model.predict(arena, inputs);
            List<Object> expected = (List<Object>) ((Map<String, Object>) c.get("expected")).get("outputs");
            assertEquals(expected.size(), outputs.size());
            for (int i = 0; i < outputs.size(); i++) {
                Map<String, Object> e = (Map<String, Object>) expected.get(i);
                assertEquals(e.get("layer"), model.outputNames().get(i));
                assertClose(tensor(arena, e), outputs.get(i), c.get("id") + " output " + e.get("layer"));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("models")
    void keraFileMatchesKeras(String id) throws Exception {
        NativeTests.requireNative();
        Map<String, Object> c = caseFile(id);
        try (KerasModel model = KerasModel.load(resource(id + ".keras"))) {
            check(model, c);
            assertEquals(((Number) indexParams(id)).longValue(), model.parameterCount());
            assertTrue(model.summary().contains("Total params: " + model.parameterCount()), model.summary());
        }
    }

    @ParameterizedTest
    @MethodSource("models")
    void configPlusWeightsFileMatchesKeras(String id) throws Exception {
        NativeTests.requireNative();
        Map<String, Object> c = caseFile(id);
        Map<String, Object> config;
        try (KerasArchive archive = KerasArchive.open(resource(id + ".keras"))) {
            config = archive.config();
        }
        try (KerasModel model = KerasModel.fromConfig(config)) {
            model.loadWeights(resource(id + ".weights.h5"));
            check(model, c);
        }
    }

    private static Object indexParams(String id) throws Exception {
        Map<String, Integer> params = Map.of("mha_self", 2160, "gqa_cross", 1616, "attn_additive", 10,
                "encoder_block", 8544);
        return params.get(id);
    }

    @Test
    @SuppressWarnings("unchecked")
    void encoderLayerOutputsAndScoresCapture() throws Exception {
        NativeTests.requireNative();
        Map<String, Object> c = caseFile("encoder_block");
        try (KerasModel model = KerasModel.load(resource("encoder_block.keras")); Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> in = Map.of("tokens", tensor(arena, ((Map<String, Object>) c.get("inputs")).get("tokens")));
            KerasModel.Prediction p = model.predict(arena, in, true);
            assertEquals(List.of("self_attention"), model.attentionLayers());
            Tensor scores = p.attentionScores().get("self_attention");
            assertArrayEquals(new long[] {2, 4, 10, 10}, scores.shape());
            float[] s = scores.toFloatArray();
            for (int row = 0; row < 2 * 4 * 10; row++) {
                double sum = 0;
                for (int j = 0; j < 10; j++) {
                    sum += s[row * 10 + j];
                }
                assertEquals(1.0, sum, 1e-5);
            }
            assertClose(tensor(arena, ((Map<String, Object>) c.get("layer_outputs")).get("norm_2")),
                    p.outputs().get(0), "norm_2");
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void unsupportedLayersAreListed() throws Exception {
        Map<String, Object> config;
        try (KerasArchive archive = KerasArchive.open(resource("encoder_block.keras"))) {
            config = archive.config();
        }
        Map<String, Object> inner = new HashMap<>((Map<String, Object>) config.get("config"));
        List<Object> layers = new ArrayList<>((List<Object>) inner.get("layers"));
        Map<String, Object> conv = new HashMap<>((Map<String, Object>) layers.get(4));
        conv.put("class_name", "Conv1D");
        layers.set(4, conv);
        Map<String, Object> embed = new HashMap<>((Map<String, Object>) layers.get(5));
        embed.put("class_name", "Embedding");
        layers.set(5, embed);
        inner.put("layers", layers);
        Map<String, Object> root = new HashMap<>(config);
        root.put("config", inner);
        var e = assertThrows(IllegalArgumentException.class, () -> KerasModel.fromConfig(root));
        assertTrue(e.getMessage().contains("unsupported layer classes [Conv1D, Embedding]"), e.getMessage());
        assertTrue(e.getMessage().contains("LayerNormalization"), e.getMessage());
    }
}
