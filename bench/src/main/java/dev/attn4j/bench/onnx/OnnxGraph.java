package dev.attn4j.bench.onnx;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes an ONNX model (the bytes of an {@code onnx.ModelProto}) for a graph of float32
 * tensors with fixed shapes. Field numbers are those of onnx/onnx.proto:
 * <pre>
 * ModelProto        ir_version 1, opset_import 8, producer_name 2, graph 7
 * OperatorSetIdProto domain 1, version 2
 * GraphProto        node 1, name 2, initializer 5, input 11, output 12
 * NodeProto         input 1, output 2, name 3, op_type 4, attribute 5, domain 7
 * AttributeProto    name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7)
 * ValueInfoProto    name 1, type 2
 * TypeProto         tensor_type 1; TypeProto.Tensor elem_type 1, shape 2
 * TensorShapeProto  dim 1; Dimension dim_value 1
 * TensorProto       dims 1, data_type 2 (FLOAT 1, INT64 7), name 8, raw_data 9 (little-endian)
 * </pre>
 * The model targets IR version 10 and the default domain's opset 23, the first with the
 * standard {@code Attention} operator.
 */
public final class OnnxGraph {
    public static final long IR_VERSION = 10;
    public static final long OPSET = 23;

    private static final int FLOAT = 1;
    private static final int INT32 = 6;
    private static final int INT64 = 7;
    private static final int ATTR_FLOAT = 1;
    private static final int ATTR_INT = 2;
    private static final int ATTR_INTS = 7;

    private final String name;
    private final List<ProtoWriter> nodes = new ArrayList<>();
    private final List<ProtoWriter> initializers = new ArrayList<>();
    private final List<ProtoWriter> inputs = new ArrayList<>();
    private final List<ProtoWriter> outputs = new ArrayList<>();
    private final List<ProtoWriter> extraOpsets = new ArrayList<>();

    public OnnxGraph(String name) {
        this.name = name;
    }

    /** A float32 graph input of a fixed shape. */
    public OnnxGraph input(String name, long... shape) {
        inputs.add(valueInfo(name, shape));
        return this;
    }

    /** A float32 graph output of a fixed shape. */
    public OnnxGraph output(String name, long... shape) {
        outputs.add(valueInfo(name, shape));
        return this;
    }

    /** A float32 constant (a weight), stored as raw little-endian bytes. */
    public OnnxGraph initializer(String name, float[] values, long... shape) {
        ByteBuffer raw = ByteBuffer.allocate(values.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        raw.asFloatBuffer().put(values);
        initializers.add(tensor(name, FLOAT, raw.array(), shape));
        return this;
    }

    /** An int64 constant, e.g. the target shape of a Reshape. */
    public OnnxGraph initializerInt64(String name, long[] values, long... shape) {
        ByteBuffer raw = ByteBuffer.allocate(values.length * Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        raw.asLongBuffer().put(values);
        initializers.add(tensor(name, INT64, raw.array(), shape));
        return this;
    }

    /** An int32 constant, e.g. the sequence lengths of com.microsoft.GroupQueryAttention. */
    public OnnxGraph initializerInt32(String name, int[] values, long... shape) {
        ByteBuffer raw = ByteBuffer.allocate(values.length * Integer.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        raw.asIntBuffer().put(values);
        initializers.add(tensor(name, INT32, raw.array(), shape));
        return this;
    }

    /** Imports another operator domain, e.g. ("com.microsoft", 1) for ONNX Runtime's contrib operators. */
    public OnnxGraph opset(String domain, long version) {
        extraOpsets.add(new ProtoWriter().string(1, domain).varint(2, version));
        return this;
    }

    /** Adds a node of the default domain; set its attributes on the returned builder. */
    public Node node(String opType, List<String> nodeInputs, String... nodeOutputs) {
        return node("", opType, nodeInputs, nodeOutputs);
    }

    /** Adds a node of {@code domain} (imported with {@link #opset}); an empty input name is an omitted input. */
    public Node node(String domain, String opType, List<String> nodeInputs, String... nodeOutputs) {
        Node node = new Node(opType + "_" + nodes.size(), opType, domain, nodeInputs, List.of(nodeOutputs));
        nodes.add(node.proto);
        return node;
    }

    /** The serialized ModelProto. */
    public byte[] toModelBytes() {
        ProtoWriter graph = new ProtoWriter();
        nodes.forEach(n -> graph.message(1, n));
        graph.string(2, name);
        initializers.forEach(t -> graph.message(5, t));
        inputs.forEach(v -> graph.message(11, v));
        outputs.forEach(v -> graph.message(12, v));
        ProtoWriter opset = new ProtoWriter().string(1, "").varint(2, OPSET);
        ProtoWriter model = new ProtoWriter()
                .varint(1, IR_VERSION)
                .string(2, "attn4j-bench")
                .message(7, graph)
                .message(8, opset);
        extraOpsets.forEach(o -> model.message(8, o));
        return model.toByteArray();
    }

    /** One node; attributes are appended in call order. */
    public static final class Node {
        private final ProtoWriter proto = new ProtoWriter();

        private Node(String name, String opType, String domain, List<String> in, List<String> out) {
            in.forEach(s -> proto.string(1, s));
            out.forEach(s -> proto.string(2, s));
            proto.string(3, name).string(4, opType).string(7, domain);
        }

        public Node attr(String name, long value) {
            proto.message(5, new ProtoWriter().string(1, name).varint(20, ATTR_INT).varint(3, value));
            return this;
        }

        public Node attr(String name, float value) {
            proto.message(5, new ProtoWriter().string(1, name).varint(20, ATTR_FLOAT).float32(2, value));
            return this;
        }

        public Node attr(String name, long[] values) {
            proto.message(5, new ProtoWriter().string(1, name).varint(20, ATTR_INTS).packedVarints(8, values));
            return this;
        }
    }

    private static ProtoWriter valueInfo(String name, long[] shape) {
        ProtoWriter dims = new ProtoWriter();
        for (long d : shape) {
            dims.message(1, new ProtoWriter().varint(1, d));
        }
        ProtoWriter tensorType = new ProtoWriter().varint(1, FLOAT).message(2, dims);
        return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
    }

    private static ProtoWriter tensor(String name, int dataType, byte[] raw, long[] shape) {
        return new ProtoWriter().packedVarints(1, shape).varint(2, dataType).string(8, name).bytes(9, raw);
    }
}
