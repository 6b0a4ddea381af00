package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Points attn4j at another OpenBLAS (system property {@code attn4j.test.altOpenblas},
 * e.g. Debian's 0.3.21, which has no batch calls) in a forked JVM: the diagnostic must
 * report the loop path and the products must still be right. CI installs Debian's
 * libopenblas0-pthread and passes its path; without the property the test is skipped.
 */
class AltOpenBlasTest {

    @Test
    void libraryWithoutBatchCallsFallsBackToTheLoop() throws IOException, InterruptedException {
        String alt = System.getProperty("attn4j.test.altOpenblas", "");
        Assumptions.assumeFalse(alt.isBlank(), "no -Dattn4j.test.altOpenblas given");
        Path lib = Path.of(alt);
        assertTrue(Files.isRegularFile(lib), "attn4j.test.altOpenblas names no file: " + alt);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder pb = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED",
                "-Dattn4j.openblas.library=" + lib, "-Dattn4j.backend=native",
                "-cp", System.getProperty("java.class.path"), AltOpenBlasCheck.class.getName());
        pb.redirectErrorStream(true);
        Process p = pb.start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "forked JVM did not finish");
        System.out.println(output);
        assertEquals(0, p.exitValue(), output);
        List<String> lines = output.lines().toList();
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("OpenBLAS file:") && l.contains(lib.toString())), output);
        assertTrue(lines.stream().anyMatch(l -> l.equals("GEMM batch:       no (cblas_sgemm loop)")), output);
        assertTrue(lines.stream().anyMatch(l -> l.equals("GEMM strided:     no")), output);
        assertTrue(lines.contains("ALL PRODUCTS OK"), output);
    }
}
