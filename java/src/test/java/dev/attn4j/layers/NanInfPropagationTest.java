package dev.attn4j.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.MaskConvention;
import dev.attn4j.NativeTests;
import dev.attn4j.Ops;
import dev.attn4j.TestData;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * NaN and infinity in the inputs give Keras's result, never a crash or a hang (every
 * case runs under a deadline). What Keras computes, from its formulas:
 * <ul>
 *   <li>a NaN in query row i makes score row i NaN, so its softmax and output row i are
 *       NaN; other rows are untouched;
 *   <li>a NaN in key row j makes score column j NaN, so every softmax row of that batch
 *       entry, and every output row, is NaN;
 *   <li>a NaN in value row j reaches every output row of that batch entry (a weight of
 *       exactly 0 times NaN is NaN), never the scores;
 *   <li>+inf in a query feature gives +-inf scores and so a NaN row in the dot-product
 *       layers, but tanh(+inf) = 1 in concat / additive scores: a finite row, equal to
 *       the one a huge finite value gives;
 *   <li>masks: Attention and AdditiveAttention subtract 1e9 from masked scores
 *       ({@code NaN - 1e9} stays NaN) and multiply masked query rows by 0 (NaN stays
 *       NaN); the multi-head layers replace masked scores ({@code where}), so a NaN
 *       there vanishes and the output equals the one a finite value there gives.
 * </ul>
 * Inputs are (B=2, T=4, D=6) queries and (2, S=5, 6) values and keys.
 */
class NanInfPropagationTest {
    private static final int B = 2;
    private static final int T = 4;
    private static final int S = 5;
    private static final int D = 6;
    private static final Duration DEADLINE = Duration.ofSeconds(30);

    enum Kind { DOT, CONCAT, ADDITIVE, MHA, GQA }

    static Stream<Arguments> layersAndPaths() {
        List<Arguments> list = new ArrayList<>();
        for (Kind k : Kind.values()) {
            list.add(Arguments.of(k, false));
            list.add(Arguments.of(k, true));
        }
        return list.stream();
    }

    private static AttentionLayer layer(Kind kind) {
        AttentionLayer l = switch (kind) {
            case DOT -> Attention.builder().useScale(true).build();
            case CONCAT -> Attention.builder().scoreMode("concat").useScale(true).build();
            case ADDITIVE -> AdditiveAttention.builder().seed(7L).build();
            case MHA -> MultiHeadAttention.builder().numHeads(2).keyDim(3).seed(8L).build();
            case GQA -> GroupQueryAttention.builder().headDim(3).numQueryHeads(4).numKeyValueHeads(2).seed(9L).build();
        };
        l.build(new long[] {B, T, D}, new long[] {B, S, D}, new long[] {B, S, D});
        SplittableRandom r = new SplittableRandom(kind.ordinal());
        List<float[]> w = new ArrayList<>();
        for (Weight x : l.weights()) {
            w.add(TestData.floats(r, (int) x.size(), 0.2, 0.9)); // no exact zeros: inf * w is never NaN by chance
        }
        l.setWeights(w.toArray(float[][]::new));
        return l;
    }

    /** The inputs: query, value, key; finite, in [-1, 1] without zeros. */
    private static float[][] inputs() {
        SplittableRandom r = new SplittableRandom(42);
        float[][] in = {new float[B * T * D], new float[B * S * D], new float[B * S * D]};
        for (float[] x : in) {
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (r.nextBoolean() ? r.nextDouble(0.1, 1) : -r.nextDouble(0.1, 1));
            }
        }
        return in;
    }

    /** Output and scores (null when not asked for) of one call. */
    private static float[][] call(AttentionLayer l, float[][] in, boolean scores, boolean[] valueMask,
                                  boolean[] queryMask) {
        try (Arena arena = Arena.ofConfined()) {
            CallArgs args = CallArgs.of(Tensor.of(arena, in[0], B, T, D), Tensor.of(arena, in[1], B, S, D))
                    .withKey(Tensor.of(arena, in[2], B, S, D)).withReturnAttentionScores(scores)
                    .withValueMask(valueMask == null ? null : Tensor.ofMask(arena, valueMask, B, S))
                    .withQueryMask(queryMask == null ? null : Tensor.ofMask(arena, queryMask, B, T));
            AttentionResult res = l.call(arena, args);
            return new float[][] {res.output().toFloatArray(),
                    res.attentionScores() == null ? null : res.attentionScores().toFloatArray()};
        }
    }

    private static void setRow(float[] x, int batch, int row, int rows, float value) {
        int from = (batch * rows + row) * D;
        java.util.Arrays.fill(x, from, from + D, value);
    }

    /** Output row (batch, i) (all features): NaN when expected, finite otherwise. */
    /** Every layer here maps the D = 6 query features to 6 output features. */
    private static void assertRows(String what, float[] out, int width, RowRule rule) {
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < T; i++) {
                for (int c = 0; c < width; c++) {
                    float v = out[(b * T + i) * width + c];
                    if (rule.nan(b, i)) {
                        assertTrue(Float.isNaN(v), what + ": output (" + b + ", " + i + ", " + c + ") = " + v
                                + ", expected NaN");
                    } else {
                        assertTrue(Float.isFinite(v), what + ": output (" + b + ", " + i + ", " + c + ") = " + v
                                + ", expected finite");
                    }
                }
            }
        }
    }

    @FunctionalInterface
    interface RowRule {
        boolean nan(int batch, int row);
    }

    /** Scores are (B, [heads,] T, S): entry (b, *, i, *) NaN when the rule says so, finite otherwise. */
    private static void assertScoreRows(String what, float[] scores, RowRule rule) {
        int heads = scores.length / (B * T * S);
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < T; i++) {
                    for (int j = 0; j < S; j++) {
                        float v = scores[((b * heads + h) * T + i) * S + j];
                        assertTrue(rule.nan(b, i) ? Float.isNaN(v) : Float.isFinite(v),
                                what + ": score (" + b + ", " + h + ", " + i + ", " + j + ") = " + v);
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}, scores {1}")
    @MethodSource("layersAndPaths")
    void nanInAQueryRowStaysInThatRow(Kind kind, boolean scores) {
        assertTimeoutPreemptively(DEADLINE, () -> {
            NativeTests.requireNative();
            try (AttentionLayer l = layer(kind)) {
                float[][] in = inputs();
                in[0][(0 * T + 1) * D + 2] = Float.NaN; // query (0, 1, 2)
                float[][] got = call(l, in, scores, null, null);
                RowRule rule = (b, i) -> b == 0 && i == 1;
                assertRows(kind + " NaN query", got[0], D, rule);
                if (scores) {
                    assertScoreRows(kind + " NaN query", got[1], rule);
                }
            }
        });
    }

    @ParameterizedTest(name = "{0}, scores {1}")
    @MethodSource("layersAndPaths")
    void nanInAKeyRowReachesItsWholeBatchEntry(Kind kind, boolean scores) {
        assertTimeoutPreemptively(DEADLINE, () -> {
            NativeTests.requireNative();
            try (AttentionLayer l = layer(kind)) {
                float[][] in = inputs();
                in[2][(1 * S + 0) * D + 4] = Float.NaN; // key (1, 0, 4)
                float[][] got = call(l, in, scores, null, null);
                RowRule rule = (b, i) -> b == 1;
                assertRows(kind + " NaN key", got[0], D, rule);
                if (scores) {
                    assertScoreRows(kind + " NaN key", got[1], rule);
                }
            }
        });
    }

    @ParameterizedTest(name = "{0}, scores {1}")
    @MethodSource("layersAndPaths")
    void nanInAValueRowReachesEveryOutputRowButNoScore(Kind kind, boolean scores) {
        assertTimeoutPreemptively(DEADLINE, () -> {
            NativeTests.requireNative();
            try (AttentionLayer l = layer(kind)) {
                float[][] in = inputs();
                setRow(in[1], 1, 3, S, Float.NaN); // value row (1, 3)
                float[][] got = call(l, in, scores, null, null);
                assertRows(kind + " NaN value", got[0], D, (b, i) -> b == 1);
                if (scores) {
                    assertScoreRows(kind + " NaN value", got[1], (b, i) -> false);
                }
            }
        });
    }

    @ParameterizedTest(name = "{0}, scores {1}")
    @MethodSource("layersAndPaths")
    void infinityInAQuery(Kind kind, boolean scores) {
        assertTimeoutPreemptively(DEADLINE, () -> {
            NativeTests.requireNative();
            try (AttentionLayer l = layer(kind)) {
                float[][] in = inputs();
                int at = (0 * T + 2) * D;
                in[0][at] = Float.POSITIVE_INFINITY; // query (0, 2, 0)
                float[][] got = call(l, in, scores, null, null);
                if (kind == Kind.CONCAT || kind == Kind.ADDITIVE) {
                    // tanh(+inf) = 1, as for any huge finite value: a finite row, the same one.
                    assertRows(kind + " +inf query", got[0], D, (b, i) -> false);
                    in[0][at] = 1e30f;
                    float[][] huge = call(l, in, scores, null, null);
                    assertArrayEquals(huge[0], got[0], kind + ": +inf and 1e30 give different outputs");
                } else {
                    RowRule rule = (b, i) -> b == 0 && i == 2;
                    assertRows(kind + " +inf query", got[0], D, rule);
                    if (scores) {
                        assertScoreRows(kind + " +inf query", got[1], rule);
                    }
                }
            }
        });
    }

    @ParameterizedTest(name = "{0}, scores {1}")
    @MethodSource("layersAndPaths")
    void nanUnderAMask(Kind kind, boolean scores) {
        assertTimeoutPreemptively(DEADLINE, () -> {
            NativeTests.requireNative();
            try (AttentionLayer l = layer(kind)) {
                float[][] in = inputs();
                boolean[] valueMask = new boolean[B * S];
                java.util.Arrays.fill(valueMask, true);
                valueMask[1 * S + 0] = false; // key position (1, 0) masked
                boolean[] queryMask = new boolean[B * T];
                java.util.Arrays.fill(queryMask, true);
                queryMask[0 * T + 3] = false; // query position (0, 3) masked
                float[][] clean = call(l, in, scores, valueMask, queryMask);
                setRow(in[2], 1, 0, S, Float.NaN); // the masked key row
                setRow(in[0], 0, 3, T, Float.NaN); // the masked query row
                float[][] got = call(l, in, scores, valueMask, queryMask);
                if (kind == Kind.MHA || kind == Kind.GQA) {
                    // where(mask, s, -big): masked NaNs are replaced, the result is the clean one.
                    assertArrayEquals(clean[0], got[0], kind + ": a masked NaN changed the output");
                    if (scores) {
                        assertArrayEquals(clean[1], got[1], kind + ": a masked NaN changed the scores");
                    }
                } else {
                    // s - 1e9 keeps the key's NaN (all of batch 1); output * 0 keeps the query's.
                    assertRows(kind + " masked NaN", got[0], D, (b, i) -> b == 1 || (b == 0 && i == 3));
                }
            }
        });
    }

    @Test
    void opsPropagateNanAndInfinityRowByRow() {
        assertTimeoutPreemptively(DEADLINE, () -> {
            NativeTests.requireNative();
            try (Arena arena = Arena.ofConfined()) {
                for (MaskConvention convention : MaskConvention.values()) {
                    // rows: 0 NaN kept, 1 +inf kept, 2 NaN masked, 3 clean
                    float[] s = TestData.floats(new SplittableRandom(1), 4 * 7, -1, 1);
                    s[0 * 7 + 3] = Float.NaN;
                    s[1 * 7 + 5] = Float.POSITIVE_INFINITY;
                    s[2 * 7 + 6] = Float.NaN;
                    boolean[] keep = new boolean[4 * 7];
                    java.util.Arrays.fill(keep, true);
                    keep[2 * 7 + 6] = false;
                    Tensor scores = Tensor.of(arena, s, 4, 7);
                    Ops.maskedSoftmax(scores, 1f, Tensor.ofMask(arena, keep, 4, 7), false, convention);
                    float[] p = scores.toFloatArray();
                    for (int j = 0; j < 7; j++) {
                        assertTrue(Float.isNaN(p[j]), convention + ": kept NaN row");
                        assertTrue(Float.isNaN(p[7 + j]), convention + ": row with +inf (inf - inf)");
                        boolean maskedNanVanishes = convention != MaskConvention.SUBTRACT;
                        assertTrue(maskedNanVanishes ? Float.isFinite(p[14 + j]) : Float.isNaN(p[14 + j]),
                                convention + ": masked NaN row, " + p[14 + j]);
                        assertTrue(Float.isFinite(p[21 + j]), convention + ": clean row");
                    }
                }
                Tensor a = Tensor.of(arena, new float[] {1, 2, Float.NaN, 4, 5, 6}, 3, 2);
                Tensor b = Tensor.of(arena, new float[] {1, 0, 0, 1}, 2, 2);
                Tensor out = Tensor.allocate(arena, 3, 2);
                Ops.matmul(a, b, out);
                float[] o = out.toFloatArray();
                assertTrue(Float.isFinite(o[0]) && Float.isFinite(o[1]), "row 0");
                assertTrue(Float.isNaN(o[2]) && Float.isNaN(o[3]), "row 1 has the NaN");
                assertTrue(Float.isFinite(o[4]) && Float.isFinite(o[5]), "row 2");
            }
        });
    }
}
