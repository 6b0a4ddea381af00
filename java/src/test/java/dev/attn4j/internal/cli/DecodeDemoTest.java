package dev.attn4j.internal.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** {@code ./attn4j decode} end to end: a short cached loop per layer kind, checked against a full causal call. */
class DecodeDemoTest {

    @Test
    void cachedLoopMatchesTheFullCausalCall() {
        NativeTests.requireNative();
        for (String layer : new String[] {"mha", "gqa"}) {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            int status = DecodeDemo.run(new String[] {"--layer", layer, "--prompt", "9", "--tokens", "7", "--batch",
                    "2"}, new PrintStream(bytes, true, StandardCharsets.UTF_8));
            String text = bytes.toString(StandardCharsets.UTF_8);
            assertEquals(0, status, text);
            assertTrue(text.matches("(?s).*decode: [0-9.]+ tokens/s per row.*"), text);
            assertTrue(text.contains("over all 16 positions") && text.contains("(ok, tolerance 1e-05)"), text);
        }
    }

    @Test
    void badOptionsAreRefusedByName() {
        PrintStream out = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DecodeDemo.run(new String[] {"--tokens", "0"}, out));
        assertTrue(e.getMessage().contains("--tokens must be a whole number >= 1, but is '0'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> DecodeDemo.run(new String[] {"--layer", "rnn"}, out));
        assertTrue(e.getMessage().contains("--layer must be mha or gqa"), e.getMessage());
    }
}
