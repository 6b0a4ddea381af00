package dev.attn4j.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Java heap bytes one call allocates, counted exactly by the JVM for the calling thread
 * ({@code com.sun.management.ThreadMXBean#getCurrentThreadAllocatedBytes}) over calls
 * made after the measurement, when the code is compiled.
 *
 * <p>Why besides JMH's {@code gc.alloc.rate.norm}: in sample-time mode that figure also
 * counts what the harness allocates per iteration (its sample buffers), spread over the
 * iteration's calls; for a call of tens of milliseconds there are few calls, and the
 * harness's kilobytes dominate. The report shows both.
 *
 * <p>With {@code -Dattn4j.bench.allocLog=FILE} (the report sets it) each probe appends
 * one line {@code benchmark shape threads bytesPerCall calls} to FILE.
 */
final class AllocationProbe {
    static final String LOG_PROPERTY = "attn4j.bench.allocLog";

    private AllocationProbe() {}

    /** Runs {@code call} twice about 0.3 s worth of times (at least once each) and logs bytes per call. */
    static void measure(String benchmark, String shape, int threads, Runnable call) {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long start = System.nanoTime();
        call.run();
        long oneCall = Math.max(1, System.nanoTime() - start);
        int calls = (int) Math.max(1, Math.min(1000, 300_000_000L / oneCall));
        // Two rounds, the smaller counts: a one-off in the first (a lazily grown scratch
        // block, a class loaded on first use, a recompilation) is not a per-call cost.
        long bytes = Long.MAX_VALUE;
        for (int round = 0; round < 2; round++) {
            long before = mx.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < calls; i++) {
                call.run();
            }
            bytes = Math.min(bytes, mx.getCurrentThreadAllocatedBytes() - before);
        }
        double perCall = (double) bytes / calls;
        String line = benchmark + " " + shape + " " + threads + " " + perCall + " " + calls;
        String log = System.getProperty(LOG_PROPERTY);
        if (log == null) {
            System.out.println("allocation probe: " + line);
            return;
        }
        try {
            Files.writeString(Path.of(log), line + System.lineSeparator(), StandardCharsets.UTF_8,
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new IllegalStateException("cannot append to " + log, e);
        }
    }
}
