package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.layers.AttentionLayer;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.MultiHeadAttention;
import dev.attn4j.layers.Weight;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * No leaks: {@link LeakCheckMain} runs in a forked JVM with a fixed, pre-touched heap and
 * only the C1 compiler (whose memory use is steady), and reports its resident memory
 * (VmRSS) after a warm-up and at the end, each after a GC and glibc's {@code malloc_trim}
 * (so that memory malloc only keeps for reuse is not counted).
 * Growth between the two must stay under {@value #LIMIT_KIB} KiB:
 * <ul>
 *   <li>100,000 small calls (every layer kind and both Ops, masks, scores, training
 *       dropout, a fresh arena per call), measured after 10,000 warm-up calls: the
 *       per-thread scratch and the GEMM argument blocks are reused, nothing accumulates;
 *   <li>2,000 build / call / close cycles of layers holding 0.6 to 1 MiB of weights,
 *       measured after 300: close() frees the weights (a leak would add over 1 GiB).
 * </ul>
 * Also, in this JVM: a closed layer's weights can no longer be read, and every use of
 * the layer fails cleanly.
 */
class LeakTest {
    static final long LIMIT_KIB = 10 * 1024;

    private static long child(String mode, int warmup, int total) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        // A fixed, pre-touched heap and C1 only: C2's compiler arenas come and go by
        // megabytes (RSS then moves by +-10 MiB run to run); with C1 the JVM's own
        // footprint stays within a few KiB, so the difference measures attn4j.
        ProcessBuilder pb = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xms128m", "-Xmx128m",
                "-XX:+AlwaysPreTouch", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-cp", System.getProperty("java.class.path"),
                LeakCheckMain.class.getName(), mode, Integer.toString(warmup), Integer.toString(total));
        pb.redirectErrorStream(true);
        Process p = pb.start();
        StringBuilder out = new StringBuilder();
        Thread reader = Thread.ofPlatform().start(() -> {
            try {
                out.append(new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                out.append(e);
            }
        });
        boolean finished = p.waitFor(150, TimeUnit.SECONDS);
        if (!finished) {
            p.destroyForcibly();
        }
        reader.join(10_000);
        String output = out.toString();
        System.out.println("LeakTest " + mode + ": " + output.strip());
        assertTrue(finished, mode + ": the child JVM did not finish in time\n" + output);
        assertEquals(0, p.exitValue(), mode + ": the child JVM failed\n" + output);
        Matcher m = Pattern.compile("RSS " + mode + " warmup_kib=(\\d+) end_kib=(\\d+) growth_kib=(-?\\d+)")
                .matcher(output);
        assertTrue(m.find(), output);
        return Long.parseLong(m.group(3));
    }

    @Test
    void hundredThousandCallsKeepResidentMemoryFlat() throws Exception {
        NativeTests.requireNative();
        long growth = child("calls", 10_000, 100_000);
        assertTrue(growth < LIMIT_KIB, "resident memory grew by " + growth + " KiB over 90,000 calls");
    }

    @Test
    void buildCloseCyclesKeepResidentMemoryFlat() throws Exception {
        NativeTests.requireNative();
        long growth = child("buildclose", 300, 2_000);
        assertTrue(growth < LIMIT_KIB, "resident memory grew by " + growth + " KiB over 1,700 build/close cycles");
    }

    @Test
    void closeFreesTheWeightsAndEndsTheLayer() {
        NativeTests.requireNative();
        MultiHeadAttention layer = MultiHeadAttention.builder().name("leaky").numHeads(2).keyDim(3).build();
        layer.build(new long[] {1, 2, 4}, new long[] {1, 2, 4}, null);
        List<Weight> weights = layer.weights();
        Tensor view = weights.get(0).value();
        assertTrue(view.isAlive());
        layer.close();
        layer.close(); // idempotent
        assertTrue(!view.isAlive(), "a weight view outlives close()");
        var e = assertThrows(IllegalStateException.class, () -> weights.get(0).toFloatArray());
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        assertThrows(IllegalStateException.class, weights.get(1)::value);
        e = assertThrows(IllegalStateException.class, layer::weights);
        assertTrue(e.getMessage().contains("layer 'leaky' is closed"), e.getMessage());
        e = assertThrows(IllegalStateException.class, () -> layer.setWeights(new float[24]));
        assertTrue(e.getMessage().contains("layer 'leaky' is closed"), e.getMessage());
        e = assertThrows(IllegalStateException.class, layer::regularizationLosses);
        assertTrue(e.getMessage().contains("layer 'leaky' is closed"), e.getMessage());
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.allocate(arena, 1, 2, 4);
            e = assertThrows(IllegalStateException.class, () -> layer.call(arena, CallArgs.of(x, x)));
            assertTrue(e.getMessage().contains("layer 'leaky' is closed"), e.getMessage());
        }
        assertThrows(IllegalStateException.class, () -> layer.build(new long[] {1, 2, 4}, new long[] {1, 2, 4}, null));
        AttentionLayer fresh = MultiHeadAttention.builder().numHeads(2).keyDim(3).build();
        fresh.close(); // closing an unbuilt layer is fine too
        assertThrows(IllegalStateException.class, fresh::weights);
    }
}
