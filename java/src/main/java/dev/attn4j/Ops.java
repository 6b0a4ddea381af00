package dev.attn4j;

import dev.attn4j.internal.backend.Backend;
import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.GemmRoute;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * The computing primitives under the layers, public for pipelines that need them on
 * their own: batched matrix products (OpenBLAS), the fused masked softmax and fused
 * (flash) attention (libattn4j). All arguments are checked here, before any native call; a bad
 * argument costs an exception naming it, never the process.
 *
 * <p>Thread-safe: calls may run concurrently from many threads as long as no tensor
 * that one call writes ({@code out}, {@code scores}) is read or written by another
 * call at the same time (the same rule as for arrays). Tensors of a confined arena can
 * only be used from its owner thread, as for any {@link java.lang.foreign.MemorySegment}.
 */
public final class Ops {
    private Ops() {}

    /**
     * {@code out = op(a) @ op(b)} for every leading (batch) index, where op transposes
     * the last two axes when asked.
     *
     * <p>Shapes: {@code a} is (batch..., M, K), or (batch..., K, M) with {@code transA};
     * {@code b} is (batch..., K, N), or (batch..., N, K) with {@code transB}, or rank 2
     * (shared by every batch entry); {@code out} is (batch..., M, N). All float32.
     * M, N, K and the batch count must fit the 32-bit integers OpenBLAS takes.
     */
    public static void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out) {
        matmul(a, transA, b, transB, out, GemmRoute.AUTO);
    }

    /** {@code out = a @ b}; see {@link #matmul(Tensor, boolean, Tensor, boolean, Tensor)}. */
    public static void matmul(Tensor a, Tensor b, Tensor out) {
        matmul(a, false, b, false, out, GemmRoute.AUTO);
    }

    static void matmul(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, GemmRoute route) {
        // final: a constant, so the messages below are built at compile time; a call that
        // passes its checks allocates nothing on the Java heap (shapes are compared by dim()).
        final String action = "matmul";
        requireFloat(action, "a", a);
        requireFloat(action, "b", b);
        requireFloat(action, "out", out);
        if (a.rank() < 2) {
            throw new IllegalArgumentException(action + ": a must have rank >= 2, but has shape " + shape(a));
        }
        if (b.rank() != a.rank() && b.rank() != 2) {
            throw new IllegalArgumentException(action + ": b must have the rank of a (" + a.rank()
                    + ") or rank 2, but has shape " + shape(b));
        }
        long m = transA ? a.dim(-1) : a.dim(-2);
        long k = transA ? a.dim(-2) : a.dim(-1);
        long kb = transB ? b.dim(-1) : b.dim(-2);
        long n = transB ? b.dim(-2) : b.dim(-1);
        if (k != kb) {
            throw new IllegalArgumentException(action + ": inner dimensions differ: a " + shape(a)
                    + (transA ? " (transposed)" : "") + " gives K = " + k + ", b " + shape(b)
                    + (transB ? " (transposed)" : "") + " gives K = " + kb);
        }
        long batch = 1;
        for (int i = 0; i < a.rank() - 2; i++) {
            if (b.rank() == a.rank() && b.dim(i) != a.dim(i)) {
                throw new IllegalArgumentException(action + ": batch dimensions differ at axis " + i + ": a "
                        + shape(a) + ", b " + shape(b));
            }
            batch *= a.dim(i);
        }
        if (!hasMatmulShape(out, a, m, n)) {
            long[] expectedOut = a.shape();
            expectedOut[expectedOut.length - 2] = m;
            expectedOut[expectedOut.length - 1] = n;
            throw new IllegalArgumentException(action + ": out must have shape " + Arrays.toString(expectedOut)
                    + ", but has " + shape(out));
        }
        requireInt(action, "M", m);
        requireInt(action, "N", n);
        requireInt(action, "K", k);
        requireInt(action, "batch count", batch);
        requireMatrixFitsInt(action, a);
        requireMatrixFitsInt(action, b);
        requireMatrixFitsInt(action, out);
        requireWritable(action, "out", out);
        a.checkAlive(action + " (a)");
        b.checkAlive(action + " (b)");
        out.checkAlive(action + " (out)");
        if (batch == 0 || m == 0 || n == 0) {
            return;
        }
        int lda = (int) a.dim(-1);
        int ldb = (int) b.dim(-1);
        long bOuter = b.rank() == 2 ? 0 : k * n;
        if (k == 0) {
            out.segment().fill((byte) 0); // an empty sum; BLAS would not touch C with K = 0 and beta = 0
            return;
        }
        Backends.get().sgemmBatched(transA, transB, (int) m, (int) n, (int) k, 1f,
                a.segment(), lda, m * k, 0,
                b.segment(), ldb, bOuter, 0, 1,
                0f, out.segment(), (int) n, m * n, 0,
                (int) batch, 1, route);
    }

    /**
     * In-place softmax over the last axis of {@code scores} (batch..., Tq, Tv), fused
     * with scaling and masking: {@code x = scale * s}; a position is kept when the mask
     * allows it and, if {@code causal}, its key index j is <= its query index i
     * (top-left aligned, also when Tq != Tv); masked logits are treated as
     * {@code convention} says.
     *
     * @param mask null, or a boolean tensor of either shape
     *             <ul>
     *               <li>(batch..., Tq, Tv) or with Tq = 1: a full mask, or a per-key one
     *                   broadcast over the query axis;
     *               <li>(batch..., Tv), one rank lower than scores: a per-key (padding)
     *                   mask, as Keras's value mask.
     *             </ul>
     *             Its leading dimensions may be 1 (broadcast) after a prefix equal to
     *             the scores' leading dimensions: (B, 1, Tq, Tv) serves scores
     *             (B, N, Tq, Tv), and (1, 1, Tq, Tv) serves all.
     */
    public static void maskedSoftmax(Tensor scores, float scale, Tensor mask, boolean causal,
                                     MaskConvention convention) {
        final String action = "maskedSoftmax"; // a constant: see matmul
        requireFloat(action, "scores", scores);
        Objects.requireNonNull(convention, action + ": convention must not be null");
        if (scores.rank() < 2) {
            throw new IllegalArgumentException(action + ": scores must have rank >= 2 (batch..., Tq, Tv), but has shape "
                    + shape(scores));
        }
        long tq = scores.dim(-2);
        long tv = scores.dim(-1);
        requireInt(action, "Tq", tq);
        requireInt(action, "Tv", tv);
        requireWritable(action, "scores", scores);
        int lead = scores.rank() - 2;
        long batch = 1;
        for (int i = 0; i < lead; i++) {
            batch *= scores.dim(i);
        }
        long maskBatchStride = 0;
        long maskRowStride = 0;
        long maskBatchDiv = 1;
        MemorySegment maskSegment = MemorySegment.NULL;
        if (mask != null) {
            if (mask.dtype() != DType.BOOL) {
                throw new IllegalArgumentException(action + ": mask must be a bool tensor, but is " + mask);
            }
            boolean perKey = mask.rank() == scores.rank() - 1;
            if (!perKey && mask.rank() != scores.rank()) {
                throw new IllegalArgumentException(action + ": mask must have rank " + scores.rank()
                        + " (batch..., Tq, Tv) or " + (scores.rank() - 1) + " (batch..., Tv) for scores "
                        + shape(scores) + ", but has shape " + shape(mask));
            }
            long maskRows = perKey ? 1 : mask.dim(-2);
            if (mask.dim(-1) != tv || (maskRows != 1 && maskRows != tq)) {
                throw new IllegalArgumentException(action + ": mask shape " + shape(mask) + " does not fit scores "
                        + shape(scores) + ": its last axis must be Tv = " + tv
                        + (perKey ? "" : " and the one before it Tq = " + tq + " or 1"));
            }
            // Leading axes: equal to the scores' up to some axis q, all 1 after it.
            int q = 0;
            while (q < lead && mask.dim(q) == scores.dim(q)) {
                q++;
            }
            long div = 1;
            for (int i = q; i < lead; i++) {
                if (mask.dim(i) != 1) {
                    throw new IllegalArgumentException(action + ": mask shape " + shape(mask)
                            + " cannot broadcast to scores " + shape(scores) + ": leading mask dimensions must "
                            + "equal the scores' up to some axis and be 1 after it (axis " + i + " is "
                            + mask.dim(i) + ")");
                }
                div *= scores.dim(i);
            }
            maskRowStride = maskRows == 1 ? 0 : tv;
            maskBatchStride = q == 0 ? 0 : maskRows * tv;
            maskBatchDiv = q == 0 ? 1 : div;
            mask.checkAlive(action + " (mask)");
            maskSegment = mask.segment();
        }
        scores.checkAlive(action + " (scores)");
        if (batch == 0 || tq == 0 || tv == 0) {
            return;
        }
        Backend backend = Backends.get();
        backend.maskedSoftmax(scores.segment(), batch, (int) tq, (int) tv, scale, maskSegment,
                maskBatchStride, maskRowStride, maskBatchDiv, causal, convention);
    }

    /**
     * Scaled dot-product attention, {@code out = softmax(scale * q k^T) v} over the last
     * two axes, fused and tiled in native code so that the (T, S) score matrix is never
     * built: memory beyond the tensors is a small per-thread workspace (25 KiB per
     * thread for d = dv = 64, whatever T and S), so long sequences cost time, not
     * memory.
     *
     * <p>Shapes (float32, any leading batch axes {@code batch...}, e.g. (B, H), the same
     * for all four): {@code q} (batch..., T, d), {@code k} (batch..., S, d), {@code v}
     * (batch..., S, dv), {@code out} (batch..., T, dv). {@code out} is overwritten and
     * must not overlap q, k or v.
     *
     * <p>Semantics: Keras's {@code ops.dot_product_attention} (what MultiHeadAttention
     * and GroupQueryAttention run on their fast path), i.e. {@link #maskedSoftmax} with
     * {@link MaskConvention#REPLACE} between two products. With {@code causal}, query i
     * sees the keys j <= i (top-left aligned also when T != S, as Keras builds the mask),
     * so every row keeps key 0 and no row is fully masked. S = 0 gives an all-zero
     * {@code out} (an empty sum, as {@link #matmul} gives for K = 0).
     *
     * <p>Accuracy: the products and the softmax sums are float32 accumulations (not
     * double), within a few 1e-6 of the exact result relative to the magnitude of v
     * for ordinary inputs; the unfused path rounds differently, not less.
     *
     * <p>Threads: the call uses {@link Attn4j#numThreads()} threads (the OpenBLAS setting),
     * splitting the work by (batch entry, block of 32 query rows); the result does not
     * depend on the thread count.
     *
     * @param scale the factor of the logits, usually {@code 1 / sqrt(d)}; any float
     * @throws IllegalArgumentException naming the argument when a tensor is null, not
     *         float32, of the wrong rank or shape, read-only ({@code out}), or when
     *         {@code out} overlaps an input or d = 0 with T, S, dv > 0
     */
    public static void attention(Tensor q, Tensor k, Tensor v, Tensor out, float scale, boolean causal) {
        attention(q, k, v, out, scale, causal, null);
    }

    /**
     * {@link #attention(Tensor, Tensor, Tensor, Tensor, float, boolean)} that also writes
     * the statistics its backward pass reads instead of recomputing them: {@code lse}
     * (batch..., T) float32 receives each query row's log-sum-exp of its kept logits,
     * {@code max_j x_j + log(sum_j exp(x_j - max_j x_j))} (+inf for a row without keys).
     * The same output, at the same speed. {@code lse} null: none written; nothing is
     * written either when the output is empty (batch, T or dv = 0).
     *
     * @throws IllegalArgumentException also when lse is not float32 (batch..., T), is
     *         read-only, or overlaps another argument
     */
    public static void attention(Tensor q, Tensor k, Tensor v, Tensor out, float scale, boolean causal, Tensor lse) {
        final String action = "attention";
        checkAttention(false, q, k, v, out);
        if (lse != null) {
            requireStatistics(action, lse, q, true);
            requireDisjoint(action, "lse", lse, "q", q);
            requireDisjoint(action, "lse", lse, "k", k);
            requireDisjoint(action, "lse", lse, "v", v);
            requireDisjoint(action, "lse", lse, "out", out);
            lse.checkAlive("attention (lse)");
        }
        long batch = leadingSize(q);
        long t = q.dim(-2);
        long d = q.dim(-1);
        long s = k.dim(-2);
        long dv = v.dim(-1);
        if (batch == 0 || t == 0 || dv == 0) {
            return;
        }
        if (s == 0) {
            out.segment().fill((byte) 0); // softmax over no keys, then an empty sum
            if (lse != null) {
                lse.segment().elements(java.lang.foreign.ValueLayout.JAVA_FLOAT)
                        .forEach(e -> e.set(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, Float.POSITIVE_INFINITY));
            }
            return;
        }
        Backends.get().flashAttention(q.segment(), d, t * d, 0,
                k.segment(), d, s * d, 0,
                v.segment(), dv, s * dv, 0,
                out.segment(), dv, t * dv, 0,
                batch, 1, 1, t, s, d, dv, scale, MemorySegment.NULL, MemorySegment.NULL, 1, causal,
                lse == null ? MemorySegment.NULL : lse.segment(), Attn4j.numThreads());
    }

    /**
     * The backward pass of {@link #attention}: given the forward's inputs, its output
     * {@code out} and {@code dOut} = dL/d(out), writes dL/dq into {@code dq}, dL/dk into
     * {@code dk} and dL/dv into {@code dv} (the shapes of q, k and v), without a (T, S)
     * matrix: the fused kernel recomputes the softmax block by block (O(T) memory), as
     * flash attention's backward does. With {@code causal} a key j > i gets nothing from
     * query i. Same threads and accuracy as the forward; nothing on the Java heap.
     *
     * @param lse the row statistics the forward saved ({@link #attention(Tensor, Tensor,
     *            Tensor, Tensor, float, boolean, Tensor)}), or null to recompute them (one
     *            more pass over the keys, about 20% more time); they must come from the
     *            same q, k, scale and causal flag
     * @throws IllegalArgumentException naming the argument for what {@link #attention}
     *         rejects, and when dOut differs from out's shape, a gradient from its input's
     *         shape, lse from (batch..., T), or a gradient is read-only or overlaps another
     *         argument
     */
    public static void attentionBackward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor dq, Tensor dk,
                                         Tensor dv, float scale, boolean causal, Tensor lse) {
        final String action = "attentionBackward";
        checkAttention(true, q, k, v, out);
        requireFloat(action, "dOut", dOut);
        if (!sameShape(dOut, out)) {
            throw new IllegalArgumentException(action + ": dOut must have out's shape " + shape(out) + ", but has "
                    + shape(dOut));
        }
        requireGradient(action, "dq", dq, "q", q);
        requireGradient(action, "dk", dk, "k", k);
        requireGradient(action, "dv", dv, "v", v);
        requireDisjoint(action, "dk", dk, "dq", dq);
        requireDisjoint(action, "dv", dv, "dq", dq);
        requireDisjoint(action, "dv", dv, "dk", dk);
        requireDisjointFromInputs(action, "dq", dq, q, k, v, out, dOut);
        requireDisjointFromInputs(action, "dk", dk, q, k, v, out, dOut);
        requireDisjointFromInputs(action, "dv", dv, q, k, v, out, dOut);
        if (lse != null) {
            requireStatistics(action, lse, q, false);
            requireDisjoint(action, "dq", dq, "lse", lse);
            requireDisjoint(action, "dk", dk, "lse", lse);
            requireDisjoint(action, "dv", dv, "lse", lse);
            lse.checkAlive("attentionBackward (lse)");
        }
        dOut.checkAlive("attentionBackward (dOut)");
        dq.checkAlive("attentionBackward (dq)");
        dk.checkAlive("attentionBackward (dk)");
        dv.checkAlive("attentionBackward (dv)");
        long t = q.dim(-2);
        long d = q.dim(-1);
        long s = k.dim(-2);
        long dvDim = v.dim(-1);
        long batch = leadingSize(q);
        if (q.size() == 0 || k.size() == 0 || v.size() == 0 || out.size() == 0) {
            // Empty products: every gradient is an empty sum.
            dq.segment().fill((byte) 0);
            dk.segment().fill((byte) 0);
            dv.segment().fill((byte) 0);
            return;
        }
        Backends.get().flashAttentionBackward(q.segment(), d, t * d, 0,
                k.segment(), d, s * d, 0,
                v.segment(), dvDim, s * dvDim, 0,
                out.segment(), dOut.segment(), dvDim, t * dvDim, 0,
                dq.segment(), dk.segment(), dv.segment(),
                batch, 1, 1, t, s, d, dvDim, scale, MemorySegment.NULL, 1, causal,
                lse == null ? MemorySegment.NULL : lse.segment(), Attn4j.numThreads());
    }

    /** The backward pass of {@link #attention}, recomputing the row statistics (lse null). */
    public static void attentionBackward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor dq, Tensor dk,
                                         Tensor dv, float scale, boolean causal) {
        attentionBackward(q, k, v, out, dOut, dq, dk, dv, scale, causal, null);
    }

    /** A gradient: float32, of its input's shape, writable. */
    private static void requireGradient(String action, String name, Tensor g, String inputName, Tensor input) {
        requireFloat(action, name, g);
        if (!sameShape(g, input)) {
            throw new IllegalArgumentException(action + ": " + name + " must have the shape of " + inputName + " "
                    + shape(input) + ", but has " + shape(g));
        }
        requireWritable(action, name, g);
    }

    private static void requireDisjointFromInputs(String action, String name, Tensor g, Tensor q, Tensor k, Tensor v,
                                                  Tensor out, Tensor dOut) {
        requireDisjoint(action, name, g, "q", q);
        requireDisjoint(action, name, g, "k", k);
        requireDisjoint(action, name, g, "v", v);
        requireDisjoint(action, name, g, "out", out);
        requireDisjoint(action, name, g, "dOut", dOut);
    }

    /** The row statistics of {@link #attention}: float32 (batch..., T); writable when they are to be written. */
    private static void requireStatistics(String action, Tensor lse, Tensor q, boolean written) {
        requireFloat(action, "lse", lse);
        boolean ok = lse.rank() == q.rank() - 1;
        for (int i = 0; ok && i < lse.rank(); i++) {
            ok = lse.dim(i) == q.dim(i);
        }
        if (!ok) {
            throw new IllegalArgumentException(action + ": lse must have shape (batch..., T) of q " + shape(q)
                    + " without its last axis, but has " + shape(lse));
        }
        if (written) {
            requireWritable(action, "lse", lse);
        }
    }

    /** Whether two tensors have the same shape, compared dimension by dimension (no copies). */
    private static boolean sameShape(Tensor a, Tensor b) {
        if (a.rank() != b.rank()) {
            return false;
        }
        for (int i = 0; i < a.rank(); i++) {
            if (a.dim(i) != b.dim(i)) {
                return false;
            }
        }
        return true;
    }

    /**
     * The checks of {@link #attention}'s arguments, shared with its backward pass. The
     * labels are constants (no string is built unless a check fails): a call that passes
     * allocates nothing on the Java heap.
     */
    private static void checkAttention(boolean backward, Tensor q, Tensor k, Tensor v, Tensor out) {
        String action = backward ? "attentionBackward" : "attention";
        requireFloat(action, "q", q);
        requireFloat(action, "k", k);
        requireFloat(action, "v", v);
        requireFloat(action, "out", out);
        int rank = q.rank();
        if (rank < 2) {
            throw new IllegalArgumentException(action + ": q must have rank >= 2 (batch..., T, d), but has shape "
                    + shape(q));
        }
        requireRank(action, "k", k, rank, "(batch..., S, d)");
        requireRank(action, "v", v, rank, "(batch..., S, dv)");
        requireRank(action, "out", out, rank, "(batch..., T, dv)");
        long batch = 1;
        for (int i = 0; i < rank - 2; i++) {
            long b = q.dim(i);
            if (k.dim(i) != b || v.dim(i) != b || out.dim(i) != b) {
                throw new IllegalArgumentException(action + ": batch dimensions differ at axis " + i + ": q "
                        + shape(q) + ", k " + shape(k) + ", v " + shape(v) + ", out " + shape(out));
            }
            batch *= b;
        }
        long t = q.dim(-2);
        long d = q.dim(-1);
        long s = k.dim(-2);
        long dv = v.dim(-1);
        if (k.dim(-1) != d) {
            throw new IllegalArgumentException(action + ": k must have the last dimension of q, d = " + d
                    + " (q " + shape(q) + "), but has shape " + shape(k));
        }
        if (v.dim(-2) != s) {
            throw new IllegalArgumentException(action + ": v must have as many rows as k, S = " + s
                    + " (k " + shape(k) + "), but has shape " + shape(v));
        }
        if (out.dim(-2) != t || out.dim(-1) != dv) {
            throw new IllegalArgumentException(action + ": out must have shape (batch..., T = " + t + ", dv = " + dv
                    + "), but has shape " + shape(out));
        }
        if (!backward) { // the backward pass only reads out
            requireWritable(action, "out", out);
            requireDisjoint(action, out, "q", q);
            requireDisjoint(action, out, "k", k);
            requireDisjoint(action, out, "v", v);
        }
        q.checkAlive(backward ? "attentionBackward (q)" : "attention (q)");
        k.checkAlive(backward ? "attentionBackward (k)" : "attention (k)");
        v.checkAlive(backward ? "attentionBackward (v)" : "attention (v)");
        out.checkAlive(backward ? "attentionBackward (out)" : "attention (out)");
        if (d == 0 && batch != 0 && t != 0 && dv != 0 && s != 0) {
            throw new IllegalArgumentException(action + ": q and k must have a last dimension d >= 1, but q has shape "
                    + shape(q) + " and k " + shape(k));
        }
    }

    /** The product of all dimensions but the last two. */
    private static long leadingSize(Tensor t) {
        long n = 1;
        for (int i = 0; i < t.rank() - 2; i++) {
            n *= t.dim(i);
        }
        return n;
    }

    private static void requireRank(String action, String name, Tensor t, int rank, String layout) {
        if (t.rank() != rank) {
            throw new IllegalArgumentException(action + ": " + name + " must have the rank of q (" + rank + ") "
                    + layout + ", but has shape " + shape(t));
        }
    }

    /** out is written while the inputs are read: they must not share a byte. */
    private static void requireDisjoint(String action, Tensor out, String name, Tensor in) {
        requireDisjoint(action, "out", out, name, in);
    }

    private static void requireDisjoint(String action, String outName, Tensor out, String name, Tensor in) {
        long a = out.segment().address();
        long b = in.segment().address();
        if (a < b + in.segment().byteSize() && b < a + out.segment().byteSize()
                && out.segment().byteSize() > 0 && in.segment().byteSize() > 0) {
            throw new IllegalArgumentException(action + ": " + outName + " must not overlap " + name + ", but "
                    + outName + " "
                    + shape(out) + " at 0x" + Long.toHexString(a) + " and " + name + " " + shape(in) + " at 0x"
                    + Long.toHexString(b) + " share memory");
        }
    }

    private static void requireFloat(String action, String name, Tensor t) {
        if (t == null) { // not requireNonNull with a capturing lambda: that allocates on every call
            throw new NullPointerException(action + ": " + name + " must not be null");
        }
        if (t.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(action + ": " + name + " must be float32, but is " + t);
        }
    }

    private static void requireInt(String action, String what, long value) {
        if (value > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(action + ": " + what + " = " + value
                    + " exceeds the 32-bit integer range the native calls take (" + Integer.MAX_VALUE + ")");
        }
    }

    /** out's shape is a's with the last two dims M, N. */
    private static boolean hasMatmulShape(Tensor out, Tensor a, long m, long n) {
        int rank = a.rank();
        if (out.rank() != rank || out.dim(-2) != m || out.dim(-1) != n) {
            return false;
        }
        for (int i = 0; i < rank - 2; i++) {
            if (out.dim(i) != a.dim(i)) {
                return false;
            }
        }
        return true;
    }

    /**
     * A matrix must be indexable with the 32-bit integers BLAS uses for row * ld offsets.
     * The message names the tensor, so it is built only when the check fails.
     */
    private static void requireMatrixFitsInt(String action, Tensor t) {
        long elements = t.dim(-2) * t.dim(-1);
        if (elements > Integer.MAX_VALUE) {
            requireInt(action, "elements per matrix of " + t, elements);
        }
    }

    private static void requireWritable(String action, String name, Tensor t) {
        if (t.segment().isReadOnly()) {
            throw new IllegalArgumentException(action + ": " + name + " must be writable, but its segment is read-only");
        }
    }

    private static String shape(Tensor t) {
        return Arrays.toString(t.shape());
    }
}
