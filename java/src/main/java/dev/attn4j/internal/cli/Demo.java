package dev.attn4j.internal.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.attn4j.Attn4j;
import dev.attn4j.Tensor;
import dev.attn4j.keras.KerasModel;
import dev.attn4j.keras.Npy;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * {@code ./attn4j run [MODEL.keras] [--input NAME=FILE.npy ...] [--out DIR] [--repeat N]
 * [--case FILE.case.json]}: loads a Keras model, runs it, prints the summary, the
 * outputs and the latency, writes the outputs as {@code .npy} and one attention heatmap
 * PNG per attention layer. Without a model it runs the bundled encoder block (saved by
 * Keras 3.15.1) on its bundled sample input and checks the result against Keras's.
 * With a case file (or an {@code X.case.json} beside {@code X.keras}) it takes the
 * inputs from it and compares the outputs with the expected ones (1e-5).
 */
final class Demo {
    private static final String RESOURCES = "/dev/attn4j/demo/";
    private static final double TOLERANCE = 1e-5;

    private Demo() {}

    static int run(String[] args, PrintStream out) throws IOException {
        Path model = null;
        Map<String, Path> inputFiles = new LinkedHashMap<>();
        Path outDir = Path.of("attn4j-out");
        int repeat = 20;
        Path caseFile = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--input" -> {
                    String spec = value(args, ++i, a);
                    int eq = spec.indexOf('=');
                    if (eq <= 0) {
                        throw new IllegalArgumentException("--input expects NAME=FILE.npy, got '" + spec + "'");
                    }
                    inputFiles.put(spec.substring(0, eq), Path.of(spec.substring(eq + 1)));
                }
                case "--out" -> outDir = Path.of(value(args, ++i, a));
                case "--repeat" -> {
                    repeat = Integer.parseInt(value(args, ++i, a));
                    if (repeat < 1) {
                        throw new IllegalArgumentException("--repeat must be >= 1, got " + repeat);
                    }
                }
                case "--case" -> caseFile = Path.of(value(args, ++i, a));
                default -> {
                    if (a.startsWith("--") || model != null) {
                        throw new IllegalArgumentException("unexpected argument '" + a + "'; usage: attn4j run "
                                + "[MODEL.keras] [--input NAME=FILE.npy ...] [--out DIR] [--repeat N] "
                                + "[--case FILE.case.json]");
                    }
                    model = Path.of(a);
                }
            }
        }
        boolean bundled = model == null;
        Path tmp = null;
        if (bundled) {
            tmp = Files.createTempDirectory("attn4j-demo");
            model = extract("encoder_block.keras", tmp);
            if (inputFiles.isEmpty()) {
                inputFiles.put("tokens", extract("encoder_block.tokens.npy", tmp));
            }
        } else if (caseFile == null) {
            String file = model.getFileName().toString();
            Path sibling = model.resolveSibling(file.replaceAll("\\.keras$", "") + ".case.json");
            if (Files.isRegularFile(sibling)) {
                caseFile = sibling;
            }
        }
        Files.createDirectories(outDir);
        try (Arena arena = Arena.ofConfined(); KerasModel m = KerasModel.load(model)) {
            out.println("attn4j " + Attn4j.info().backend() + " backend, OpenBLAS "
                    + Attn4j.info().openblasCore() + ", libattn4j " + Attn4j.info().nativeIsa());
            out.println("model: " + (bundled ? "bundled encoder block (saved by Keras 3.15.1)" : model));
            out.print(m.summary());

            Map<String, Tensor> feed = new LinkedHashMap<>();
            List<float[]> expected = null;
            if (caseFile != null && inputFiles.isEmpty()) {
                CaseFile c = CaseFile.read(caseFile, arena);
                feed.putAll(c.inputs());
                expected = c.outputs();
                out.println("inputs and expected outputs: " + caseFile);
            }
            for (Map.Entry<String, Path> e : inputFiles.entrySet()) {
                feed.put(e.getKey(), Npy.read(e.getValue(), arena));
            }
            if (bundled) {
                try (InputStream in = resource("encoder_block.expected.npy")) {
                    expected = List.of(Npy.read(in, arena).toFloatArray());
                }
            }
            if (feed.isEmpty()) {
                SplittableRandom r = new SplittableRandom(0);
                for (Map.Entry<String, long[]> e : m.inputShapes().entrySet()) {
                    long[] s = e.getValue().clone();
                    for (int i = 0; i < s.length; i++) {
                        s[i] = s[i] < 0 ? 2 : s[i];
                    }
                    Tensor t = Tensor.allocate(arena, s);
                    float[] v = new float[(int) t.size()];
                    for (int i = 0; i < v.length; i++) {
                        v[i] = (float) r.nextGaussian();
                    }
                    t.copyFrom(v);
                    feed.put(e.getKey(), t);
                }
                out.println("inputs: random normal (seed 0), shapes " + describe(feed));
            } else {
                out.println("inputs: " + describe(feed));
            }

            // Warm up, then time whole predictions.
            List<Tensor> outputs = null;
            double[] ms = new double[repeat];
            for (int i = 0; i < Math.min(3, repeat); i++) {
                try (Arena a = Arena.ofConfined()) {
                    m.predict(a, feed);
                }
            }
            for (int i = 0; i < repeat; i++) {
                try (Arena a = Arena.ofConfined()) {
                    long t0 = System.nanoTime();
                    m.predict(a, feed);
                    ms[i] = (System.nanoTime() - t0) / 1e6;
                }
            }
            KerasModel.Prediction p = m.predict(arena, feed, true);
            outputs = p.outputs();
            Arrays.sort(ms);
            for (int i = 0; i < outputs.size(); i++) {
                Tensor o = outputs.get(i);
                String name = m.outputNames().get(i);
                float[] v = o.toFloatArray();
                out.printf("output %s %s: %s%n", name, Arrays.toString(o.shape()), first(v, 6));
                Path file = outDir.resolve(name + ".npy");
                Npy.write(file, o);
                out.println("  written to " + file);
            }
            out.printf("latency over %d runs: median %.3f ms, p90 %.3f ms%n", repeat, ms[(repeat - 1) / 2],
                    ms[Math.min(repeat - 1, (int) Math.ceil(0.9 * repeat) - 1)]);
            for (Map.Entry<String, Tensor> e : p.attentionScores().entrySet()) {
                Path png = outDir.resolve(e.getKey() + "_heatmap.png");
                writeHeatmap(png, e.getKey(), e.getValue());
                out.println("attention heatmap of layer " + e.getKey() + " " + Arrays.toString(e.getValue().shape())
                        + ": " + png);
            }
            int status = 0;
            if (expected != null) {
                for (int i = 0; i < outputs.size() && i < expected.size(); i++) {
                    float[] got = outputs.get(i).toFloatArray();
                    float[] want = expected.get(i);
                    double worst = 0;
                    boolean ok = got.length == want.length;
                    for (int j = 0; ok && j < got.length; j++) {
                        double d = Math.abs((double) got[j] - want[j]);
                        worst = Math.max(worst, d);
                        ok = d <= TOLERANCE + TOLERANCE * Math.abs(want[j]);
                    }
                    out.printf("matches Keras (%s): %s, max |diff| %.2e%n", m.outputNames().get(i),
                            ok ? "yes" : "NO", worst);
                    status |= ok ? 0 : 1;
                }
            }
            return status;
        } finally {
            if (tmp != null) {
                try (var files = Files.list(tmp)) {
                    for (Path f : files.toList()) {
                        Files.deleteIfExists(f);
                    }
                }
                Files.deleteIfExists(tmp);
            }
        }
    }

    /** Heatmap of batch element 0: scores (B, [others...,] N, T, S) or (B, T, S) for single-head layers. */
    private static void writeHeatmap(Path png, String layer, Tensor scores) throws IOException {
        long[] s = scores.shape();
        int keys = (int) s[s.length - 1];
        int queries = (int) s[s.length - 2];
        int heads = s.length >= 4 ? (int) s[s.length - 3] : 1;
        float[] all = scores.toFloatArray();
        float[] first = Arrays.copyOf(all, heads * queries * keys);
        Heatmap.writePng(png, layer + " attention (batch 0)", first, heads, queries, keys, null, null);
    }

    private static String first(float[] v, int n) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < Math.min(n, v.length); i++) {
            b.append(i == 0 ? "" : ", ").append(String.format("%.6f", v[i]));
        }
        return b.append(v.length > n ? ", ...]" : "]").toString();
    }

    private static String describe(Map<String, Tensor> feed) {
        List<String> parts = new ArrayList<>();
        feed.forEach((k, v) -> parts.add(k + " " + Arrays.toString(v.shape())));
        return String.join(", ", parts);
    }

    private static String value(String[] args, int i, String option) {
        if (i >= args.length) {
            throw new IllegalArgumentException(option + " needs a value");
        }
        return args[i];
    }

    private static InputStream resource(String name) throws IOException {
        InputStream in = Demo.class.getResourceAsStream(RESOURCES + name);
        if (in == null) {
            throw new IOException("bundled demo file " + name + " is missing from the jar");
        }
        return in;
    }

    private static Path extract(String name, Path dir) throws IOException {
        Path file = dir.resolve(name);
        try (InputStream in = resource(name)) {
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
        }
        return file;
    }

    /** The inputs and expected outputs of a Keras {@code X.case.json}. */
    record CaseFile(Map<String, Tensor> inputs, List<float[]> outputs) {
        @SuppressWarnings("unchecked")
        static CaseFile read(Path file, Arena arena) throws IOException {
            Map<String, Object> root = new ObjectMapper().readValue(file.toFile(), Map.class);
            Map<String, Tensor> inputs = new LinkedHashMap<>();
            Map<String, Object> in = (Map<String, Object>) root.get("inputs");
            for (Map.Entry<String, Object> e : in.entrySet()) {
                Map<String, Object> a = (Map<String, Object>) e.getValue();
                inputs.put(e.getKey(), Tensor.of(arena, floats(a.get("values")), longs(a.get("shape"))));
            }
            List<float[]> outputs = new ArrayList<>();
            Map<String, Object> expected = (Map<String, Object>) root.get("expected");
            for (Object o : (List<Object>) expected.get("outputs")) {
                outputs.add(floats(((Map<String, Object>) o).get("values")));
            }
            return new CaseFile(inputs, outputs);
        }

        private static float[] floats(Object o) {
            List<Object> l = (List<Object>) o;
            float[] f = new float[l.size()];
            for (int i = 0; i < f.length; i++) {
                f[i] = ((Number) l.get(i)).floatValue();
            }
            return f;
        }

        private static long[] longs(Object o) {
            return ((List<Object>) o).stream().mapToLong(x -> ((Number) x).longValue()).toArray();
        }
    }
}
