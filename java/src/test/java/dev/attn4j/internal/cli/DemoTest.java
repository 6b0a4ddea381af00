package dev.attn4j.internal.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import dev.attn4j.Tensor;
import dev.attn4j.keras.Npy;
import java.awt.Dimension;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code ./attn4j run} end to end: the bundled encoder block, its outputs, latency and heatmap. */
class DemoTest {

    @Test
    void bundledEncoderBlockRunsAndMatchesKeras(@TempDir Path out) throws Exception {
        NativeTests.requireNative();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        int status = Demo.run(new String[] {"--out", out.toString(), "--repeat", "3"},
                new PrintStream(bytes, true, StandardCharsets.UTF_8));
        String text = bytes.toString(StandardCharsets.UTF_8);
        System.out.println(text);
        assertEquals(0, status, text);
        assertTrue(text.contains("Total params: 8544"), text);
        assertTrue(text.contains("output norm_2 [2, 10, 32]"), text);
        assertTrue(text.matches("(?s).*latency over 3 runs: median [0-9.]+ ms, p90 [0-9.]+ ms.*"), text);
        assertTrue(text.contains("matches Keras (norm_2): yes"), text);

        BufferedImage png = ImageIO.read(out.resolve("self_attention_heatmap.png").toFile());
        Dimension expected = Heatmap.size(4, 10, 10);
        assertEquals(expected.width, png.getWidth());
        assertEquals(expected.height, png.getHeight());
        try (Arena arena = Arena.ofConfined()) {
            Tensor written = Npy.read(out.resolve("norm_2.npy"), arena);
            assertEquals(2 * 10 * 32, written.size());
        }
    }

    @Test
    void badArgumentsAreReported() {
        try {
            Demo.run(new String[] {"--repeat", "0"}, new PrintStream(new ByteArrayOutputStream()));
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().contains("--repeat must be >= 1"), e.getMessage());
            return;
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        throw new AssertionError("no exception");
    }
}
