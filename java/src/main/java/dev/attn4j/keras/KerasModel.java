package dev.attn4j.keras;

import dev.attn4j.DType;
import dev.attn4j.Tensor;
import dev.attn4j.internal.backend.Backend;
import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.GemmRoute;
import dev.attn4j.layers.AttentionLayer;
import dev.attn4j.layers.AttentionResult;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.Layers;
import dev.attn4j.layers.Weight;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * A Keras 3 functional model loaded from a {@code .keras} file (or a config plus a
 * {@code .weights.h5} file), evaluated with attn4j's layers.
 *
 * <p>Supported layers: {@value #SUPPORTED_TEXT}. Any other class is an error listing the
 * unsupported classes and the supported ones. Several inputs and outputs, shared
 * inputs (self-attention passing one tensor twice) and layers called more than once
 * work as in Keras. {@code Dropout} is the identity (inference).
 *
 * <p>Thread safety: after loading, {@link #predict} may run from many threads at once.
 * {@link #close()} frees the weights.
 */
public final class KerasModel implements AutoCloseable {
    static final String SUPPORTED_TEXT = "InputLayer, Attention, AdditiveAttention, MultiHeadAttention, "
            + "GroupQueryAttention, Dense, LayerNormalization, Add, Dropout, Activation";
    /** The Keras class names a model may contain. */
    public static final Set<String> SUPPORTED = Set.of("InputLayer", "Attention", "AdditiveAttention",
            "MultiHeadAttention", "GroupQueryAttention", "GroupedQueryAttention", "Dense", "LayerNormalization",
            "Add", "Dropout", "Activation");

    /** A tensor reference: (layer name, node index, tensor index), Keras's keras_history. */
    record Ref(String layer, int node, int tensor) {
        @Override
        public String toString() {
            return layer + "[" + node + "][" + tensor + "]";
        }
    }

    /** One call of a layer: its inputs (flattened in call order) and call options. */
    record Call(List<Ref> inputs, boolean listArgument, Map<String, Object> kwargs) {}

    /** A layer of the model. */
    static final class Node {
        final String className;
        final String name;
        final Map<String, Object> config;
        final List<Call> calls = new ArrayList<>();
        AttentionLayer attention;           // attention layers
        MemorySegment kernel;               // Dense (in, units), off-heap
        MemorySegment bias;                 // Dense bias (off-heap)
        float[] beta;                       // LayerNormalization
        float[] gamma;                      // LayerNormalization
        int units;
        long[] inputShape;                  // InputLayer batch_shape (first dim -1 = any)
        String activation = "linear";
        double epsilon = 1e-3;
        long params;

        Node(String className, String name, Map<String, Object> config) {
            this.className = className;
            this.name = name;
            this.config = config;
        }
    }

    private final String name;
    private final Arena weightArena = Arena.ofShared();
    private final List<Node> nodes;
    private final List<Ref> inputs;
    private final List<Ref> outputs;

    private KerasModel(String name, List<Node> nodes, List<Ref> inputs, List<Ref> outputs) {
        this.name = name;
        this.nodes = nodes;
        this.inputs = inputs;
        this.outputs = outputs;
    }

    /** Loads a {@code .keras} file: its config.json graph and model.weights.h5 weights. */
    public static KerasModel load(Path path) throws IOException {
        Objects.requireNonNull(path, "KerasModel.load: path must not be null");
        try (KerasArchive archive = KerasArchive.open(path)) {
            KerasModel model = fromConfig(archive.config());
            try (KerasWeightsFile weights = archive.weights()) {
                model.loadWeights(weights, path.toString());
            } catch (RuntimeException | IOException e) {
                model.close();
                throw e;
            }
            return model;
        }
    }

    /**
     * Builds the graph from a {@code config.json} dictionary (the whole file: module,
     * class_name "Functional", config). Weights keep their initial values until
     * {@link #loadWeights(Path)}.
     */
    @SuppressWarnings("unchecked")
    public static KerasModel fromConfig(Map<String, Object> root) {
        Objects.requireNonNull(root, "KerasModel.fromConfig: config must not be null");
        Object cls = root.get("class_name");
        if (!"Functional".equals(cls) && !"Model".equals(cls)) {
            throw new IllegalArgumentException("KerasModel: only functional models are supported, but config.json has "
                    + "class_name " + cls);
        }
        Map<String, Object> config = map("model config", root.get("config"));
        List<Object> layers = list("config.layers", config.get("layers"));
        Set<String> unsupported = new TreeSet<>();
        for (Object o : layers) {
            String c = (String) map("layer", o).get("class_name");
            if (!SUPPORTED.contains(c)) {
                unsupported.add(String.valueOf(c));
            }
        }
        if (!unsupported.isEmpty()) {
            throw new IllegalArgumentException("KerasModel: unsupported layer classes " + unsupported
                    + "; supported: " + SUPPORTED_TEXT);
        }
        List<Node> nodes = new ArrayList<>();
        try {
            for (Object o : layers) {
                Map<String, Object> layer = map("layer", o);
                Node node = node(layer);
                for (Object inbound : list(node.name + ".inbound_nodes", layer.get("inbound_nodes"))) {
                    node.calls.add(call(node, map(node.name + " inbound node", inbound)));
                }
                nodes.add(node);
            }
        } catch (RuntimeException e) {
            nodes.forEach(n -> {
                if (n.attention != null) {
                    n.attention.close();
                }
            });
            throw e;
        }
        return new KerasModel(String.valueOf(config.get("name")), nodes, refs(config.get("input_layers")),
                refs(config.get("output_layers")));
    }

    private static Node node(Map<String, Object> layer) {
        String cls = (String) layer.get("class_name");
        String name = (String) layer.get("name");
        Map<String, Object> config = map(name + ".config", layer.get("config"));
        Node n = new Node(cls, name, config);
        switch (cls) {
            case "InputLayer" -> {
                List<Object> shape = list(name + ".batch_shape", config.get("batch_shape"));
                n.inputShape = shape.stream().mapToLong(d -> d == null ? -1 : ((Number) d).longValue()).toArray();
                Object dtype = config.get("dtype");
                if (dtype != null && !"float32".equals(dtype) && !(dtype instanceof Map)) {
                    throw new IllegalArgumentException("KerasModel: input '" + name + "' has dtype " + dtype
                            + "; only float32 inputs are supported");
                }
            }
            case "Attention", "AdditiveAttention", "MultiHeadAttention", "GroupQueryAttention",
                 "GroupedQueryAttention" -> {
                n.attention = Layers.fromConfig(cls, config);
                buildAttention(n, layer);
            }
            case "Dense" -> {
                n.units = ((Number) Objects.requireNonNull(config.get("units"), name + ": Dense needs units")).intValue();
                n.activation = activation(name, config.get("activation"));
                if (config.get("lora_rank") != null) {
                    throw new UnsupportedOperationException("KerasModel: Dense '" + name + "' uses LoRA (lora_rank), "
                            + "which attn4j does not support");
                }
                if (config.get("quantization_config") != null) {
                    throw new UnsupportedOperationException("KerasModel: Dense '" + name + "' is quantized, which "
                            + "attn4j does not support");
                }
            }
            case "LayerNormalization" -> {
                Object axis = config.get("axis");
                boolean last = axis == null || Integer.valueOf(-1).equals(axis)
                        || (axis instanceof List<?> l && l.size() == 1 && Integer.valueOf(-1).equals(l.get(0)));
                if (!last) {
                    throw new UnsupportedOperationException("KerasModel: LayerNormalization '" + name
                            + "' normalises over axis " + axis + "; attn4j supports the last axis only");
                }
                if (Boolean.TRUE.equals(config.get("rms_scaling"))) {
                    throw new UnsupportedOperationException("KerasModel: LayerNormalization '" + name
                            + "' uses rms_scaling, which attn4j does not support");
                }
                n.epsilon = config.get("epsilon") == null ? 1e-3 : ((Number) config.get("epsilon")).doubleValue();
            }
            case "Activation" -> n.activation = activation(name, config.get("activation"));
            default -> {
                // Add, Dropout: no configuration that matters at inference.
            }
        }
        return n;
    }

    private static final Set<String> ACTIVATIONS = Set.of("linear", "relu", "gelu", "tanh", "sigmoid", "softmax");

    private static String activation(String layer, Object a) {
        String name = a == null ? "linear" : a instanceof String s ? s
                : a instanceof Map<?, ?> m && m.get("config") instanceof Map<?, ?> c ? String.valueOf(c.get("name"))
                : String.valueOf(a);
        if (!ACTIVATIONS.contains(name)) {
            throw new IllegalArgumentException("KerasModel: layer '" + layer + "' uses activation '" + name
                    + "'; supported: " + new TreeSet<>(ACTIVATIONS));
        }
        return name;
    }

    /** Builds an attention layer from its build_config (batch None -> 1) so weights can be set. */
    @SuppressWarnings("unchecked")
    private static void buildAttention(Node n, Map<String, Object> layer) {
        Map<String, Object> build = layer.get("build_config") instanceof Map<?, ?> m ? (Map<String, Object>) m : null;
        long[] q = null;
        long[] v = null;
        long[] k = null;
        if (build != null && build.get("shapes_dict") instanceof Map<?, ?> shapes) {
            q = shape(shapes.get("query_shape"));
            v = shape(shapes.get("value_shape"));
            k = shape(shapes.get("key_shape"));
        } else if (build != null && build.get("input_shape") instanceof List<?> list && !list.isEmpty()
                && list.get(0) instanceof List<?>) {
            q = shape(list.get(0));
            v = list.size() > 1 ? shape(list.get(1)) : null;
            k = list.size() > 2 ? shape(list.get(2)) : null;
        }
        if (q == null || v == null) {
            throw new IllegalArgumentException("KerasModel: attention layer '" + n.name + "' has no build_config with "
                    + "its input shapes");
        }
        n.attention.build(q, v, k);
    }

    private static long[] shape(Object o) {
        if (o == null) {
            return null;
        }
        return list("shape", o).stream().mapToLong(d -> d == null ? 1 : ((Number) d).longValue()).toArray();
    }

    @SuppressWarnings("unchecked")
    private static Call call(Node node, Map<String, Object> inbound) {
        List<Object> args = list(node.name + ".args", inbound.get("args"));
        Map<String, Object> kwargs = inbound.get("kwargs") instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
        List<Ref> refs = new ArrayList<>();
        boolean listArgument = args.size() == 1 && args.get(0) instanceof List<?>;
        for (Object a : listArgument ? (List<Object>) args.get(0) : args) {
            refs.add(tensorRef(node.name, a));
        }
        for (Map.Entry<String, Object> e : kwargs.entrySet()) {
            boolean known = switch (e.getKey()) {
                case "use_causal_mask", "return_attention_scores", "training" -> node.attention != null;
                case "query", "value", "key" -> node.attention != null;
                default -> false;
            };
            if (!known) {
                throw new UnsupportedOperationException("KerasModel: layer '" + node.name + "' is called with "
                        + "argument '" + e.getKey() + "', which attn4j does not support here");
            }
            if (e.getValue() instanceof Map<?, ?>) {
                refs.add(tensorRef(node.name, e.getValue())); // tensors passed by keyword, in q, v, k order
            }
        }
        return new Call(refs, listArgument, kwargs);
    }

    @SuppressWarnings("unchecked")
    private static Ref tensorRef(String layer, Object o) {
        Map<String, Object> m = map(layer + " argument", o);
        if (!"__keras_tensor__".equals(m.get("class_name"))) {
            throw new UnsupportedOperationException("KerasModel: layer '" + layer + "' takes a non-tensor argument "
                    + m + ", which attn4j does not support");
        }
        List<Object> history = list(layer + " keras_history", map("tensor", m.get("config")).get("keras_history"));
        return new Ref((String) history.get(0), ((Number) history.get(1)).intValue(),
                ((Number) history.get(2)).intValue());
    }

    private static List<Ref> refs(Object o) {
        List<Object> l = list("input/output layers", o);
        List<Ref> out = new ArrayList<>();
        if (!l.isEmpty() && !(l.get(0) instanceof List<?>)) {
            out.add(new Ref((String) l.get(0), ((Number) l.get(1)).intValue(), ((Number) l.get(2)).intValue()));
            return out;
        }
        for (Object e : l) {
            List<Object> t = list("layer reference", e);
            out.add(new Ref((String) t.get(0), ((Number) t.get(1)).intValue(), ((Number) t.get(2)).intValue()));
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(String what, Object o) {
        if (!(o instanceof Map<?, ?>)) {
            throw new IllegalArgumentException("KerasModel: " + what + " must be an object, but is " + o);
        }
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(String what, Object o) {
        if (!(o instanceof List<?>)) {
            throw new IllegalArgumentException("KerasModel: " + what + " must be a list, but is " + o);
        }
        return (List<Object>) o;
    }

    // ---- weights --------------------------------------------------------------------

    /** Loads weights from a {@code .weights.h5} file written by Keras for this model. */
    public void loadWeights(Path weightsFile) throws IOException {
        try (KerasWeightsFile f = KerasWeightsFile.open(weightsFile)) {
            loadWeights(f, weightsFile.toString());
        }
    }

    private void loadWeights(KerasWeightsFile file, String source) {
        List<String> classes = nodes.stream().map(n -> n.className).toList();
        List<String> names = nodes.stream().map(n -> n.name).toList();
        List<String> groups = KerasWeightPaths.groups(classes);
        for (int i = 0; i < nodes.size(); i++) {
            Node n = nodes.get(i);
            String group = groups.get(i);
            if (!file.exists(group)) {
                if (n.attention == null && !n.className.equals("Dense") && !n.className.equals("LayerNormalization")) {
                    continue;
                }
                throw new IllegalArgumentException("KerasModel: " + source + " has no group " + group + " for layer '"
                        + n.name + "' (" + n.className + ")");
            }
            String stored = file.layerName(group);
            if (stored != null && !stored.equals(names.get(i))) {
                throw new IllegalArgumentException("KerasModel: " + source + ": group " + group + " holds layer '"
                        + stored + "', but the config's layer " + i + " is '" + names.get(i) + "'");
            }
            List<String> datasets = KerasWeightPaths.weightDatasets(file, group, n.className);
            List<float[]> values = new ArrayList<>();
            List<long[]> shapes = new ArrayList<>();
            for (String d : datasets) {
                values.add(file.read(d));
                shapes.add(file.shape(d));
            }
            assign(n, values, shapes, source, group);
        }
    }

    private void assign(Node n, List<float[]> values, List<long[]> shapes, String source, String group) {
        String where = source + " " + group + " (layer '" + n.name + "')";
        switch (n.className) {
            case "Dense" -> {
                boolean useBias = !Boolean.FALSE.equals(n.config.get("use_bias"));
                expectCount(where, values, useBias ? 2 : 1);
                long[] k = shapes.get(0);
                if (k.length != 2 || k[1] != n.units) {
                    throw new IllegalArgumentException("KerasModel: " + where + ": Dense kernel has shape "
                            + Arrays.toString(k) + ", expected (input features, " + n.units + ")");
                }
                n.kernel = weightArena.allocateFrom(ValueLayout.JAVA_FLOAT, values.get(0));
                n.bias = useBias ? weightArena.allocateFrom(ValueLayout.JAVA_FLOAT, values.get(1)) : MemorySegment.NULL;
                n.params = values.get(0).length + (useBias ? values.get(1).length : 0);
            }
            case "LayerNormalization" -> {
                boolean scale = !Boolean.FALSE.equals(n.config.get("scale"));
                boolean center = !Boolean.FALSE.equals(n.config.get("center"));
                expectCount(where, values, (scale ? 1 : 0) + (center ? 1 : 0));
                int i = 0;
                n.gamma = scale ? values.get(i++) : null;
                n.beta = center ? values.get(i) : null;
                n.params = (n.gamma == null ? 0 : n.gamma.length) + (n.beta == null ? 0 : n.beta.length);
            }
            default -> {
                if (n.attention == null) {
                    return;
                }
                List<Weight> w = n.attention.weights();
                expectCount(where, values, w.size());
                for (int i = 0; i < w.size(); i++) {
                    if (!Arrays.equals(w.get(i).shape(), shapes.get(i))) {
                        throw new IllegalArgumentException("KerasModel: " + where + ": weight " + w.get(i).path()
                                + " has shape " + Arrays.toString(shapes.get(i)) + " in the file, expected "
                                + Arrays.toString(w.get(i).shape()));
                    }
                }
                n.attention.setWeights(values.toArray(float[][]::new));
                n.params = w.stream().mapToLong(Weight::size).sum();
            }
        }
    }

    private static void expectCount(String where, List<float[]> values, int expected) {
        if (values.size() != expected) {
            throw new IllegalArgumentException("KerasModel: " + where + " holds " + values.size() + " weights, expected "
                    + expected);
        }
    }

    // ---- prediction -----------------------------------------------------------------

    /** The model's name in config.json. */
    public String name() {
        return name;
    }

    /** The input layer names, in {@code model.inputs} order. */
    public List<String> inputNames() {
        return inputs.stream().map(Ref::layer).toList();
    }

    /** The input shapes from the InputLayers (batch and any unknown dim as -1). */
    public Map<String, long[]> inputShapes() {
        Map<String, long[]> out = new LinkedHashMap<>();
        for (Ref r : inputs) {
            out.put(r.layer(), node(r.layer()).inputShape.clone());
        }
        return out;
    }

    /** The output layer names, in {@code model.outputs} order. */
    public List<String> outputNames() {
        return outputs.stream().map(Ref::layer).toList();
    }

    /** The names of the attention layers, in model order. */
    public List<String> attentionLayers() {
        return nodes.stream().filter(n -> n.attention != null).map(n -> n.name).toList();
    }

    /** Total number of weights (Keras's parameter count). */
    public long parameterCount() {
        return nodes.stream().mapToLong(n -> n.params).sum();
    }

    /** A summary like Keras's {@code model.summary()}: layer, class, parameters. */
    public String summary() {
        StringBuilder s = new StringBuilder("Model: \"" + name + "\"\n");
        s.append(String.format("%-28s %-22s %10s%n", "Layer", "Class", "Params"));
        for (Node n : nodes) {
            s.append(String.format("%-28s %-22s %10d%n", n.name, n.className, n.params));
        }
        s.append("Total params: ").append(parameterCount()).append('\n');
        return s.toString();
    }

    /**
     * What a prediction returns: the outputs in {@code model.outputs} order, and for each
     * attention layer asked for, its attention scores (first call of the layer).
     */
    public record Prediction(List<Tensor> outputs, Map<String, Tensor> attentionScores) {}

    /** {@code model.predict(inputs)}: outputs in the caller's arena, in model.outputs order. */
    public List<Tensor> predict(Arena arena, Map<String, Tensor> inputs) {
        return predict(arena, inputs, false).outputs();
    }

    /**
     * Runs the model. With {@code captureScores}, the attention layers also return their
     * scores (MHA/GQA then take Keras's einsum path, identical except on fully masked
     * rows, which then show zero weights).
     */
    public Prediction predict(Arena arena, Map<String, Tensor> feed, boolean captureScores) {
        Objects.requireNonNull(arena, "KerasModel.predict: arena must not be null");
        Objects.requireNonNull(feed, "KerasModel.predict: inputs must not be null");
        for (String given : feed.keySet()) {
            if (!inputNames().contains(given)) {
                throw new IllegalArgumentException("KerasModel.predict: unknown input '" + given + "'; the model's inputs "
                        + "are " + inputNames());
            }
        }
        Map<Ref, Tensor> values = new LinkedHashMap<>();
        Map<String, Tensor> scores = new LinkedHashMap<>();
        for (Ref r : inputs) {
            Tensor t = feed.get(r.layer());
            if (t == null) {
                throw new IllegalArgumentException("KerasModel.predict: missing input '" + r.layer() + "'; the model's "
                        + "inputs are " + inputNames());
            }
            checkInput(r.layer(), t, node(r.layer()).inputShape);
            values.put(new Ref(r.layer(), 0, 0), t);
        }
        for (Node n : nodes) {
            for (int c = 0; c < n.calls.size(); c++) {
                Call call = n.calls.get(c);
                List<Tensor> in = new ArrayList<>();
                for (Ref r : call.inputs()) {
                    Tensor t = values.get(r);
                    if (t == null) {
                        throw new IllegalStateException("KerasModel: layer '" + n.name + "' needs " + r
                                + ", which no earlier layer produced");
                    }
                    in.add(t);
                }
                List<Tensor> out = apply(n, call, in, arena, captureScores && c == 0 ? scores : null);
                for (int i = 0; i < out.size(); i++) {
                    values.put(new Ref(n.name, c, i), out.get(i));
                }
            }
        }
        List<Tensor> result = new ArrayList<>();
        for (Ref r : outputs) {
            result.add(values.get(r));
        }
        return new Prediction(result, scores);
    }

    private static void checkInput(String name, Tensor t, long[] expected) {
        if (t.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("KerasModel.predict: input '" + name + "' must be float32, but is " + t);
        }
        long[] s = t.shape();
        boolean ok = s.length == expected.length;
        for (int i = 0; ok && i < s.length; i++) {
            ok = expected[i] < 0 || expected[i] == s[i];
        }
        if (!ok) {
            throw new IllegalArgumentException("KerasModel.predict: input '" + name + "' must have shape "
                    + Arrays.toString(expected).replace("-1", "None") + ", but has " + Arrays.toString(s));
        }
    }

    private Node node(String layerName) {
        for (Node n : nodes) {
            if (n.name.equals(layerName)) {
                return n;
            }
        }
        throw new IllegalArgumentException("KerasModel: no layer named '" + layerName + "'");
    }

    private List<Tensor> apply(Node n, Call call, List<Tensor> in, Arena arena, Map<String, Tensor> scores) {
        Backend be = Backends.get();
        switch (n.className) {
            case "InputLayer":
                return in;
            case "Dropout":
                return List.of(in.get(0));
            case "Add": {
                Tensor a = in.get(0);
                Tensor out = Tensor.allocate(arena, a.shape());
                MemorySegment.copy(a.segment(), 0, out.segment(), 0, a.segment().byteSize());
                for (int i = 1; i < in.size(); i++) {
                    if (!Arrays.equals(in.get(i).shape(), a.shape())) {
                        throw new IllegalArgumentException("KerasModel: Add '" + n.name + "' got shapes "
                                + Arrays.toString(a.shape()) + " and " + Arrays.toString(in.get(i).shape()));
                    }
                    add(out.segment(), in.get(i).segment(), out.size());
                }
                return List.of(out);
            }
            case "Activation": {
                Tensor x = in.get(0);
                Tensor out = Tensor.allocate(arena, x.shape());
                MemorySegment.copy(x.segment(), 0, out.segment(), 0, x.segment().byteSize());
                activate(be, out, n.activation);
                return List.of(out);
            }
            case "Dense": {
                Tensor x = in.get(0);
                long[] s = x.shape();
                int features = (int) s[s.length - 1];
                if (n.kernel == null) {
                    throw new IllegalStateException("KerasModel: Dense '" + n.name + "' has no weights loaded");
                }
                if ((long) features * n.units * Float.BYTES != n.kernel.byteSize()) {
                    throw new IllegalArgumentException("KerasModel: Dense '" + n.name + "' expects "
                            + n.kernel.byteSize() / Float.BYTES / n.units + " input features, got shape "
                            + Arrays.toString(s));
                }
                long rows = x.size() / features;
                long[] os = s.clone();
                os[os.length - 1] = n.units;
                Tensor out = Tensor.allocate(arena, os);
                be.sgemmBatched(false, false, (int) rows, n.units, features, 1f, x.segment(), features, 0, 0,
                        n.kernel, n.units, 0, 0, 1, 0f, out.segment(), n.units, 0, 0, 1, 1, GemmRoute.AUTO);
                boolean softmax = n.activation.equals("softmax");
                be.biasAct(out.segment(), rows, n.units, n.bias, softmax ? Backend.Activation.LINEAR
                        : activationCode(n.activation));
                if (softmax) {
                    activate(be, out, "softmax");
                }
                return List.of(out);
            }
            case "LayerNormalization": {
                Tensor x = in.get(0);
                Tensor out = Tensor.allocate(arena, x.shape());
                layerNorm(x.segment(), out.segment(), x.size(), (int) x.dim(-1), n);
                return List.of(out);
            }
            default: {
                Tensor q = in.get(0);
                Tensor v = in.size() > 1 ? in.get(1) : in.get(0);
                Tensor k = in.size() > 2 ? in.get(2) : null;
                CallArgs args = CallArgs.of(q, v).withKey(k)
                        .withUseCausalMask(Boolean.TRUE.equals(call.kwargs().get("use_causal_mask")));
                boolean wantScores = scores != null || Boolean.TRUE.equals(call.kwargs().get("return_attention_scores"));
                AttentionResult r = n.attention.call(arena, args.withReturnAttentionScores(wantScores));
                if (scores != null) {
                    scores.put(n.name, r.attentionScores());
                }
                return Boolean.TRUE.equals(call.kwargs().get("return_attention_scores"))
                        ? List.of(r.output(), r.attentionScores()) : List.of(r.output());
            }
        }
    }

    private static void add(MemorySegment acc, MemorySegment x, long n) {
        for (long i = 0; i < n; i++) {
            acc.setAtIndex(ValueLayout.JAVA_FLOAT, i,
                    acc.getAtIndex(ValueLayout.JAVA_FLOAT, i) + x.getAtIndex(ValueLayout.JAVA_FLOAT, i));
        }
    }

    private static void activate(Backend be, Tensor t, String activation) {
        int last = (int) t.dim(-1);
        long rows = t.size() / last;
        switch (activation) {
            case "linear" -> { }
            case "softmax" -> be.maskedSoftmax(t.segment(), 1, (int) rows, last, 1f, MemorySegment.NULL, 0, 0, 1, false,
                    dev.attn4j.MaskConvention.REPLACE);
            default -> be.biasAct(t.segment(), rows, last, MemorySegment.NULL, activationCode(activation));
        }
    }

    private static Backend.Activation activationCode(String activation) {
        return switch (activation) {
            case "relu" -> Backend.Activation.RELU;
            case "gelu" -> Backend.Activation.GELU;
            case "tanh" -> Backend.Activation.TANH;
            case "sigmoid" -> Backend.Activation.SIGMOID;
            default -> Backend.Activation.LINEAR;
        };
    }

    /** Keras LayerNormalization over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta. */
    private static void layerNorm(MemorySegment x, MemorySegment out, long size, int d, Node n) {
        long rows = size / d;
        for (long r = 0; r < rows; r++) {
            double mean = 0;
            for (int j = 0; j < d; j++) {
                mean += x.getAtIndex(ValueLayout.JAVA_FLOAT, r * d + j);
            }
            mean /= d;
            double var = 0;
            for (int j = 0; j < d; j++) {
                double c = x.getAtIndex(ValueLayout.JAVA_FLOAT, r * d + j) - mean;
                var += c * c;
            }
            var /= d;
            double inv = 1 / Math.sqrt(var + n.epsilon);
            for (int j = 0; j < d; j++) {
                double y = (x.getAtIndex(ValueLayout.JAVA_FLOAT, r * d + j) - mean) * inv;
                if (n.gamma != null) {
                    y *= n.gamma[j];
                }
                if (n.beta != null) {
                    y += n.beta[j];
                }
                out.setAtIndex(ValueLayout.JAVA_FLOAT, r * d + j, (float) y);
            }
        }
    }

    /** Frees the model's weights. Idempotent. */
    @Override
    public synchronized void close() {
        for (Node n : nodes) {
            if (n.attention != null) {
                n.attention.close();
            }
        }
        if (weightArena.scope().isAlive()) {
            weightArena.close();
        }
    }
}
