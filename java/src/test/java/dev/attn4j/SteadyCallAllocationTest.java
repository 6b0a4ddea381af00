package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.attn4j.layers.AdditiveAttention;
import dev.attn4j.layers.Attention;
import dev.attn4j.layers.AttentionLayer;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.GroupQueryAttention;
import dev.attn4j.layers.MultiHeadAttention;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * A steady call, the same shapes again and again once the JIT has compiled the code,
 * allocates at most {@value #LIMIT} bytes on the Java heap (in fact none): the layers'
 * {@code callInto} and the {@link Ops} entry points, counted exactly by the JVM for the
 * calling thread. Shapes are small, so batches of products take the cblas_sgemm loop,
 * whose per-product operand slices must be removed by escape analysis.
 *
 * <p>Why the best of several rounds: a round that overlaps a recompilation (a profile
 * that changed, an uncommon trap) runs code that allocates for a moment; a per-call
 * allocation in the code itself shows in every round.
 */
class SteadyCallAllocationTest {
    static final double LIMIT = 64;
    static final int WARMUP = 20_000;
    static final int CALLS = 200;
    static final int ROUNDS = 20;

    static final long B = 2;
    static final long T = 16;
    static final long D = 32;
    static final int HEADS = 4;
    static final int KEY_DIM = 8;

    private static void requireSteady(String what, Runnable call) {
        NativeTests.requireNative();
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        Assumptions.assumeTrue(mx.isThreadAllocatedMemorySupported() && mx.isThreadAllocatedMemoryEnabled(),
                "this JVM does not count allocated bytes per thread");
        for (int i = 0; i < WARMUP; i++) {
            call.run();
        }
        double best = Double.MAX_VALUE;
        for (int round = 0; round < ROUNDS && best > LIMIT; round++) {
            long before = mx.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < CALLS; i++) {
                call.run();
            }
            best = Math.min(best, (double) (mx.getCurrentThreadAllocatedBytes() - before) / CALLS);
        }
        double perCall = best;
        assertTrue(perCall <= LIMIT, () -> what + " allocates " + perCall + " bytes per call in steady state (the best "
                + "of " + ROUNDS + " rounds of " + CALLS + " calls), more than " + LIMIT);
    }

    private static Tensor random(Arena arena, long seed, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return Tensor.of(arena, TestData.floats(new SplittableRandom(seed), (int) n, -1, 1), shape);
    }

    private static void layerCalls(AttentionLayer layer, String what) {
        try (Arena arena = Arena.ofConfined(); layer) {
            Tensor x = random(arena, 1, B, T, D);
            Tensor out = Tensor.allocate(arena, B, T, D);
            CallArgs self = CallArgs.of(x, x);
            requireSteady(what + ".callInto", () -> layer.callInto(self, out, null));
            CallArgs causal = self.withUseCausalMask(true);
            requireSteady(what + ".callInto, causal", () -> layer.callInto(causal, out, null));
            CallArgs scores = self.withReturnAttentionScores(true);
            Tensor s = Tensor.allocate(arena, layer.computeAttentionScoresShape(x.shape(), x.shape(), null));
            requireSteady(what + ".callInto, returning scores", () -> layer.callInto(scores, out, s));
        }
    }

    @Test
    void multiHeadAttention() {
        layerCalls(MultiHeadAttention.builder().numHeads(HEADS).keyDim(KEY_DIM).seed(1L).build(),
                "MultiHeadAttention");
    }

    @Test
    void groupQueryAttention() {
        layerCalls(GroupQueryAttention.builder().numQueryHeads(HEADS).numKeyValueHeads(HEADS / 2).headDim(KEY_DIM)
                .seed(2L).build(), "GroupQueryAttention");
    }

    @Test
    void attention() {
        layerCalls(Attention.builder().useScale(true).build(), "Attention");
    }

    @Test
    void additiveAttention() {
        layerCalls(AdditiveAttention.create(), "AdditiveAttention");
    }

    @Test
    void ops() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = random(arena, 3, B, HEADS, T, KEY_DIM);
            Tensor o = Tensor.allocate(arena, B, HEADS, T, KEY_DIM);
            requireSteady("Ops.attention", () -> Ops.attention(q, q, q, o, 0.125f, true));
            Tensor s = Tensor.allocate(arena, B, HEADS, T, T);
            requireSteady("Ops.matmul", () -> Ops.matmul(q, false, q, true, s));
            Tensor x = random(arena, 4, B, T, D);
            Tensor w = random(arena, 5, D, D);
            Tensor y = Tensor.allocate(arena, B, T, D);
            requireSteady("Ops.matmul, shared b", () -> Ops.matmul(x, w, y));
            requireSteady("Ops.maskedSoftmax", () -> Ops.maskedSoftmax(s, 0.125f, null, true, MaskConvention.REPLACE));
        }
    }
}
