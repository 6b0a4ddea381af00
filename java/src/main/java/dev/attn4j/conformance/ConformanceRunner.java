package dev.attn4j.conformance;

import dev.attn4j.Tensor;
import dev.attn4j.layers.AttentionLayer;
import dev.attn4j.layers.AttentionResult;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.Layers;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runs Keras golden cases against attn4j: builds each layer from its class name and
 * config, sets its weights, calls it with the case's inputs, masks and call arguments,
 * and compares the output and the attention scores with what Keras returned, within
 * {@value #ABS_TOLERANCE} absolute + {@value #REL_TOLERANCE} relative. A case attn4j
 * cannot run (an unknown class, mask or call argument) is a failure, never a skip. The
 * runner looks only at a case's contents, never at its id.
 */
public final class ConformanceRunner {
    public static final double ABS_TOLERANCE = 1e-5;
    public static final double REL_TOLERANCE = 1e-5;

    private static final Set<String> CALL_KWARGS = Set.of("return_attention_scores", "use_causal_mask", "training");

    private ConformanceRunner() {}

    /**
     * The outcome of one case.
     *
     * @param worstOutput largest |attn4j - Keras| over the output (NaN if not compared)
     * @param worstScores the same over the attention scores (NaN if not compared)
     * @param message     why it failed, or empty
     */
    public record CaseResult(GoldenCase goldenCase, boolean passed, double worstOutput, double worstScores,
                             String message) {
        @Override
        public String toString() {
            return (passed ? "PASS " : "FAIL ") + goldenCase.id() + "  output max|diff| " + fmt(worstOutput)
                    + "  scores max|diff| " + fmt(worstScores) + (message.isEmpty() ? "" : "  " + message);
        }

        private static String fmt(double d) {
            return Double.isNaN(d) ? "-" : String.format("%.2e", d);
        }
    }

    /** Runs one case; never throws for a problem of the case (that is a failed result). */
    public static CaseResult run(GoldenCase c) {
        double[] worst = {Double.NaN, Double.NaN};
        try (Arena arena = Arena.ofConfined()) {
            if (c.className() == null || c.config() == null) {
                return fail(c, worst, "the case has no class_name or config");
            }
            try (AttentionLayer layer = Layers.fromConfig(c.className(), c.config())) {
                Map<String, Tensor> inputs = new HashMap<>();
                for (GoldenCase.Array a : c.inputs().values()) {
                    if (!Set.of("query", "value", "key").contains(a.name())) {
                        return fail(c, worst, "unsupported input '" + a.name() + "'");
                    }
                }
                for (String name : List.of("query", "value", "key")) {
                    GoldenCase.Array a = c.inputs().get(name);
                    if (a != null && a.sameTensorAs() == null) {
                        inputs.put(name, tensor(arena, a));
                    }
                }
                for (String name : List.of("query", "value", "key")) {
                    GoldenCase.Array a = c.inputs().get(name);
                    if (a != null && a.sameTensorAs() != null) {
                        Tensor same = inputs.get(a.sameTensorAs());
                        if (same == null) {
                            return fail(c, worst, "input '" + name + "' is the same tensor as missing '"
                                    + a.sameTensorAs() + "'");
                        }
                        inputs.put(name, same);
                    }
                }
                if (inputs.get("query") == null || inputs.get("value") == null) {
                    return fail(c, worst, "the case needs query and value inputs");
                }
                long[][] shapes = buildShapes(c.buildInputShapes());
                layer.build(shapes[0], shapes[1], shapes[2]);
                List<Tensor> weights = new ArrayList<>();
                for (GoldenCase.Array w : c.weights()) {
                    weights.add(tensor(arena, w));
                }
                layer.setWeights(weights);

                CallArgs args = CallArgs.of(inputs.get("query"), inputs.get("value")).withKey(inputs.get("key"));
                for (Map.Entry<String, GoldenCase.Array> m : c.masks().entrySet()) {
                    if (m.getKey().endsWith("_ignored")) {
                        // A mask the case records as passed to Keras and ignored by it
                        // (e.g. MHA's query_mask= call argument): it must not matter.
                        continue;
                    }
                    Tensor mask = tensor(arena, m.getValue());
                    args = switch (m.getKey()) {
                        case "query_mask" -> args.withQueryMask(mask);
                        case "value_mask" -> args.withValueMask(mask);
                        case "key_mask" -> args.withKeyMask(mask);
                        case "attention_mask" -> args.withAttentionMask(mask);
                        default -> throw new IllegalArgumentException("unsupported mask '" + m.getKey() + "'");
                    };
                }
                for (Map.Entry<String, Object> kw : c.callKwargs().entrySet()) {
                    if (!CALL_KWARGS.contains(kw.getKey())) {
                        return fail(c, worst, "unsupported call argument '" + kw.getKey() + "'");
                    }
                    boolean on = Boolean.TRUE.equals(kw.getValue());
                    args = switch (kw.getKey()) {
                        case "return_attention_scores" -> args.withReturnAttentionScores(on);
                        case "use_causal_mask" -> args.withUseCausalMask(on);
                        default -> args.withTraining(on);
                    };
                }
                AttentionResult result = layer.call(arena, args);

                StringBuilder why = new StringBuilder();
                GoldenCase.Array out = c.expected().get("output");
                if (out == null) {
                    return fail(c, worst, "the case has no expected output");
                }
                worst[0] = compare("output", result.output(), out, why);
                GoldenCase.Array scores = c.expected().get("attention_scores");
                if (scores != null) {
                    if (result.attentionScores() == null) {
                        why.append("attention_scores expected but not returned; ");
                    } else {
                        worst[1] = compare("attention_scores", result.attentionScores(), scores, why);
                    }
                }
                for (String key : c.expected().keySet()) {
                    if (!key.equals("output") && !key.equals("attention_scores")) {
                        why.append("unsupported expected array '").append(key).append("'; ");
                    }
                }
                return why.isEmpty() ? new CaseResult(c, true, worst[0], worst[1], "")
                        : fail(c, worst, why.toString().replaceAll("; $", ""));
            }
        } catch (RuntimeException e) {
            return fail(c, worst, e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    private static CaseResult fail(GoldenCase c, double[] worst, String message) {
        return new CaseResult(c, false, worst[0], worst[1], message);
    }

    /** Largest |a - e|; appends to {@code why} when a shape or a value is off. */
    private static double compare(String what, Tensor actual, GoldenCase.Array expected, StringBuilder why) {
        if (!Arrays.equals(actual.shape(), expected.shape())) {
            why.append(what).append(" shape ").append(Arrays.toString(actual.shape())).append(" != expected ")
                    .append(Arrays.toString(expected.shape())).append("; ");
            return Double.NaN;
        }
        float[] a = actual.toFloatArray();
        float[] e = expected.floats();
        double worst = 0;
        int bad = 0;
        int firstBad = -1;
        for (int i = 0; i < a.length; i++) {
            if (Float.isNaN(e[i]) || Float.isNaN(a[i])) {
                if (Float.isNaN(e[i]) != Float.isNaN(a[i])) {
                    bad++;
                    firstBad = firstBad < 0 ? i : firstBad;
                    worst = Double.POSITIVE_INFINITY;
                }
                continue;
            }
            double d = Math.abs((double) a[i] - e[i]);
            if (e[i] == a[i]) {
                d = 0; // equal infinities
            }
            worst = Math.max(worst, d);
            if (!(d <= ABS_TOLERANCE + REL_TOLERANCE * Math.abs(e[i]))) {
                bad++;
                firstBad = firstBad < 0 ? i : firstBad;
            }
        }
        if (bad > 0) {
            why.append(what).append(": ").append(bad).append(" of ").append(a.length)
                    .append(" values off, first at flat index ").append(firstBad).append(" (attn4j ")
                    .append(a[firstBad]).append(", Keras ").append(e[firstBad]).append("); ");
        }
        return worst;
    }

    private static Tensor tensor(Arena arena, GoldenCase.Array a) {
        return a.bools() != null ? Tensor.ofMask(arena, a.bools(), a.shape()) : Tensor.of(arena, a.floats(), a.shape());
    }

    /** build_input_shapes: [[q], [v], [k]?] (single-head layers) or {query, value, key} (multi-head). */
    @SuppressWarnings("unchecked")
    private static long[][] buildShapes(Object node) {
        Object q;
        Object v;
        Object k;
        if (node instanceof List<?> list) {
            q = list.size() > 0 ? list.get(0) : null;
            v = list.size() > 1 ? list.get(1) : null;
            k = list.size() > 2 ? list.get(2) : null;
        } else if (node instanceof Map<?, ?> map) {
            q = ((Map<String, Object>) map).get("query");
            v = ((Map<String, Object>) map).get("value");
            k = ((Map<String, Object>) map).get("key");
        } else {
            throw new IllegalArgumentException("build_input_shapes must be a list or an object, but is " + node);
        }
        if (q == null || v == null) {
            throw new IllegalArgumentException("build_input_shapes needs query and value shapes: " + node);
        }
        return new long[][] {shape(q), shape(v), k == null ? null : shape(k)};
    }

    private static long[] shape(Object node) {
        List<?> list = (List<?>) node;
        long[] s = new long[list.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = ((Number) list.get(i)).longValue();
        }
        return s;
    }

    /**
     * Runs every case under {@code paths} (files or folders), prints one line per case and
     * a final {@code N passed, N failed} line; returns the process exit code (0 only if
     * every case passed and at least one ran).
     */
    public static int runAll(List<Path> paths, PrintStream out) {
        int passed = 0;
        int failed = 0;
        for (Path p : paths) {
            List<GoldenCase> cases;
            try {
                cases = GoldenCases.load(p);
            } catch (IOException | RuntimeException e) {
                out.println("FAIL " + p + "  cannot read: " + e.getMessage());
                failed++;
                continue;
            }
            for (GoldenCase c : cases) {
                CaseResult r = run(c);
                out.println(r);
                if (r.passed()) {
                    passed++;
                } else {
                    failed++;
                }
            }
        }
        out.println(passed + " passed, " + failed + " failed");
        return failed == 0 && passed > 0 ? 0 : 1;
    }
}
