package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Every golden case's Keras config (after build, and before build) loads unchanged
 * through JSON and writes back the same dictionary: {@code fromConfig(getConfig())}
 * round-trips.
 */
class ConfigRoundTripTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static boolean sameJson(JsonNode a, JsonNode b) {
        return a.equals((x, y) -> x.isNumber() && y.isNumber()
                ? Double.compare(x.asDouble(), y.asDouble()) : x.equals(y) ? 0 : 1, b);
    }

    @TestFactory
    Stream<DynamicTest> goldenConfigsRoundTrip() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (String file : List.of("attention.json", "additive_attention.json", "multi_head_attention.json",
                "grouped_query_attention.json")) {
            JsonNode root = JSON.readTree(getClass().getResource("/keras-golden/" + file));
            for (JsonNode c : root.get("cases")) {
                for (String which : List.of("config", "config_unbuilt")) {
                    JsonNode config = c.get(which);
                    tests.add(DynamicTest.dynamicTest(c.get("id").asText() + " " + which, () -> {
                        try (AttentionLayer layer = Layers.fromConfigJson(c.get("class_name").asText(),
                                JSON.writeValueAsString(config))) {
                            JsonNode written = JSON.readTree(Layers.toConfigJson(layer));
                            assertTrue(sameJson(config, written), () -> "expected " + config + "\n     got " + written);
                            try (AttentionLayer again = Layers.fromConfigJson(c.get("class_name").asText(),
                                    Layers.toConfigJson(layer))) {
                                assertTrue(sameJson(written, JSON.readTree(Layers.toConfigJson(again))));
                            }
                        }
                    }));
                }
            }
        }
        assertTrue(tests.size() >= 2 * 96);
        return tests.stream();
    }

    @Test
    void sharedObjectIdInTheDtypeIsToleratedAndUnknownKeysAreNamed() throws Exception {
        ObjectNode config = (ObjectNode) JSON.readTree("{\"name\": \"a\", \"trainable\": true, "
                + "\"dtype\": {\"module\": \"keras\", \"class_name\": \"DTypePolicy\", "
                + "\"config\": {\"name\": \"float32\"}, \"registered_name\": null, "
                + "\"shared_object_id\": 139814754810256}, \"use_scale\": true, \"dropout\": 0.0, \"seed\": null}");
        // Keras marks its global dtype policy as shared in every later layer's config; the id is a
        // memory address that changes from run to run, so attn4j ignores it.
        try (AttentionLayer layer = Layers.fromConfigJson("AdditiveAttention", JSON.writeValueAsString(config))) {
            assertEquals("a", layer.name());
        }
        config.put("causal", true);
        var e = assertThrows(IllegalArgumentException.class,
                () -> Layers.fromConfigJson("AdditiveAttention", JSON.writeValueAsString(config)));
        assertTrue(e.getMessage().contains("unknown config keys [causal]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Layers.fromConfigJson("Attention", "{not json"));
        assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
    }
}
