package dev.attn4j.internal.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class BackendsTest {

    private static Backends.Selection selectWith(String key, String value) {
        String old = System.getProperty(key);
        System.setProperty(key, value);
        try {
            return Backends.select();
        } finally {
            if (old == null) {
                System.clearProperty(key);
            } else {
                System.setProperty(key, old);
            }
        }
    }

    @Test
    void unknownBackendIsAnIllegalArgumentException() {
        Backends.Selection s = selectWith(Backends.PROPERTY, "gpu");
        assertNull(s.backend());
        assertTrue(s.failure() instanceof IllegalArgumentException);
        assertEquals("-Dattn4j.backend must be auto, native or java, but is 'gpu'", s.failure().getMessage());
    }

    @Test
    void javaBackendCanBeForced() {
        Backends.Selection s = selectWith(Backends.PROPERTY, "java");
        assertEquals("java", s.backend().name());
    }

    @Test
    void badThreadCountIsRejected() {
        Backends.Selection s = selectWith(Backends.THREADS_PROPERTY, "zero");
        assertTrue(s.failure() instanceof IllegalArgumentException);
        assertEquals("-Dattn4j.threads must be an integer >= 1, but is 'zero'", s.failure().getMessage());
    }

    @Test
    void missingOpenBlasFileFailsLoudlyInNativeMode() {
        String old = System.getProperty("attn4j.openblas.library");
        System.setProperty("attn4j.openblas.library", "does-not-exist/libopenblas.so.0");
        try {
            Backends.Selection s = selectWith(Backends.PROPERTY, "native");
            assertNull(s.backend());
            assertTrue(s.failure().getMessage().contains("does-not-exist/libopenblas.so.0"), s.failure().getMessage());
        } finally {
            if (old == null) {
                System.clearProperty("attn4j.openblas.library");
            } else {
                System.setProperty("attn4j.openblas.library", old);
            }
        }
    }
}
