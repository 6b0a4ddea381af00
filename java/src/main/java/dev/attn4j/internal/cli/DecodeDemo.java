package dev.attn4j.internal.cli;

import dev.attn4j.Tensor;
import dev.attn4j.layers.AttentionLayer;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.GroupQueryAttention;
import dev.attn4j.layers.KvCache;
import dev.attn4j.layers.MultiHeadAttention;
import dev.attn4j.layers.Weight;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * {@code ./attn4j decode [--layer mha|gqa] [--prompt P] [--tokens N] [--batch B]}: a
 * greedy-style decoding loop over one attention layer with a {@link KvCache}. The
 * prompt (P random embeddings, d_model 512, 8 heads of 64; GQA with 2 key/value heads)
 * goes through the layer as one chunk; then each step feeds the last output back in as
 * the next token, one position per row, and the tokens per second are printed. At the
 * end the whole sequence (prompt and generated tokens) goes through one full causal call
 * of the same layer, whose rows must match the cached ones (1e-5): the check that the
 * cache changed nothing but the cost.
 */
final class DecodeDemo {
    private static final int D_MODEL = 512;
    private static final int HEADS = 8;
    private static final int HEAD_DIM = 64;
    private static final double TOLERANCE = 1e-5;

    private DecodeDemo() {}

    static int run(String[] args, PrintStream out) {
        String layerKind = "mha";
        int prompt = 128;
        int tokens = 256;
        int batch = 1;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--layer" -> layerKind = value(args, ++i);
                case "--prompt" -> prompt = positive(args, ++i);
                case "--tokens" -> tokens = positive(args, ++i);
                case "--batch" -> batch = positive(args, ++i);
                default -> throw new IllegalArgumentException("unknown option '" + args[i]
                        + "'; usage: attn4j decode [--layer mha|gqa] [--prompt P] [--tokens N] [--batch B]");
            }
        }
        if (!layerKind.equals("mha") && !layerKind.equals("gqa")) {
            throw new IllegalArgumentException("--layer must be mha or gqa, but is '" + layerKind + "'");
        }
        int total = prompt + tokens;
        long[] shape = {batch, 1, D_MODEL};
        try (Arena arena = Arena.ofConfined();
             AttentionLayer layer = layerKind.equals("mha")
                     ? MultiHeadAttention.builder().numHeads(HEADS).keyDim(HEAD_DIM).seed(1L).build()
                     : GroupQueryAttention.builder().headDim(HEAD_DIM).numQueryHeads(HEADS).numKeyValueHeads(2)
                             .seed(1L).build()) {
            layer.build(shape, shape, null);
            // Random weights in place of trained ones (biases too, so they take part).
            SplittableRandom random = new SplittableRandom(7);
            float[][] w = new float[layer.weights().size()][];
            for (int i = 0; i < w.length; i++) {
                Weight x = layer.weights().get(i);
                w[i] = floats(random, (int) x.size(), x.name().equals("bias") ? 0.1 : 0.06);
            }
            layer.setWeights(w);

            // The whole sequence, (B, P + N, D): the prompt now, each generated token written as it comes.
            Tensor sequence = Tensor.allocate(arena, batch, total, D_MODEL);
            Tensor promptIn = Tensor.of(arena, floats(random, batch * prompt * D_MODEL, 1.0), batch, prompt, D_MODEL);
            Tensor promptOut = Tensor.allocate(arena, batch, prompt, D_MODEL);
            for (int b = 0; b < batch; b++) {
                copyRows(promptIn, b, 0, sequence, b, 0, prompt);
            }
            Tensor token = Tensor.allocate(arena, shape);
            Tensor next = Tensor.allocate(arena, shape);
            Tensor cached = Tensor.allocate(arena, batch, total, D_MODEL); // outputs of the cached calls
            try (KvCache cache = layer instanceof MultiHeadAttention m ? KvCache.create(m, batch, total)
                    : KvCache.create((GroupQueryAttention) layer, batch, total)) {
                long t0 = System.nanoTime();
                step(layer, cache, promptIn, promptOut);
                long t1 = System.nanoTime();
                for (int b = 0; b < batch; b++) {
                    copyRows(promptOut, b, 0, cached, b, 0, prompt);
                    copyRows(promptOut, b, prompt - 1, token, b, 0, 1); // greedy-style: feed the output back
                }
                long[] stepNanos = new long[tokens];
                for (int i = 0; i < tokens; i++) {
                    for (int b = 0; b < batch; b++) {
                        copyRows(token, b, 0, sequence, b, prompt + i, 1);
                    }
                    long s = System.nanoTime();
                    step(layer, cache, token, next);
                    stepNanos[i] = System.nanoTime() - s;
                    for (int b = 0; b < batch; b++) {
                        copyRows(next, b, 0, cached, b, prompt + i, 1);
                    }
                    Tensor swap = token;
                    token = next;
                    next = swap;
                }
                long t2 = System.nanoTime();
                long[] sorted = stepNanos.clone();
                Arrays.sort(sorted);
                out.printf(java.util.Locale.ROOT, "attn4j decode: %s layer (d_model %d, %d query heads of %d, %d "
                                + "key/value heads), batch %d, prompt %d, %d new tokens per row%n",
                        layerKind.toUpperCase(java.util.Locale.ROOT), D_MODEL, HEADS, HEAD_DIM,
                        layerKind.equals("mha") ? HEADS : 2, batch, prompt, tokens);
                out.printf(java.util.Locale.ROOT, "  prompt: %.2f ms (%d positions in one chunk)%n", (t1 - t0) / 1e6,
                        prompt);
                out.printf(java.util.Locale.ROOT, "  decode: %.1f tokens/s per row, %.1f tokens/s in all; step "
                                + "median %.3f ms, first %.3f ms, last %.3f ms (cache %d -> %d positions)%n",
                        tokens / ((t2 - t1) / 1e9), (double) tokens * batch / ((t2 - t1) / 1e9),
                        sorted[tokens / 2] / 1e6, stepNanos[0] / 1e6, stepNanos[tokens - 1] / 1e6, prompt, total);
            }
            // One full causal call over the same sequence: the cached rows must be its rows.
            Tensor full = layer.call(arena, CallArgs.of(sequence, sequence).withUseCausalMask(true)).output();
            double err = maxRelError(cached.toFloatArray(), full.toFloatArray());
            boolean ok = err <= TOLERANCE;
            out.printf(java.util.Locale.ROOT, "  check: cached outputs vs one full causal call over all %d "
                    + "positions: max error %.2e (%s, tolerance %.0e)%n", total, err, ok ? "ok" : "FAILED", TOLERANCE);
            return ok ? 0 : 1;
        }
    }

    private static void step(AttentionLayer layer, KvCache cache, Tensor in, Tensor out) {
        if (layer instanceof MultiHeadAttention m) {
            m.callCachedInto(cache, in, in, null, null, out);
        } else {
            ((GroupQueryAttention) layer).callCachedInto(cache, in, in, null, null, out);
        }
    }

    /** rows [from, from + count) of row b of src (B, T, D) to [at, ...) of row c of dst. */
    private static void copyRows(Tensor src, int b, int from, Tensor dst, int c, int at, int count) {
        long rowBytes = (long) D_MODEL * Float.BYTES;
        MemorySegment.copy(src.segment(), ((long) b * src.dim(1) + from) * rowBytes, dst.segment(),
                ((long) c * dst.dim(1) + at) * rowBytes, count * rowBytes);
    }

    private static float[] floats(SplittableRandom r, int n, double bound) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) r.nextDouble(-bound, bound);
        }
        return x;
    }

    /** max |a - b| / (max |b| + 1e-6): the error relative to the output's scale. */
    private static double maxRelError(float[] got, float[] want) {
        double scale = 1e-6;
        double err = 0;
        for (float w : want) {
            scale = Math.max(scale, Math.abs(w));
        }
        for (int i = 0; i < got.length; i++) {
            double d = Math.abs(got[i] - want[i]);
            err = Double.isNaN(d) ? Double.POSITIVE_INFINITY : Math.max(err, d);
        }
        return err / scale;
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a value");
        }
        return args[i];
    }

    private static int positive(String[] args, int i) {
        String v = value(args, i);
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(args[i - 1] + " must be a whole number >= 1, but is '" + v + "'");
    }
}
