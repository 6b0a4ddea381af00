package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.attn4j.NativeTests;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** MultiHeadAttention / GroupQueryAttention arguments, weights, configs and checks. */
class MultiHeadApiTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static JsonNode goldenCase(String file, String id) throws Exception {
        JsonNode root = JSON.readTree(MultiHeadApiTest.class.getResource("/keras-golden/" + file));
        for (JsonNode c : root.get("cases")) {
            if (c.get("id").asText().equals(id)) {
                return c;
            }
        }
        throw new AssertionError(id);
    }

    private static void assertSameJson(JsonNode expected, Map<String, Object> actual) {
        JsonNode got = JSON.valueToTree(actual);
        assertTrue(expected.equals((a, b) -> a.isNumber() && b.isNumber()
                ? Double.compare(a.asDouble(), b.asDouble()) : a.equals(b) ? 0 : 1, got),
                () -> "expected " + expected + "\n     got " + got);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(JsonNode n) {
        return JSON.convertValue(n, Map.class);
    }

    @Test
    void configsBeforeAndAfterBuildMatchKeras() throws Exception {
        for (String id : new String[] {"mha_4d_axes_default", "mha_4d_axes_neg", "mha_output_shape_int",
                "mha_use_gate", "mha_sliding_window_causal", "mha_no_bias"}) {
            JsonNode c = goldenCase("multi_head_attention.json", id);
            MultiHeadAttention layer = MultiHeadAttention.fromConfig(map(c.get("config_unbuilt")));
            assertSameJson(c.get("config_unbuilt"), layer.getConfig());
            JsonNode shapes = c.get("build_input_shapes");
            layer.build(JSON.convertValue(shapes.get("query"), long[].class),
                    JSON.convertValue(shapes.get("value"), long[].class),
                    shapes.get("key").isNull() ? null : JSON.convertValue(shapes.get("key"), long[].class));
            assertSameJson(c.get("config"), layer.getConfig());
            assertSameJson(c.get("config"), MultiHeadAttention.fromConfig(layer.getConfig()).getConfig());
            List<String> paths = new ArrayList<>();
            for (JsonNode w : c.get("weights")) {
                paths.add(w.get("path").asText() + JSON.convertValue(w.get("shape"), List.class));
            }
            assertEquals(paths, layer.weights().stream()
                    .map(w -> w.path() + java.util.Arrays.stream(w.shape()).boxed().toList()).toList(), id);
            layer.close();
        }
        JsonNode g = goldenCase("grouped_query_attention.json", "gqa_basic_scores");
        GroupQueryAttention gqa = (GroupQueryAttention) Layers.fromConfig("GroupedQueryAttention", map(g.get("config")));
        assertSameJson(g.get("config"), gqa.getConfig());
    }

    @Test
    void argumentsAreCheckedWithKerasMessages() {
        var e = assertThrows(IllegalArgumentException.class, () -> GroupQueryAttention.builder().headDim(4)
                .numQueryHeads(6).numKeyValueHeads(4).build());
        assertTrue(e.getMessage().contains("`num_query_heads` must be divisible by `num_key_value_heads`"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> MultiHeadAttention.builder().numHeads(0).keyDim(2).build());
        assertTrue(e.getMessage().contains("numHeads must be a positive integer, but is 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> MultiHeadAttention.builder().numHeads(2).build());
        assertTrue(e.getMessage().contains("keyDim must be a positive integer, but is null"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> MultiHeadAttention.builder().numHeads(2).keyDim(2).dropout(1.0).build());
        assertTrue(e.getMessage().contains("dropout must be a rate in [0, 1)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> MultiHeadAttention.builder().numHeads(2).keyDim(2).slidingWindow(0).build());
        assertTrue(e.getMessage().contains("slidingWindow must be null or a positive integer"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> MultiHeadAttention.builder().numHeads(2).keyDim(2).flashAttention(true).dropout(0.1).build());
        assertTrue(e.getMessage().contains("dropout is not supported with flashAttention"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> MultiHeadAttention.builder().numHeads(2).keyDim(2).kernelInitializer("glorot_unifrom").build());
        assertTrue(e.getMessage().contains("glorot_unifrom"), e.getMessage());

        MultiHeadAttention mha = MultiHeadAttention.builder().numHeads(2).keyDim(3).attentionAxes(0).build();
        e = assertThrows(IllegalArgumentException.class,
                () -> mha.build(new long[] {2, 3, 4}, new long[] {2, 5, 4}, null));
        assertTrue(e.getMessage().contains("strictly between the batch axis 0 and the feature axis 2"), e.getMessage());
        MultiHeadAttention feature = MultiHeadAttention.builder().numHeads(2).keyDim(3).attentionAxes(-1).build();
        assertThrows(IllegalArgumentException.class,
                () -> feature.build(new long[] {2, 3, 4}, new long[] {2, 5, 4}, null));
        MultiHeadAttention unsorted = MultiHeadAttention.builder().numHeads(2).keyDim(3).attentionAxes(2, 1).build();
        assertThrows(UnsupportedOperationException.class,
                () -> unsorted.build(new long[] {2, 3, 3, 4}, new long[] {2, 3, 3, 4}, null));
        e = assertThrows(IllegalArgumentException.class, () -> MultiHeadAttention.builder().numHeads(2).keyDim(3).build()
                .build(new long[] {2, 3, 4}, new long[] {2, 5, 4}, new long[] {2, 6, 4}));
        assertTrue(e.getMessage().contains("all dimensions of value and key except the last must be equal"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GroupQueryAttention.builder().headDim(2)
                .numQueryHeads(2).numKeyValueHeads(1).build().build(new long[] {2, 3, 3, 4}, new long[] {2, 3, 3, 4}, null));
        assertTrue(e.getMessage().contains("GroupQueryAttention takes 3-D inputs"), e.getMessage());
    }

    @Test
    void callChecks() {
        NativeTests.requireNative();
        try (MultiHeadAttention mha = MultiHeadAttention.builder().numHeads(2).keyDim(3).flashAttention(true).build();
             Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.allocate(arena, 2, 3, 4);
            Tensor v = Tensor.allocate(arena, 2, 5, 4);
            var e = assertThrows(IllegalArgumentException.class,
                    () -> mha.call(arena, CallArgs.of(q, v).withReturnAttentionScores(true)));
            assertTrue(e.getMessage().contains("not supported with flashAttention"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> mha.call(arena, CallArgs.of(q, v).withValueMask(Tensor.allocateMask(arena, 2, 4))));
            assertTrue(e.getMessage().contains("valueMask must have shape [2, 5]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> mha.call(arena, CallArgs.of(q, v).withAttentionMask(Tensor.allocateMask(arena, 2, 4, 5))));
            assertTrue(e.getMessage().contains("cannot broadcast to the attention scores [2, 2, 3, 5]"), e.getMessage());
            assertEquals(3, mha.call(arena, q, v).rank());
            e = assertThrows(IllegalArgumentException.class,
                    () -> mha.call(arena, Tensor.allocate(arena, 2, 3, 6), v));
            assertTrue(e.getMessage().contains("was built for query features 4"), e.getMessage());
        }
        try (MultiHeadAttention nd = MultiHeadAttention.builder().numHeads(2).keyDim(3).attentionAxes(2).build();
             Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.allocate(arena, 2, 2, 3, 4);
            assertThrows(UnsupportedOperationException.class, () -> nd.call(arena,
                    CallArgs.of(q, q).withValueMask(Tensor.allocateMask(arena, 2, 2))));
            assertThrows(UnsupportedOperationException.class, () -> nd.call(arena,
                    CallArgs.of(q, q).withUseCausalMask(true)));
        }
    }

    @Test
    void selfAttentionQueryMaskAlsoMasksTheValue() {
        NativeTests.requireNative();
        SplittableRandom r = new SplittableRandom(4);
        try (MultiHeadAttention mha = MultiHeadAttention.builder().numHeads(2).keyDim(3).seed(1L).build();
             Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.of(arena, TestData.floats(r, 2 * 4 * 4, -1, 1), 2, 4, 4);
            Tensor copy = Tensor.of(arena, x.toFloatArray(), 2, 4, 4);
            Tensor m = Tensor.ofMask(arena, new boolean[] {true, true, false, true, true, false, true, true}, 2, 4);
            float[] same = mha.call(arena, CallArgs.of(x, x).withQueryMask(m)).output().toFloatArray();
            float[] explicit = mha.call(arena, CallArgs.of(x, copy).withQueryMask(m).withValueMask(m)).output()
                    .toFloatArray();
            float[] queryOnly = mha.call(arena, CallArgs.of(x, copy).withQueryMask(m)).output().toFloatArray();
            assertArrayEquals(explicit, same, 1e-6f, "the same tensor carries its mask to the value");
            assertTrue(TestData.maxRelError(queryOnly, same) > 1e-4, "a different tensor does not");
        }
    }

    @Test
    void regularizersConstraintsAndInitializers() {
        NativeTests.requireNative();
        try (MultiHeadAttention mha = MultiHeadAttention.builder().numHeads(2).keyDim(3)
                .kernelRegularizer("l2").biasRegularizer(Map.of("class_name", "L1", "config", Map.of("l1", 0.5)))
                .activityRegularizer("l1").kernelConstraint("non_neg").biasInitializer("ones").seed(9L).build();
             Arena arena = Arena.ofConfined()) {
            assertTrue(mha.regularizationLosses().isEmpty());
            mha.build(new long[] {1, 2, 4}, new long[] {1, 3, 4}, null);
            List<Weight> w = mha.weights();
            assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1}, w.get(1).toFloatArray(), "ones bias");
            float limit = (float) Math.sqrt(6.0 / (4 + 6)); // glorot_uniform, fan_in 4, fan_out 2*3
            for (float x : w.get(0).toFloatArray()) {
                assertTrue(Math.abs(x) <= limit, () -> x + " beyond " + limit);
            }
            List<Double> losses = mha.regularizationLosses();
            assertEquals(8, losses.size(), "4 kernels and 4 biases");
            double l2 = 0;
            for (float x : w.get(0).toFloatArray()) {
                l2 += x * x;
            }
            assertEquals(0.01 * l2, losses.get(0), 1e-6);
            assertEquals(0.5 * 6, losses.get(1), 1e-6, "L1(0.5) of six ones");
            mha.applyConstraints();
            for (Weight x : w) {
                if (x.name().equals("kernel")) {
                    for (float v : x.toFloatArray()) {
                        assertTrue(v >= 0, "non_neg");
                    }
                }
            }
            AttentionResult res = mha.call(arena, CallArgs.of(Tensor.of(arena, new float[8], 1, 2, 4),
                    Tensor.of(arena, new float[12], 1, 3, 4)));
            // Zero inputs: projections equal their biases (all ones) -> L1 (0.01) of q, k, v plus the output.
            double expected = 0.01 * (2 * 6 + 3 * 6 + 3 * 6) + 0.01 * sumAbs(res.output().toFloatArray());
            assertEquals(expected, res.activityRegularizationLoss(), 1e-5);
        }
    }

    private static double sumAbs(float[] x) {
        double s = 0;
        for (float v : x) {
            s += Math.abs(v);
        }
        return s;
    }

    @Test
    void weightsForGqaShareKeyValueHeads() {
        try (GroupQueryAttention gqa = GroupQueryAttention.builder().headDim(3).numQueryHeads(4).numKeyValueHeads(2)
                .useGate(true).build()) {
            gqa.build(new long[] {2, 3, 5}, new long[] {2, 4, 6}, null);
            List<String> got = gqa.weights().stream().map(w -> w.path().substring(w.path().indexOf('/') + 1)
                    + java.util.Arrays.toString(w.shape())).toList();
            assertEquals(List.of("query/kernel[5, 4, 3]", "query/bias[4, 3]", "key/kernel[6, 2, 3]", "key/bias[2, 3]",
                    "gate/kernel[5, 4, 3]", "gate/bias[4, 3]", "value/kernel[6, 2, 3]", "value/bias[2, 3]",
                    "attention_output/kernel[4, 3, 5]", "attention_output/bias[5]"), got);
            assertArrayEquals(new long[] {2, 4, 3, 4},
                    gqa.computeAttentionScoresShape(new long[] {2, 3, 5}, new long[] {2, 4, 6}, null));
            assertNull(gqa.getConfig().get("seed"));
        }
    }
}
