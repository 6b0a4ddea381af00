package dev.attn4j;

import dev.attn4j.layers.AdditiveAttention;
import dev.attn4j.layers.Attention;
import dev.attn4j.layers.AttentionLayer;
import dev.attn4j.layers.AttentionResult;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.GroupQueryAttention;
import dev.attn4j.layers.MultiHeadAttention;
import dev.attn4j.layers.Weight;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * The child JVM of {@link LeakTest}: repeats work and reports resident memory (VmRSS of
 * /proc/self/status, after a {@link System#gc()}) after a warm-up and at the end.
 *
 * <pre>
 * LeakCheckMain calls      WARMUP TOTAL   calls on five built layers and Ops, a fresh arena per call
 * LeakCheckMain buildclose WARMUP TOTAL   build a layer with ~1 MiB of weights, call it once, close it
 * </pre>
 * Prints {@code RSS <mode> warmup_kib=... end_kib=... growth_kib=... iterations=...}.
 */
public final class LeakCheckMain {
    private LeakCheckMain() {}

    public static void main(String[] args) throws IOException, InterruptedException {
        String mode = args[0];
        int warmup = Integer.parseInt(args[1]);
        int total = Integer.parseInt(args[2]);
        Runnable step = switch (mode) {
            case "calls" -> callsStep();
            case "buildclose" -> buildCloseStep();
            default -> throw new IllegalArgumentException("mode must be calls or buildclose, but is " + mode);
        };
        long start = System.nanoTime();
        for (int i = 0; i < warmup; i++) {
            step.run();
        }
        long warm = rssAfterGc();
        for (int i = warmup; i < total; i++) {
            step.run();
        }
        long end = rssAfterGc();
        System.out.printf("RSS %s warmup_kib=%d end_kib=%d growth_kib=%d iterations=%d after_warmup=%d ms=%d%n", mode,
                warm, end, end - warm, total, total - warmup, (System.nanoTime() - start) / 1_000_000);
    }

    /** Small calls through every layer kind and both Ops, round robin, each in its own arena. */
    private static Runnable callsStep() {
        AttentionLayer[] layers = {
            Attention.builder().useScale(true).build(),
            Attention.builder().scoreMode("concat").dropout(0.2).seed(1L).build(),
            AdditiveAttention.builder().seed(2L).build(),
            MultiHeadAttention.builder().numHeads(2).keyDim(4).useGate(true).seed(3L).build(),
            GroupQueryAttention.builder().headDim(3).numQueryHeads(4).numKeyValueHeads(2).seed(4L).build(),
        };
        for (AttentionLayer l : layers) {
            l.build(new long[] {2, 5, 6}, new long[] {2, 7, 6}, null);
        }
        SplittableRandom r = new SplittableRandom(5);
        float[] q = TestData.floats(r, 2 * 5 * 6, -1, 1);
        float[] v = TestData.floats(r, 2 * 7 * 6, -1, 1);
        boolean[] vm = TestData.booleans(r, 2 * 7, 0.7);
        int[] counter = {0};
        return () -> {
            int i = counter[0]++;
            try (Arena arena = Arena.ofConfined()) {
                Tensor tq = Tensor.of(arena, q, 2, 5, 6);
                Tensor tv = Tensor.of(arena, v, 2, 7, 6);
                int which = i % (layers.length + 1);
                if (which == layers.length) {
                    Tensor scores = Tensor.allocate(arena, 2, 5, 7);
                    Ops.matmul(tq, false, tv, true, scores);
                    Ops.maskedSoftmax(scores, 0.5f, Tensor.ofMask(arena, vm, 2, 7), true, MaskConvention.REPLACE);
                    return;
                }
                AttentionResult res = layers[which].call(arena, CallArgs.of(tq, tv)
                        .withValueMask(Tensor.ofMask(arena, vm, 2, 7))
                        .withReturnAttentionScores(i % 3 == 0)
                        .withTraining(i % 5 == 0)
                        .withUseCausalMask(i % 2 == 0));
                if (res.output().size() != 60) {
                    throw new AssertionError("unexpected output " + res.output());
                }
            }
        };
    }

    /** Layers with 0.6 to 1 MiB of weights each, built, called and closed: leaked weights would show at once. */
    private static Runnable buildCloseStep() {
        int[] counter = {0};
        float[] q = TestData.floats(new SplittableRandom(6), 1 * 3 * 128, -1, 1);
        return () -> {
            int i = counter[0]++;
            AttentionLayer layer = i % 2 == 0
                    ? MultiHeadAttention.builder().numHeads(8).keyDim(64).seed((long) i).build() // 4 x 128x512
                    : GroupQueryAttention.builder().headDim(64).numQueryHeads(8).numKeyValueHeads(2).seed((long) i)
                            .build();
            Weight first;
            try (layer; Arena arena = Arena.ofConfined()) {
                layer.build(new long[] {1, 3, 128}, new long[] {1, 3, 128}, null);
                first = layer.weights().get(0);
                Tensor x = Tensor.of(arena, q, 1, 3, 128);
                layer.call(arena, x, x);
            }
            try {
                first.toFloatArray();
                throw new AssertionError("the weights of a closed layer can still be read");
            } catch (IllegalStateException expected) {
                // the layer's arena is closed: its memory is freed
            }
        };
    }

    /**
     * glibc's {@code malloc_trim(0)}, or null elsewhere: gives freed heap memory back to
     * the system, so that memory malloc merely keeps for reuse (the JIT compiler's arenas
     * come and go by megabytes) does not read as growth. Leaked blocks are not free, so
     * they still count.
     */
    private static final java.lang.invoke.MethodHandle MALLOC_TRIM = java.lang.foreign.Linker.nativeLinker()
            .defaultLookup().find("malloc_trim")
            .map(f -> java.lang.foreign.Linker.nativeLinker().downcallHandle(f,
                    java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT,
                            java.lang.foreign.ValueLayout.JAVA_LONG)))
            .orElse(null);

    /** VmRSS in KiB after a full GC (twice, with a pause, so that freed arenas and buffers are gone) and a trim. */
    static long rssAfterGc() throws IOException, InterruptedException {
        for (int i = 0; i < 2; i++) {
            System.gc();
            Thread.sleep(100);
        }
        if (MALLOC_TRIM != null) {
            try {
                int released = (int) MALLOC_TRIM.invokeExact(0L);
            } catch (Throwable t) {
                throw new IllegalStateException("malloc_trim failed", t);
            }
        }
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }
}
