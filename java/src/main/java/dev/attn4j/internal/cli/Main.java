package dev.attn4j.internal.cli;

import dev.attn4j.Attn4j;
import dev.attn4j.conformance.ConformanceRunner;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Entry point of the {@code ./attn4j} launcher. Commands: {@code info} prints the
 * native diagnostic; {@code conformance PATH...} runs Keras golden case files or
 * folders; {@code run [MODEL.keras] [--input NAME=FILE.npy ...] [--out DIR] [--repeat N]}
 * runs a Keras model (by default the bundled encoder block), see {@link Demo};
 * {@code decode [--layer mha|gqa] [--prompt P] [--tokens N] [--batch B]} runs a cached
 * decoding loop with tokens/s, see {@link DecodeDemo}.
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
                try {
                    System.exit(Demo.run(Arrays.copyOfRange(args, 1, args.length), System.out));
                } catch (IllegalArgumentException | UnsupportedOperationException | IOException e) {
                    System.err.println("attn4j run: " + e.getMessage());
                    System.exit(2);
                }
            }
            case "decode" -> {
                try {
                    System.exit(DecodeDemo.run(Arrays.copyOfRange(args, 1, args.length), System.out));
                } catch (IllegalArgumentException e) {
                    System.err.println("attn4j decode: " + e.getMessage());
                    System.exit(2);
                }
            }
            default -> {
                System.err.println("attn4j: unknown command '" + command
                        + "'; expected run, decode, info or conformance");
                System.exit(2);
            }
        }
    }
}
