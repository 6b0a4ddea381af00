package dev.attn4j.keras;

import dev.attn4j.Tensor;
import io.jhdf.HdfFile;
import io.jhdf.api.Attribute;
import io.jhdf.api.Dataset;
import io.jhdf.api.Group;
import io.jhdf.api.Node;
import io.jhdf.exceptions.HdfException;
import io.jhdf.object.datatype.DataType;
import io.jhdf.object.datatype.FixedPoint;
import io.jhdf.object.datatype.FloatingPoint;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A Keras 3 weights file ({@code .weights.h5}, or the {@code model.weights.h5} entry of
 * a {@code .keras} archive), read with jHDF.
 *
 * <p>Keras stores each layer under {@code layers/<snake_case python class>[_k]}, with
 * the layer's own variables at {@code vars/0, vars/1, ...} and a sub-layer's under
 * {@code <attribute>/vars/<i>}; the {@code name} attribute of each {@code vars} group
 * holds the Keras layer name. {@link KerasWeightPaths} turns a model config into these
 * paths. Paths here are relative to the root; a leading {@code /} is allowed.
 *
 * <p>Only float32 datasets are read, as Keras writes them. Errors name the file and
 * the path: opening throws {@link IOException}; the accessors throw
 * {@link IllegalArgumentException} for a path that is missing, of the wrong kind or not
 * float32, and {@link UncheckedIOException} when jHDF cannot decode what is there.
 * Close the file when done; a file read from bytes holds them until then.
 */
public final class KerasWeightsFile implements AutoCloseable {
    private static final byte[] ZIP_MAGIC = {'P', 'K', 3, 4};

    private final HdfFile hdf;
    private final String source;

    private KerasWeightsFile(HdfFile hdf, String source) {
        this.hdf = hdf;
        this.source = source;
    }

    /** Opens a {@code .weights.h5} file. */
    public static KerasWeightsFile open(Path file) throws IOException {
        Objects.requireNonNull(file, "KerasWeightsFile.open: file must not be null");
        if (!Files.isRegularFile(file)) {
            throw new java.nio.file.NoSuchFileException(file.toString(), null,
                    "KerasWeightsFile.open: no such file");
        }
        byte[] head;
        try (InputStream in = Files.newInputStream(file)) {
            head = in.readNBytes(4);
        }
        if (Arrays.equals(head, ZIP_MAGIC)) {
            throw new IOException("KerasWeightsFile.open: " + file + " is a zip archive (a .keras file?), not HDF5; "
                    + "open it with KerasArchive.open(path) and use its weights()");
        }
        try {
            return new KerasWeightsFile(new HdfFile(file), file.toString());
        } catch (HdfException e) {
            throw new IOException(
                    "KerasWeightsFile.open: " + file + " is not a readable HDF5 file: " + e.getMessage(), e);
        }
    }

    /** Reads a weights file held in memory, e.g. the {@code model.weights.h5} entry of a {@code .keras} zip. */
    public static KerasWeightsFile fromBytes(byte[] bytes) throws IOException {
        return fromBytes(bytes, "<bytes>");
    }

    /** As {@link #fromBytes(byte[])}, with {@code name} standing for the data in error messages. */
    public static KerasWeightsFile fromBytes(byte[] bytes, String name) throws IOException {
        Objects.requireNonNull(bytes, "KerasWeightsFile.fromBytes: bytes must not be null");
        Objects.requireNonNull(name, "KerasWeightsFile.fromBytes: name must not be null");
        try {
            return new KerasWeightsFile(HdfFile.fromBytes(bytes), name);
        } catch (HdfException e) {
            throw new IOException("KerasWeightsFile.fromBytes: " + name + " is not readable HDF5 (" + bytes.length
                    + " bytes): " + e.getMessage(), e);
        }
    }

    /** The file name (or the name given to {@link #fromBytes(byte[], String)}), as used in messages. */
    public String source() {
        return source;
    }

    /**
     * The layer groups under {@code /layers}, in name order (as HDF5 lists them, which is
     * not the model's layer order), e.g. {@code [dense, dense_1, input_layer]}.
     */
    public List<String> layerGroups() {
        return children("layers");
    }

    /**
     * The Keras layer name stored for a layer group: the {@code name} attribute of
     * {@code layers/<group>/vars}, or null if that group has no such attribute.
     * {@code group} is a name from {@link #layerGroups()} or its full path
     * {@code layers/<group>}.
     */
    public String layerName(String group) {
        Objects.requireNonNull(group, "KerasWeightsFile.layerName: group must not be null");
        String path = layerGroupPath(group) + "/vars";
        Node vars = node(path);
        if (vars == null || !vars.isGroup()) {
            throw new IllegalArgumentException("KerasWeightsFile.layerName: " + source + ": no group '" + path + "'"
                    + (vars == null ? "" : " (it is a dataset)") + "; layer groups: " + layerGroupsOrEmpty());
        }
        Attribute name = vars.getAttribute("name");
        Object value;
        try {
            value = name == null ? null : name.getData();
        } catch (HdfException e) {
            throw unreadable("layerName", "attribute 'name' of '" + path + "'", e);
        }
        if (value == null) {
            return null;
        }
        if (value instanceof String s) {
            return s;
        }
        if (value instanceof String[] a && a.length == 1) {
            return a[0];
        }
        throw new IllegalArgumentException("KerasWeightsFile.layerName: " + source + ": group '" + path
                + "' has an attribute 'name' that is not a string: " + describe(value));
    }

    /** The full path {@code layers/<name>} for a group given by name or by full path. */
    static String layerGroupPath(String group) {
        String g = strip(group);
        return g.startsWith("layers/") ? g : "layers/" + g;
    }

    /** True if {@code path} names a group or a dataset. */
    public boolean exists(String path) {
        Objects.requireNonNull(path, "KerasWeightsFile.exists: path must not be null");
        return node(path) != null;
    }

    /** True if {@code path} names a dataset. */
    public boolean isDataset(String path) {
        Objects.requireNonNull(path, "KerasWeightsFile.isDataset: path must not be null");
        Node n = node(path);
        return n != null && !n.isGroup();
    }

    /** The member names of the group at {@code groupPath} ({@code ""} or {@code "/"} for the root), in name order. */
    public List<String> children(String groupPath) {
        Objects.requireNonNull(groupPath, "KerasWeightsFile.children: groupPath must not be null");
        Node n = node(groupPath);
        if (n == null) {
            throw new IllegalArgumentException(
                    "KerasWeightsFile.children: " + source + ": no group '" + strip(groupPath) + "'");
        }
        if (!(n instanceof Group g)) {
            throw new IllegalArgumentException("KerasWeightsFile.children: " + source + ": '" + strip(groupPath)
                    + "' is a dataset, not a group");
        }
        try {
            List<String> names = new ArrayList<>(g.getChildren().keySet());
            names.sort(null);
            return names;
        } catch (HdfException e) {
            throw unreadable("children", "group '" + strip(groupPath) + "'", e);
        }
    }

    /** The shape of the dataset at {@code datasetPath}; {@code []} for a scalar (0-d) weight. */
    public long[] shape(String datasetPath) {
        Dataset d = float32Dataset("shape", datasetPath);
        int[] dims = d.isScalar() ? new int[0] : d.getDimensions();
        return Arrays.stream(dims).asLongStream().toArray();
    }

    /** The values of the float32 dataset at {@code datasetPath}, flattened in C order (one value for a scalar). */
    public float[] read(String datasetPath) {
        Dataset d = float32Dataset("read", datasetPath);
        try {
            Object data = d.getDataFlat();
            if (data instanceof float[] values) {
                return values;
            }
            if (data instanceof Float value) {
                return new float[] {value};
            }
            throw new IllegalArgumentException("KerasWeightsFile.read: " + source + ": dataset '"
                    + strip(datasetPath) + "' read as " + describe(data) + ", expected float values");
        } catch (HdfException e) {
            throw unreadable("read", "dataset '" + strip(datasetPath) + "'", e);
        }
    }

    /** The dataset at {@code datasetPath} as a float32 tensor in {@code arena}, with its shape. */
    public Tensor tensor(String datasetPath, Arena arena) {
        Objects.requireNonNull(arena, "KerasWeightsFile.tensor: arena must not be null");
        return Tensor.of(arena, read(datasetPath), shape(datasetPath));
    }

    @Override
    public void close() {
        hdf.close();
    }

    @Override
    public String toString() {
        return "KerasWeightsFile[" + source + "]";
    }

    // ---- internals --------------------------------------------------------------------

    private Dataset float32Dataset(String action, String datasetPath) {
        Objects.requireNonNull(datasetPath, () -> "KerasWeightsFile." + action + ": datasetPath must not be null");
        String path = strip(datasetPath);
        Node n = node(path);
        if (n == null) {
            throw new IllegalArgumentException(
                    "KerasWeightsFile." + action + ": " + source + ": no dataset '" + path + "'"
                    + nearestHint(path));
        }
        if (!(n instanceof Dataset d)) {
            throw new IllegalArgumentException("KerasWeightsFile." + action + ": " + source + ": '" + path
                    + "' is a group, not a dataset; its members: " + children(path));
        }
        DataType type;
        try {
            type = d.getDataType();
        } catch (HdfException e) {
            throw unreadable(action, "the type of '" + path + "'", e);
        }
        if (!(type instanceof FloatingPoint) || type.getSize() != 4) {
            throw new IllegalArgumentException(
                    "KerasWeightsFile." + action + ": " + source + ": dataset '" + path + "' is "
                    + describe(type) + "; only float32 datasets are supported");
        }
        return d;
    }

    /**
     * The node at {@code path}, or null. Walks the path one member at a time because
     * jHDF's own path lookup fails for in-memory files when the path is missing (it
     * tries to name the backing file in its message).
     */
    private Node node(String path) {
        Node n = hdf;
        for (String part : strip(path).split("/")) {
            if (part.isEmpty()) {
                continue;
            }
            if (!(n instanceof Group g)) {
                return null;
            }
            try {
                n = g.getChild(part);
            } catch (HdfException e) {
                return null;
            }
            if (n == null) {
                return null;
            }
        }
        return n;
    }

    /** Names the deepest existing group on the way to a missing path and its members. */
    private String nearestHint(String path) {
        String p = path;
        while (p.contains("/")) {
            p = p.substring(0, p.lastIndexOf('/'));
            Node n = node(p);
            if (n instanceof Group g) {
                try {
                    List<String> names = new ArrayList<>(g.getChildren().keySet());
                    names.sort(null);
                    return " ('" + p + "' has " + names + ")";
                } catch (HdfException e) {
                    return "";
                }
            }
        }
        return "";
    }

    private String layerGroupsOrEmpty() {
        return node("layers") instanceof Group ? layerGroups().toString() : "none (no /layers group)";
    }

    /** A failure inside the HDF5 data (not a wrong path): the file is damaged or uses a feature jHDF lacks. */
    private UncheckedIOException unreadable(String action, String what, HdfException e) {
        return new UncheckedIOException(new IOException("KerasWeightsFile." + action + ": " + source
                + ": cannot read " + what + ": " + e.getMessage(), e));
    }

    private static String strip(String path) {
        String p = path;
        while (p.startsWith("/")) {
            p = p.substring(1);
        }
        while (p.endsWith("/")) {
            p = p.substring(0, p.length() - 1);
        }
        return p;
    }

    /** A dtype in NumPy's words where there is one: float64, int32, uint8, ... */
    private static String describe(DataType type) {
        int bits = type.getSize() * 8;
        if (type instanceof FloatingPoint) {
            return "float" + bits;
        }
        if (type instanceof FixedPoint f) {
            return (f.isSigned() ? "int" : "uint") + bits;
        }
        return type.getClass().getSimpleName() + " (" + type.getSize() + " bytes)";
    }

    private static String describe(Object value) {
        return value == null ? "nothing" : value.getClass().getSimpleName();
    }
}
