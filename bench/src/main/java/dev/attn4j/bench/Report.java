package dev.attn4j.bench;

import dev.attn4j.Attn4j;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;
import org.openjdk.jmh.profile.GCProfiler;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatFactory;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.format.OutputFormat;
import org.openjdk.jmh.runner.format.OutputFormatFactory;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;
import org.openjdk.jmh.annotations.Mode;

/**
 * The benchmark suite's driver ({@code ./attn4j bench [--quick]}): runs the JMH
 * benchmarks of this module programmatically, one forked JVM per benchmark and
 * parameter set, then prints the comparison and writes, under the results folder:
 * <ul>
 *   <li>{@code <date>-results.json}: every JMH result (JMH's JSON format);
 *   <li>{@code <date>-table.txt}: what is printed at the end;
 *   <li>{@code <date>-ratios.png}: the attn4j / ONNX Runtime time ratios as bars, with
 *       each row's target;
 *   <li>{@code <date>-jmh.log}: JMH's own output, for failures and per-iteration numbers.
 * </ul>
 * The last thing printed is the table: one row per shape and thread count, with the
 * medians (sample-time mode, 50th percentile) of attn4j and ONNX Runtime, their ratio,
 * attn4j's GFLOP/s and its share of the 2048^3 sgemm measured in the same run.
 *
 * <p>Options: {@code --quick} (one fork, short iterations: the whole suite in under
 * five minutes on a 2-core machine), {@code --results DIR}, {@code --only A1,C2,...}
 * (rows to run; the ceiling always runs). Rows BA1, BA2, BC1, BC2 are the backward
 * passes of A and C ({@link BackwardBenchmark}), in a table of their own.
 */
public final class Report {
    /** The table's rows: shape letter and thread count. */
    static final List<String> ROWS = List.of("A1", "A2", "B1", "C1", "C2", "D1", "E1", "F1", "G1",
            "BA1", "BA2", "BC1", "BC2");

    /** Backward passes ({@link BackwardBenchmark}): "B" + the forward row's name; a table of their own. */
    static final List<String> BACKWARD_ROWS = List.of("BA1", "BA2", "BC1", "BC2");

    /** Backward time / forward time each backward row aims at. */
    static final double BACKWARD_TARGET = 2.5;

    /** Rows of the main table; G1 (the decode steps, {@link DecodeStepBenchmark}) has a section of its own. */
    static final String DECODE = "G1";

    /** attn4j / ONNX Runtime time ratio each row aims at (null: no ratio target). */
    static final Map<String, Double> RATIO_TARGETS = Map.of(
            "A1", 0.7, "A2", 0.8, "B1", 0.5, "C1", 0.8, "C2", 0.85, "D1", 0.75, "F1", 0.55);

    /** attn4j / ONNX Runtime per decode step, at every cache length. */
    static final double DECODE_TARGET = 0.7;

    static final List<String> DECODE_LAYERS = List.of("mha", "gqa");
    static final List<Integer> DECODE_LENGTHS = List.of(128, 1024, 4096);

    static final List<String> FORK_JVM_ARGS = List.of("-Xms2g", "-Xmx2g", "--enable-native-access=ALL-UNNAMED",
            "--add-modules", "jdk.incubator.vector");

    private final boolean quick;
    private final Path resultsDir;
    private final List<String> only;
    private final String date = LocalDate.now().toString();
    private final Path allocLog;
    private final List<RunResult> results = new ArrayList<>();
    private final List<String> failures = new ArrayList<>();
    private final OutputFormat jmhOutput;

    private Report(boolean quick, Path resultsDir, List<String> only) throws IOException {
        this.quick = quick;
        this.resultsDir = resultsDir;
        this.only = only;
        Files.createDirectories(resultsDir);
        this.allocLog = Files.createTempFile("attn4j-bench-alloc", ".txt");
        Path log = resultsDir.resolve(date + "-jmh.log");
        Files.deleteIfExists(log);
        PrintStream logStream = new PrintStream(new FileOutputStream(log.toFile(), true), true, StandardCharsets.UTF_8);
        this.jmhOutput = OutputFormatFactory.createFormatInstance(logStream, VerboseMode.NORMAL);
    }

    public static void main(String[] args) throws Exception {
        boolean quick = false;
        Path results = Path.of("bench", "results");
        List<String> only = ROWS;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--quick" -> quick = true;
                case "--results" -> results = Path.of(requireValue(args, ++i, "--results"));
                case "--only" -> {
                    only = List.of(requireValue(args, ++i, "--only").toUpperCase(Locale.ROOT).split(","));
                    for (String row : only) {
                        if (!ROWS.contains(row)) {
                            usage("--only takes rows among " + ROWS + ", but got '" + row + "'");
                        }
                    }
                }
                case "-h", "--help" -> {
                    usage(null);
                    return;
                }
                default -> usage("unknown argument '" + args[i] + "'");
            }
        }
        System.setProperty("java.awt.headless", "true");
        new Report(quick, results, only).run(String.join(" ", args));
    }

    private static String requireValue(String[] args, int i, String option) {
        if (i >= args.length) {
            usage(option + " needs a value");
        }
        return args[i];
    }

    private static void usage(String error) {
        PrintStream out = error == null ? System.out : System.err;
        if (error != null) {
            out.println("attn4j bench: " + error);
        }
        out.println("usage: ./attn4j bench [--quick] [--only A1,A2,B1,C1,C2,D1,E1,F1,G1,BA1,BA2,BC1,BC2]"
                + " [--results DIR]");
        out.println("       ./attn4j bench jmh [JMH arguments]   (JMH itself, e.g. -l to list the benchmarks)");
        if (error != null) {
            System.exit(2);
        }
    }

    // ---- running ------------------------------------------------------------------------

    private void run(String arguments) throws IOException, RunnerException {
        long started = System.nanoTime();
        String loadBefore = loadAverage();
        Attn4j.Info info = Attn4j.info();
        System.out.println("attn4j benchmarks" + (quick ? " (--quick)" : "") + ": attn4j core path = "
                + Attn4jCore.variant() + "; JMH output goes to " + resultsDir.resolve(date + "-jmh.log"));

        bench("sgemm ceiling", "SgemmCeilingBenchmark\\.sgemm$", Map.of("threads", "1,2"));
        boolean fused = Attn4jCore.USE_FUSED;
        for (String shape : List.of("A", "B", "D", "E", "F")) {
            String threads = threadsFor(shape);
            if (threads.isEmpty()) {
                continue;
            }
            bench("core " + shape, "CoreAttentionBenchmark\\.(attn4j|onnxRuntime)$",
                    Map.of("shape", shape, "threads", threads));
        }
        String vectorShapes = selected("A", "B", "D", "F");
        if (!vectorShapes.isEmpty()) {
            bench("Vector API baseline", "CoreAttentionBenchmark\\.vectorApi$",
                    Map.of("shape", vectorShapes, "threads", "1"));
        }
        if (fused && !quick) {
            String shapes = selected("A", "B", "D", "E", "F");
            if (!shapes.isEmpty()) {
                bench("unfused public path", "CoreAttentionBenchmark\\.attn4jUnfused$",
                        Map.of("shape", shapes, "threads", "1"));
            }
        }
        String mhaThreads = threadsFor("C");
        if (!mhaThreads.isEmpty()) {
            bench("MultiHeadAttention layer", "MhaLayerBenchmark\\.(attn4j|onnxRuntime)$",
                    Map.of("threads", mhaThreads));
        }
        String backwardA = threadsFor("BA");
        if (!backwardA.isEmpty()) {
            bench("backward, core A", "BackwardBenchmark\\.(attn4jForward|attn4jBackward)$",
                    Map.of("shape", "A", "threads", backwardA));
            bench("backward, Vector API baseline", "BackwardBenchmark\\.vectorApiBackward$",
                    Map.of("shape", "A", "threads", "1"));
        }
        String backwardC = threadsFor("BC");
        if (!backwardC.isEmpty()) {
            bench("backward, MultiHeadAttention layer",
                    "BackwardBenchmark\\.(layerForward|layerForwardForBackward|layerBackward)$",
                    Map.of("threads", backwardC));
        }
        if (only.contains(DECODE)) {
            bench("decode step (KV cache)", "DecodeStepBenchmark\\.(attn4j|onnxRuntime)$",
                    Map.of("layer", "mha,gqa", "length", "128,1024,4096"));
        }
        String routeShapes = selected("A", "E");
        if (!routeShapes.isEmpty()) {
            bench("native paths", "NativePathsBenchmark\\.gemmSoftmaxGemm$",
                    Map.of("shape", routeShapes, "route", "LOOP,BATCH,STRIDED", "threads", "1"));
        }
        if (!selected("B").isEmpty()) {
            // B's 32x32x64 products always take cblas_sgemm (see NativePathsBenchmark): LOOP only.
            bench("native paths", "NativePathsBenchmark\\.gemmSoftmaxGemm$",
                    Map.of("shape", "B", "route", "LOOP", "threads", "1"));
        }
        String fusedShapes = selected("A", "B", "E");
        if (Attn4jCore.fusedAvailable() && !fusedShapes.isEmpty()) {
            bench("fused kernel", "NativePathsBenchmark\\.fused$", Map.of("shape", fusedShapes, "threads", "1"));
        }

        writeJson();
        String loadAfter = loadAverage();
        double minutes = (System.nanoTime() - started) / 60e9;
        String text = render(info, arguments, loadBefore, loadAfter, minutes);
        Path table = resultsDir.resolve(date + "-table.txt");
        Files.writeString(table, text, StandardCharsets.UTF_8);
        Path png = resultsDir.resolve(date + "-ratios.png");
        drawRatios(png);
        System.out.println();
        System.out.println("written: " + resultsDir.resolve(date + "-results.json") + ", " + table + ", " + png);
        System.out.println();
        System.out.print(text);
        Files.deleteIfExists(allocLog);
        if (!failures.isEmpty()) {
            System.exit(1);
        }
    }

    /** The thread counts of {@code shape}'s selected rows, e.g. "1,2", or "" when none is selected. */
    private String threadsFor(String shape) {
        List<String> threads = new ArrayList<>();
        for (String t : List.of("1", "2")) {
            if (only.contains(shape + t)) {
                threads.add(t);
            }
        }
        return String.join(",", threads);
    }

    /** The shapes among {@code shapes} with a selected 1-thread row, comma-separated. */
    private String selected(String... shapes) {
        List<String> s = new ArrayList<>();
        for (String shape : shapes) {
            if (only.contains(shape + "1")) {
                s.add(shape);
            }
        }
        return String.join(",", s);
    }

    private void bench(String what, String include, Map<String, String> params) throws RunnerException {
        ChainedOptionsBuilder options = new OptionsBuilder()
                .include(include)
                .mode(Mode.SampleTime)
                .timeUnit(TimeUnit.MILLISECONDS)
                .forks(quick ? 1 : 2)
                .warmupIterations(quick ? 3 : 5)
                .warmupTime(quick ? TimeValue.milliseconds(400) : TimeValue.seconds(1))
                .measurementIterations(quick ? 4 : 10)
                .measurementTime(quick ? TimeValue.milliseconds(400) : TimeValue.seconds(1))
                .addProfiler(GCProfiler.class)
                .shouldFailOnError(false)
                .jvmArgsAppend(forkArgs());
        params.forEach((k, v) -> options.param(k, v.split(",")));
        System.out.printf(Locale.ROOT, "[%s] %s %s ...%n", LocalDateTime.now().format(DateTimeFormatter.ofPattern(
                "HH:mm:ss")), what, params);
        Collection<RunResult> got = new Runner(options.build(), jmhOutput).run();
        int expected = 1;
        for (String v : params.values()) {
            expected *= v.split(",").length;
        }
        int methods = include.split("\\|", -1).length; // one method per alternative of "(a|b|...)"
        if (got.size() < expected * methods) {
            String failure = what + " " + params + ": " + got.size() + " of " + expected * methods
                    + " benchmarks produced results; see the JMH log for the failure";
            failures.add(failure);
            System.out.println("  FAILED: " + failure);
        }
        results.addAll(got);
    }

    private String[] forkArgs() {
        List<String> args = new ArrayList<>(FORK_JVM_ARGS);
        args.add("-D" + AllocationProbe.LOG_PROPERTY + "=" + allocLog);
        String core = System.getProperty("attn4j.bench.core");
        if (core != null) {
            args.add("-Dattn4j.bench.core=" + core);
        }
        return args.toArray(String[]::new);
    }

    private void writeJson() throws IOException {
        Path json = resultsDir.resolve(date + "-results.json");
        try (PrintStream out = new PrintStream(Files.newOutputStream(json), true, StandardCharsets.UTF_8)) {
            ResultFormatFactory.getInstance(ResultFormatType.JSON, out).writeOut(results);
        }
    }

    // ---- reading results ----------------------------------------------------------------

    /** One measured contender: median ms and JMH's gc.alloc.rate.norm. */
    record Measured(double medianMs, double allocNorm) {}

    private Measured find(String method, Map<String, String> params) {
        for (RunResult r : results) {
            if (!r.getParams().getBenchmark().endsWith(method)) {
                continue;
            }
            boolean match = true;
            for (Map.Entry<String, String> p : params.entrySet()) {
                match &= p.getValue().equals(r.getParams().getParam(p.getKey()));
            }
            if (match) {
                Result<?> alloc = r.getSecondaryResults().get("gc.alloc.rate.norm");
                return new Measured(r.getPrimaryResult().getStatistics().getPercentile(50),
                        alloc == null ? Double.NaN : alloc.getScore());
            }
        }
        return null;
    }

    /** The allocation probes' bytes per call, keyed "benchmark shape threads". */
    private Map<String, Double> probes() throws IOException {
        Map<String, Double> probes = new HashMap<>();
        if (Files.exists(allocLog)) {
            for (String line : Files.readAllLines(allocLog, StandardCharsets.UTF_8)) {
                String[] f = line.trim().split(" ");
                if (f.length >= 4) {
                    probes.put(f[0] + " " + f[1] + " " + f[2], Double.parseDouble(f[3]));
                }
            }
        }
        return probes;
    }

    /** A row of the final table. */
    record Row(String name, Measured attn4j, Measured ort, double flops, double ceilingGflops, Double probe,
               Double ortProbe) {
        String shape() {
            return name.substring(0, 1);
        }

        int threads() {
            return name.charAt(1) - '0';
        }

        double ratio() {
            return attn4j == null || ort == null ? Double.NaN : attn4j.medianMs / ort.medianMs;
        }

        double gflops() {
            return attn4j == null ? Double.NaN : flops / (attn4j.medianMs * 1e6);
        }
    }

    private List<Row> rows() throws IOException {
        Map<String, Double> probes = probes();
        List<Row> rows = new ArrayList<>();
        for (String name : only) {
            if (name.equals(DECODE) || BACKWARD_ROWS.contains(name)) {
                continue;
            }
            String shape = name.substring(0, 1);
            String threads = name.substring(1);
            Measured ceiling = find("SgemmCeilingBenchmark.sgemm", Map.of("threads", threads));
            double ceilingGflops = ceiling == null ? Double.NaN
                    : SgemmCeilingBenchmark.FLOPS / (ceiling.medianMs * 1e6);
            Measured a;
            Measured o;
            double flops;
            if (shape.equals("C")) {
                a = find("MhaLayerBenchmark.attn4j", Map.of("threads", threads));
                o = find("MhaLayerBenchmark.onnxRuntime", Map.of("threads", threads));
                flops = MhaLayerBenchmark.flops();
            } else {
                Map<String, String> p = Map.of("shape", shape, "threads", threads);
                a = find("CoreAttentionBenchmark.attn4j", p);
                o = find("CoreAttentionBenchmark.onnxRuntime", p);
                flops = CoreShape.valueOf(shape).flops();
            }
            rows.add(new Row(name, a, o, flops, ceilingGflops, probes.get("attn4j " + shape + " " + threads),
                    probes.get("onnxRuntime " + shape + " " + threads)));
        }
        return rows;
    }

    // ---- rendering ----------------------------------------------------------------------

    private String render(Attn4j.Info info, String arguments, String loadBefore, String loadAfter, double minutes)
            throws IOException {
        StringBuilder sb = new StringBuilder();
        String nl = System.lineSeparator();
        sb.append("attn4j benchmark report, ").append(date).append(quick ? " (--quick)" : "").append(nl);
        String command = System.getProperty("attn4j.bench.command",
                "java -cp bench/target/benchmarks.jar dev.attn4j.bench.Report " + arguments).trim();
        sb.append("command: ").append(command).append(nl);
        sb.append("cpu:     ").append(Machine.cpuModel()).append(" (").append(Machine.cpuFlags()).append("), ")
                .append(Runtime.getRuntime().availableProcessors()).append(" cores").append(nl);
        sb.append("jdk:     ").append(System.getProperty("java.vm.name")).append(' ')
                .append(System.getProperty("java.runtime.version")).append(nl);
        sb.append("attn4j:  ").append(info.openblasConfig()).append(", core ").append(info.openblasCore())
                .append(" (").append(info.openblasCoreChoice()).append(")").append(nl)
                .append("         environment: ").append(Machine.openblasEnv())
                .append("; libattn4j ").append(info.nativeIsa()).append("; core path: ").append(Attn4jCore.variant())
                .append(nl);
        sb.append("peer:    ONNX Runtime ").append(OrtRunner.version())
                .append(" (Java API, CPU provider, intra-op threads = threads, inter-op 1, ORT_ENABLE_ALL)")
                .append(nl);
        sb.append("baseline: JDK Vector API, ").append(VectorAttention.species()).append(", one thread").append(nl);
        sb.append("load average before/after: ").append(loadBefore).append(" / ").append(loadAfter)
                .append(" (2 cores; above ~0.5 before the run means other work shared the machine)").append(nl);
        sb.append(String.format(Locale.ROOT, "took %.1f min; medians of JMH sample-time, %s%n", minutes,
                quick ? "1 fork x 4 x 0.4 s after 3 x 0.4 s warm-up" : "2 forks x 10 x 1 s after 5 x 1 s warm-up"));
        sb.append(nl);

        sb.append(details());
        List<Row> rows = rows();
        sb.append(nl).append(targets(rows));
        if (!failures.isEmpty()) {
            sb.append(nl).append("FAILED (no result):").append(nl);
            failures.forEach(f -> sb.append("  ").append(f).append(nl));
        }
        if (!rows.isEmpty()) { // e.g. --only BA1: no row of the main table
            sb.append(nl).append(table(rows));
        }
        if (only.contains(DECODE)) {
            sb.append(nl).append(decodeSection(probes()));
        }
        if (only.stream().anyMatch(BACKWARD_ROWS::contains)) {
            sb.append(nl).append(backwardSection(probes()));
        }
        return sb.toString();
    }

    /**
     * The backward passes: per row, the forward's and the backward's medians and their
     * ratio against {@link #BACKWARD_TARGET}; for C also the training forward
     * ({@code layer.forward}, which keeps the activations), for A the plain Java baseline's
     * backward (one thread, measured once and compared with both A rows); bytes of Java
     * heap per backward call (the allocation probe).
     */
    private String backwardSection(Map<String, Double> probes) {
        StringBuilder sb = new StringBuilder("backward passes (gradients of the inputs, and of the weights for C, "
                + "given dL/d(output)), medians:").append(System.lineSeparator());
        sb.append(String.format(Locale.ROOT, "%-5s %-5s %7s %9s %9s %8s %7s %12s %12s %10s %11s%n", "row", "shape",
                "threads", "fwd_ms", "bwd_ms", "bwd/fwd", "target", "fwd_train_ms", "vecapi_bw_ms", "bwd/vecapi",
                "bwd B/call"));
        Measured vector = find("BackwardBenchmark.vectorApiBackward", Map.of("shape", "A", "threads", "1"));
        for (String name : BACKWARD_ROWS) {
            if (!only.contains(name)) {
                continue;
            }
            String shape = name.substring(1, 2);
            String threads = name.substring(2);
            boolean layer = shape.equals("C");
            Map<String, String> p = layer ? Map.of("threads", threads) : Map.of("shape", shape, "threads", threads);
            Measured forward = find(layer ? "BackwardBenchmark.layerForward" : "BackwardBenchmark.attn4jForward", p);
            Measured backward = find(layer ? "BackwardBenchmark.layerBackward" : "BackwardBenchmark.attn4jBackward", p);
            Measured training = layer ? find("BackwardBenchmark.layerForwardForBackward", p) : null;
            Measured peer = layer ? null : vector;
            double ratio = forward == null || backward == null ? Double.NaN : backward.medianMs() / forward.medianMs();
            double peerRatio = peer == null || backward == null ? Double.NaN
                    : backward.medianMs() / peer.medianMs();
            Double probe = probes.get((layer ? "layerBackward" : "attn4jBackward") + " " + shape + " " + threads);
            sb.append(String.format(Locale.ROOT, "%-5s %-5s %7s %9s %9s %8s %7s %12s %12s %10s %11s%n", name, shape,
                    threads, ms(forward), ms(backward), fmt(ratio, 2),
                    Double.isNaN(ratio) ? "n/a" : ratio <= BACKWARD_TARGET ? "met" : "MISSED",
                    layer ? ms(training) : "-", layer ? "-" : ms(peer), layer ? "-" : fmt(peerRatio, 3),
                    probe == null ? "n/a" : fmt(probe, 0)));
        }
        String nl = System.lineSeparator();
        sb.append("(target: bwd/fwd <= ").append(BACKWARD_TARGET).append(". A: fwd Ops.attention, bwd")
                .append(" Ops.attentionBackward (out and the row statistics saved by the forward given).").append(nl)
                .append(" C: fwd the serving callInto; fwd_train layer.forward into a per-call arena (allocation and")
                .append(" free included);").append(nl)
                .append(" bwd layer.backward into a per-call arena. vecapi: the JDK Vector API backward, one thread,")
                .append(" shape A,").append(nl)
                .append(" the same figure in both A rows; bwd/vecapi below 1: attn4j is faster.)").append(nl);
        return sb.toString();
    }

    /** A median in ms, 3 decimals, or "n/a" when the benchmark gave no result. */
    private static String ms(Measured m) {
        return m == null ? "n/a" : fmt(m.medianMs(), 3);
    }

    /**
     * The decode steps (issue 12): per layer and cache length, both medians, the ratio
     * against its target, bytes of Java heap per step (the allocation probe), and the
     * cost per 1k cached positions between lengths, which is flat when the step grows
     * linearly with the cache.
     */
    private String decodeSection(Map<String, Double> probes) {
        StringBuilder sb = new StringBuilder("decode step, B = 1, D = 512, 8 query heads of 64 (mha: 8 key/value heads; "
                + "gqa: 2), one new token against a cache of `length` positions, one thread:")
                .append(System.lineSeparator());
        sb.append(String.format(Locale.ROOT, "%-6s %7s %10s %10s %7s %8s %12s %22s%n", "layer", "length",
                "attn4j_ms", "ort_ms", "ratio", "target", "attn4j B/step", "ms per 1k (attn4j/ORT)"));
        for (String layer : DECODE_LAYERS) {
            Measured prevA = null;
            Measured prevO = null;
            int prevLength = 0;
            for (int length : DECODE_LENGTHS) {
                Map<String, String> p = Map.of("layer", layer, "length", Integer.toString(length));
                Measured a = find("DecodeStepBenchmark.attn4j", p);
                Measured o = find("DecodeStepBenchmark.onnxRuntime", p);
                double ratio = a == null || o == null ? Double.NaN : a.medianMs() / o.medianMs();
                Double probe = probes.get("attn4j decode-" + layer + "-" + length + " 1");
                String slope = "";
                if (prevA != null && a != null && prevO != null && o != null) {
                    double k = (length - prevLength) / 1000.0;
                    slope = fmt((a.medianMs() - prevA.medianMs()) / k, 3) + " / "
                            + fmt((o.medianMs() - prevO.medianMs()) / k, 3);
                }
                sb.append(String.format(Locale.ROOT, "%-6s %7d %10s %10s %7s %8s %12s %22s%n", layer, length,
                        ms(a), ms(o),
                        fmt(ratio, 2), ratio <= DECODE_TARGET ? "met" : "MISSED",
                        probe == null ? "n/a" : fmt(probe, 0), slope));
                prevA = a;
                prevO = o;
                prevLength = length;
            }
        }
        sb.append("(target: attn4j/ORT <= ").append(DECODE_TARGET).append(" per step at every length; ms per 1k = the"
                + " step's growth per 1,000 cached positions between this length and the one before)")
                .append(System.lineSeparator());
        return sb.toString();
    }

    /** Every contender's median, one line each, and the ceiling. */
    private String details() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%-44s %7s %7s %10s %9s %12s%n", "benchmark", "shape", "threads",
                "median ms", "GFLOP/s", "JMH B/op"));
        List<RunResult> sorted = new ArrayList<>(results);
        sorted.sort(RunResult.DEFAULT_SORT_COMPARATOR);
        for (RunResult r : sorted) {
            String bench = r.getParams().getBenchmark();
            bench = bench.substring(bench.lastIndexOf('.', bench.lastIndexOf('.') - 1) + 1);
            String shape = param(r, "shape");
            String route = param(r, "route");
            if (!route.isEmpty()) {
                bench += " " + route;
            }
            boolean decode = bench.startsWith("DecodeStep");
            if (decode) {
                shape = param(r, "layer") + "/" + param(r, "length");
            }
            boolean layer = bench.startsWith("MhaLayer") || bench.startsWith("BackwardBenchmark.layer");
            double flops = bench.startsWith("Sgemm") ? SgemmCeilingBenchmark.FLOPS
                    : bench.startsWith("MhaLayer") ? MhaLayerBenchmark.flops()
                    : bench.startsWith("Backward") ? BackwardBenchmark.flops(bench.substring(bench.indexOf('.') + 1),
                            shape)
                    : decode ? DecodeStepBenchmark.flops(param(r, "layer"), Integer.parseInt(param(r, "length")))
                    : CoreShape.valueOf(shape).flops();
            double ms = r.getPrimaryResult().getStatistics().getPercentile(50);
            Result<?> alloc = r.getSecondaryResults().get("gc.alloc.rate.norm");
            sb.append(String.format(Locale.ROOT, "%-44s %7s %7s %10.3f %9.1f %12.0f%n", bench,
                    shape.isEmpty() ? (layer ? "C" : "-") : shape, param(r, "threads"), ms,
                    flops / (ms * 1e6), alloc == null ? Double.NaN : alloc.getScore()));
        }
        sb.append("(JMH B/op is gc.alloc.rate.norm; in sample-time mode it includes the harness's per-iteration")
                .append(System.lineSeparator())
                .append(" sample buffers spread over the iteration's calls, so it overstates slow calls; see the")
                .append(System.lineSeparator())
                .append(" allocation probe below for exact bytes per call.)").append(System.lineSeparator());
        return sb.toString();
    }

    private static String param(RunResult r, String key) {
        String v = r.getParams().getParam(key);
        return v == null ? "" : v;
    }

    /** Targets, met or missed, and allocation per call. */
    private String targets(List<Row> rows) {
        StringBuilder sb = new StringBuilder("targets:").append(System.lineSeparator());
        Map<String, Row> byName = new LinkedHashMap<>();
        rows.forEach(r -> byName.put(r.name(), r));
        for (Row r : rows) {
            Double target = RATIO_TARGETS.get(r.name());
            if (target != null) {
                line(sb, r.name() + " attn4j/ORT <= " + target, fmt(r.ratio(), 2), r.ratio() <= target);
            }
        }
        Row a1 = byName.get("A1");
        Row a2 = byName.get("A2");
        if (a1 != null && a2 != null && a1.attn4j() != null && a2.attn4j() != null) {
            double speedup = a1.attn4j().medianMs() / a2.attn4j().medianMs();
            line(sb, "A 2 threads >= 1.6x faster than 1", fmt(speedup, 2) + "x", speedup >= 1.6);
        }
        Row c1 = byName.get("C1");
        Row c2 = byName.get("C2");
        if (c1 != null && c2 != null && c1.attn4j() != null && c2.attn4j() != null) {
            double speedup = c1.attn4j().medianMs() / c2.attn4j().medianMs();
            line(sb, "C 2 threads >= 1.8x faster than 1", fmt(speedup, 2) + "x", speedup >= 1.8);
        }
        Row e1 = byName.get("E1");
        if (a1 != null && e1 != null) {
            double per = a1.gflops() / e1.gflops();
            line(sb, "E per-FLOP within 1.2x of A (A GFLOP/s / E GFLOP/s <= 1.2)", fmt(per, 2), per <= 1.2);
        }
        for (Row r : rows) {
            if (r.probe() != null) {
                line(sb, r.name() + " attn4j allocation <= 64 B/call", fmt(r.probe(), 0) + " B/call"
                        + (r.ortProbe() != null ? " (ONNX Runtime: " + fmt(r.ortProbe(), 0) + " B/call)" : ""),
                        r.probe() <= 64);
            }
        }
        sb.append(workspace());
        sb.append(ceilingScaling());
        return sb.toString();
    }

    /**
     * The 2-thread sgemm against the 1-thread one: on a quiet 2-core machine close to 2x.
     * Far below that, the second core was busy with other work while the suite ran, and
     * every 2-thread row measures that as much as the code.
     */
    private String ceilingScaling() {
        Measured c1 = find("SgemmCeilingBenchmark.sgemm", Map.of("threads", "1"));
        Measured c2 = find("SgemmCeilingBenchmark.sgemm", Map.of("threads", "2"));
        double one = c1 == null ? Double.NaN : SgemmCeilingBenchmark.FLOPS / (c1.medianMs() * 1e6);
        double two = c2 == null ? Double.NaN : SgemmCeilingBenchmark.FLOPS / (c2.medianMs() * 1e6);
        if (Double.isNaN(one) || Double.isNaN(two)) {
            return "";
        }
        String nl = System.lineSeparator();
        double scaling = two / one;
        String s = String.format(Locale.ROOT, "  sgemm ceiling: %.1f GFLOP/s on 1 thread, %.1f on 2 (%.2fx)%n", one,
                two, scaling);
        if (scaling < 1.5) {
            s += "  WARNING: 2 threads gave the 2048^3 sgemm only " + fmt(scaling, 2) + "x of 1 thread: the machine's"
                    + nl + "  second core was busy with other work during this run, so the 2-thread rows (and the A"
                    + nl + "  2-thread target) measure that contention, not the code." + nl;
        }
        return s;
    }

    /** Shape E's memory beyond inputs and output: the fused kernel's workspace against the score matrix. */
    private static String workspace() {
        CoreShape e = CoreShape.E;
        long scores = (long) e.batch * e.heads * e.t * e.s * Float.BYTES;
        String unfused = "the unfused path's score matrix is " + scores / (1 << 20) + " MiB";
        if (!Attn4jCore.fusedAvailable()) {
            return "  E workspace: this attn4j has no fused kernel; " + unfused + System.lineSeparator();
        }
        long bytes = Attn4jCore.fusedWorkspaceBytes(e.t, e.s, e.d, e.d, 1);
        if (bytes < 0) {
            return "  E workspace: the library exposes no workspace size for the fused kernel; " + unfused
                    + System.lineSeparator();
        }
        return "  E workspace of the fused kernel (attn4j_flash_workspace_bytes, 1 thread): " + bytes + " B; "
                + unfused + System.lineSeparator();
    }

    private static void line(StringBuilder sb, String what, String value, boolean met) {
        sb.append(String.format(Locale.ROOT, "  %-62s %-44s %s%n", what, value, met ? "met" : "MISSED"));
    }

    private static String fmt(double v, int decimals) {
        return Double.isNaN(v) ? "n/a" : String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    /** The final table, in the column order. */
    private static String table(List<Row> rows) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%-5s %7s %10s %10s %7s %10s %10s%n", "shape", "threads", "attn4j_ms",
                "ort_ms", "ratio", "GFLOP/s", "%sgemm"));
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "%-5s %7d %10s %10s %7s %10s %10s%n", r.shape(), r.threads(),
                    ms(r.attn4j()), ms(r.ort()),
                    fmt(r.ratio(), 2), fmt(r.gflops(), 1),
                    fmt(100 * r.gflops() / r.ceilingGflops(), 0) + "%"));
        }
        return sb.toString();
    }

    private void drawRatios(Path png) throws IOException {
        List<Row> rows = rows();
        List<String> names = new ArrayList<>();
        List<Double> values = new ArrayList<>();
        for (Row r : rows) {
            names.add(r.name());
            values.add(r.ratio());
        }
        if (only.contains(DECODE)) {
            for (String layer : DECODE_LAYERS) {
                for (int length : DECODE_LENGTHS) {
                    Map<String, String> p = Map.of("layer", layer, "length", Integer.toString(length));
                    Measured a = find("DecodeStepBenchmark.attn4j", p);
                    Measured o = find("DecodeStepBenchmark.onnxRuntime", p);
                    names.add("G " + layer + " " + length);
                    values.add(a == null || o == null ? Double.NaN : a.medianMs() / o.medianMs());
                }
            }
        }
        double[] ratios = values.stream().mapToDouble(Double::doubleValue).toArray();
        drawRatios(png, names, ratios,
                "attn4j time / ONNX Runtime time (lower is better), " + date + (quick ? ", --quick" : ""));
    }

    /**
     * A bar's two label lines: "A1" over "1 thread" for a main row, "G mha" over "128 pos."
     * for a decode row ("G mha 128"), short enough not to run into the next bar's.
     */
    static String[] axisLabel(String name) {
        if (name.startsWith("G ")) {
            String[] parts = name.split(" ");
            return new String[] {"G " + parts[1], parts[2] + " pos."};
        }
        int threads = name.charAt(1) - '0';
        return new String[] {name, threads + (threads == 1 ? " thread" : " threads")};
    }

    /** The largest ratio the chart's axis shows; taller bars are cut there and marked. */
    static final double CHART_CAP = 3.0;

    /**
     * Bars of attn4j / ONNX Runtime per row ("A1", ...; NaN = no result), a dashed line
     * at 1 (parity) and a blue tick at each row's target; green where the target is met.
     */
    static void drawRatios(Path png, List<String> names, double[] ratios, String title) throws IOException {
        int w = Math.max(900, 70 * names.size() + 90);
        int h = 480;
        int left = 70;
        int right = 20;
        int top = 50;
        int bottom = 70;
        double max = 1.5;
        for (double r : ratios) {
            if (!Double.isNaN(r)) {
                max = Math.max(max, Math.ceil(Math.min(r, CHART_CAP) * 4 + 0.5) / 4);
            }
        }
        double step = max <= 2 ? 0.25 : 0.5;
        BufferedImage image = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, w, h);
            g.setColor(Color.BLACK);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
            g.drawString(title, left, 28);
            int plotH = h - top - bottom;
            int plotW = w - left - right;
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
            for (double y = 0; y <= max + 1e-9; y += step) {
                int py = top + plotH - (int) Math.round(y / max * plotH);
                g.setColor(new Color(225, 225, 225));
                g.drawLine(left, py, left + plotW, py);
                g.setColor(Color.DARK_GRAY);
                g.drawString(String.format(Locale.ROOT, "%.2f", y), 25, py + 4);
            }
            int slot = plotW / Math.max(1, names.size());
            for (int i = 0; i < names.size(); i++) {
                String name = names.get(i);
                int x = left + i * slot + slot / 4;
                int bw = slot / 2;
                double ratio = ratios[i];
                Double target = name.startsWith("G ") ? Double.valueOf(DECODE_TARGET) : RATIO_TARGETS.get(name);
                if (!Double.isNaN(ratio)) {
                    boolean cut = ratio > max;
                    int bh = (int) Math.round(Math.min(ratio, max) / max * plotH);
                    boolean met = target == null || ratio <= target;
                    g.setColor(met ? new Color(60, 140, 80) : new Color(200, 90, 60));
                    g.fillRect(x, top + plotH - bh, bw, bh);
                    if (cut) { // a white zig-zag through the bar: the axis does not reach its top
                        g.setColor(Color.WHITE);
                        g.setStroke(new BasicStroke(3));
                        int y0 = top + 14;
                        g.drawPolyline(new int[] {x - 2, x + bw / 3, x + 2 * bw / 3, x + bw + 2},
                                new int[] {y0, y0 - 6, y0 + 6, y0}, 4);
                        g.setStroke(new BasicStroke(1));
                    }
                    g.setColor(Color.BLACK);
                    String value = String.format(Locale.ROOT, "%.2f", ratio);
                    g.drawString(value, x + (bw - g.getFontMetrics().stringWidth(value)) / 2,
                            top + plotH - bh - 5);
                } else {
                    g.setColor(Color.GRAY);
                    g.drawString("n/a", x + bw / 2 - 10, top + plotH - 5);
                }
                if (target != null) {
                    int ty = top + plotH - (int) Math.round(target / max * plotH);
                    g.setColor(new Color(30, 60, 200));
                    g.setStroke(new BasicStroke(3));
                    g.drawLine(x - 6, ty, x + bw + 6, ty);
                    g.setStroke(new BasicStroke(1));
                }
                g.setColor(Color.BLACK);
                String[] labels = axisLabel(name);
                for (int line = 0; line < 2; line++) {
                    String label = labels[line];
                    g.drawString(label, x + (bw - g.getFontMetrics().stringWidth(label)) / 2,
                            top + plotH + 16 + 14 * line);
                }
            }
            int parity = top + plotH - (int) Math.round(1 / max * plotH);
            g.setColor(Color.BLACK);
            g.setStroke(new BasicStroke(1, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10, new float[] {6, 4}, 0));
            g.drawLine(left, parity, left + plotW, parity);
            g.setStroke(new BasicStroke(1));
            g.drawLine(left, top, left, top + plotH);
            g.drawLine(left, top + plotH, left + plotW, top + plotH);
            g.drawString("dashed: parity with ONNX Runtime; blue: target; green bar: target met, red: missed; "
                    + "bars above " + fmt(CHART_CAP, 1) + " are cut (zig-zag)", left, h - 18);
        } finally {
            g.dispose();
        }
        ImageIO.write(image, "png", png.toFile());
    }

    private static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | RuntimeException e) {
            return "unknown";
        }
    }

    /** What /proc/cpuinfo says about the CPU. */
    static final class Machine {
        private Machine() {}

        /** Whether the OpenBLAS variables that change its kernel choice were set for this run. */
        static String openblasEnv() {
            StringBuilder sb = new StringBuilder();
            for (String name : new String[] {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}) {
                String v = System.getenv(name);
                sb.append(sb.isEmpty() ? "" : ", ").append(name).append(v == null ? " unset" : "=" + v);
            }
            return sb.toString();
        }

        static String cpuModel() {
            return cpuinfo("model name");
        }

        static String cpuFlags() {
            String flags = " " + cpuinfo("flags") + " ";
            List<String> found = new ArrayList<>();
            for (String f : List.of("avx512f", "avx2", "fma")) {
                found.add(f + (flags.contains(" " + f + " ") ? " yes" : " no"));
            }
            return String.join(", ", found);
        }

        private static String cpuinfo(String key) {
            try {
                for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                    if (line.startsWith(key)) {
                        return line.substring(line.indexOf(':') + 1).trim();
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return "unknown";
        }
    }
}
