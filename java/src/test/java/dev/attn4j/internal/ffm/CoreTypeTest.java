package dev.attn4j.internal.ffm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.Attn4j;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * attn4j's choice of OpenBLAS core type: the rule as a function of its inputs (fake CPU
 * flags), and the whole path in forked JVMs, where OpenBLAS reports the core it loaded.
 */
class CoreTypeTest {
    private static final Set<String> ZEN5 = Set.of("sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma",
            "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16");
    private static final Set<String> SKX = Set.of("sse2", "sse3", "ssse3", "avx", "avx2", "fma",
            "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl");
    private static final Set<String> AVX2_ONLY = Set.of("sse2", "sse3", "ssse3", "avx", "avx2", "fma");

    @Test
    void autoPicksTheAvx512CoreForTheBundledOpenBlasWhenTheEnvironmentIsSilent() {
        assertEquals("Cooperlake", CoreType.decide(null, null, ZEN5, true).setTo());
        assertEquals("Cooperlake", CoreType.decide("auto", null, ZEN5, true).setTo());
        assertEquals("SkylakeX", CoreType.decide(null, null, SKX, true).setTo());
        assertTrue(CoreType.decide(null, null, ZEN5, true).reason().contains("chosen by attn4j"));
    }

    @Test
    void autoLeavesOpenBlasAloneWithoutAvx512OrWithAUserSuppliedLibrary() {
        assertNull(CoreType.decide(null, null, AVX2_ONLY, true).setTo());
        assertNull(CoreType.decide(null, null, Set.of(), true).setTo());
        // avx512f alone (no BW/DQ/VL) is not what SkylakeX's kernels need
        assertNull(CoreType.decide(null, null, Set.of("avx2", "fma", "avx512f"), true).setTo());
        assertNull(CoreType.decide(null, null, ZEN5, false).setTo());
    }

    @Test
    void theEnvironmentWinsOverAutoButNotOverAnExplicitCore() {
        CoreType.Decision env = CoreType.decide(null, "Haswell", ZEN5, true);
        assertNull(env.setTo());
        assertEquals("$OPENBLAS_CORETYPE=Haswell from the environment", env.reason());
        assertEquals("SkylakeX", CoreType.decide("skylakex", "Haswell", ZEN5, true).setTo());
        assertEquals("Haswell", CoreType.decide("HASWELL", null, ZEN5, false).setTo());
    }

    @Test
    void keepNeverSetsAnything() {
        assertNull(CoreType.decide("keep", null, ZEN5, true).setTo());
        assertNull(CoreType.decide("keep", "Zen", ZEN5, true).setTo());
    }

    @Test
    void unknownCoresAndCoresThisCpuCannotRunAreRefusedByName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CoreType.decide("Zen5", null, ZEN5, true));
        assertTrue(e.getMessage().startsWith("-Dattn4j.openblas.coretype must be 'auto', 'keep' or one of OpenBLAS's"
                + " x86-64 cores ["), e.getMessage());
        assertTrue(e.getMessage().endsWith("but is 'Zen5'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> CoreType.decide("SkylakeX", null, AVX2_ONLY, true));
        assertTrue(e.getMessage().contains("-Dattn4j.openblas.coretype=SkylakeX needs CPU features [avx512f, "
                + "avx512cd, avx512bw, avx512dq, avx512vl], but this CPU (or its OS) lacks [avx512f, avx512cd, "
                + "avx512bw, avx512dq, avx512vl]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> CoreType.decide("Cooperlake", null, SKX, true));
        assertTrue(e.getMessage().contains("lacks [avx512_bf16]"), e.getMessage());
    }

    @Test
    void thisProcessReportsHowItsCoreWasChosen() {
        Assumptions.assumeTrue(Attn4j.info().openblasFile() != null, "OpenBLAS not loaded");
        CoreType.Decision d = NativeLibraries.coreTypeDecision();
        assertEquals(d.reason(), Attn4j.info().openblasCoreChoice());
        String env = System.getenv(CoreType.ENV);
        if (env != null && System.getProperty(CoreType.PROPERTY) == null) {
            assertTrue(Attn4j.info().openblasCore().equalsIgnoreCase(env), Attn4j.info().toString());
        }
    }

    // ---- forked JVMs: what OpenBLAS actually loads ------------------------------------

    private record Run(int exit, String output) {
        String core() {
            Matcher m = Pattern.compile("OpenBLAS core: +(\\S+) \\((.*)\\)").matcher(output);
            assertTrue(m.find(), output);
            return m.group(1);
        }
    }

    private static Run info(Map<String, String> env, String... properties) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED"));
        for (String p : properties) {
            cmd.add("-D" + p);
        }
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "dev.attn4j.internal.cli.Main",
                "info"));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().remove(CoreType.ENV);
        pb.environment().remove(NativeLibraries.OPENBLAS_ENV);
        pb.environment().putAll(env);
        pb.redirectErrorStream(true);
        Process p = pb.start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "forked JVM did not finish");
        return new Run(p.exitValue(), output);
    }

    private static void assumeBundledNative() {
        Assumptions.assumeTrue(Attn4j.info().openblasFile() != null, "OpenBLAS not loaded");
        Assumptions.assumeTrue(System.getProperty(NativeLibraries.OPENBLAS_PROPERTY) == null,
                "this run names its own OpenBLAS");
        Assumptions.assumeTrue(Attn4j.info().openblasConfig().contains("DYNAMIC_ARCH"), "not a DYNAMIC_ARCH OpenBLAS");
    }

    @Test
    void withoutTheVariableAnAvx512CpuGetsTheAvx512Core() throws Exception {
        assumeBundledNative();
        Set<String> flags = CoreType.cpuFlags();
        Run run = info(Map.of());
        assertEquals(0, run.exit(), run.output());
        CoreType.Decision expected = CoreType.decide(null, null, flags, true);
        if (expected.setTo() != null) {
            assertEquals(expected.setTo(), run.core(), run.output());
            assertTrue(run.output().contains("chosen by attn4j"), run.output());
        } else {
            assertTrue(run.output().contains("OpenBLAS's own choice"), run.output());
        }
    }

    @Test
    void theEnvironmentAndTheOverridesAreObeyed() throws Exception {
        assumeBundledNative();
        Run env = info(Map.of(CoreType.ENV, "Haswell"));
        assertEquals("Haswell", env.core(), env.output());
        assertTrue(env.output().contains("$OPENBLAS_CORETYPE=Haswell from the environment"), env.output());

        Run explicit = info(Map.of(CoreType.ENV, "Prescott"), CoreType.PROPERTY + "=Haswell");
        assertEquals("Haswell", explicit.core(), explicit.output());
        assertTrue(explicit.output().contains("(-Dattn4j.openblas.coretype=Haswell)"), explicit.output());

        Run keep = info(Map.of(), CoreType.PROPERTY + "=keep");
        assertEquals(0, keep.exit(), keep.output());
        assertTrue(keep.output().contains("-Dattn4j.openblas.coretype=keep: OpenBLAS's own choice"), keep.output());
    }

    @Test
    void aBadCoreIsRefusedByNameAndNativeStaysOff() throws Exception {
        assumeBundledNative();
        Run run = info(Map.of(), CoreType.PROPERTY + "=Skylake");
        assertTrue(run.output().contains("-Dattn4j.openblas.coretype must be 'auto', 'keep' or one of OpenBLAS's"),
                run.output());
        assertTrue(run.output().contains("native: not loaded"), run.output());
    }
}
