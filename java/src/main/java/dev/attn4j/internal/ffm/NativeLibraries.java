package dev.attn4j.internal.ffm;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.net.JarURLConnection;
import java.net.URL;
import java.net.URLConnection;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Locale;
import java.util.zip.CRC32;

/**
 * Finds, extracts and loads the two native libraries attn4j uses: OpenBLAS and
 * libattn4j. Loading is explicit (a known file, never a search of the system
 * path) and happens in dependency order.
 *
 * <p>Where each file comes from, first match wins:
 * <ul>
 *   <li>OpenBLAS: system property {@value #OPENBLAS_PROPERTY}, environment variable
 *       {@value #OPENBLAS_ENV}, else the {@code libopenblas.so.0} of the
 *       {@code org.bytedeco:openblas} platform jar on the class path, extracted
 *       together with the {@code libquadmath.so.0} and {@code libgfortran.so.5} it
 *       needs.
 *   <li>libattn4j: system property {@value #KERNELS_PROPERTY}, environment variable
 *       {@value #KERNELS_ENV}, else the copy packaged in this jar under
 *       {@code dev/attn4j/native/<platform>/}.
 * </ul>
 * Extracted files go to {@value #CACHE_PROPERTY} if set, else to a per-user folder
 * under {@code java.io.tmpdir}, keyed by content (CRC-32 and size) so that copies are
 * reused across runs and never go stale.
 *
 * <p>Before OpenBLAS loads, its {@value #THREAD_TIMEOUT_ENV} is set to
 * {@value #DEFAULT_THREAD_TIMEOUT} unless the environment already has it (see
 * {@link #THREAD_TIMEOUT_PROPERTY}), and its core type is chosen by {@link CoreType}'s
 * rule.
 */
public final class NativeLibraries {
    public static final String OPENBLAS_PROPERTY = "attn4j.openblas.library";
    public static final String OPENBLAS_ENV = "ATTN4J_OPENBLAS_LIBRARY";
    public static final String KERNELS_PROPERTY = "attn4j.native.library";
    public static final String KERNELS_ENV = "ATTN4J_NATIVE_LIBRARY";
    public static final String CACHE_PROPERTY = "attn4j.native.cacheDir";

    /**
     * OpenBLAS's worker threads busy-wait for 2^N cycles after each product before they
     * sleep, N = {@value #THREAD_TIMEOUT_ENV}, read once when the library loads; its
     * default, 28, is ~0.1 s at 2-3 GHz. attn4j's own kernels (the fused attention)
     * run right after OpenBLAS's products with threads of their own, and found every
     * other core still taken by a spinning OpenBLAS worker: with 2 threads, a whole
     * MultiHeadAttention layer measured 50-53 ms instead of 40-44, its attention
     * kernel not faster than with 1 thread. N = 16 (~30 us) lets the workers sleep
     * before attn4j's kernels start, and costs a thread wake-up per product.
     */
    public static final String THREAD_TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT";
    /** System property overriding {@link #DEFAULT_THREAD_TIMEOUT}; {@code keep} leaves OpenBLAS's default. */
    public static final String THREAD_TIMEOUT_PROPERTY = "attn4j.openblas.threadTimeout";
    static final String DEFAULT_THREAD_TIMEOUT = "16";

    /** The bundled OpenBLAS and what it links against, in the order they must load. */
    private static final List<String> OPENBLAS_BUNDLE =
            List.of("libquadmath.so.0", "libgfortran.so.5", "libopenblas.so.0");

    private NativeLibraries() {}

    /** A loaded library: the file, where it was chosen from, and its symbols. */
    public record Loaded(Path file, String origin, SymbolLookup symbols) {}

    /** The platform folder name used in jars, e.g. {@code linux-x86_64}. */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String osName = os.startsWith("linux") ? "linux" : os.replace(' ', '_');
        String archName = switch (arch) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "arm64";
            default -> arch;
        };
        return osName + "-" + archName;
    }

    /** Loads OpenBLAS from the configured file or from the bytedeco platform jar. */
    public static Loaded loadOpenBlas() throws IOException {
        setThreadTimeout();
        Path chosen = configured(OPENBLAS_PROPERTY, OPENBLAS_ENV);
        setCoreType(chosen == null);
        if (chosen != null) {
            return load(chosen, origin(OPENBLAS_PROPERTY, OPENBLAS_ENV));
        }
        String folder = "org/bytedeco/openblas/" + platform() + "/";
        Path dir = cacheDir().resolve("openblas-" + platform());
        Loaded last = null;
        for (String name : OPENBLAS_BUNDLE) {
            URL url = NativeLibraries.class.getClassLoader().getResource(folder + name);
            if (url == null) {
                throw new IOException("OpenBLAS is not on the class path: resource " + folder + name
                        + " not found. Add org.bytedeco:openblas:<version>:" + platform()
                        + " to the class path, or point -D" + OPENBLAS_PROPERTY
                        + " (or $" + OPENBLAS_ENV + ") at a libopenblas.so file.");
            }
            last = load(extract(url, dir, name), "org.bytedeco:openblas platform jar");
        }
        return last;
    }

    /**
     * Puts {@value #THREAD_TIMEOUT_ENV} into the process environment (libc
     * {@code setenv}, without overwriting) for OpenBLAS to read when it loads, unless
     * the environment the JVM started with has it or {@value #THREAD_TIMEOUT_PROPERTY}
     * is {@code keep}. The value must be an integer 4-30, OpenBLAS's range.
     */
    private static void setThreadTimeout() throws IOException {
        if (System.getenv(THREAD_TIMEOUT_ENV) != null) {
            return;
        }
        String value = System.getProperty(THREAD_TIMEOUT_PROPERTY, DEFAULT_THREAD_TIMEOUT).trim();
        if (value.equals("keep")) {
            return;
        }
        int n;
        try {
            n = Integer.parseInt(value);
        } catch (NumberFormatException e) {
            n = -1;
        }
        if (n < 4 || n > 30) {
            throw new IOException("-D" + THREAD_TIMEOUT_PROPERTY + " must be an integer from 4 to 30 (OpenBLAS "
                    + "worker threads spin 2^N cycles before sleeping) or 'keep', but is '" + value + "'");
        }
        setenv(THREAD_TIMEOUT_ENV, Integer.toString(n), false);
    }

    private static volatile CoreType.Decision coreTypeDecision;

    /** How OpenBLAS's core type was chosen (see {@link CoreType}); null before OpenBLAS loads. */
    public static CoreType.Decision coreTypeDecision() {
        return coreTypeDecision;
    }

    /** Applies {@link CoreType}'s rule: puts the chosen core in {@value CoreType#ENV} before OpenBLAS loads. */
    private static void setCoreType(boolean bundled) throws IOException {
        CoreType.Decision d;
        try {
            d = CoreType.decide(System.getProperty(CoreType.PROPERTY), System.getenv(CoreType.ENV),
                    CoreType.cpuFlags(), bundled);
        } catch (IllegalArgumentException e) {
            throw new IOException(e.getMessage(), e);
        }
        if (d.setTo() != null) {
            // An explicit property overrides the environment; 'auto' only sets an unset variable.
            setenv(CoreType.ENV, d.setTo(), true);
        }
        coreTypeDecision = d;
    }

    /** libc {@code setenv}: OpenBLAS reads the C environment, not the JVM's copy of it. */
    private static void setenv(String name, String value, boolean overwrite) throws IOException {
        Linker linker = Linker.nativeLinker();
        MemorySegment setenv = linker.defaultLookup().find("setenv").orElse(null);
        if (setenv == null) {
            return; // not a libc with setenv: OpenBLAS keeps its default
        }
        MethodHandle call = linker.downcallHandle(setenv, FunctionDescriptor.of(ValueLayout.JAVA_INT,
                ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
        try (Arena arena = Arena.ofConfined()) {
            int rc = (int) call.invokeExact(arena.allocateFrom(name), arena.allocateFrom(value), overwrite ? 1 : 0);
            if (rc != 0) {
                throw new IOException("setenv(" + name + ") failed");
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IOException("setenv(" + name + ") failed", t);
        }
    }

    /** Loads libattn4j from the configured file or from this jar. */
    public static Loaded loadKernels() throws IOException {
        Path chosen = configured(KERNELS_PROPERTY, KERNELS_ENV);
        if (chosen != null) {
            return load(chosen, origin(KERNELS_PROPERTY, KERNELS_ENV));
        }
        String resource = "/dev/attn4j/native/" + platform() + "/" + System.mapLibraryName("attn4j");
        URL url = NativeLibraries.class.getResource(resource);
        if (url == null) {
            throw new IOException("libattn4j for " + platform() + " is not packaged in this jar (resource "
                    + resource + " not found). Build it with 'mvn package' (needs cmake and a C compiler), "
                    + "or point -D" + KERNELS_PROPERTY + " (or $" + KERNELS_ENV + ") at the file.");
        }
        return load(extract(url, cacheDir().resolve("attn4j-" + platform()), System.mapLibraryName("attn4j")),
                "attn4j jar");
    }

    /**
     * Opens {@code file} with {@link SymbolLookup#libraryLookup(Path, Arena)} (for our
     * own symbol probing) and registers the same, already opened object with this
     * class loader through {@link System#load}, which the jextract-generated classes
     * resolve their symbols against ({@code SymbolLookup.loaderLookup()}). Both name
     * the same file, so both see the same library instance.
     */
    private static Loaded load(Path file, String origin) throws IOException {
        Path real = file.toAbsolutePath().normalize();
        if (!Files.isRegularFile(real)) {
            throw new IOException("native library " + real + " (from " + origin + ") does not exist or is not a file");
        }
        SymbolLookup symbols;
        try {
            // Libraries stay loaded for the life of the JVM, like System.load does.
            symbols = SymbolLookup.libraryLookup(real, Arena.global());
            System.load(real.toString());
        } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
            throw new IOException("cannot load native library " + real + " (from " + origin + "): " + e.getMessage(), e);
        }
        return new Loaded(real, origin, symbols);
    }

    private static Path configured(String property, String env) {
        String value = System.getProperty(property);
        if (value == null || value.isBlank()) {
            value = System.getenv(env);
        }
        return value == null || value.isBlank() ? null : Path.of(value.trim());
    }

    private static String origin(String property, String env) {
        String value = System.getProperty(property);
        return value != null && !value.isBlank() ? "-D" + property : "$" + env;
    }

    private static Path cacheDir() throws IOException {
        String configured = System.getProperty(CACHE_PROPERTY);
        Path dir;
        if (configured != null && !configured.isBlank()) {
            dir = Path.of(configured);
        } else {
            String user = System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9._-]", "_");
            dir = Path.of(System.getProperty("java.io.tmpdir"), "attn4j-" + user);
        }
        if (!Files.isDirectory(dir)) {
            Files.createDirectories(dir);
            try {
                Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
            } catch (UnsupportedOperationException ignored) {
                // Not a POSIX file system: keep the default permissions.
            }
        }
        return dir;
    }

    /**
     * Copies a resource into the cache, under a folder named by the resource's CRC-32
     * and size so that a changed library never reuses a stale copy, and a file that
     * is already there is reused without copying. Writes to a temporary file first
     * and moves it into place, so that several JVMs extracting at once never see a
     * half-written library. The file keeps its name (sonames are matched by name).
     */
    private static Path extract(URL url, Path dir, String name) throws IOException {
        long crc;
        long size;
        URLConnection connection = url.openConnection();
        if (connection instanceof JarURLConnection jar && jar.getJarEntry().getCrc() >= 0) {
            crc = jar.getJarEntry().getCrc();
            size = jar.getJarEntry().getSize();
        } else {
            CRC32 sum = new CRC32();
            byte[] buffer = new byte[1 << 16];
            size = 0;
            try (InputStream in = connection.getInputStream()) {
                for (int n; (n = in.read(buffer)) > 0; size += n) {
                    sum.update(buffer, 0, n);
                }
            }
            crc = sum.getValue();
        }
        Path target = dir.resolve(Long.toHexString(crc) + "-" + size).resolve(name);
        if (Files.isRegularFile(target) && Files.size(target) == size) {
            return target;
        }
        Files.createDirectories(target.getParent());
        Path tmp = Files.createTempFile(target.getParent(), name, ".tmp");
        try (InputStream in = url.openStream()) {
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
        return target;
    }
}
