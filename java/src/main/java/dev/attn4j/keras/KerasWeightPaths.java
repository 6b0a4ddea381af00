package dev.attn4j.keras;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Where Keras 3 (3.15) saves each layer's weights in a {@code .weights.h5} file, as
 * code.
 *
 * <ul>
 *   <li><b>Group:</b> {@code layers/<snake_case(python class)>}, with {@code _k} appended
 *       for the k-th earlier layer of the same class in the model's layer order (the
 *       order of {@code config.layers}; InputLayers count too). User layer names never
 *       appear in paths.</li>
 *   <li><b>Class names:</b> config.json holds the exported name; the group uses the
 *       Python class. They differ for {@code GroupQueryAttention} (Python class
 *       {@code GroupedQueryAttention}); for the others snake_case of the config name is
 *       right.</li>
 *   <li><b>Datasets</b> are positional: {@code vars/<i>} is the i-th variable the layer
 *       created, and a sub-layer's variables sit under the Python attribute that holds
 *       it. MultiHeadAttention saves its projections under its public properties
 *       ({@code query_dense}, ...) but the gate under {@code _gate_dense}, which has no
 *       public alias; GroupQueryAttention has no public properties, so all of its
 *       groups start with an underscore.</li>
 * </ul>
 *
 * <p>HDF5 lists members alphabetically, which is not {@code layer.weights} order;
 * {@link #weightDatasets} returns the datasets in {@code layer.weights} order.
 */
public final class KerasWeightPaths {
    /** Config class names whose Python class (and so group name) differs. */
    private static final Map<String, String> PYTHON_CLASS = Map.of("GroupQueryAttention", "GroupedQueryAttention");

    /** Sub-layer attributes in {@code layer.weights} order; absent ones (gate, ...) are skipped. */
    private static final List<String> MHA_SUBLAYERS =
            List.of("query_dense", "key_dense", "_gate_dense", "value_dense", "output_dense");
    private static final List<String> GQA_SUBLAYERS =
            List.of("_query_dense", "_key_dense", "_gate_dense", "_value_dense", "_output_dense");

    private KerasWeightPaths() {}

    /**
     * One entry of a functional model's {@code config.layers}: the config class name,
     * the Keras layer name and the HDF5 group ({@code layers/...}) its weights are in.
     */
    public record Layer(String className, String name, String group) {
        public Layer {
            Objects.requireNonNull(className, "Layer: className must not be null");
            Objects.requireNonNull(name, "Layer: name must not be null");
            Objects.requireNonNull(group, "Layer: group must not be null");
        }
    }

    /**
     * The group name Keras derives from a config class name: snake_case of the Python
     * class, e.g. {@code MultiHeadAttention -> multi_head_attention},
     * {@code GroupQueryAttention -> grouped_query_attention}.
     */
    public static String groupName(String className) {
        Objects.requireNonNull(className, "KerasWeightPaths.groupName: className must not be null");
        return snakeCase(PYTHON_CLASS.getOrDefault(className, className));
    }

    /**
     * Keras's snake_case of a class name: drop non-word characters, put {@code _} before
     * each capitalized word and between a lower-case letter and a capital, lower-case.
     */
    static String snakeCase(String name) {
        String s = name.replaceAll("\\W+", "");
        s = s.replaceAll("(.)([A-Z][a-z]+)", "$1_$2");
        s = s.replaceAll("([a-z])([A-Z])", "$1_$2");
        return s.toLowerCase(java.util.Locale.ROOT);
    }

    /**
     * The HDF5 groups ({@code layers/<name>[_k]}) of layers with these config class
     * names, given in the model's layer order.
     */
    public static List<String> groups(List<String> classNames) {
        Objects.requireNonNull(classNames, "KerasWeightPaths.groups: classNames must not be null");
        Map<String, Integer> seen = new HashMap<>();
        List<String> out = new ArrayList<>(classNames.size());
        for (String c : classNames) {
            String base = groupName(c);
            int k = seen.merge(base, 1, Integer::sum) - 1;
            out.add("layers/" + (k == 0 ? base : base + "_" + k));
        }
        return out;
    }

    /**
     * The layers of a functional model's config ({@code config.json}, whole or its inner
     * {@code config}), in order, each with its group.
     */
    public static List<Layer> layers(Map<String, Object> config) {
        return layers(config, "config.json");
    }

    static List<Layer> layers(Map<String, Object> config, String source) {
        Objects.requireNonNull(config, "KerasWeightPaths.layers: config must not be null");
        // A Sequential model's model.layers leaves out its InputLayer, so the _k counting
        // would differ from config.layers; only functional models have been checked.
        if ("Sequential".equals(config.get("class_name"))) {
            throw new IllegalArgumentException(
                    "KerasWeightPaths.layers: " + source + " holds a Sequential model; only functional "
                    + "models are supported (rebuild it with keras.Model(inputs, outputs) and save that)");
        }
        Object inner = config.get("layers") == null && config.get("config") instanceof Map<?, ?> c ? c : config;
        if (!(((Map<?, ?>) inner).get("layers") instanceof List<?> list)) {
            throw new IllegalArgumentException(
                    "KerasWeightPaths.layers: " + source + " has no \"layers\" list (class_name "
                    + config.get("class_name") + "); only functional models list their layers");
        }
        List<String> classNames = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (int i = 0; i < list.size(); i++) {
            if (!(list.get(i) instanceof Map<?, ?> entry)
                    || !(entry.get("class_name") instanceof String className)) {
                throw new IllegalArgumentException("KerasWeightPaths.layers: " + source + ": layers[" + i
                        + "] has no \"class_name\"");
            }
            if (!(entry.get("name") instanceof String name)) {
                throw new IllegalArgumentException(
                        "KerasWeightPaths.layers: " + source + ": layers[" + i + "] (" + className
                        + ") has no \"name\"");
            }
            classNames.add(className);
            names.add(name);
        }
        List<String> groups = groups(classNames);
        List<Layer> out = new ArrayList<>(groups.size());
        for (int i = 0; i < groups.size(); i++) {
            out.add(new Layer(classNames.get(i), names.get(i), groups.get(i)));
        }
        return out;
    }

    /**
     * Checks that the weights file stores {@code layer.name()} for {@code layer.group()}
     * (the {@code name} attribute of its {@code vars} group).
     *
     * @ naming both names when they differ: the file does not belong
     *     to this model, or its layers were saved in another order
     */
    public static void checkLayerName(KerasWeightsFile f, Layer layer) {
        Objects.requireNonNull(f, "KerasWeightPaths.checkLayerName: file must not be null");
        Objects.requireNonNull(layer, "KerasWeightPaths.checkLayerName: layer must not be null");
        String stored = f.layerName(layer.group());
        if (stored == null) {
            throw new IllegalArgumentException("KerasWeightPaths: " + f.source() + ": group '" + layer.group()
                    + "/vars' has no 'name' attribute to check against the config's layer '" + layer.name() + "'");
        }
        if (!stored.equals(layer.name())) {
            throw new IllegalArgumentException(
                    "KerasWeightPaths: " + f.source() + ": group '" + layer.group() + "' holds layer '"
                    + stored + "', but the config's " + layer.className() + " at that position is named '"
                    + layer.name() + "'; the weights do not belong to this model");
        }
    }

    /**
     * {@link #checkLayerName checks the layer name}, then lists the layer's weight
     * datasets as {@link #weightDatasets(KerasWeightsFile, String, String)} does.
     */
    public static List<String> weightDatasets(KerasWeightsFile f, Layer layer) {
        checkLayerName(f, layer);
        return weightDatasets(f, layer.group(), layer.className());
    }

    /**
     * The dataset paths of a layer's weights in {@code layer.weights} order, e.g.
     * {@code layers/multi_head_attention/query_dense/vars/0}. Optional weights (biases,
     * gates, scales, ...) are listed when they exist, so every variant of a layer's
     * options is covered without reading its config.
     *
     * @param group {@code layers/<name>} or just the name
     * @param className the config class name ({@code MultiHeadAttention}, ...)
     * @ if the group is missing, if a layer's {@code vars} are not
     *     numbered 0..n-1, or if the group holds datasets outside the known places (a
     *     layer with sub-layers this class does not know the order of)
     */
    public static List<String> weightDatasets(KerasWeightsFile f, String group, String className) {
        Objects.requireNonNull(f, "KerasWeightPaths.weightDatasets: file must not be null");
        Objects.requireNonNull(group, "KerasWeightPaths.weightDatasets: group must not be null");
        Objects.requireNonNull(className, "KerasWeightPaths.weightDatasets: className must not be null");
        String g = KerasWeightsFile.layerGroupPath(group);
        if (!f.exists(g)) {
            throw new IllegalArgumentException(
                    "KerasWeightPaths.weightDatasets: " + f.source() + ": no group '" + g + "' for "
                    + className + "; layer groups: " + f.layerGroups());
        }
        List<String> sublayers = switch (className) {
            case "MultiHeadAttention" -> MHA_SUBLAYERS;
            case "GroupQueryAttention", "GroupedQueryAttention" -> GQA_SUBLAYERS;
            default -> List.of();
        };
        List<String> out = new ArrayList<>(vars(f, g));
        for (String sub : sublayers) {
            if (f.exists(g + "/" + sub)) {
                out.addAll(vars(f, g + "/" + sub));
            }
        }
        List<String> unplaced = new ArrayList<>();
        collectDatasets(f, g, unplaced);
        unplaced.removeAll(out);
        if (!unplaced.isEmpty()) {
            throw new IllegalArgumentException(
                    "KerasWeightPaths.weightDatasets: " + f.source() + ": " + className + " in '" + g
                    + "' has datasets whose place in layer.weights is not known: " + unplaced);
        }
        return out;
    }

    /** {@code <group>/vars/0 .. n-1}, in index order; none when there is no vars group or it is empty. */
    private static List<String> vars(KerasWeightsFile f, String group) {
        String vars = group + "/vars";
        if (!f.exists(vars)) {
            return List.of();
        }
        TreeMap<Integer, String> byIndex = new TreeMap<>();
        for (String child : f.children(vars)) {
            int i;
            try {
                i = Integer.parseInt(child);
            } catch (NumberFormatException e) {
                i = -1;
            }
            if (i < 0 || !Integer.toString(i).equals(child) || !f.isDataset(vars + "/" + child)) {
                throw new IllegalArgumentException("KerasWeightPaths: " + f.source() + ": '" + vars + "/" + child
                        + "' is not a numbered variable; Keras names them 0, 1, ...");
            }
            byIndex.put(i, vars + "/" + child);
        }
        if (!byIndex.isEmpty() && byIndex.lastKey() != byIndex.size() - 1) {
            throw new IllegalArgumentException("KerasWeightPaths: " + f.source() + ": the variables of '" + vars
                    + "' are not numbered 0.." + (byIndex.size() - 1) + ": " + byIndex.keySet());
        }
        return new ArrayList<>(byIndex.values());
    }

    private static void collectDatasets(KerasWeightsFile f, String path, List<String> out) {
        for (String child : f.children(path)) {
            String p = path + "/" + child;
            if (f.isDataset(p)) {
                out.add(p);
            } else {
                collectDatasets(f, p, out);
            }
        }
    }
}
