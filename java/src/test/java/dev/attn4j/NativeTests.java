package dev.attn4j;

import static org.junit.jupiter.api.Assertions.fail;

import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.NativeBackend;
import org.junit.jupiter.api.Assumptions;

/**
 * Test helper: tests that need the native backend call {@link #requireNative()}. When
 * native cannot load they are skipped with the reason, unless the system property
 * {@code attn4j.requireNative=true} (set by CI) turns the skip into a failure.
 */
public final class NativeTests {
    private NativeTests() {}

    public static boolean nativeRequired() {
        return Boolean.getBoolean("attn4j.requireNative");
    }

    public static NativeBackend requireNative() {
        Backends.Selection s = Backends.selection();
        if (s.nativeBackend() == null) {
            String why = "native backend not loaded: " + (s.failure() == null ? "backend is " + s.backend().name()
                    : s.failure().getMessage());
            if (nativeRequired()) {
                fail("attn4j.requireNative=true but " + why, s.failure());
            }
            Assumptions.abort(why);
        }
        return s.nativeBackend();
    }
}
