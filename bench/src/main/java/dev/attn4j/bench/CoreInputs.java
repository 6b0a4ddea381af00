package dev.attn4j.bench;

import dev.attn4j.Attn4j;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;

/**
 * Q, K, V and an output tensor for one core shape, in a shared arena the trial owns
 * and closes at teardown. Sets OpenBLAS's thread count for the trial.
 */
final class CoreInputs implements AutoCloseable {
    final CoreShape shape;
    final int threads;
    final Arena arena = Arena.ofShared();
    final Tensor q;
    final Tensor k;
    final Tensor v;
    final Tensor out;

    CoreInputs(CoreShape shape, int threads) {
        this.shape = shape;
        this.threads = threads;
        Attn4j.setNumThreads(threads);
        q = BenchData.random(arena, 1, shape.qShape());
        k = BenchData.random(arena, 2, shape.kvShape());
        v = BenchData.random(arena, 3, shape.kvShape());
        out = Tensor.allocate(arena, shape.qShape());
    }

    /** attn4j's output for these inputs, as the attn4j rows compute it, in {@code arena}. */
    Tensor attn4jOutput(Arena arena) {
        Tensor result = Tensor.allocate(arena, shape.qShape());
        if (Attn4jCore.USE_FUSED) {
            Attn4jCore.fused(Attn4jCore.grouped(shape, q), k, v, Attn4jCore.grouped(shape, result), shape.scale(),
                    shape.causal);
        } else {
            try (Arena scratch = Arena.ofConfined()) {
                Tensor scores = Tensor.allocate(scratch, Attn4jCore.scoresShape(shape));
                Attn4jCore.unfused(Attn4jCore.grouped(shape, q), k, v, scores, Attn4jCore.grouped(shape, result),
                        shape.scale(), shape.causal);
            }
        }
        return result;
    }

    @Override
    public void close() {
        arena.close();
    }
}
