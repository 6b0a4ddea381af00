package dev.attn4j.layers;

import dev.attn4j.Attn4j;
import dev.attn4j.DType;
import dev.attn4j.MaskConvention;
import dev.attn4j.Tensor;
import dev.attn4j.internal.Scratch;
import dev.attn4j.internal.backend.Backend;
import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.GemmRoute;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The cached (incremental decoding) call of the multi-head layers, over a {@link KvCache}.
 *
 * <p>Dimensions: B batch rows; Tq new positions per row; N query heads; K key/value heads
 * (r = N / K query heads per key/value head); H key size; Hv value size; L the cache's
 * max length; len_b the length of row b before the call; S the key positions a step
 * reads, max_b len_b + Tq.
 *
 * <p>Semantics: new position i of row b has absolute position p = len_b + i. It attends
 * to the cached and new keys j with j <= p (and p - w < j with the layer's sliding window
 * w), which is exactly what row p of one causal self-attention call over the whole
 * sequence sees (Keras's top-left causal mask with queries = keys). No row is ever fully
 * masked (j = p is always kept), so Keras's two code paths agree and the fused softmax's
 * REPLACE convention serves both.
 *
 * <p>Pipeline, all off-heap, nothing allocated on the Java heap for a step (Tq = 1):
 * <ol>
 *   <li>projections of the new rows only (one GEMM each, bias fused);
 *   <li>the new keys and values written into their cache slots, (B, K, L, H): a copy of
 *       the H floats per (row, position, head); the cache itself is never copied;
 *   <li>one new position (a decode step): libattn4j's decode kernel over the cache in
 *       place, softmax(scale q K^T) V per head, each row's key range streamed once for
 *       the r query heads that share a key/value head (no scores matrix, no packing of
 *       the cache, no repeat); ragged rows and the sliding window are the key ranges
 *       [max(0, len_b + 1 - w), len_b + 1);
 *   <li>a chunk (Tq > 1): scores Q K^T over the cache in place through the batched GEMM,
 *       the fused scale + mask + softmax (the mask copied row by row from the cache's
 *       constant runs of 1 and 0 bytes), then P V;
 *   <li>the result in (B, Tq, N, Hv), gate, output projection.
 * </ol>
 * Chunks whose scores would exceed {@link #SCORE_BUDGET} floats run in blocks of query
 * rows.
 */
final class CachedAttention {
    /** Scores floats a call holds at once (16 MiB): longer chunks go in blocks of query rows. */
    static final long SCORE_BUDGET = 1L << 22;

    private static final String MHA_ACTION = "MultiHeadAttention.callCachedInto";
    private static final String GQA_ACTION = "GroupQueryAttention.callCachedInto";

    private CachedAttention() {}

    static String action(MultiHeadBase layer) {
        return layer instanceof GroupQueryAttention ? GQA_ACTION : MHA_ACTION;
    }

    /** A layer must be built and take 3-D inputs (attention over axis 1) to be decoded with a cache. */
    static void checkCacheable(String action, MultiHeadBase layer) {
        if (layer instanceof MultiHeadAttention mha) {
            int[] axes = mha.attentionAxes();
            if (axes == null || axes.length != 1 || axes[0] != 1) {
                throw new IllegalArgumentException(action + ": cached decoding needs a layer that attends over "
                        + "axis 1 of 3-D inputs (B, T, D), but layer '" + layer.name() + "' has attention axes "
                        + Arrays.toString(axes));
            }
        }
    }

    /** The output feature dims of the (built) layer: attention_output/kernel is (N, Hv, out...). */
    static long[] outputFeatures(MultiHeadBase layer) {
        long[] kernel = layer.weight(layer.slots().outputKernel()).shape();
        return Arrays.copyOfRange(kernel, 2, kernel.length);
    }

    /** {@code callCached}: allocates the output (B, Tq, out...) in {@code arena}. */
    static Tensor call(MultiHeadBase layer, Arena arena, KvCache cache, Tensor query, Tensor value, Tensor key,
                       int[] newLengths) {
        String action = layer instanceof GroupQueryAttention ? "GroupQueryAttention.callCached"
                : "MultiHeadAttention.callCached";
        if (arena == null) {
            throw new NullPointerException(action + ": arena must not be null");
        }
        checkCache(action, layer, cache);
        requireQuery(action, query, cache);
        long[] out = outputFeatures(layer);
        long[] shape = new long[2 + out.length];
        shape[0] = query.dim(0);
        shape[1] = query.dim(1);
        System.arraycopy(out, 0, shape, 2, out.length);
        Tensor output = Tensor.allocate(arena, shape);
        run(layer, action, cache, query, value, key, newLengths, output);
        return output;
    }

    static void callInto(MultiHeadBase layer, KvCache cache, Tensor query, Tensor value, Tensor key,
                         int[] newLengths, Tensor output) {
        run(layer, action(layer), cache, query, value, key, newLengths, output);
    }

    // ---- validation: everything before the first native call ---------------------------

    private static void checkCache(String action, MultiHeadBase layer, KvCache cache) {
        if (cache == null) {
            throw new NullPointerException(action + ": cache must not be null");
        }
        layer.checkOpen(action);
        if (cache.layer() != layer) {
            throw new IllegalArgumentException(action + ": the cache belongs to layer '" + cache.layer().name()
                    + "', not to layer '" + layer.name() + "' (a KvCache holds one layer's keys and values)");
        }
        cache.checkOpen(action);
    }

    private static void requireQuery(String action, Tensor query, KvCache cache) {
        if (query == null) {
            throw new NullPointerException(action + ": query must not be null");
        }
        if (query.rank() != 3) {
            throw new IllegalArgumentException(action + ": query must be 3-D (batch, new positions, features), "
                    + "but is " + query);
        }
        if (query.dim(0) != cache.batch()) {
            throw new IllegalArgumentException(action + ": query must have batch " + cache.batch()
                    + " (the cache's), but is " + query);
        }
    }

    /** An input of the new positions: float32, alive, (B, Tq, features). */
    private static void requireInput(String action, String what, Tensor t, long batch, long tq, long features) {
        AttentionLayer.requireFloat(action, what, t);
        if (t.rank() != 3 || t.dim(0) != batch || t.dim(1) != tq || t.dim(2) != features) {
            throw new IllegalArgumentException(action + ": " + what + " must have shape "
                    + Arrays.toString(new long[] {batch, tq, features}) + " (batch, new positions, features of the "
                    + "layer's build), but is " + t);
        }
    }

    private static void requireOutput(String action, Tensor output, long batch, long tq, Tensor outKernel) {
        if (output == null) {
            throw new NullPointerException(action + ": output must not be null");
        }
        // attention_output/kernel is (N, Hv, out...): the output is (B, Tq, out...).
        boolean ok = output.dtype() == DType.FLOAT32 && output.rank() == outKernel.rank()
                && output.dim(0) == batch && output.dim(1) == tq;
        for (int i = 2; ok && i < outKernel.rank(); i++) {
            ok = output.dim(i) == outKernel.dim(i);
        }
        if (!ok) {
            long[] weightShape = outKernel.shape();
            long[] want = new long[weightShape.length];
            want[0] = batch;
            want[1] = tq;
            System.arraycopy(weightShape, 2, want, 2, weightShape.length - 2);
            throw new IllegalArgumentException(action + ": output must be float32 of shape " + Arrays.toString(want)
                    + ", but is " + output);
        }
        if (output.segment().isReadOnly()) {
            throw new IllegalArgumentException(action + ": output must be writable");
        }
        if (!output.isAlive()) {
            throw new IllegalStateException(action + ": the arena of output " + output + " is closed");
        }
    }

    // ---- the call ----------------------------------------------------------------------

    private static void run(MultiHeadBase layer, String action, KvCache cache, Tensor query, Tensor value,
                            Tensor key, int[] newLengths, Tensor output) {
        checkCache(action, layer, cache);
        requireQuery(action, query, cache);
        if (value == null) {
            throw new NullPointerException(action + ": value must not be null (pass the query for self-attention)");
        }
        MultiHeadBase.Slots w = layer.slots();
        Weight wq = layer.weight(w.queryKernel());
        Weight wk = layer.weight(w.keyKernel());
        Weight wv = layer.weight(w.valueKernel());
        Weight wo = layer.weight(w.outputKernel());
        int b = cache.batch();
        long tqLong = query.dim(1);
        // Shapes read through the storage tensors' dims: Weight.shape() would copy.
        requireInput(action, "query", query, b, tqLong, wq.storage().dim(0));
        requireInput(action, "value", value, b, tqLong, wv.storage().dim(0));
        if (key != null) {
            requireInput(action, "key", key, b, tqLong, wk.storage().dim(0));
        }
        requireOutput(action, output, b, tqLong, wo.storage());
        int n = layer.queryHeads();
        int kv = layer.keyValueHeads();
        int hk = layer.keySize();
        int hv = layer.valueSize();
        int maxLen = cache.maxLength();
        if (tqLong > maxLen) {
            throw new IllegalStateException(action + ": the cache holds at most " + maxLen + " positions per row, "
                    + "but the call brings " + tqLong + " new positions (query " + query + ")");
        }
        int tq = (int) tqLong;
        if ((long) b * tq * n * Math.max(hk, hv) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(action + ": the projections of query " + query + " exceed the 32-bit "
                    + "sizes the native calls take");
        }
        if (newLengths != null) {
            if (newLengths.length != b) {
                throw new IllegalArgumentException(action + ": newLengths must have " + b + " entries (one per batch "
                        + "row), but has " + newLengths.length);
            }
            for (int i = 0; i < b; i++) {
                if (newLengths[i] < 0 || newLengths[i] > tq) {
                    throw new IllegalArgumentException(action + ": newLengths[" + i + "] must be in [0, " + tq
                            + "] (the new positions of the call), but is " + newLengths[i]);
                }
            }
        }
        cache.acquire(action);
        try {
            int[] lengths = cache.lengthsArray();
            int maxStart = 0;
            for (int i = 0; i < b; i++) {
                int adding = newLengths == null ? tq : newLengths[i];
                if (lengths[i] + adding > maxLen) {
                    throw new IllegalStateException(action + ": the cache is full: row " + i + " holds " + lengths[i]
                            + " of " + maxLen + " positions and cannot take " + adding + " more; truncate or reset "
                            + "it, or create a cache with a larger maxLength");
                }
                maxStart = Math.max(maxStart, lengths[i]);
                            }
            compute(layer, cache, query, value, key == null ? value : key, newLengths, output, b, tq, n, kv, hk, hv,
                    maxLen, maxStart, lengths);
            for (int i = 0; i < b; i++) {
                lengths[i] += newLengths == null ? tq : newLengths[i];
            }
        } finally {
            cache.release();
        }
    }

    private static void compute(MultiHeadBase layer, KvCache cache, Tensor query, Tensor value, Tensor key,
                                int[] newLengths, Tensor output, int b, int tq, int n, int kv, int hk, int hv,
                                int maxLen, int maxStart, int[] lengths) {
        Backend be = Backends.get();
        MultiHeadBase.Slots w = layer.slots();
        int r = n / kv;
        boolean gated = layer.useGate;
        int window = layer.slidingWindow == null ? 0 : layer.slidingWindow;
        long rows = (long) b * tq;
        int dq = (int) query.dim(2);
        int dk = (int) key.dim(2);
        int dv = (int) value.dim(2);
        int outCols = (int) (output.size() / rows);

        // Query rows per attention block: all of them unless the scores would exceed the budget.
        long perRow = (long) b * n * maxLen;
        int block = (int) Math.max(1, Math.min(tq, SCORE_BUDGET / perRow));
        boolean anyMask = tq > 1; // one position: key ranges instead of a mask
        // Region sizes depend on the cache and Tq only (not on the lengths), so the
        // per-thread scratch hands out the same segments step after step.
        long scoreCount = tq == 1 ? 0 : perRow * block; // one position: the fused kernel, no scores
        long maskBytes = anyMask ? (long) b * block * maxLen : 0;
        long need = Scratch.regionSize(4 * rows * n * hk) + Scratch.regionSize(4 * rows * kv * hk)
                + Scratch.regionSize(4 * rows * kv * hv) + Scratch.regionSize(4 * rows * n * hv)
                + (gated ? Scratch.regionSize(4 * rows * n * hv) : 0)
                + (tq == 1 ? 0 : Scratch.regionSize(4 * scoreCount))
                + (anyMask ? Scratch.regionSize(maskBytes) : 2 * Scratch.regionSize(4L * b));
        Scratch.Carver scratch = Scratch.carver(need);
        MemorySegment qp = scratch.floats(rows * n * hk);
        MemorySegment kp = scratch.floats(rows * kv * hk);
        MemorySegment vp = scratch.floats(rows * kv * hv);
        MemorySegment attended = scratch.floats(rows * n * hv);
        MemorySegment gate = gated ? scratch.floats(rows * n * hv) : MemorySegment.NULL;
        MemorySegment scores = tq == 1 ? MemorySegment.NULL : scratch.floats(scoreCount);
        MemorySegment mask = anyMask ? scratch.bytes(maskBytes) : MemorySegment.NULL;
        MemorySegment begins = anyMask ? MemorySegment.NULL : scratch.bytes(4L * b); // int32 per row
        MemorySegment ends = anyMask ? MemorySegment.NULL : scratch.bytes(4L * b);

        // 1. Projections of the new positions only.
        MultiHeadBase.project(be, query.segment(), rows, dq, layer.kernel(w.queryKernel()), layer.bias(w.queryBias()),
                n * hk, qp, Backend.Activation.LINEAR);
        MultiHeadBase.project(be, key.segment(), rows, dk, layer.kernel(w.keyKernel()), layer.bias(w.keyBias()),
                kv * hk, kp, Backend.Activation.LINEAR);
        MultiHeadBase.project(be, value.segment(), rows, dv, layer.kernel(w.valueKernel()), layer.bias(w.valueBias()),
                kv * hv, vp, Backend.Activation.LINEAR);
        if (gated) {
            MultiHeadBase.project(be, query.segment(), rows, dq, layer.kernel(w.gateKernel()), layer.bias(w.gateBias()),
                    n * hv, gate, Backend.Activation.SIGMOID);
        }

        // 2. The real new rows' keys and values into their slots (padding rows stay out:
        //    slots past a row's length stay zero).
        MemorySegment keys = cache.keySegment();
        MemorySegment values = cache.valueSegment();
        for (int row = 0; row < b; row++) {
            int count = newLengths == null ? tq : newLengths[row];
            for (int i = 0; i < count; i++) {
                long src = (long) row * tq + i;
                for (int g = 0; g < kv; g++) {
                    MemorySegment.copy(kp, 4 * ((src * kv + g) * hk), keys,
                            4 * cache.keyOffset(row, g, lengths[row] + i), 4L * hk);
                    MemorySegment.copy(vp, 4 * ((src * kv + g) * hv), values,
                            4 * cache.valueOffset(row, g, lengths[row] + i), 4L * hv);
                }
            }
        }

        // 3-5. Attention over the cache, block by block of query rows.
        float scale = (float) (1.0 / Math.sqrt(hk));
        long kOuter = (long) kv * maxLen * hk;
        long vOuter = (long) kv * maxLen * hv;
        for (int i0 = 0; i0 < tq; i0 += block) {
            int m = Math.min(block, tq - i0);
            // Key positions any row of the block reads (padding rows of a full row stop at L).
            int s = Math.min(maxLen, maxStart + i0 + m);
            if (anyMask) {
                buildMask(cache, mask, b, m, s, i0, window, lengths);
            }
            if (tq == 1) {
                // One new position: the decode kernel streams each row's key range of the
                // cache once, in place, the r query heads of a key/value head together
                // (no scores matrix, no packing, no repeat); ragged rows and the sliding
                // window are the ranges.
                for (int row = 0; row < b; row++) {
                    int end = Math.min(maxLen, lengths[row] + 1);
                    begins.setAtIndex(ValueLayout.JAVA_INT, row, window > 0 ? Math.max(0, end - window) : 0);
                    ends.setAtIndex(ValueLayout.JAVA_INT, row, end);
                }
                be.decodeAttention(qp, (long) n * hk, hk,
                        keys, hk, kOuter, (long) maxLen * hk,
                        values, hv, vOuter, (long) maxLen * hv,
                        attended, (long) n * hv, hv,
                        b, n, r, maxLen, hk, hv, scale, begins, ends, Attn4j.numThreads());
            } else {
                // A chunk: per (row, query head), its m query rows against the shared K head.
                MemorySegment qBlock = i0 == 0 ? qp : qp.asSlice(4L * i0 * n * hk);
                MemorySegment oBlock = i0 == 0 ? attended : attended.asSlice(4L * i0 * n * hv);
                be.sgemmBatched(false, true, m, s, hk, 1f,
                        qBlock, n * hk, (long) tq * n * hk, hk,
                        keys, hk, kOuter, (long) maxLen * hk, r,
                        0f, scores, s, (long) n * m * s, (long) m * s,
                        b, n, GemmRoute.AUTO);
                be.maskedSoftmax(scores, (long) b * n, m, s, scale, mask, (long) m * s, s, n,
                        MemorySegment.NULL, MemorySegment.NULL, 1, false, 0, MaskConvention.REPLACE);
                be.sgemmBatched(false, false, m, hv, s, 1f,
                        scores, s, (long) n * m * s, (long) m * s,
                        values, hv, vOuter, (long) maxLen * hv, r,
                        0f, oBlock, n * hv, (long) tq * n * hv, hv,
                        b, n, GemmRoute.AUTO);
            }
        }

        // Gate and output projection.
        if (gated) {
            be.mul(attended, gate, rows * n * hv);
        }
        MultiHeadBase.project(be, attended, rows, n * hv, layer.kernel(w.outputKernel()),
                layer.bias(w.outputBias()), outCols, output.segment(),
                Backend.Activation.LINEAR);
    }

    /**
     * The keep mask (B, m, S) of query rows i0 .. i0 + m - 1: row (b, i) keeps the keys
     * [lo, hi) with hi = len_b + i0 + i + 1 (causal over absolute positions) and
     * lo = max(0, hi - window) (Keras's sliding window, |p - j| < window), copied from
     * the cache's runs of 0 and 1 bytes.
     */
    private static void buildMask(KvCache cache, MemorySegment mask, int b, int m, int s, int i0, int window,
                                  int[] lengths) {
        MemorySegment ones = cache.ones;
        MemorySegment zeros = cache.zeros;
        for (int row = 0; row < b; row++) {
            for (int i = 0; i < m; i++) {
                long at = ((long) row * m + i) * s;
                int hi = Math.min(s, lengths[row] + i0 + i + 1);
                int lo = window > 0 ? Math.max(0, hi - window) : 0;
                if (lo > 0) {
                    MemorySegment.copy(zeros, 0, mask, at, lo);
                }
                MemorySegment.copy(ones, 0, mask, at + lo, hi - lo);
                if (hi < s) {
                    MemorySegment.copy(zeros, 0, mask, at + hi, s - hi);
                }
            }
        }
    }
}
