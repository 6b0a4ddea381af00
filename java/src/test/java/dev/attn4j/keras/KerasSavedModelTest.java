package dev.attn4j.keras;

import static dev.attn4j.keras.NpyTest.floats;
import static dev.attn4j.keras.NpyTest.longs;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.Tensor;
import io.jhdf.HdfFile;
import io.jhdf.WritableHdfFile;
import io.jhdf.api.WritableGroup;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The four models Keras 3.15.1 saved (src/test/resources/keras-saved, copied from the
 * shared keras-saved set): every weight the case file lists must be found by
 * {@link KerasWeightPaths} in {@code layer.weights} order with the exact values and
 * shape, from the {@code .weights.h5} file and from the {@code .keras} archive.
 */
class KerasSavedModelTest {

    @TempDir
    Path tmp;

    static Path saved(String file) throws URISyntaxException {
        return Path.of(KerasSavedModelTest.class.getResource("/keras-saved/" + file).toURI());
    }

    /** One layer of a case file: what Keras says it saved. */
    private record CaseLayer(String className, String name, String group, List<Map<String, Object>> weights) {}

    @SuppressWarnings("unchecked")
    private static List<CaseLayer> caseLayers(Map<String, Object> c) {
        List<CaseLayer> out = new ArrayList<>();
        for (Object o : (List<Object>) c.get("layers")) {
            Map<String, Object> l = (Map<String, Object>) o;
            assertEquals(out.size(), ((Number) l.get("index_in_model_layers")).intValue(), "case layers are in order");
            out.add(new CaseLayer((String) l.get("serialized_class_name"), (String) l.get("name"),
                    (String) l.get("h5_group"), (List<Map<String, Object>>) l.get("weights")));
        }
        return out;
    }

    /** Checks names, the dataset list and every value of every layer against the case. */
    private static void assertWeightsMatch(KerasWeightsFile f, List<CaseLayer> layers) {
        List<String> groups = KerasWeightPaths.groups(layers.stream().map(CaseLayer::className).toList());
        assertEquals(layers.stream().map(CaseLayer::group).toList(), groups);
        assertEquals(groups.stream().map(g -> g.substring("layers/".length())).sorted().toList(), f.layerGroups());
        for (CaseLayer l : layers) {
            assertEquals(l.name(), f.layerName(l.group()), l.group());
            assertEquals(l.name(), f.layerName(l.group().substring("layers/".length())), l.group());
            List<String> datasets = KerasWeightPaths.weightDatasets(f,
                    new KerasWeightPaths.Layer(l.className(), l.name(), l.group()));
            assertEquals(l.weights().stream().map(w -> (String) w.get("h5_path")).toList(), datasets, l.name());
            for (Map<String, Object> w : l.weights()) {
                String path = (String) w.get("h5_path");
                assertArrayEquals(longs(w.get("shape")), f.shape(path), path);
                assertArrayEquals(floats(w.get("values")), f.read(path), path);
                assertArrayEquals(floats(w.get("values")), f.read("/" + path), path);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"mha_self", "gqa_cross", "attn_additive", "encoder_block"})
    void weightsFileHoldsEveryCaseWeight(String model) throws Exception {
        List<CaseLayer> layers = caseLayers(NpyTest.savedCase(model));
        try (KerasWeightsFile f = KerasWeightsFile.open(saved(model + ".weights.h5"))) {
            assertWeightsMatch(f, layers);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"mha_self", "gqa_cross", "attn_additive", "encoder_block"})
    void archiveHoldsConfigMetadataAndEveryCaseWeight(String model) throws Exception {
        Map<String, Object> c = NpyTest.savedCase(model);
        List<CaseLayer> layers = caseLayers(c);
        try (KerasArchive archive = KerasArchive.open(saved(model + ".keras"))) {
            Map<String, Object> config = archive.config();
            assertEquals("Functional", config.get("class_name"));
            @SuppressWarnings("unchecked")
            Map<String, Object> inner = (Map<String, Object>) config.get("config");
            assertEquals(c.get("model_name"), inner.get("name"));
            assertEquals(layers.size(), ((List<?>) inner.get("layers")).size());

            Map<String, Object> metadata = archive.metadata();
            assertEquals("3.15.1", metadata.get("keras_version"));
            assertEquals("3.15.1", archive.kerasVersion());
            assertTrue(((String) metadata.get("date_saved")).matches("\\d{4}-\\d\\d-\\d\\d@\\d\\d:\\d\\d:\\d\\d"),
                    metadata.toString());

            // config.json -> layer list -> groups, as a loader without the case file does it.
            List<KerasWeightPaths.Layer> fromConfig = archive.layers();
            assertEquals(layers.stream().map(l -> new KerasWeightPaths.Layer(l.className(), l.name(), l.group()))
                    .toList(), fromConfig);
            assertEquals(fromConfig, KerasWeightPaths.layers(config));
            assertEquals(fromConfig, KerasWeightPaths.layers(inner));

            try (KerasWeightsFile f = archive.weights()) {
                assertWeightsMatch(f, layers);
                assertTrue(f.source().endsWith(model + ".keras!model.weights.h5"), f.source());
            }
        }
    }

    @Test
    void configTreesAreCopies() throws Exception {
        try (KerasArchive archive = KerasArchive.open(saved("mha_self.keras"))) {
            archive.config().put("class_name", "changed");
            assertEquals("Functional", archive.config().get("class_name"));
        }
    }

    @Test
    void weightsStayReadableAfterTheArchiveCloses() throws Exception {
        KerasWeightsFile f;
        try (KerasArchive archive = KerasArchive.open(saved("attn_additive.keras"))) {
            f = archive.weights();
        }
        try (f; Arena arena = Arena.ofConfined()) {
            Tensor scale = f.tensor("layers/attention/vars/0", arena);
            assertEquals(0, scale.rank());
            assertArrayEquals(new long[0], f.shape("layers/attention/vars/1"));
            assertEquals(1, f.read("layers/attention/vars/1").length);
            assertArrayEquals(new long[] {8}, f.tensor("layers/additive_attention/vars/0", arena).shape());
        }
    }

    @Test
    void fromBytesReadsTheSameTree() throws Exception {
        byte[] bytes = Files.readAllBytes(saved("gqa_cross.weights.h5"));
        try (KerasWeightsFile mem = KerasWeightsFile.fromBytes(bytes);
                KerasWeightsFile file = KerasWeightsFile.open(saved("gqa_cross.weights.h5"))) {
            assertEquals(file.layerGroups(), mem.layerGroups());
            String k = "layers/grouped_query_attention/_key_dense/vars/0";
            assertArrayEquals(file.read(k), mem.read(k));
            assertEquals(List.of("_dropout_layer", "_key_dense", "_output_dense", "_query_dense", "_softmax",
                    "_value_dense", "vars"), mem.children("layers/grouped_query_attention"));
            assertTrue(mem.exists("/vars"));
            assertFalse(mem.exists("layers/grouped_query_attention/query_dense"));
            assertFalse(mem.exists("layers/grouped_query_attention/_key_dense/vars/0/deeper"));
            assertEquals(List.of("layers", "vars"), mem.children("/"));
        }
    }

    // ---- path rules ---------------------------------------------------------------------

    @Test
    void groupNamesFollowThePythonClass() {
        Map<String, String> expected = Map.ofEntries(
                Map.entry("MultiHeadAttention", "multi_head_attention"),
                Map.entry("GroupQueryAttention", "grouped_query_attention"),
                Map.entry("GroupedQueryAttention", "grouped_query_attention"),
                Map.entry("LayerNormalization", "layer_normalization"),
                Map.entry("InputLayer", "input_layer"),
                Map.entry("Dense", "dense"),
                Map.entry("EinsumDense", "einsum_dense"),
                Map.entry("Add", "add"),
                Map.entry("Dropout", "dropout"),
                Map.entry("Activation", "activation"),
                Map.entry("Attention", "attention"),
                Map.entry("AdditiveAttention", "additive_attention"),
                Map.entry("Conv2D", "conv2d"),
                Map.entry("GRU", "gru"));
        expected.forEach((cls, group) -> assertEquals(group, KerasWeightPaths.groupName(cls), cls));
    }

    @Test
    void groupsCountEarlierLayersOfTheSameClass() {
        assertEquals(List.of("layers/input_layer", "layers/input_layer_1", "layers/multi_head_attention",
                        "layers/dense", "layers/multi_head_attention_1", "layers/grouped_query_attention",
                        "layers/dense_1", "layers/grouped_query_attention_1"),
                KerasWeightPaths.groups(List.of("InputLayer", "InputLayer", "MultiHeadAttention", "Dense",
                        "MultiHeadAttention", "GroupQueryAttention", "Dense", "GroupQueryAttention")));
    }

    @Test
    void optionalWeightsAreListedByExistenceInLayerWeightsOrder() throws Exception {
        // MHA with use_bias=False and use_gate=True, GQA with use_gate=True, Attention
        // with only the concat weight: variants Keras was not run for here, built by hand.
        Path p = tmp.resolve("variants.weights.h5");
        try (WritableHdfFile w = HdfFile.write(p)) {
            WritableGroup layers = w.putGroup("layers");
            WritableGroup mha = layers.putGroup("multi_head_attention");
            mha.putGroup("vars").putAttribute("name", "mha");
            for (String sub : List.of("query_dense", "key_dense", "value_dense", "output_dense", "_gate_dense")) {
                mha.putGroup(sub).putGroup("vars").putDataset("0", new float[] {sub.length()});
            }
            mha.putGroup("_softmax").putGroup("vars");
            WritableGroup gqa = layers.putGroup("grouped_query_attention");
            gqa.putGroup("vars").putAttribute("name", "gqa");
            for (String sub : List.of("_output_dense", "_value_dense", "_gate_dense", "_key_dense", "_query_dense")) {
                WritableGroup vars = gqa.putGroup(sub).putGroup("vars");
                vars.putDataset("0", new float[] {1});
                vars.putDataset("1", new float[] {2});
            }
            WritableGroup attn = layers.putGroup("attention").putGroup("vars");
            attn.putAttribute("name", "attn");
            attn.putDataset("0", new float[] {0.5f});
        }
        try (KerasWeightsFile f = KerasWeightsFile.open(p)) {
            String m = "layers/multi_head_attention/";
            assertEquals(List.of(m + "query_dense/vars/0", m + "key_dense/vars/0", m + "_gate_dense/vars/0",
                            m + "value_dense/vars/0", m + "output_dense/vars/0"),
                    KerasWeightPaths.weightDatasets(f, new KerasWeightPaths.Layer("MultiHeadAttention", "mha",
                            "layers/multi_head_attention")));
            String g = "layers/grouped_query_attention/";
            List<String> gqa = new ArrayList<>();
            for (String sub : List.of("_query_dense", "_key_dense", "_gate_dense", "_value_dense", "_output_dense")) {
                gqa.add(g + sub + "/vars/0");
                gqa.add(g + sub + "/vars/1");
            }
            assertEquals(gqa, KerasWeightPaths.weightDatasets(f, "grouped_query_attention", "GroupQueryAttention"));
            assertEquals(List.of("layers/attention/vars/0"),
                    KerasWeightPaths.weightDatasets(f, "layers/attention", "Attention"));
        }
    }

    // ---- errors -------------------------------------------------------------------------

    @Test
    void errorsNameTheFileAndThePath() throws Exception {
        Path h5 = saved("mha_self.weights.h5");
        try (KerasWeightsFile f = KerasWeightsFile.open(h5)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> f.read("layers/multi_head_attention/query_dense/vars/7"));
            assertContains(e, h5.toString(), "layers/multi_head_attention/query_dense/vars/7", "[0, 1]");
            e = assertThrows(IllegalArgumentException.class, () -> f.shape("layers/multi_head_attention"));
            assertContains(e, "is a group", "query_dense");
            e = assertThrows(IllegalArgumentException.class, () -> f.layerName("dense"));
            assertContains(e, "layers/dense/vars", "multi_head_attention");
            KerasWeightPaths.Layer renamed =
                    new KerasWeightPaths.Layer("MultiHeadAttention", "attention_block", "layers/multi_head_attention");
            e = assertThrows(IllegalArgumentException.class, () -> KerasWeightPaths.checkLayerName(f, renamed));
            assertContains(e, "'attention_block'", "'mha'", h5.toString());
            e = assertThrows(IllegalArgumentException.class,
                    () -> KerasWeightPaths.weightDatasets(f, "layers/dense", "Dense"));
            assertContains(e, "layers/dense", "Dense");
        }
    }

    @Test
    void onlyFloat32DatasetsAreRead() throws Exception {
        Path p = tmp.resolve("types.h5");
        try (WritableHdfFile w = HdfFile.write(p)) {
            w.putDataset("f64", new double[] {1, 2});
            w.putDataset("i32", new int[] {1, 2});
        }
        try (KerasWeightsFile f = KerasWeightsFile.open(p)) {
            assertContains(assertThrows(IllegalArgumentException.class, () -> f.read("f64")), "f64", "float64",
                    "float32", p.toString());
            assertContains(assertThrows(IllegalArgumentException.class, () -> f.shape("i32")), "int32");
        }
    }

    @Test
    void unknownSubLayerWeightsAndGapsAreRefused() throws Exception {
        Path p = tmp.resolve("odd.weights.h5");
        try (WritableHdfFile w = HdfFile.write(p)) {
            WritableGroup layers = w.putGroup("layers");
            WritableGroup custom = layers.putGroup("my_block");
            custom.putGroup("vars").putDataset("0", new float[] {1});
            custom.putGroup("inner_dense").putGroup("vars").putDataset("0", new float[] {2});
            WritableGroup vars = layers.putGroup("dense").putGroup("vars");
            vars.putDataset("0", new float[] {1});
            vars.putDataset("2", new float[] {3});
        }
        try (KerasWeightsFile f = KerasWeightsFile.open(p)) {
            assertContains(assertThrows(IllegalArgumentException.class,
                    () -> KerasWeightPaths.weightDatasets(f, "my_block", "MyBlock")), "inner_dense/vars/0", "MyBlock");
            assertContains(assertThrows(IllegalArgumentException.class,
                    () -> KerasWeightPaths.weightDatasets(f, "dense", "Dense")), "0..1", "[0, 2]");
        }
    }

    @Test
    void wrongKindsOfFileAreNamed() throws Exception {
        IOException e = assertThrows(IOException.class, () -> KerasArchive.open(saved("mha_self.weights.h5")));
        assertContains(e, "not a zip", "KerasWeightsFile.open", "mha_self.weights.h5");
        e = assertThrows(IOException.class, () -> KerasWeightsFile.open(saved("mha_self.keras")));
        assertContains(e, "zip", "KerasArchive.open");
        e = assertThrows(IOException.class, () -> KerasWeightsFile.fromBytes(new byte[64], "junk"));
        assertContains(e, "junk", "HDF5");
        e = assertThrows(IOException.class, () -> KerasArchive.open(tmp.resolve("missing.keras")));
        assertContains(e, "missing.keras");
    }

    @Test
    void missingEntriesAreNamed() throws Exception {
        Path zip = tmp.resolve("partial.keras");
        try (OutputStream out = Files.newOutputStream(zip); ZipOutputStream z = new ZipOutputStream(out)) {
            z.putNextEntry(new ZipEntry("metadata.json"));
            z.write("{\"keras_version\": \"3.15.1\"}".getBytes(StandardCharsets.UTF_8));
            z.putNextEntry(new ZipEntry("model.weights.h5"));
            z.write(Files.readAllBytes(saved("attn_additive.weights.h5")));
        }
        IOException e = assertThrows(IOException.class, () -> KerasArchive.open(zip));
        assertContains(e, "'config.json'", "partial.keras", "metadata.json, model.weights.h5");
    }

    private static void assertContains(Throwable e, String... parts) {
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "expected '" + p + "' in: " + e.getMessage());
        }
    }
}
