package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The JVM never crashes: {@link FuzzMain} runs in a forked JVM (a native crash there
 * cannot take the test run down with it) and feeds {@value #CALLS} random, mostly
 * invalid calls through the public API. The child must exit normally and every call
 * must either return or throw one of {@link FuzzMain#EXPECTED}. The counts per outcome
 * are printed; the seed is fixed (and printed) so a failure can be replayed with
 * {@code java --enable-native-access=ALL-UNNAMED -cp <test class path> dev.attn4j.FuzzMain <seed> <calls>}.
 */
class CrashFuzzTest {
    static final long SEED = 20251122L;
    static final int CALLS = 20_000;

    @Test
    void randomMostlyInvalidCallsNeverCrashTheJvm() throws IOException, InterruptedException {
        NativeTests.requireNative(); // the point is the native path: without it there is nothing to crash
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder pb = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xmx1g",
                "-XX:MaxDirectMemorySize=1g", "-cp", System.getProperty("java.class.path"), FuzzMain.class.getName(),
                Long.toString(SEED), Integer.toString(CALLS));
        pb.redirectErrorStream(true);
        Process p = pb.start();
        // Read while the child runs (its output could fill the pipe), within a deadline.
        StringBuilder out = new StringBuilder();
        Thread reader = Thread.ofPlatform().start(() -> {
            try {
                out.append(new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                out.append("reading the child's output failed: ").append(e);
            }
        });
        boolean finished = p.waitFor(120, TimeUnit.SECONDS);
        if (!finished) {
            p.destroyForcibly();
        }
        reader.join(10_000);
        String output = out.toString();
        System.out.println("CrashFuzzTest (seed " + SEED + ", " + CALLS + " calls), child output:\n" + output);
        assertTrue(finished, "the fuzzing JVM did not finish within 120 s (a hang?)\n" + output);
        assertEquals(0, p.exitValue(), "the fuzzing JVM did not exit normally (a crash?)\n" + output);
        assertTrue(output.contains("FUZZ DONE"), output);

        Map<String, Integer> counts = new TreeMap<>();
        for (String line : output.lines().toList()) {
            if (line.startsWith("COUNT ")) {
                String[] f = line.split(" ");
                counts.put(f[1], Integer.parseInt(f[2]));
            }
        }
        int total = counts.values().stream().mapToInt(Integer::intValue).sum();
        assertEquals(CALLS, total, "every call is counted once: " + counts);
        List<String> unexpected = counts.keySet().stream()
                .filter(k -> !k.equals("OK") && !FuzzMain.EXPECTED.contains(k)).toList();
        assertTrue(unexpected.isEmpty(), "unexpected exception types " + unexpected + "\n" + output);
        // The fuzzer must reach both ends: calls that run the native path, and rejections.
        assertTrue(counts.getOrDefault("OK", 0) > CALLS / 10, "too few valid calls reached native code: " + counts);
        assertTrue(counts.getOrDefault("IllegalArgumentException", 0) > CALLS / 10, "too few rejections: " + counts);
    }
}
