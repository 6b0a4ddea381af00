package dev.attn4j.keras;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;

/**
 * A Keras 3 {@code .keras} archive: a zip holding {@code metadata.json},
 * {@code config.json} and {@code model.weights.h5}.
 *
 * <p>{@link #open} checks the three entries and parses both JSON files, and keeps the
 * zip open until {@link #close()}. {@link #weights()} reads the weights entry when
 * asked and returns a {@link KerasWeightsFile} the caller closes (it stays usable after
 * the archive is closed).
 */
public final class KerasArchive implements AutoCloseable {
    static final String CONFIG = "config.json";
    static final String METADATA = "metadata.json";
    static final String WEIGHTS = "model.weights.h5";
    private static final byte[] HDF5_MAGIC = {(byte) 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    private final ZipFile zip;
    private final String configJson;
    private final Map<String, Object> config;
    private final Map<String, Object> metadata;

    private KerasArchive(Path file, ZipFile zip, String configJson, String metadataJson) throws IOException {
        this.file = file;
        this.zip = zip;
        this.configJson = configJson;
        this.config = parseObject(CONFIG, configJson);
        this.metadata = parseObject(METADATA, metadataJson);
    }

    /** Opens {@code file}, checks that it is a {@code .keras} zip with the three entries, and parses its JSON. */
    public static KerasArchive open(Path file) throws IOException {
        Objects.requireNonNull(file, "KerasArchive.open: file must not be null");
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file.toString(), null, "KerasArchive.open: no such file");
        }
        ZipFile zip = openZip(file);
        try {
            String metadata = new String(entry(zip, file, METADATA), StandardCharsets.UTF_8);
            String config = new String(entry(zip, file, CONFIG), StandardCharsets.UTF_8);
            requireEntry(zip, file, WEIGHTS);
            return new KerasArchive(file, zip, config, metadata);
        } catch (IOException | RuntimeException e) {
            try {
                zip.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /** The archive's file. */
    public Path file() {
        return file;
    }

    /**
     * {@code config.json} as nested maps and lists (JSON objects keep their order;
     * numbers are Integer, Long or Double as Jackson reads them). Each call returns a new
     * tree, which the caller may change.
     */
    public Map<String, Object> config() {
        return deepCopy(config);
    }

    /** {@code metadata.json} ({@code keras_version}, {@code date_saved}), a new map each call. */
    public Map<String, Object> metadata() {
        return deepCopy(metadata);
    }

    /** The {@code keras_version} from {@code metadata.json}, or null when it is missing. */
    public String kerasVersion() {
        return metadata.get("keras_version") instanceof String s ? s : null;
    }

    /** The raw text of {@code config.json}. */
    public String configJson() {
        return configJson;
    }

    /**
     * The functional model's layer list: {@code config.layers} with each layer's HDF5
     * group, in model order (see {@link KerasWeightPaths#layers(Map)}).
     */
    public List<KerasWeightPaths.Layer> layers() {
        return KerasWeightPaths.layers(config, file + "!" + CONFIG);
    }

    /**
     * Reads the {@code model.weights.h5} entry into memory and opens it. The caller
     * closes the result. Entries over 2 GiB cannot be read this way: unzip the entry
     * and use {@link KerasWeightsFile#open(Path)}.
     */
    public KerasWeightsFile weights() throws IOException {
        byte[] bytes;
        try {
            bytes = entry(zip, file, WEIGHTS);
        } catch (IllegalStateException e) {
            throw new IllegalStateException("KerasArchive.weights: " + file + " is closed", e);
        }
        return KerasWeightsFile.fromBytes(bytes, file + "!" + WEIGHTS);
    }

    /** Closes the zip. Idempotent; weights files already returned stay usable. */
    @Override
    public void close() {
        try {
            zip.close();
        } catch (IOException e) {
            // Unchecked so that try-with-resources needs no catch for a read-only zip.
            throw new UncheckedIOException("KerasArchive.close: " + file, e);
        }
    }

    @Override
    public String toString() {
        return "KerasArchive[" + file + "]";
    }

    // ---- internals --------------------------------------------------------------------

    private static ZipFile openZip(Path file) throws IOException {
        try {
            return new ZipFile(file.toFile());
        } catch (ZipException e) {
            throw new IOException("KerasArchive.open: " + file + " is not a .keras archive: not a zip file ("
                    + e.getMessage() + ")" + hdf5Hint(file), e);
        }
    }

    private static String hdf5Hint(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            if (Arrays.equals(in.readNBytes(8), HDF5_MAGIC)) {
                return "; it is an HDF5 file: open a .weights.h5 file with KerasWeightsFile.open(path)"
                        + " (a legacy Keras 2 .h5 model is not supported)";
            }
        } catch (IOException e) {
            // The hint is a courtesy; the zip error above is the message.
        }
        return "";
    }

    private static ZipEntry requireEntry(ZipFile zip, Path file, String name) throws IOException {
        ZipEntry e = zip.getEntry(name);
        if (e == null || e.isDirectory()) {
            List<String> names = new ArrayList<>();
            zip.stream().forEach(z -> names.add(z.getName()));
            throw new IOException("KerasArchive: " + file + " has no '" + name + "' entry; a .keras archive written "
                    + "by Keras 3 holds " + METADATA + ", " + CONFIG + " and " + WEIGHTS + ", this one holds " + names);
        }
        return e;
    }

    private static byte[] entry(ZipFile zip, Path file, String name) throws IOException {
        ZipEntry e = requireEntry(zip, file, name);
        if (e.getSize() > Integer.MAX_VALUE - 8) {
            throw new IOException("KerasArchive: " + file + "!" + name + " is " + e.getSize() + " bytes, too large "
                    + "to read into memory; unzip it and open the file directly");
        }
        try (InputStream in = zip.getInputStream(e)) {
            return in.readAllBytes();
        }
    }

    private Map<String, Object> parseObject(String name, String json) throws IOException {
        Object root;
        try {
            root = JSON.readValue(json, Object.class);
        } catch (JacksonException e) {
            throw new IOException("KerasArchive: " + file + "!" + name + " is not valid JSON: "
                    + e.getOriginalMessage(), e);
        }
        if (!(root instanceof Map<?, ?> map)) {
            throw new IOException("KerasArchive: " + file + "!" + name + " must hold a JSON object, but holds "
                    + (root == null ? "null" : root.getClass().getSimpleName()));
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) map;
        return m;
    }

    @SuppressWarnings("unchecked")
    private static <T> T deepCopy(T value) {
        if (value instanceof Map<?, ?> m) {
            Map<String, Object> copy = new LinkedHashMap<>();
            m.forEach((k, v) -> copy.put((String) k, deepCopy(v)));
            return (T) copy;
        }
        if (value instanceof List<?> l) {
            List<Object> copy = new ArrayList<>(l.size());
            l.forEach(v -> copy.add(deepCopy(v)));
            return (T) copy;
        }
        return value; // String, Number, Boolean, null: immutable
    }
}
