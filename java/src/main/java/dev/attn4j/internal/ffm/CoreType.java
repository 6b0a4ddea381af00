package dev.attn4j.internal.ffm;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Which OpenBLAS kernel set ("core type") a DYNAMIC_ARCH OpenBLAS should use, decided
 * before the library loads (OpenBLAS reads {@value #ENV} once, in its constructor).
 *
 * <p>Why attn4j chooses at all: OpenBLAS 0.3.31 picks its core from the CPU's family and
 * model numbers, and a CPU newer than its table (or a hypervisor hiding the model)
 * falls back to an older core. On an AMD EPYC Zen 5 (AVX-512) the AVX2 Haswell kernel
 * gives a 2048 x 512 x 512 sgemm 88-91 GFLOP/s on one core, the AVX-512 SkylakeX /
 * Cooperlake kernel 183-195 (the sgemm kernel is the same in both; Cooperlake adds
 * BF16 kernels attn4j does not call). So when the CPU and the OS support AVX-512 and
 * nothing says otherwise, attn4j asks for the AVX-512 core by itself.
 *
 * <p>The rule, first match wins:
 * <ol>
 *   <li>{@value #PROPERTY}{@code =keep}: never touch {@value #ENV};
 *   <li>{@value #PROPERTY}{@code =NAME}: use that core (overriding the environment);
 *       refused when the CPU lacks the instructions it needs (it would kill the JVM
 *       with SIGILL) or when the name is not one of OpenBLAS's x86-64 cores;
 *   <li>{@value #ENV} in the environment: OpenBLAS uses it, attn4j leaves it;
 *   <li>otherwise ({@value #PROPERTY} unset or {@code auto}), for the bundled OpenBLAS
 *       on a CPU with AVX-512 F/CD/BW/DQ/VL enabled by the OS: Cooperlake with
 *       AVX512_BF16, SkylakeX without; any other CPU or a user-supplied OpenBLAS keeps
 *       OpenBLAS's own choice (its sgemm there was not measured by attn4j).
 * </ol>
 */
public final class CoreType {
    public static final String ENV = "OPENBLAS_CORETYPE";
    public static final String PROPERTY = "attn4j.openblas.coretype";

    private static final List<String> AVX512 = List.of("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl");

    /**
     * OpenBLAS 0.3.31's DYNAMIC_ARCH x86-64 core names (as {@code openblas_get_corename}
     * spells them), each with the {@code /proc/cpuinfo} flags its kernels need.
     */
    private static final Map<String, List<String>> CORES = Map.ofEntries(
            Map.entry("prescott", List.of("sse3")),
            Map.entry("core2", List.of("ssse3")),
            Map.entry("penryn", List.of("sse4_1")),
            Map.entry("dunnington", List.of("sse4_1")),
            Map.entry("nehalem", List.of("sse4_2")),
            Map.entry("atom", List.of("ssse3")),
            Map.entry("opteron", List.of("sse2")),
            Map.entry("barcelona", List.of("sse3")),
            Map.entry("bobcat", List.of("ssse3")),
            Map.entry("sandybridge", List.of("avx")),
            Map.entry("bulldozer", List.of("avx")),
            Map.entry("piledriver", List.of("avx", "fma")),
            Map.entry("steamroller", List.of("avx", "fma")),
            Map.entry("excavator", List.of("avx2", "fma")),
            Map.entry("haswell", List.of("avx2", "fma")),
            Map.entry("zen", List.of("avx2", "fma")),
            Map.entry("skylakex", AVX512),
            Map.entry("cooperlake", concat(AVX512, "avx512_bf16")),
            Map.entry("sapphirerapids", concat(AVX512, "avx512_bf16", "amx_bf16")));

    /** The names OpenBLAS itself spells, for messages and for the value put in {@value #ENV}. */
    private static final Map<String, String> SPELLING = Map.ofEntries(
            Map.entry("prescott", "Prescott"), Map.entry("core2", "Core2"), Map.entry("penryn", "Penryn"),
            Map.entry("dunnington", "Dunnington"), Map.entry("nehalem", "Nehalem"), Map.entry("atom", "Atom"),
            Map.entry("opteron", "Opteron"), Map.entry("barcelona", "Barcelona"), Map.entry("bobcat", "Bobcat"),
            Map.entry("sandybridge", "Sandybridge"), Map.entry("bulldozer", "Bulldozer"),
            Map.entry("piledriver", "Piledriver"), Map.entry("steamroller", "Steamroller"),
            Map.entry("excavator", "Excavator"), Map.entry("haswell", "Haswell"), Map.entry("zen", "Zen"),
            Map.entry("skylakex", "SkylakeX"), Map.entry("cooperlake", "Cooperlake"),
            Map.entry("sapphirerapids", "SapphireRapids"));

    /**
     * What was decided: {@code setTo} is the value to put in {@value #ENV} (null: leave it
     * as it is), {@code reason} says why, for {@code ./attn4j info}.
     */
    public record Decision(String setTo, String reason) {}

    private CoreType() {}

    private static List<String> concat(List<String> base, String... more) {
        String[] all = base.toArray(new String[0]);
        String[] joined = Arrays.copyOf(all, all.length + more.length);
        System.arraycopy(more, 0, joined, all.length, more.length);
        return List.of(joined);
    }

    /** OpenBLAS's x86-64 core names, in its spelling. */
    public static List<String> names() {
        return SPELLING.values().stream().sorted().toList();
    }

    /**
     * The rule above as a pure function.
     *
     * @param property  the value of {@value #PROPERTY}, or null
     * @param env       the value of {@value #ENV} in the JVM's environment, or null
     * @param cpuFlags  the CPU flags the OS reports (empty when unknown)
     * @param bundled   whether the OpenBLAS to load is the bundled one
     * @throws IllegalArgumentException for an unknown core name, or one this CPU cannot run
     */
    public static Decision decide(String property, String env, Set<String> cpuFlags, boolean bundled) {
        String p = property == null ? "" : property.trim();
        if (p.equals("keep")) {
            return new Decision(null, env != null ? "-D" + PROPERTY + "=keep; $" + ENV + "=" + env + " from the environment"
                    : "-D" + PROPERTY + "=keep: OpenBLAS's own choice");
        }
        if (!p.isEmpty() && !p.equals("auto")) {
            String key = p.toLowerCase(Locale.ROOT);
            List<String> needs = CORES.get(key);
            if (needs == null) {
                throw new IllegalArgumentException("-D" + PROPERTY + " must be 'auto', 'keep' or one of OpenBLAS's x86-64"
                        + " cores " + names() + ", but is '" + p + "'");
            }
            if (!cpuFlags.isEmpty()) {
                List<String> missing = needs.stream().filter(f -> !cpuFlags.contains(f)).toList();
                if (!missing.isEmpty()) {
                    throw new IllegalArgumentException("-D" + PROPERTY + "=" + p + " needs CPU features " + needs
                            + ", but this CPU (or its OS) lacks " + missing + "; its kernels would stop the JVM with an"
                            + " illegal instruction. Use 'auto' or a core this CPU supports");
                }
            }
            return new Decision(SPELLING.get(key), "-D" + PROPERTY + "=" + p);
        }
        if (env != null) {
            return new Decision(null, "$" + ENV + "=" + env + " from the environment");
        }
        if (!bundled) {
            return new Decision(null, "OpenBLAS's own choice (a user-supplied OpenBLAS: attn4j chooses only for the"
                    + " bundled one)");
        }
        if (cpuFlags.containsAll(AVX512)) {
            String core = cpuFlags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX";
            return new Decision(core, "chosen by attn4j: the CPU has AVX-512" + (core.equals("Cooperlake")
                    ? " with BF16" : "") + " and $" + ENV + " is unset");
        }
        return new Decision(null, "OpenBLAS's own choice (no AVX-512 on this CPU)");
    }

    /** The CPU flags of the first processor in {@code /proc/cpuinfo}; empty when unreadable. */
    public static Set<String> cpuFlags() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("flags")) {
                    int colon = line.indexOf(':');
                    return Set.copyOf(Arrays.asList(line.substring(colon + 1).trim().split("\\s+")));
                }
            }
        } catch (IOException | RuntimeException e) {
            // Not Linux, or no access: no flags, so 'auto' leaves OpenBLAS's own choice.
        }
        return Set.of();
    }
}
