package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import dev.attn4j.internal.backend.Backends;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/** Fails the build when CI says native is required and it did not load. */
class NativeRequiredTest {
    @Test
    @EnabledIfSystemProperty(named = "attn4j.requireNative", matches = "true")
    void nativeBackendIsActive() {
        Backends.Selection s = Backends.selection();
        assertNotNull(s.nativeBackend(), () -> "native backend failed to load: " + s.failure());
        assertEquals("native", Backends.get().name());
    }
}
