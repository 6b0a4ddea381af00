package dev.attn4j.conformance;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.NativeTests;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every Keras 3.15.1 golden case in src/test/resources/keras-golden, one JUnit test
 * each, through the same {@link ConformanceRunner} the {@code ./attn4j conformance}
 * command uses.
 */
class KerasGoldenTest {

    static Path golden(String file) throws URISyntaxException {
        return Path.of(KerasGoldenTest.class.getResource("/keras-golden/" + file).toURI());
    }

    private static Stream<DynamicTest> cases(String file) throws IOException, URISyntaxException {
        List<GoldenCase> cases = GoldenCases.load(golden(file));
        assertFalse(cases.isEmpty(), file + " has no cases");
        return cases.stream().map(c -> DynamicTest.dynamicTest(c.id(), () -> {
            NativeTests.requireNative();
            ConformanceRunner.CaseResult r = ConformanceRunner.run(c);
            assertTrue(r.passed(), r::toString);
        }));
    }

    @TestFactory
    Stream<DynamicTest> attention() throws IOException, URISyntaxException {
        return cases("attention.json");
    }

    @TestFactory
    Stream<DynamicTest> additiveAttention() throws IOException, URISyntaxException {
        return cases("additive_attention.json");
    }

    @TestFactory
    Stream<DynamicTest> multiHeadAttention() throws IOException, URISyntaxException {
        return cases("multi_head_attention.json");
    }

    @TestFactory
    Stream<DynamicTest> groupQueryAttention() throws IOException, URISyntaxException {
        return cases("grouped_query_attention.json");
    }
}
