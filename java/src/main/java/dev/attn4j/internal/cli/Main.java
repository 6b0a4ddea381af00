package dev.attn4j.internal.cli;

import dev.attn4j.Attn4j;

/**
 * Entry point of the {@code ./attn4j} launcher. Commands: {@code info} prints the
 * native diagnostic; {@code run} will run the Keras demo model once the demo lands
 * (for now it says so and prints the diagnostic).
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        String command = args.length == 0 ? "run" : args[0];
        switch (command) {
            case "info" -> System.out.println(Attn4j.info());
            case "run" -> {
                System.out.println("attn4j run: not yet: the Keras demo (a saved encoder block and its attention "
                        + "heatmaps) comes with the Keras interoperability work. The runtime it will use:");
                System.out.println(Attn4j.info());
            }
            default -> {
                System.err.println("attn4j: unknown command '" + command + "'; expected run or info");
                System.exit(2);
            }
        }
    }
}
