package dev.attn4j.internal.backend;

import java.util.Locale;

/**
 * Chooses the backend once per JVM. System property {@value #PROPERTY}:
 * <ul>
 *   <li>{@code auto} (default): native; if it cannot load, one warning saying why and
 *       what to do, then the plain Java backend (correct but much slower).
 *   <li>{@code native}: native or nothing: every use throws if it cannot load.
 *   <li>{@code java}: the plain Java reference backend.
 * </ul>
 * Any other value is an {@link IllegalArgumentException} at first use. OpenBLAS's
 * thread count starts at {@value #THREADS_PROPERTY} (default 1, see
 * {@link dev.attn4j.Attn4j#setNumThreads(int)}).
 */
public final class Backends {
    public static final String PROPERTY = "attn4j.backend";
    public static final String THREADS_PROPERTY = "attn4j.threads";

    private Backends() {}

    /** What was chosen, and why native is missing if it is. */
    public record Selection(Backend backend, NativeBackend nativeBackend, RuntimeException failure) {}

    private static final class Holder {
        static final Selection SELECTION = select();
    }

    /** The backend for this JVM; throws when the configuration cannot be honoured. */
    public static Backend get() {
        Selection s = Holder.SELECTION;
        if (s.backend() == null) {
            throw s.failure();
        }
        return s.backend();
    }

    public static Selection selection() {
        return Holder.SELECTION;
    }

    static Selection select() {
        String mode = System.getProperty(PROPERTY, "auto").trim().toLowerCase(Locale.ROOT);
        int threads;
        try {
            threads = initialThreads();
        } catch (IllegalArgumentException e) {
            return new Selection(null, null, e);
        }
        switch (mode) {
            case "java":
                return new Selection(new ReferenceBackend(), null, null);
            case "native":
            case "auto":
                try {
                    NativeBackend nb = NativeBackend.load(threads);
                    return new Selection(nb, nb, null);
                } catch (Exception | LinkageError e) {
                    IllegalStateException failure = new IllegalStateException(
                            "attn4j: the native backend cannot load: " + e.getMessage()
                                    + ". Check that the JVM runs with --enable-native-access=dev.attn4j (module path) "
                                    + "or ALL-UNNAMED (class path), that org.bytedeco:openblas:<version>:linux-x86_64 "
                                    + "is on the class path (or -Dattn4j.openblas.library names a libopenblas.so), and "
                                    + "that this jar carries libattn4j for this platform.", e);
                    if (mode.equals("native")) {
                        return new Selection(null, null, failure);
                    }
                    System.getLogger("dev.attn4j").log(System.Logger.Level.WARNING,
                            failure.getMessage() + " Falling back to the plain Java backend, which is much slower; "
                                    + "set -D" + PROPERTY + "=java to choose it explicitly.", e);
                    return new Selection(new ReferenceBackend(), null, failure);
                }
            default:
                return new Selection(null, null, new IllegalArgumentException(
                        "-D" + PROPERTY + " must be auto, native or java, but is '" + mode + "'"));
        }
    }

    private static int initialThreads() {
        String value = System.getProperty(THREADS_PROPERTY, "1").trim();
        try {
            int threads = Integer.parseInt(value);
            if (threads >= 1) {
                return threads;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new IllegalArgumentException("-D" + THREADS_PROPERTY + " must be an integer >= 1, but is '" + value + "'");
    }
}
