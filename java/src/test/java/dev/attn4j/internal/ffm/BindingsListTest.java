package dev.attn4j.internal.ffm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Keeps the jextract argument files and the Java code in step: every native function
 * the hand-written Java code names must be listed with --include-function in
 * native/jextract/*.args (so that regenerating keeps it), and every listed function
 * must exist in the committed generated sources.
 */
class BindingsListTest {
    private static final Path ROOT = Path.of("").toAbsolutePath();
    private static final Path MAIN = ROOT.resolve("src/main/java");
    private static final Path GENERATED = MAIN.resolve("dev/attn4j/internal/ffm/generated");
    private static final Path ARGS = ROOT.resolve("../native/jextract").normalize();
    /** Native function names: our prefix and OpenBLAS's. */
    private static final Pattern NATIVE_NAME = Pattern.compile("\\b((?:cblas|openblas|attn4j)_[a-z0-9_]+)\\b");

    private static Set<String> listedFunctions() throws IOException {
        Set<String> listed = new TreeSet<>();
        try (Stream<Path> files = Files.list(ARGS)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".args")).toList()) {
                List<String> lines = Files.readAllLines(f).stream().map(String::trim).toList();
                for (int i = 0; i + 1 < lines.size(); i++) {
                    if (lines.get(i).equals("--include-function")) {
                        listed.add(lines.get(i + 1));
                    }
                }
            }
        }
        return listed;
    }

    @Test
    void everyFunctionTheJavaCodeNamesIsListed() throws IOException {
        Set<String> listed = listedFunctions();
        assertTrue(listed.contains("cblas_sgemm_batch") && listed.contains("attn4j_masked_softmax_f32"), listed::toString);
        Set<String> used = new TreeSet<>();
        try (Stream<Path> files = Files.walk(MAIN)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java") && !p.startsWith(GENERATED)).toList()) {
                Matcher m = NATIVE_NAME.matcher(Files.readString(f));
                while (m.find()) {
                    used.add(m.group(1));
                }
            }
        }
        assertTrue(used.contains("cblas_sgemm"), "the scan found nothing; is the working directory java/? " + ROOT);
        Set<String> missing = new TreeSet<>(used);
        missing.removeAll(listed);
        assertEquals(Set.of(), missing, "Java code uses native functions that no jextract .args file lists");
    }

    @Test
    void everyListedFunctionIsGenerated() throws IOException {
        StringBuilder generated = new StringBuilder();
        try (Stream<Path> files = Files.walk(GENERATED)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                generated.append(Files.readString(f));
            }
        }
        for (String fn : listedFunctions()) {
            assertTrue(generated.indexOf("findOrThrow(\"" + fn + "\")") >= 0,
                    fn + " is listed but not in the generated sources: run native/jextract/regenerate.sh");
        }
    }
}
