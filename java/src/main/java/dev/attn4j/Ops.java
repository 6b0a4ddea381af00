package dev.attn4j;

import dev.attn4j.internal.backend.Backend;
import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.GemmRoute;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * The computing primitives under the layers, public for pipelines that need them on
 * their own: batched matrix products (OpenBLAS) and the fused masked softmax
 * (libattn4j). All arguments are checked here, before any native call; a bad
 * argument costs an exception naming it, never the process.
 *
 * <p>Thread-safe: calls may run concurrently as long as they do not write the same
 * tensor.
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
        String action = "matmul";
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
        long[] expectedOut = a.shape();
        expectedOut[expectedOut.length - 2] = m;
        expectedOut[expectedOut.length - 1] = n;
        long batch = 1;
        for (int i = 0; i < a.rank() - 2; i++) {
            if (b.rank() == a.rank() && b.dim(i) != a.dim(i)) {
                throw new IllegalArgumentException(action + ": batch dimensions differ at axis " + i + ": a "
                        + shape(a) + ", b " + shape(b));
            }
            batch *= a.dim(i);
        }
        if (!Arrays.equals(out.shape(), expectedOut)) {
            throw new IllegalArgumentException(action + ": out must have shape " + Arrays.toString(expectedOut)
                    + ", but has " + shape(out));
        }
        requireInt(action, "M", m);
        requireInt(action, "N", n);
        requireInt(action, "K", k);
        requireInt(action, "batch count", batch);
        requireMatricesFitInt(action, a, b, out);
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
        String action = "maskedSoftmax";
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

    private static void requireFloat(String action, String name, Tensor t) {
        Objects.requireNonNull(t, () -> action + ": " + name + " must not be null");
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

    /** Each matrix must be indexable with the 32-bit integers BLAS uses for row * ld offsets. */
    private static void requireMatricesFitInt(String action, Tensor... tensors) {
        for (Tensor t : tensors) {
            long rows = t.dim(-2);
            long cols = t.dim(-1);
            requireInt(action, "elements per matrix of " + t, rows * cols);
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
