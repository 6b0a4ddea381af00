package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.attn4j.NativeTests;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The layer API: weights, config, shapes, life cycle and argument checks. */
class AttentionLayerApiTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static JsonNode goldenConfig(String file, String id) throws Exception {
        JsonNode root = JSON.readTree(AttentionLayerApiTest.class.getResource("/keras-golden/" + file));
        for (JsonNode c : root.get("cases")) {
            if (c.get("id").asText().equals(id)) {
                return c.get("config");
            }
        }
        throw new AssertionError(id + " not in " + file);
    }

    /** Compares JSON trees with numbers compared by value (1 == 1.0). */
    private static void assertSameConfig(JsonNode expected, Map<String, Object> actual) {
        JsonNode got = JSON.valueToTree(actual);
        assertTrue(expected.equals((a, b) -> a.isNumber() && b.isNumber()
                ? Double.compare(a.asDouble(), b.asDouble()) : a.equals(b) ? 0 : 1, got),
                () -> "expected " + expected + "\n     got " + got);
        assertEquals(List.copyOf(iter(expected.fieldNames())), List.copyOf(actual.keySet()), "key order");
    }

    private static List<String> iter(java.util.Iterator<String> it) {
        List<String> l = new java.util.ArrayList<>();
        it.forEachRemaining(l::add);
        return l;
    }

    @Test
    void attentionWeightsAreKerasNamedOrderedAndInitialised() {
        try (Attention a = Attention.builder().name("attn").useScale(true).scoreMode("concat").build()) {
            assertTrue(a.weights().isEmpty(), "no weights before build, as in Keras");
            a.build(new long[] {2, 3, 4}, new long[] {2, 5, 4}, null);
            List<Weight> w = a.weights();
            assertEquals(List.of("scale", "concat_score_weight"), w.stream().map(Weight::name).toList());
            assertEquals(List.of("attn/scale", "attn/concat_score_weight"), w.stream().map(Weight::path).toList());
            assertArrayEquals(new long[0], w.get(0).shape());
            assertArrayEquals(new float[] {1f}, w.get(0).toFloatArray());
            assertArrayEquals(new float[] {1f}, w.get(1).toFloatArray());
        }
        try (Attention a = Attention.create()) {
            a.build(new long[] {1, 2, 3}, new long[] {1, 2, 3}, null);
            assertTrue(a.weights().isEmpty(), "dot without scale has no weights");
        }
        try (Attention a = Attention.builder().scoreMode("concat").build()) {
            a.build(new long[] {1, 2, 3}, new long[] {1, 2, 3}, null);
            assertEquals(List.of("concat_score_weight"), a.weights().stream().map(Weight::name).toList());
        }
    }

    @Test
    void additiveScaleIsGlorotUniformOfShapeD() {
        try (AdditiveAttention a = AdditiveAttention.builder().seed(7L).build()) {
            a.build(new long[] {2, 3, 12}, new long[] {2, 5, 12}, null);
            Weight scale = a.weights().get(0);
            assertEquals("scale", scale.name());
            assertArrayEquals(new long[] {12}, scale.shape());
            float limit = (float) Math.sqrt(3.0 / 12);
            for (float x : scale.toFloatArray()) {
                assertTrue(Math.abs(x) <= limit, () -> x + " outside +-" + limit);
            }
            try (AdditiveAttention same = AdditiveAttention.builder().seed(7L).build()) {
                same.build(new long[] {2, 3, 12}, new long[] {2, 5, 12}, null);
                assertArrayEquals(scale.toFloatArray(), same.weights().get(0).toFloatArray(), "seeded init");
            }
        }
        try (AdditiveAttention a = AdditiveAttention.builder().useScale(false).build()) {
            a.build(new long[] {2, 3, 4}, new long[] {2, 5, 4}, null);
            assertTrue(a.weights().isEmpty());
        }
    }

    @Test
    void configsMatchKerasAndRoundTrip() throws Exception {
        JsonNode dot = goldenConfig("attention.json", "att_concat_scale");
        @SuppressWarnings("unchecked")
        Map<String, Object> config = JSON.convertValue(dot, Map.class);
        Attention a = Attention.fromConfig(config);
        assertSameConfig(dot, a.getConfig());
        assertSameConfig(dot, Attention.fromConfig(a.getConfig()).getConfig());

        JsonNode add = goldenConfig("additive_attention.json", "add_scale");
        @SuppressWarnings("unchecked")
        Map<String, Object> addConfig = JSON.convertValue(add, Map.class);
        AdditiveAttention b = AdditiveAttention.fromConfig(addConfig);
        assertSameConfig(add, b.getConfig());
        assertFalse(b.getConfig().containsKey("score_mode"));

        Map<String, Object> seeded = new HashMap<>(a.getConfig());
        seeded.put("seed", 42);
        assertEquals(42L, Attention.fromConfig(seeded).getConfig().get("seed"));
    }

    @Test
    void badConfigsNameTheProblem() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> Attention.fromConfig(Map.of("score_mode", "dot", "causal", true)));
        assertTrue(e.getMessage().contains("unknown config keys [causal]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AdditiveAttention.fromConfig(Map.of("score_mode", "dot")));
        assertTrue(e.getMessage().contains("unknown config keys [score_mode]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Attention.fromConfig(Map.of("dtype", "float16")));
        assertTrue(e.getMessage().contains("only the float32 dtype policy"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Attention.fromConfig(Map.of("use_scale", "yes")));
        assertTrue(e.getMessage().contains("'use_scale' must be true or false"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Layers.fromConfig("Dense", Map.of()));
        assertTrue(e.getMessage().contains("unsupported layer class 'Dense'"), e.getMessage());
    }

    @Test
    void constructorArgumentsAreChecked() {
        var e = assertThrows(IllegalArgumentException.class, () -> Attention.builder().scoreMode("general").build());
        assertEquals("Attention: scoreMode must be one of {\"dot\", \"concat\"}, but is \"general\"", e.getMessage());
        for (double bad : new double[] {-0.1, 1.0, 1.5, Double.NaN}) {
            e = assertThrows(IllegalArgumentException.class, () -> Attention.builder().dropout(bad).build());
            assertTrue(e.getMessage().startsWith("Attention: dropout must be a rate in [0, 1), but is "), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> AdditiveAttention.builder().dropout(bad).build());
            assertTrue(e.getMessage().startsWith("AdditiveAttention: dropout must be a rate in [0, 1)"), e.getMessage());
        }
    }

    @Test
    void defaultNamesFollowKeras() {
        String first = Attention.create().name();
        String second = Attention.create().name();
        assertTrue(first.matches("attention(_\\d+)?"), first);
        assertTrue(second.matches("attention_\\d+"), second);
        assertTrue(AdditiveAttention.create().name().startsWith("additive_attention"));
    }

    @Test
    void outputShapes() {
        try (Attention a = Attention.create()) {
            assertArrayEquals(new long[] {2, 7, 3, 6},
                    a.computeOutputShape(new long[] {2, 7, 3, 4}, new long[] {2, 7, 5, 6}, new long[] {2, 7, 5, 4}));
            assertArrayEquals(new long[] {2, 7, 3, 5},
                    a.computeAttentionScoresShape(new long[] {2, 7, 3, 4}, new long[] {2, 7, 5, 6},
                            new long[] {2, 7, 5, 4}));
            var e = assertThrows(IllegalArgumentException.class,
                    () -> a.computeOutputShape(new long[] {2, 3, 4}, new long[] {2, 5, 6}, null));
            assertTrue(e.getMessage().contains("value (used as key) feature dimension must equal the query's (4)"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> a.computeOutputShape(new long[] {2, 3, 4}, new long[] {3, 5, 4}, null));
            assertTrue(e.getMessage().contains("batch dimensions must match"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> a.computeOutputShape(new long[] {3, 4}, new long[] {5, 4}, null));
            assertTrue(e.getMessage().contains("query must have rank >= 3"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> a.computeOutputShape(new long[] {2, 3, 4}, new long[] {2, 5, 4}, new long[] {2, 6, 4}));
            assertTrue(e.getMessage().contains("key and value must have the same length Tv"), e.getMessage());
        }
    }

    @Test
    void setWeightsChecksCountAndShape() {
        try (Attention a = Attention.builder().useScale(true).build()) {
            var e = assertThrows(IllegalStateException.class, () -> a.setWeights(new float[] {1}));
            assertTrue(e.getMessage().contains("is not built yet"), e.getMessage());
            a.build(new long[] {1, 2, 3}, new long[] {1, 2, 3}, null);
            var e2 = assertThrows(IllegalArgumentException.class, () -> a.setWeights(new float[] {1}, new float[] {2}));
            assertTrue(e2.getMessage().contains("expected 1 weights"), e2.getMessage());
            e2 = assertThrows(IllegalArgumentException.class, () -> a.setWeights(new float[] {1, 2}));
            assertTrue(e2.getMessage().contains("has shape [] = 1 values, but 2 were given"), e2.getMessage());
            try (Arena arena = Arena.ofConfined()) {
                e2 = assertThrows(IllegalArgumentException.class,
                        () -> a.setWeights(List.of(Tensor.of(arena, new float[] {2}, 1))));
                assertTrue(e2.getMessage().contains("must be float32 of shape []"), e2.getMessage());
                a.setWeights(List.of(Tensor.of(arena, new float[] {0.5f})));
            }
            assertArrayEquals(new float[] {0.5f}, a.weights().get(0).toFloatArray());
            var view = a.weights().get(0).value();
            assertTrue(view.segment().isReadOnly());
        }
    }

    @Test
    void callChecksInputsBeforeAnyNativeCall() {
        try (Attention a = Attention.create(); Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.allocate(arena, 2, 3, 4);
            Tensor v = Tensor.allocate(arena, 2, 5, 4);
            var e = assertThrows(IllegalArgumentException.class, () -> a.call(arena,
                    CallArgs.of(q, v).withValueMask(Tensor.allocateMask(arena, 2, 4))));
            assertTrue(e.getMessage().contains("valueMask must have shape [2, 5], but has [2, 4]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> a.call(arena,
                    CallArgs.of(q, v).withQueryMask(Tensor.allocate(arena, 2, 3))));
            assertTrue(e.getMessage().contains("queryMask must be a bool tensor of shape [2, 3]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> a.call(arena,
                    CallArgs.of(q, v).withKeyMask(Tensor.allocateMask(arena, 2, 5))));
            assertTrue(e.getMessage().contains("takes queryMask and valueMask only"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> a.call(arena,
                    CallArgs.of(Tensor.allocateMask(arena, 2, 3, 4), v)));
            assertTrue(e.getMessage().contains("query must be float32"), e.getMessage());
            assertThrows(NullPointerException.class, () -> CallArgs.of(null, v));
            assertThrows(NullPointerException.class, () -> a.call(null, CallArgs.of(q, v)));
        }
        Tensor closedQuery;
        try (Arena gone = Arena.ofConfined()) {
            closedQuery = Tensor.allocate(gone, 1, 2, 3);
        }
        try (Attention a = Attention.create(); Arena arena = Arena.ofConfined()) {
            var e = assertThrows(IllegalStateException.class,
                    () -> a.call(arena, closedQuery, Tensor.allocate(arena, 1, 2, 3)));
            assertTrue(e.getMessage().contains("the arena of query"), e.getMessage());
        }
    }

    @Test
    void buildIsCheckedAgainstLaterCallsAndCloseIsFinal() {
        NativeTests.requireNative();
        AdditiveAttention a = AdditiveAttention.create();
        try (Arena arena = Arena.ofConfined()) {
            Tensor out = a.call(arena, Tensor.allocate(arena, 1, 2, 4), Tensor.allocate(arena, 1, 3, 4));
            assertTrue(a.isBuilt(), "the first call builds, as in Keras");
            assertArrayEquals(new long[] {1, 2, 4}, out.shape());
            var e = assertThrows(IllegalArgumentException.class,
                    () -> a.call(arena, Tensor.allocate(arena, 1, 2, 5), Tensor.allocate(arena, 1, 3, 5)));
            assertTrue(e.getMessage().contains("was built for query features D = 4"), e.getMessage());
            a.close();
            a.close(); // idempotent
            var closed = assertThrows(IllegalStateException.class,
                    () -> a.call(arena, Tensor.allocate(arena, 1, 2, 4), Tensor.allocate(arena, 1, 3, 4)));
            assertTrue(closed.getMessage().contains("is closed"), closed.getMessage());
            assertThrows(IllegalStateException.class, a::weights);
        }
    }

    @Test
    void callIntoWritesCallerTensors() {
        NativeTests.requireNative();
        try (Attention a = Attention.create(); Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.of(arena, new float[] {1, 0, 0, 1}, 1, 2, 2);
            Tensor v = Tensor.of(arena, new float[] {1, 0, 0, 1}, 1, 2, 2);
            Tensor out = Tensor.allocate(arena, 1, 2, 2);
            a.callInto(CallArgs.of(q, v), out, null);
            // softmax([1, 0]) = [e/(1+e), 1/(1+e)]
            float p = (float) (Math.E / (1 + Math.E));
            assertArrayEquals(new float[] {p, 1 - p, 1 - p, p}, out.toFloatArray(), 1e-6f);
            var e = assertThrows(IllegalArgumentException.class,
                    () -> a.callInto(CallArgs.of(q, v), Tensor.allocate(arena, 1, 2, 3), null));
            assertTrue(e.getMessage().contains("output must be float32 of shape [1, 2, 2]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> a.callInto(CallArgs.of(q, v), out, Tensor.allocate(arena, 1, 2, 2)));
            assertTrue(e.getMessage().contains("attentionScores must be null"), e.getMessage());
            AttentionResult r = a.call(arena, CallArgs.of(q, v));
            assertNull(r.attentionScores());
        }
    }
}
