package dev.attn4j.internal.ffm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.Attn4j;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * OpenBLAS reads {@code OPENBLAS_THREAD_TIMEOUT} when it loads; attn4j puts its short
 * default there first (see {@link NativeLibraries#THREAD_TIMEOUT_ENV}), leaves a value
 * the environment already has, and refuses a property outside OpenBLAS's range.
 */
class OpenBlasThreadTimeoutTest {

    /** What libc's getenv returns now (System.getenv is the JVM's start-up snapshot). */
    private static String libcGetenv(String name) throws Throwable {
        Linker linker = Linker.nativeLinker();
        MethodHandle getenv = linker.downcallHandle(linker.defaultLookup().find("getenv").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = (MemorySegment) getenv.invokeExact(arena.allocateFrom(name));
            return value.equals(MemorySegment.NULL) ? null : value.reinterpret(1 << 10).getString(0);
        }
    }

    @Test
    void theProcessEnvironmentHasTheTimeoutOnceOpenBlasIsLoaded() throws Throwable {
        Assumptions.assumeTrue(Attn4j.info().openblasFile() != null, "OpenBLAS not loaded");
        String started = System.getenv(NativeLibraries.THREAD_TIMEOUT_ENV);
        String property = System.getProperty(NativeLibraries.THREAD_TIMEOUT_PROPERTY);
        Assumptions.assumeTrue(property == null, "the timeout property is set for this run");
        String expected = started != null ? started : NativeLibraries.DEFAULT_THREAD_TIMEOUT;
        assertEquals(expected, libcGetenv(NativeLibraries.THREAD_TIMEOUT_ENV));
    }

    @Test
    void aTimeoutOutsideOpenBlassRangeIsRefusedByName() throws IOException, InterruptedException {
        for (String bad : new String[] {"3", "31", "ten"}) {
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            ProcessBuilder pb = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED",
                    "-D" + NativeLibraries.THREAD_TIMEOUT_PROPERTY + "=" + bad,
                    "-cp", System.getProperty("java.class.path"), "dev.attn4j.internal.cli.Main", "info");
            pb.environment().remove(NativeLibraries.THREAD_TIMEOUT_ENV);
            pb.redirectErrorStream(true);
            Process p = pb.start();
            String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "forked JVM did not finish");
            assertTrue(output.contains("-Dattn4j.openblas.threadTimeout must be an integer from 4 to 30 (OpenBLAS "
                    + "worker threads spin 2^N cycles before sleeping) or 'keep', but is '" + bad + "'"), output);
            assertTrue(output.contains("native: not loaded"), output);
        }
    }
}
