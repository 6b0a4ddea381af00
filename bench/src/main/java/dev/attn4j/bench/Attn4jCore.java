package dev.attn4j.bench;

import dev.attn4j.MaskConvention;
import dev.attn4j.Ops;
import dev.attn4j.Tensor;
import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.NativeBackend;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Locale;

/**
 * attn4j's core attention, in its two public forms:
 * <ul>
 *   <li><b>fused</b>: {@code Ops.attention(q, k, v, out, scale, causal)}, tiled, no
 *       score matrix;
 *   <li><b>unfused</b>: {@code Ops.matmul} (Q K^T) + {@code Ops.maskedSoftmax} (scale,
 *       causal mask, softmax in place) + {@code Ops.matmul} (P V), through a score
 *       buffer (B, Hkv, G*T, S).
 * </ul>
 * The attn4j rows of the report use the fused form when the library has it, else the
 * unfused one; {@code -Dattn4j.bench.core=unfused|fused} forces one.
 *
 * <p>{@code Ops.attention} is reached through a method handle so that this module
 * compiles against library versions with and without it. Once every version the
 * benchmarks build against has it, the one edit is: replace the body of
 * {@link #fused} with {@code Ops.attention(q, k, v, out, scale, causal);} and drop
 * {@code FUSED}. A {@code static final} handle is a constant to the JIT, so the call
 * costs what a direct call costs.
 *
 * <p>Grouped-query shapes (Hkv < Hq) go through both forms as Hkv "heads" of G*T
 * query rows: query heads h = g*G .. g*G+G-1 share K/V head g and are contiguous in
 * (B, Hq, T, d), so the Q and out tensors are viewed as (B, Hkv, G*T, d) without
 * copying, and each K/V head is multiplied once for all its query heads. (Not with a
 * causal mask, whose row index would then run over G*T rows.)
 */
final class Attn4jCore {
    private static final MethodHandle FUSED = lookupFused();

    /** Whether the attn4j rows use the fused kernel. */
    static final boolean USE_FUSED = chooseFused();

    private Attn4jCore() {}

    /**
     * The workspace bytes the fused kernel takes for these sizes (the internal
     * {@code Kernels.flashWorkspaceBytes}, i.e. {@code attn4j_flash_workspace_bytes}), or
     * -1 when this library version has no such query. Looked up reflectively for the
     * same reason as {@code Ops.attention}.
     */
    static long fusedWorkspaceBytes(long tq, long tk, long d, long dv, int threads) {
        NativeBackend backend = Backends.selection().nativeBackend();
        if (backend == null) {
            return -1;
        }
        try {
            Object kernels = backend.kernels();
            MethodHandle query = MethodHandles.publicLookup().findVirtual(kernels.getClass(), "flashWorkspaceBytes",
                    MethodType.methodType(long.class, long.class, long.class, long.class, long.class, int.class));
            return (long) query.invoke(kernels, tq, tk, d, dv, threads);
        } catch (NoSuchMethodException | IllegalAccessException e) {
            return -1;
        } catch (Throwable t) {
            throw new IllegalStateException("flashWorkspaceBytes failed", t);
        }
    }

    static boolean fusedAvailable() {
        return FUSED != null;
    }

    static String variant() {
        return USE_FUSED ? "fused Ops.attention" : "unfused Ops.matmul + Ops.maskedSoftmax + Ops.matmul";
    }

    private static MethodHandle lookupFused() {
        try {
            return MethodHandles.publicLookup().findStatic(Ops.class, "attention", MethodType.methodType(void.class,
                    Tensor.class, Tensor.class, Tensor.class, Tensor.class, float.class, boolean.class));
        } catch (NoSuchMethodException | IllegalAccessException e) {
            return null;
        }
    }

    private static boolean chooseFused() {
        String choice = System.getProperty("attn4j.bench.core", "auto").trim().toLowerCase(Locale.ROOT);
        return switch (choice) {
            case "auto" -> FUSED != null;
            case "unfused" -> false;
            case "fused" -> {
                if (FUSED == null) {
                    throw new IllegalStateException("-Dattn4j.bench.core=fused, but this attn4j has no Ops.attention");
                }
                yield true;
            }
            default -> throw new IllegalArgumentException(
                    "-Dattn4j.bench.core must be auto, fused or unfused, but is '" + choice + "'");
        };
    }

    /** Q (B, Hq, T, d) viewed as (B, Hkv, G*T, d), the layout both forms compute on. */
    static Tensor grouped(CoreShape shape, Tensor qOrOut) {
        if (shape.groups() == 1) {
            return qOrOut;
        }
        if (shape.causal) {
            throw new UnsupportedOperationException("grouped-query attention with a causal mask is not benchmarked");
        }
        return qOrOut.reshape(shape.batch, shape.kvHeads, (long) shape.groups() * shape.t, shape.d);
    }

    /** The score buffer the unfused form needs. */
    static long[] scoresShape(CoreShape shape) {
        return new long[] {shape.batch, shape.kvHeads, (long) shape.groups() * shape.t, shape.s};
    }

    /** Fused: q and out already {@link #grouped}. */
    static void fused(Tensor q, Tensor k, Tensor v, Tensor out, float scale, boolean causal) {
        try {
            FUSED.invokeExact(q, k, v, out, scale, causal);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Unfused: q and out already {@link #grouped}; scores of {@link #scoresShape}. */
    static void unfused(Tensor q, Tensor k, Tensor v, Tensor scores, Tensor out, float scale, boolean causal) {
        Ops.matmul(q, false, k, true, scores);
        Ops.maskedSoftmax(scores, scale, null, causal, MaskConvention.REPLACE);
        Ops.matmul(scores, false, v, false, out);
    }
}
