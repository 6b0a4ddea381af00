package dev.attn4j.internal.cli;

import dev.attn4j.Attn4j;
import dev.attn4j.conformance.ConformanceRunner;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Entry point of the {@code ./attn4j} launcher. Commands: {@code info} prints the
 * native diagnostic; {@code conformance PATH...} runs Keras golden case files or
 * folders; {@code run} will run the Keras demo model once the demo lands (for now it
 * says so and prints the diagnostic).
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        String command = args.length == 0 ? "run" : args[0];
        switch (command) {
            case "info" -> System.out.println(Attn4j.info());
            case "conformance" -> {
                if (args.length < 2) {
                    System.err.println("usage: attn4j conformance CASES.json|FOLDER ...");
                    System.exit(2);
                }
                System.exit(ConformanceRunner.runAll(
                        Arrays.stream(args, 1, args.length).map(Path::of).toList(), System.out));
            }
            case "run" -> {
                System.out.println("attn4j run: not yet: the Keras demo (a saved encoder block and its attention "
                        + "heatmaps) comes with the Keras interoperability work. The runtime it will use:");
                System.out.println(Attn4j.info());
            }
            default -> {
                System.err.println("attn4j: unknown command '" + command + "'; expected run, info or conformance");
                System.exit(2);
            }
        }
    }
}
