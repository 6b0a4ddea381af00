package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.attn4j.internal.backend.Backends;
import dev.attn4j.internal.backend.GemmRoute;
import dev.attn4j.internal.backend.NativeBackend;
import dev.attn4j.layers.AdditiveAttention;
import dev.attn4j.layers.Attention;
import dev.attn4j.layers.AttentionLayer;
import dev.attn4j.layers.CallArgs;
import dev.attn4j.layers.Constraint;
import dev.attn4j.layers.GroupQueryAttention;
import dev.attn4j.layers.Initializer;
import dev.attn4j.layers.KvCache;
import dev.attn4j.layers.Layers;
import dev.attn4j.layers.MultiHeadAttention;
import dev.attn4j.layers.Regularizer;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The catalogue of bad inputs: one row per way of calling the public API wrongly (tensor
 * creation and views, {@link Ops}, {@link Attn4j}, every layer builder, build, call,
 * callInto, setWeights and config loading; Keras file loading is covered elsewhere).
 * Each row states the exact exception type and the fragments its message must contain:
 * the action or argument, what was expected and what was given. Every row also checks
 * that no matrix product reached OpenBLAS (the native backend's GEMM route counters do
 * not move), i.e. the input was rejected before any native call.
 *
 * <p>Rows with "huge" in their name wrap a small allocation in a segment reinterpreted to
 * many gigabytes: validation must reject them from the shapes alone, since touching
 * the memory would crash. They cover products that overflow the 32-bit integers
 * OpenBLAS takes (M, N, K, batch count, elements per matrix) and the 64-bit counts.
 */
class ValidationCatalogueTest {

    /** One bad input: what it does with a fresh confined arena, and how it must fail. */
    record Case(String name, Class<? extends Throwable> type, Action action, List<String> fragments) {
        @Override
        public String toString() {
            return name;
        }
    }

    @FunctionalInterface
    interface Action {
        void run(Arena arena) throws Throwable;
    }

    private static final int MAX = Integer.MAX_VALUE;

    private static Case row(String name, Class<? extends Throwable> type, Action action, String... fragments) {
        return new Case(name, type, action, List.of(fragments));
    }

    // ---- helpers: tensors and layers -------------------------------------------------

    private static Tensor f(Arena arena, long... shape) {
        return Tensor.allocate(arena, shape);
    }

    private static Tensor mask(Arena arena, long... shape) {
        return Tensor.allocateMask(arena, shape);
    }

    /** A float tensor whose arena is already closed. */
    private static Tensor closedF(long... shape) {
        try (Arena a = Arena.ofConfined()) {
            return Tensor.allocate(a, shape);
        }
    }

    private static Tensor closedMask(long... shape) {
        try (Arena a = Arena.ofConfined()) {
            return Tensor.allocateMask(a, shape);
        }
    }

    /** A float tensor of a shape far too large to allocate, over a 64-byte allocation: never to be read. */
    private static Tensor huge(Arena arena, long... shape) {
        return Tensor.wrap(arena.allocate(64, 64).reinterpret(Long.MAX_VALUE), shape);
    }

    private static Attention dot() {
        return Attention.builder().build();
    }

    private static MultiHeadAttention mha() {
        return MultiHeadAttention.builder().numHeads(2).keyDim(3).build();
    }

    private static GroupQueryAttention gqa() {
        return GroupQueryAttention.builder().headDim(2).numQueryHeads(4).numKeyValueHeads(2).build();
    }

    /** Runs {@code body} with mha() built for inputs (2, 1, 4), then closes it. */
    private static void cached(Arena arena, java.util.function.Consumer<MultiHeadAttention> body) {
        try (MultiHeadAttention l = mha()) {
            l.build(new long[] {2, 1, 4}, new long[] {2, 1, 4}, null);
            body.accept(l);
        }
    }

    /** A cached call of mha() (built for D = 4) with a cache of B = 2, L = 3. */
    private static void cachedCall(Arena arena, Tensor query, Tensor value, Tensor key, int[] newLengths,
                                   Tensor output) {
        cached(arena, l -> {
            try (KvCache cache = KvCache.create(l, 2, 3)) {
                l.callCachedInto(cache, query, value, key, newLengths, output);
            }
        });
    }

    private static void call(AttentionLayer layer, Arena arena, CallArgs args) {
        try (layer) {
            layer.call(arena, args);
        }
    }

    private static void build(AttentionLayer layer, long[] q, long[] v, long[] k) {
        try (layer) {
            layer.build(q, v, k);
        }
    }

    private static long[] s(long... dims) {
        return dims;
    }

    private static Map<String, Object> config(Object... keyValues) {
        Map<String, Object> m = new HashMap<>();
        for (int i = 0; i < keyValues.length; i += 2) {
            m.put((String) keyValues[i], keyValues[i + 1]);
        }
        return m;
    }

    // ---- the catalogue -----------------------------------------------------------------

    static List<Case> catalogue() {
        List<Case> c = new ArrayList<>();
        Class<IllegalArgumentException> iae = IllegalArgumentException.class;
        Class<IllegalStateException> ise = IllegalStateException.class;
        Class<NullPointerException> npe = NullPointerException.class;
        Class<IndexOutOfBoundsException> ioobe = IndexOutOfBoundsException.class;
        Class<UnsupportedOperationException> uoe = UnsupportedOperationException.class;

        // Tensor creation
        c.add(row("Tensor.allocate: null arena", npe, a -> Tensor.allocate(null, 2, 3),
                "Tensor.allocate", "arena must not be null"));
        c.add(row("Tensor.allocate: null shape", npe, a -> Tensor.allocate(a, (long[]) null),
                "Tensor.allocate", "shape must not be null"));
        c.add(row("Tensor.allocate: negative dimension", iae, a -> Tensor.allocate(a, 2, -3),
                "Tensor.allocate", "dimensions >= 0", "[2, -3]", "-3 at axis 1"));
        c.add(row("Tensor.allocate: element count overflows a long", iae,
                a -> Tensor.allocate(a, 1L << 32, 1L << 32),
                "Tensor.allocate", "[4294967296, 4294967296]", "more elements than a long can count"));
        c.add(row("Tensor.allocate: byte count overflows a long", iae,
                a -> Tensor.allocate(a, Long.MAX_VALUE / 2),
                "Tensor.allocate", Long.toString(Long.MAX_VALUE / 2), "float32 overflow a byte count"));
        c.add(row("Tensor.allocate: closed arena", ise, a -> {
            Arena closed = Arena.ofConfined();
            closed.close();
            Tensor.allocate(closed, 4);
        }, "Tensor.allocate", "arena is closed"));
        c.add(row("Tensor.of: null data", npe, a -> Tensor.of(a, null, 2),
                "Tensor.of", "data must not be null"));
        c.add(row("Tensor.of: data shorter than the shape", iae, a -> Tensor.of(a, new float[5], 2, 3),
                "Tensor.of", "data has 5 elements", "shape [2, 3] needs 6"));
        c.add(row("Tensor.of: data length checked before allocating a huge shape", iae,
                a -> Tensor.of(a, new float[5], 1L << 40),
                "Tensor.of", "data has 5 elements", "shape [1099511627776] needs 1099511627776"));
        c.add(row("Tensor.ofMask: data longer than the shape", iae, a -> Tensor.ofMask(a, new boolean[7], 2, 3),
                "Tensor.ofMask", "data has 7 elements", "shape [2, 3] needs 6"));
        c.add(row("Tensor.wrap: null segment", npe, a -> Tensor.wrap(null, 4),
                "Tensor.wrap", "segment must not be null"));
        c.add(row("Tensor.wrap: segment too small for the shape", iae, a -> Tensor.wrap(a.allocate(20, 4), 2, 3),
                "Tensor.wrap", "too small for shape [2, 3]", "needs 24 bytes, has 20"));
        c.add(row("Tensor.wrap: segment not aligned for float", iae,
                a -> Tensor.wrap(a.allocate(64, 8).asSlice(2), 4),
                "Tensor.wrap", "aligned to 4 bytes for float32", "address is 0x"));
        c.add(row("Tensor.wrap: heap segment", iae, a -> Tensor.wrap(MemorySegment.ofArray(new float[4]), 4),
                "Tensor.wrap", "must be native (off-heap)", "heap segment"));
        c.add(row("Tensor.wrap: segment of a closed arena", ise, a -> {
            MemorySegment seg;
            try (Arena other = Arena.ofConfined()) {
                seg = other.allocate(16, 4);
            }
            Tensor.wrap(seg, 4);
        }, "Tensor.wrap", "arena is already closed"));
        c.add(row("Tensor.wrapMask: segment too small", iae, a -> Tensor.wrapMask(a.allocate(5), 2, 3),
                "Tensor.wrapMask", "too small for shape [2, 3] of bool", "needs 6 bytes, has 5"));

        // Tensor data and views
        c.add(row("Tensor.get: wrong number of indices", iae, a -> f(a, 2, 3).get(1),
                "get", "expected 2 indices for shape [2, 3], got 1"));
        c.add(row("Tensor.get: index out of bounds", ioobe, a -> f(a, 2, 3).get(1, 3),
                "get", "index [1, 3]", "out of bounds for shape [2, 3] at axis 1"));
        c.add(row("Tensor.get: closed arena", ise, a -> closedF(2, 3).get(0, 0),
                "get", "arena of Tensor[float32, shape=[2, 3]] is closed"));
        c.add(row("Tensor.set: bool tensor", iae, a -> mask(a, 2).set(1f, 0),
                "set", "needs a float32 tensor", "this one is bool"));
        c.add(row("Tensor.toFloatArray: closed arena", ise, a -> closedF(4).toFloatArray(),
                "toFloatArray", "arena of Tensor[float32, shape=[4]] is closed"));
        c.add(row("Tensor.copyFrom: wrong length", iae, a -> f(a, 2, 2).copyFrom(new float[3]),
                "copyFrom", "data has 3 elements", "shape [2, 2] needs 4"));
        c.add(row("Tensor.dim: axis out of range", ioobe, a -> f(a, 2, 3).dim(2),
                "dim", "axis must be in [-2, 2)", "but is 2"));
        c.add(row("Tensor.slice: index past the end", ioobe, a -> f(a, 2, 3).slice(2),
                "slice", "index must be in [0, 2)", "but is 2"));
        c.add(row("Tensor.slice: scalar", iae, a -> f(a).slice(0),
                "slice", "scalar tensor has no axis 0"));
        c.add(row("Tensor.slice: reversed range", ioobe, a -> f(a, 4, 3).slice(3, 1),
                "slice", "0 <= from <= to <= 4", "[3, 1)"));
        c.add(row("Tensor.slice: closed arena", ise, a -> closedF(4, 3).slice(1),
                "slice", "is closed"));
        c.add(row("Tensor.reshape: element count differs", iae, a -> f(a, 2, 3).reshape(4),
                "reshape", "shape [4] has 4 elements", "[2, 3] has 6"));
        c.add(row("Tensor.reshape: closed arena", ise, a -> closedF(2, 3).reshape(3, 2),
                "reshape", "is closed"));

        // Ops.matmul
        c.add(row("Ops.matmul: null a", npe, a -> Ops.matmul(null, f(a, 2, 2), f(a, 2, 2)),
                "matmul", "a must not be null"));
        c.add(row("Ops.matmul: null out", npe, a -> Ops.matmul(f(a, 2, 2), f(a, 2, 2), null),
                "matmul", "out must not be null"));
        c.add(row("Ops.matmul: bool operand", iae, a -> Ops.matmul(f(a, 2, 2), mask(a, 2, 2), f(a, 2, 2)),
                "matmul", "b must be float32", "Tensor[bool, shape=[2, 2]]"));
        c.add(row("Ops.matmul: rank 1", iae, a -> Ops.matmul(f(a, 4), f(a, 4, 1), f(a, 1)),
                "matmul", "a must have rank >= 2", "shape [4]"));
        c.add(row("Ops.matmul: b of another rank", iae, a -> Ops.matmul(f(a, 2, 3, 4), f(a, 2, 2, 4, 5), f(a, 2, 3, 5)),
                "matmul", "b must have the rank of a (3) or rank 2", "[2, 2, 4, 5]"));
        c.add(row("Ops.matmul: inner dimensions differ", iae, a -> Ops.matmul(f(a, 2, 3), f(a, 4, 5), f(a, 2, 5)),
                "matmul", "inner dimensions differ", "K = 3", "K = 4"));
        c.add(row("Ops.matmul: inner dimensions differ (transposed b)", iae,
                a -> Ops.matmul(f(a, 2, 3), false, f(a, 5, 4), true, f(a, 2, 5)),
                "matmul", "(transposed) gives K = 4", "gives K = 3"));
        c.add(row("Ops.matmul: batch dimensions differ", iae, a -> Ops.matmul(f(a, 2, 3, 4), f(a, 3, 4, 5), f(a, 2, 3, 5)),
                "matmul", "batch dimensions differ at axis 0", "[2, 3, 4]", "[3, 4, 5]"));
        c.add(row("Ops.matmul: out of the wrong shape", iae, a -> Ops.matmul(f(a, 2, 3), f(a, 3, 5), f(a, 5, 2)),
                "matmul", "out must have shape [2, 5]", "but has [5, 2]"));
        c.add(row("Ops.matmul: read-only out", iae, a -> Ops.matmul(f(a, 2, 2), f(a, 2, 2),
                Tensor.wrap(a.allocate(16, 4).asReadOnly(), 2, 2)),
                "matmul", "out must be writable", "read-only"));
        c.add(row("Ops.matmul: a of a closed arena", ise, a -> Ops.matmul(closedF(2, 2), f(a, 2, 2), f(a, 2, 2)),
                "matmul (a)", "is closed"));
        c.add(row("Ops.matmul: out of a closed arena", ise, a -> Ops.matmul(f(a, 2, 2), f(a, 2, 2), closedF(2, 2)),
                "matmul (out)", "is closed"));
        c.add(row("Ops.matmul: huge M > 2^31-1", iae,
                a -> Ops.matmul(huge(a, 1L << 31, 1), huge(a, 1, 1), huge(a, 1L << 31, 1)),
                "matmul", "M = 2147483648", "exceeds the 32-bit integer range", "(2147483647)"));
        c.add(row("Ops.matmul: huge K > 2^31-1 (transposed a)", iae,
                a -> Ops.matmul(huge(a, 1L << 31, 1), true, huge(a, 1L << 31, 1), false, huge(a, 1, 1)),
                "matmul", "K = 2147483648", "exceeds the 32-bit integer range"));
        c.add(row("Ops.matmul: huge batch count > 2^31-1", iae,
                a -> Ops.matmul(huge(a, 1L << 16, 1L << 16, 1, 1), huge(a, 1, 1), huge(a, 1L << 16, 1L << 16, 1, 1)),
                "matmul", "batch count = 4294967296", "exceeds the 32-bit integer range"));
        c.add(row("Ops.matmul: huge matrix of 2^32 elements", iae,
                a -> Ops.matmul(huge(a, 1L << 16, 1L << 16), huge(a, 1L << 16, 1), huge(a, 1L << 16, 1)),
                "matmul", "elements per matrix", "= 4294967296", "exceeds the 32-bit integer range"));

        // Ops.maskedSoftmax
        c.add(row("Ops.maskedSoftmax: null scores", npe,
                a -> Ops.maskedSoftmax(null, 1f, null, false, MaskConvention.SUBTRACT),
                "maskedSoftmax", "scores must not be null"));
        c.add(row("Ops.maskedSoftmax: null convention", npe,
                a -> Ops.maskedSoftmax(f(a, 2, 2), 1f, null, false, null),
                "maskedSoftmax", "convention must not be null"));
        c.add(row("Ops.maskedSoftmax: scores of rank 1", iae,
                a -> Ops.maskedSoftmax(f(a, 5), 1f, null, false, MaskConvention.SUBTRACT),
                "maskedSoftmax", "scores must have rank >= 2", "shape [5]"));
        c.add(row("Ops.maskedSoftmax: float mask where bool is required", iae,
                a -> Ops.maskedSoftmax(f(a, 2, 3, 4), 1f, f(a, 2, 3, 4), false, MaskConvention.SUBTRACT),
                "maskedSoftmax", "mask must be a bool tensor", "Tensor[float32, shape=[2, 3, 4]]"));
        c.add(row("Ops.maskedSoftmax: mask with the wrong Tv", iae,
                a -> Ops.maskedSoftmax(f(a, 2, 3, 4), 1f, mask(a, 2, 3, 5), false, MaskConvention.REPLACE),
                "maskedSoftmax", "mask shape [2, 3, 5] does not fit scores [2, 3, 4]", "Tv = 4"));
        c.add(row("Ops.maskedSoftmax: mask with the wrong rank", iae,
                a -> Ops.maskedSoftmax(f(a, 2, 3, 4), 1f, mask(a, 4), false, MaskConvention.REPLACE),
                "maskedSoftmax", "mask must have rank 3", "or 2", "but has shape [4]"));
        c.add(row("Ops.maskedSoftmax: mask leading axes that cannot broadcast", iae,
                a -> Ops.maskedSoftmax(f(a, 2, 3, 4, 5), 1f, mask(a, 3, 3, 4, 5), false, MaskConvention.REPLACE),
                "maskedSoftmax", "mask shape [3, 3, 4, 5] cannot broadcast to scores [2, 3, 4, 5]", "axis 0 is 3"));
        c.add(row("Ops.maskedSoftmax: mask of a closed arena", ise,
                a -> Ops.maskedSoftmax(f(a, 2, 4), 1f, closedMask(2, 4), false, MaskConvention.REPLACE),
                "maskedSoftmax (mask)", "is closed"));
        c.add(row("Ops.maskedSoftmax: huge Tv > 2^31-1", iae,
                a -> Ops.maskedSoftmax(huge(a, 1, 1L << 31), 1f, null, true, MaskConvention.REPLACE),
                "maskedSoftmax", "Tv = 2147483648", "exceeds the 32-bit integer range"));

        // Attn4j
        c.add(row("Attn4j.setNumThreads: 0", iae, a -> Attn4j.setNumThreads(0),
                "setNumThreads", "threads must be >= 1", "but is 0"));

        // Layer builders
        c.add(row("Attention: dropout 1", iae, a -> Attention.builder().dropout(1).build(),
                "Attention", "dropout must be a rate in [0, 1)", "but is 1.0"));
        c.add(row("Attention: dropout NaN", iae, a -> Attention.builder().dropout(Double.NaN).build(),
                "Attention", "dropout must be a rate in [0, 1)", "but is NaN"));
        c.add(row("Attention: dropout negative", iae, a -> Attention.builder().dropout(-0.25).build(),
                "Attention", "dropout must be a rate in [0, 1)", "but is -0.25"));
        c.add(row("Attention: unknown score mode", iae, a -> Attention.builder().scoreMode("general").build(),
                "Attention", "scoreMode must be one of {\"dot\", \"concat\"}", "\"general\""));
        c.add(row("Attention: null score mode", iae, a -> Attention.builder().scoreMode(null).build(),
                "Attention", "scoreMode must be one of", "but is null"));
        c.add(row("AdditiveAttention: dropout infinite", iae,
                a -> AdditiveAttention.builder().dropout(Double.POSITIVE_INFINITY).build(),
                "AdditiveAttention", "dropout must be a rate in [0, 1)", "but is Infinity"));
        c.add(row("MultiHeadAttention: numHeads 0", iae, a -> MultiHeadAttention.builder().numHeads(0).keyDim(2).build(),
                "MultiHeadAttention", "numHeads must be a positive integer", "but is 0"));
        c.add(row("MultiHeadAttention: numHeads missing", iae, a -> MultiHeadAttention.builder().keyDim(2).build(),
                "MultiHeadAttention", "numHeads must be a positive integer", "but is null"));
        c.add(row("MultiHeadAttention: keyDim negative", iae,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(-4).build(),
                "MultiHeadAttention", "keyDim must be a positive integer", "but is -4"));
        c.add(row("MultiHeadAttention: valueDim 0", iae,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(2).valueDim(0).build(),
                "MultiHeadAttention", "valueDim must be null or a positive integer", "but is 0"));
        c.add(row("MultiHeadAttention: dropout NaN", iae,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(2).dropout(Double.NaN).build(),
                "MultiHeadAttention", "dropout must be a rate in [0, 1)", "but is NaN"));
        c.add(row("MultiHeadAttention: outputShape with a zero", iae,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(2).outputShape(3, 0).build(),
                "MultiHeadAttention", "outputShape must hold positive ints", "[3, 0]"));
        c.add(row("MultiHeadAttention: slidingWindow 0", iae,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(2).slidingWindow(0).build(),
                "MultiHeadAttention", "slidingWindow must be null or a positive integer", "but is 0"));
        c.add(row("MultiHeadAttention: flashAttention with dropout", iae,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(2).flashAttention(true).dropout(0.1).build(),
                "MultiHeadAttention", "dropout is not supported with flashAttention"));
        c.add(row("MultiHeadAttention: unknown kernel initializer", iae,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(2).kernelInitializer("glorot").build(),
                "Initializer.of", "unknown initializer 'glorot'", "glorot_uniform"));
        c.add(row("MultiHeadAttention: orthogonal initializer", uoe,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(2).kernelInitializer("orthogonal").build(),
                "Initializer.of", "'orthogonal' is not supported"));
        c.add(row("MultiHeadAttention: unknown regularizer", iae,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(2).biasRegularizer("l3").build(),
                "Regularizer.of", "unknown regularizer 'l3'", "l1l2"));
        c.add(row("MultiHeadAttention: initializer of a wrong type", iae,
                a -> MultiHeadAttention.builder().numHeads(2).keyDim(2).kernelInitializer(42).build(),
                "Initializer.of", "cannot interpret 42 (Integer)", "expected a name"));
        c.add(row("GroupQueryAttention: numKeyValueHeads does not divide numQueryHeads", iae,
                a -> GroupQueryAttention.builder().headDim(2).numQueryHeads(6).numKeyValueHeads(4).build(),
                "`num_query_heads` must be divisible by `num_key_value_heads`", "numQueryHeads = 6",
                "numKeyValueHeads = 4"));
        c.add(row("GroupQueryAttention: numKeyValueHeads 0", iae,
                a -> GroupQueryAttention.builder().headDim(2).numQueryHeads(4).numKeyValueHeads(0).build(),
                "GroupQueryAttention", "numKeyValueHeads must be a positive integer", "but is 0"));
        c.add(row("GroupQueryAttention: headDim missing", iae,
                a -> GroupQueryAttention.builder().numQueryHeads(4).numKeyValueHeads(2).build(),
                "GroupQueryAttention", "headDim must be a positive integer", "but is null"));
        c.add(row("GroupQueryAttention: dropout 1.5", iae,
                a -> GroupQueryAttention.builder().headDim(2).numQueryHeads(4).numKeyValueHeads(2).dropout(1.5).build(),
                "GroupQueryAttention", "dropout must be a rate in [0, 1)", "but is 1.5"));

        // Attention axes (resolved at build, as in Keras)
        c.add(row("MultiHeadAttention: attention axis on the feature axis", iae,
                a -> build(MultiHeadAttention.builder().numHeads(2).keyDim(2).attentionAxes(3).build(),
                        s(2, 3, 4, 5), s(2, 3, 4, 5), null),
                "attentionAxes [3] resolve to axis 3 for inputs of rank 4",
                "strictly between the batch axis 0 and the feature axis 3"));
        c.add(row("MultiHeadAttention: attention axis -1 is the feature axis", iae,
                a -> build(MultiHeadAttention.builder().numHeads(2).keyDim(2).attentionAxes(-1).build(),
                        s(2, 3, 4), s(2, 3, 4), null),
                "attentionAxes [-1] resolve to axis 2 for inputs of rank 3", "feature axis 2"));
        c.add(row("MultiHeadAttention: attention axis on the batch axis", iae,
                a -> build(MultiHeadAttention.builder().numHeads(2).keyDim(2).attentionAxes(0, 2).build(),
                        s(2, 3, 4, 5), s(2, 3, 4, 5), null),
                "attentionAxes [0, 2] resolve to axis 0", "batch axis 0"));
        c.add(row("MultiHeadAttention: attention axis out of range", iae,
                a -> build(MultiHeadAttention.builder().numHeads(2).keyDim(2).attentionAxes(7).build(),
                        s(2, 3, 4), s(2, 3, 4), null),
                "attentionAxes [7] resolve to axis 7 for inputs of rank 3"));
        c.add(row("MultiHeadAttention: attention axis named twice", iae,
                a -> build(MultiHeadAttention.builder().numHeads(2).keyDim(2).attentionAxes(1, -3).build(),
                        s(2, 3, 4, 5), s(2, 3, 4, 5), null),
                "attentionAxes [1, -3] name axis 1 twice"));
        c.add(row("MultiHeadAttention: attention axes in decreasing order", uoe,
                a -> build(MultiHeadAttention.builder().numHeads(2).keyDim(2).attentionAxes(2, 1).build(),
                        s(2, 3, 4, 5), s(2, 3, 4, 5), null),
                "attentionAxes [2, 1] are not in increasing order"));

        // build / computeOutputShape
        c.add(row("build: null query shape", npe, a -> build(dot(), null, s(2, 3, 4), null),
                "Attention.build", "queryShape must not be null"));
        c.add(row("build: rank 2 query", iae, a -> build(dot(), s(3, 4), s(3, 4), null),
                "query must have rank >= 3", "shape [3, 4]"));
        c.add(row("build: ranks differ", iae, a -> build(dot(), s(2, 3, 4), s(2, 1, 3, 4), null),
                "same rank", "query [2, 3, 4]", "value [2, 1, 3, 4]"));
        c.add(row("build: batch sizes of query and value differ", iae, a -> build(dot(), s(2, 3, 4), s(3, 5, 4), null),
                "batch dimensions must match", "axis 0 is 2 in query [2, 3, 4]", "3 in value [3, 5, 4]"));
        c.add(row("build: key and value lengths differ", iae,
                a -> build(dot(), s(2, 3, 4), s(2, 5, 6), s(2, 4, 4)),
                "key and value must have the same length Tv", "key [2, 4, 4] has 4", "value [2, 5, 6] has 5"));
        c.add(row("build: key features differ from the query's", iae,
                a -> build(dot(), s(2, 3, 4), s(2, 5, 6), s(2, 5, 3)),
                "key feature dimension must equal the query's (4)", "key has shape [2, 5, 3]"));
        c.add(row("build: value used as key with other features", iae, a -> build(dot(), s(2, 3, 4), s(2, 5, 6), null),
                "value (used as key) feature dimension must equal the query's (4)", "[2, 5, 6]"));
        c.add(row("build: zero-length dimension", iae, a -> build(dot(), s(2, 0, 4), s(2, 5, 4), null),
                "every dimension must be in [1, 2147483647]", "[2, 0, 4]"));
        c.add(row("computeOutputShape: batch product overflows a long", iae,
                a -> dot().computeOutputShape(s(MAX, MAX, MAX, 1, 1), s(MAX, MAX, MAX, 1, 1), null),
                "Attention.computeOutputShape", "batch", "must each fit the 32-bit integers"));
        c.add(row("MultiHeadAttention build: value and key positions differ", iae,
                a -> build(mha(), s(2, 3, 4), s(2, 5, 4), s(2, 6, 4)),
                "all dimensions of value and key except the last must be equal", "[2, 5, 4]", "[2, 6, 4]"));
        c.add(row("MultiHeadAttention build: batch sizes differ", iae, a -> build(mha(), s(2, 3, 4), s(1, 3, 4), null),
                "batch sizes of query [2, 3, 4] and value/key [1, 3, 4] differ"));
        c.add(row("MultiHeadAttention build: non-attention axis differs", iae,
                a -> build(MultiHeadAttention.builder().numHeads(2).keyDim(2).attentionAxes(2).build(),
                        s(2, 3, 4, 5), s(2, 7, 4, 5), null),
                "axis 1 is not an attention axis", "[2, 3, 4, 5]", "[2, 7, 4, 5]"));
        c.add(row("GroupQueryAttention build: 4-D inputs", iae, a -> build(gqa(), s(2, 3, 4, 5), s(2, 3, 4, 5), null),
                "GroupQueryAttention takes 3-D inputs", "got rank 4"));
        c.add(row("AdditiveAttention build: other query features than built for", iae, a -> {
            try (AdditiveAttention l = AdditiveAttention.create()) {
                l.build(s(2, 3, 4), s(2, 5, 4), null);
                l.build(s(2, 3, 6), s(2, 5, 6), null);
            }
        }, "was built for query features D = 4", "the query has D = 6"));

        // call
        c.add(row("call: null arena", npe, a -> call(dot(), null, CallArgs.of(f(a, 1, 2, 3), f(a, 1, 2, 3))),
                "Attention.call", "arena must not be null"));
        c.add(row("call: null args", npe, a -> call(dot(), a, null),
                "Attention.call", "args must not be null"));
        c.add(row("CallArgs.of: null value", npe, a -> CallArgs.of(f(a, 1, 2, 3), null),
                "CallArgs.of", "value must not be null"));
        c.add(row("call: bool query", iae, a -> call(dot(), a, CallArgs.of(mask(a, 1, 2, 3), f(a, 1, 2, 3))),
                "Attention.call", "query must be float32", "Tensor[bool, shape=[1, 2, 3]]"));
        c.add(row("call: query of a closed arena", ise, a -> call(dot(), a, CallArgs.of(closedF(1, 2, 3), f(a, 1, 2, 3))),
                "Attention.call", "arena of query", "is closed"));
        c.add(row("call: key of a closed arena", ise, a -> call(mha(), a,
                CallArgs.of(f(a, 1, 2, 3), f(a, 1, 2, 3)).withKey(closedF(1, 2, 3))),
                "MultiHeadAttention.call", "arena of key", "is closed"));
        c.add(row("call: query and value batch differ", iae,
                a -> call(AdditiveAttention.create(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 1, 5, 4))),
                "AdditiveAttention.call", "batch dimensions must match", "axis 0 is 2 in query", "1 in value"));
        c.add(row("call: Attention with a keyMask", iae,
                a -> call(dot(), a, CallArgs.of(f(a, 1, 2, 3), f(a, 1, 4, 3)).withKeyMask(mask(a, 1, 4))),
                "Attention.call", "takes queryMask and valueMask only", "got keyMask"));
        c.add(row("call: Attention with an attentionMask", iae,
                a -> call(dot(), a, CallArgs.of(f(a, 1, 2, 3), f(a, 1, 4, 3)).withAttentionMask(mask(a, 1, 2, 4))),
                "Attention.call", "takes queryMask and valueMask only", "got attentionMask"));
        c.add(row("call: Attention float valueMask where bool is required", iae,
                a -> call(dot(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withValueMask(f(a, 2, 5))),
                "Attention.call", "valueMask must be a bool tensor of shape [2, 5]", "Tensor[float32, shape=[2, 5]]"));
        c.add(row("call: AdditiveAttention float queryMask where bool is required", iae,
                a -> call(AdditiveAttention.create(), a,
                        CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withQueryMask(f(a, 2, 3))),
                "AdditiveAttention.call", "queryMask must be a bool tensor of shape [2, 3]",
                "Tensor[float32, shape=[2, 3]]"));
        c.add(row("call: Attention valueMask of the wrong length", iae,
                a -> call(dot(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withValueMask(mask(a, 2, 4))),
                "Attention.call", "valueMask must have shape [2, 5]", "but has [2, 4]"));
        c.add(row("call: Attention queryMask of the wrong batch", iae,
                a -> call(dot(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withQueryMask(mask(a, 1, 3))),
                "Attention.call", "queryMask must have shape [2, 3]", "but has [1, 3]"));
        c.add(row("call: Attention valueMask of a closed arena", ise,
                a -> call(dot(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withValueMask(closedMask(2, 5))),
                "Attention.call", "arena of valueMask", "is closed"));
        c.add(row("call: huge Attention with Tq * Tv > 2^31-1", iae,
                a -> call(dot(), a, CallArgs.of(f(a, 1, 65536, 1), f(a, 1, 32769, 1))),
                "Attention.call", "Tq * Tv (2147549184)", "must each fit the 32-bit integers"));
        c.add(row("call: huge Attention with a batch > 2^31-1", iae,
                a -> call(dot(), a, CallArgs.of(huge(a, 1L << 16, 1L << 16, 1, 1), huge(a, 1L << 16, 1L << 16, 1, 1))),
                "Attention.call", "batch (4294967296)", "must each fit the 32-bit integers"));
        c.add(row("call: MultiHeadAttention queryMask of the wrong shape", iae,
                a -> call(mha(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withQueryMask(mask(a, 2, 5))),
                "MultiHeadAttention.call", "queryMask must have shape [2, 3]", "but has [2, 5]"));
        c.add(row("call: MultiHeadAttention valueMask of the wrong shape", iae,
                a -> call(mha(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withValueMask(mask(a, 2, 3))),
                "MultiHeadAttention.call", "valueMask must have shape [2, 5]", "but has [2, 3]"));
        c.add(row("call: MultiHeadAttention keyMask of the wrong rank", iae,
                a -> call(mha(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withKeyMask(mask(a, 2, 3, 5))),
                "MultiHeadAttention.call", "keyMask must have shape [2, 5]", "but has [2, 3, 5]"));
        c.add(row("call: MultiHeadAttention attentionMask that cannot broadcast", iae,
                a -> call(mha(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withAttentionMask(mask(a, 2, 3, 4))),
                "MultiHeadAttention.call", "attentionMask of shape [2, 3, 4]",
                "cannot broadcast to the attention scores [2, 2, 3, 5]", "axis 3 must be 1 or 5"));
        c.add(row("call: MultiHeadAttention attentionMask of rank 1", iae,
                a -> call(mha(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withAttentionMask(mask(a, 5))),
                "MultiHeadAttention.call", "attentionMask of shape [5]", "does not fit the attention scores [2, 2, 3, 5]"));
        c.add(row("call: GroupQueryAttention attentionMask with the wrong head count", iae,
                a -> call(gqa(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withAttentionMask(mask(a, 2, 2, 3, 5))),
                "GroupQueryAttention.call", "attentionMask of shape [2, 2, 3, 5]",
                "attention scores [2, 4, 3, 5]", "axis 1 must be 1 or 4"));
        c.add(row("call: MultiHeadAttention attentionMask of a closed arena", ise,
                a -> call(mha(), a, CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withAttentionMask(closedMask(2, 3, 5))),
                "MultiHeadAttention.call", "arena of attentionMask", "is closed"));
        c.add(row("call: MultiHeadAttention padding mask on 4-D inputs", uoe,
                a -> call(mha(), a, CallArgs.of(f(a, 2, 3, 3, 4), f(a, 2, 3, 3, 4)).withValueMask(mask(a, 2, 9))),
                "MultiHeadAttention.call", "padding masks are supported for 3-D inputs only"));
        c.add(row("call: flashAttention with returned scores", iae,
                a -> call(MultiHeadAttention.builder().numHeads(2).keyDim(2).flashAttention(true).build(), a,
                        CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withReturnAttentionScores(true)),
                "MultiHeadAttention.call", "returning attention scores is not supported with flashAttention"));
        c.add(row("call: huge MultiHeadAttention with T * S > 2^31-1", iae,
                a -> call(mha(), a, CallArgs.of(f(a, 1, 65536, 1), f(a, 1, 32769, 1))),
                "MultiHeadAttention.call", "T * S = 2147549184", "exceeds"));
        c.add(row("call: MultiHeadAttention with other query features than built for", iae, a -> {
            try (MultiHeadAttention l = mha()) {
                l.build(s(2, 3, 4), s(2, 5, 4), null);
                l.call(a, CallArgs.of(f(a, 2, 3, 6), f(a, 2, 5, 4)));
            }
        }, "MultiHeadAttention.call", "was built for query features 4", "the query has shape [2, 3, 6]"));
        c.add(row("call: closed layer", ise, a -> {
            Attention l = dot();
            l.close();
            l.call(a, CallArgs.of(f(a, 1, 2, 3), f(a, 1, 2, 3)));
        }, "Attention.call", "is closed"));

        // callInto
        c.add(row("callInto: output of the wrong shape", iae, a -> {
            try (Attention l = dot()) {
                l.callInto(CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)), f(a, 2, 3, 5), null);
            }
        }, "Attention.callInto", "output must be float32 of shape [2, 3, 4]", "Tensor[float32, shape=[2, 3, 5]]"));
        c.add(row("callInto: output null", npe, a -> {
            try (Attention l = dot()) {
                l.callInto(CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)), null, null);
            }
        }, "Attention.callInto", "output must not be null"));
        c.add(row("callInto: scores given but not asked for", iae, a -> {
            try (Attention l = dot()) {
                l.callInto(CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)), f(a, 2, 3, 4), f(a, 2, 3, 5));
            }
        }, "Attention.callInto", "attentionScores must be null when the call does not return attention scores"));
        c.add(row("callInto: scores asked for but missing", npe, a -> {
            try (MultiHeadAttention l = mha()) {
                l.callInto(CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)).withReturnAttentionScores(true), f(a, 2, 3, 4),
                        null);
            }
        }, "MultiHeadAttention.callInto", "attentionScores must not be null"));
        c.add(row("callInto: read-only output", iae, a -> {
            try (Attention l = dot()) {
                Tensor ro = Tensor.wrap(a.allocate(2 * 3 * 4 * 4, 4).asReadOnly(), 2, 3, 4);
                l.callInto(CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)), ro, null);
            }
        }, "Attention.callInto", "output must be writable"));
        c.add(row("callInto: output of a closed arena", ise, a -> {
            try (Attention l = dot()) {
                l.callInto(CallArgs.of(f(a, 2, 3, 4), f(a, 2, 5, 4)), closedF(2, 3, 4), null);
            }
        }, "Attention.callInto", "arena of output", "is closed"));

        // setWeights and weights
        c.add(row("setWeights: before build", ise, a -> {
            try (Attention l = Attention.builder().useScale(true).build()) {
                l.setWeights(new float[] {1f});
            }
        }, "Attention.setWeights", "is not built yet"));
        c.add(row("setWeights: wrong count", iae, a -> {
            try (Attention l = Attention.builder().name("att").useScale(true).build()) {
                l.build(s(1, 2, 3), s(1, 2, 3), null);
                l.setWeights(new float[] {1f}, new float[] {2f});
            }
        }, "Attention.setWeights", "expected 1 weights [att/scale []]", "but 2 were given"));
        c.add(row("setWeights: wrong element count", iae, a -> {
            try (AdditiveAttention l = AdditiveAttention.builder().name("add").build()) {
                l.build(s(1, 2, 3), s(1, 2, 3), null);
                l.setWeights(new float[4]);
            }
        }, "AdditiveAttention.setWeights", "weight 0 (add/scale) has shape [3] = 3 values", "but 4 were given"));
        c.add(row("setWeights: null weight", npe, a -> {
            try (Attention l = Attention.builder().name("att").useScale(true).build()) {
                l.build(s(1, 2, 3), s(1, 2, 3), null);
                l.setWeights((float[]) null);
            }
        }, "Attention.setWeights", "value 0 (att/scale) is null"));
        c.add(row("setWeights: tensor of the wrong shape", iae, a -> {
            try (MultiHeadAttention l = MultiHeadAttention.builder().name("mha").numHeads(2).keyDim(3).useBias(false)
                    .build()) {
                l.build(s(1, 2, 4), s(1, 2, 4), null);
                List<Tensor> w = new ArrayList<>();
                w.add(f(a, 24));
                for (int i = 1; i < l.weights().size(); i++) {
                    w.add(f(a, l.weights().get(i).shape()));
                }
                l.setWeights(w);
            }
        }, "MultiHeadAttention.setWeights", "weight 0 (mha/query/kernel) must be float32 of shape [4, 2, 3]",
                "Tensor[float32, shape=[24]]"));
        c.add(row("setWeights: tensor of a closed arena", ise, a -> {
            try (Attention l = Attention.builder().name("att").useScale(true).build()) {
                l.build(s(1, 2, 3), s(1, 2, 3), null);
                l.setWeights(List.of(closedF()));
            }
        }, "Attention.setWeights", "weight 0 (att/scale)", "is closed"));
        c.add(row("setWeights: after close", ise, a -> {
            Attention l = Attention.builder().name("att").useScale(true).build();
            l.build(s(1, 2, 3), s(1, 2, 3), null);
            l.close();
            l.setWeights(new float[] {1f});
        }, "Attention.setWeights", "layer 'att' is closed"));
        c.add(row("weights: after close", ise, a -> {
            MultiHeadAttention l = MultiHeadAttention.builder().name("m").numHeads(1).keyDim(1).build();
            l.build(s(1, 2, 3), s(1, 2, 3), null);
            l.close();
            l.weights();
        }, "weights", "layer 'm' is closed"));

        // gradients: forward / backward of the layers, Ops.attentionBackward
        c.add(row("AttentionLayer.forward: null arena", npe, a -> {
            try (MultiHeadAttention l = mha()) {
                Tensor x = f(a, 2, 3, 4);
                l.forward(null, CallArgs.of(x, x));
            }
        }, "MultiHeadAttention.forward", "arena must not be null"));
        c.add(row("AttentionLayer.forward: rank-2 query", iae, a -> {
            try (Attention l = dot()) {
                l.forward(a, CallArgs.of(f(a, 3, 4), f(a, 3, 4)));
            }
        }, "Attention.forward", "rank >= 3", "[3, 4]"));
        c.add(row("AttentionLayer.backward: null forward pass", npe, a -> {
            try (GroupQueryAttention l = gqa()) {
                l.backward(a, null, f(a, 2, 3, 4));
            }
        }, "GroupQueryAttention.backward", "forward must not be null"));
        c.add(row("Ops.attentionBackward: null dq", npe,
                a -> Ops.attentionBackward(f(a, 2, 3, 4), f(a, 2, 5, 4), f(a, 2, 5, 6), f(a, 2, 3, 6), f(a, 2, 3, 6),
                        null, f(a, 2, 5, 4), f(a, 2, 5, 6), 0.5f, false),
                "attentionBackward", "dq must not be null"));
        c.add(row("Ops.attentionBackward: dOut of another shape", iae,
                a -> Ops.attentionBackward(f(a, 2, 3, 4), f(a, 2, 5, 4), f(a, 2, 5, 6), f(a, 2, 3, 6), f(a, 2, 3, 5),
                        f(a, 2, 3, 4), f(a, 2, 5, 4), f(a, 2, 5, 6), 0.5f, false),
                "attentionBackward", "dOut must have out's shape [2, 3, 6]", "[2, 3, 5]"));
        c.add(row("Ops.attentionBackward: dk of q's shape", iae,
                a -> Ops.attentionBackward(f(a, 2, 3, 4), f(a, 2, 5, 4), f(a, 2, 5, 6), f(a, 2, 3, 6), f(a, 2, 3, 6),
                        f(a, 2, 3, 4), f(a, 2, 3, 4), f(a, 2, 5, 6), 0.5f, false),
                "attentionBackward", "dk must have the shape of k [2, 5, 4]", "[2, 3, 4]"));
        c.add(row("Ops.attentionBackward: dv overlapping v", iae, a -> {
            Tensor v = f(a, 2, 5, 6);
            Ops.attentionBackward(f(a, 2, 3, 4), f(a, 2, 5, 4), v, f(a, 2, 3, 6), f(a, 2, 3, 6), f(a, 2, 3, 4),
                    f(a, 2, 5, 4), v, 0.5f, false);
        }, "attentionBackward", "dv must not overlap v"));
        c.add(row("Ops.attentionBackward: read-only dq", iae,
                a -> Ops.attentionBackward(f(a, 2, 3, 4), f(a, 2, 5, 4), f(a, 2, 5, 6), f(a, 2, 3, 6), f(a, 2, 3, 6),
                        Tensor.wrap(a.allocate(96, 4).asReadOnly(), 2, 3, 4), f(a, 2, 5, 4), f(a, 2, 5, 6), 0.5f,
                        false),
                "attentionBackward", "dq must be writable"));
        c.add(row("Ops.attentionBackward: closed dOut", ise,
                a -> Ops.attentionBackward(f(a, 2, 3, 4), f(a, 2, 5, 4), f(a, 2, 5, 6), f(a, 2, 3, 6), closedF(2, 3, 6),
                        f(a, 2, 3, 4), f(a, 2, 5, 4), f(a, 2, 5, 6), 0.5f, false),
                "attentionBackward (dOut)"));
        c.add(row("Ops.attentionBackward: k of another depth", iae,
                a -> Ops.attentionBackward(f(a, 2, 3, 4), f(a, 2, 5, 3), f(a, 2, 5, 6), f(a, 2, 3, 6), f(a, 2, 3, 6),
                        f(a, 2, 3, 4), f(a, 2, 5, 3), f(a, 2, 5, 6), 0.5f, false),
                "attentionBackward", "k must have the last dimension of q"));

        // cached decoding (KvCache, callCachedInto): layer mha() built for D = 4, cache B = 2, L = 3
        c.add(row("KvCache.create: null layer", npe, a -> KvCache.create((MultiHeadAttention) null, 1, 4),
                "KvCache.create", "layer must not be null"));
        c.add(row("KvCache.create: unbuilt layer", ise, a -> {
            try (MultiHeadAttention l = mha()) {
                KvCache.create(l, 1, 4);
            }
        }, "KvCache.create", "is not built yet"));
        c.add(row("KvCache.create: batch 0", iae, a -> cached(a, l -> KvCache.create(l, 0, 4)),
                "KvCache.create", "batch must be >= 1", "but is 0"));
        c.add(row("KvCache.create: maxLength negative", iae, a -> cached(a, l -> KvCache.create(l, 1, -3)),
                "KvCache.create", "maxLength must be >= 1", "but is -3"));
        c.add(row("KvCache.create: 4-D attention axes", iae, a -> {
            try (MultiHeadAttention l = MultiHeadAttention.builder().numHeads(2).keyDim(2).attentionAxes(1, 2)
                    .build()) {
                l.build(new long[] {1, 2, 2, 4}, new long[] {1, 2, 2, 4}, null);
                KvCache.create(l, 1, 4);
            }
        }, "KvCache.create", "attends over axis 1 of 3-D inputs", "attention axes [1, 2]"));
        c.add(row("KvCache.create: sizes beyond 32 bits", iae, a -> cached(a, l -> KvCache.create(l, 1, MAX)),
                "KvCache.create", "maxLength " + MAX, "exceeds the 32-bit sizes"));
        c.add(row("callCachedInto: null cache", npe,
                a -> cached(a, l -> l.callCachedInto(null, f(a, 2, 1, 4), f(a, 2, 1, 4), null, null, f(a, 2, 1, 4))),
                "MultiHeadAttention.callCachedInto", "cache must not be null"));
        c.add(row("callCachedInto: cache of another layer", iae, a -> cached(a, l -> {
            try (MultiHeadAttention other = mha()) {
                other.build(new long[] {2, 1, 4}, new long[] {2, 1, 4}, null);
                try (KvCache cache = KvCache.create(other, 2, 3)) {
                    l.callCachedInto(cache, f(a, 2, 1, 4), f(a, 2, 1, 4), null, null, f(a, 2, 1, 4));
                }
            }
        }), "MultiHeadAttention.callCachedInto", "the cache belongs to layer", "not to layer"));
        c.add(row("callCachedInto: query of rank 2", iae,
                a -> cachedCall(a, f(a, 2, 4), f(a, 2, 1, 4), null, null, f(a, 2, 1, 4)),
                "MultiHeadAttention.callCachedInto", "query must be 3-D", "[2, 4]"));
        c.add(row("callCachedInto: query batch other than the cache's", iae,
                a -> cachedCall(a, f(a, 3, 1, 4), f(a, 3, 1, 4), null, null, f(a, 3, 1, 4)),
                "MultiHeadAttention.callCachedInto", "query must have batch 2 (the cache's)", "[3, 1, 4]"));
        c.add(row("callCachedInto: query features other than the build's", iae,
                a -> cachedCall(a, f(a, 2, 1, 5), f(a, 2, 1, 4), null, null, f(a, 2, 1, 4)),
                "MultiHeadAttention.callCachedInto", "query must have shape [2, 1, 4]", "[2, 1, 5]"));
        c.add(row("callCachedInto: value with other positions", iae,
                a -> cachedCall(a, f(a, 2, 1, 4), f(a, 2, 2, 4), null, null, f(a, 2, 1, 4)),
                "MultiHeadAttention.callCachedInto", "value must have shape [2, 1, 4]", "[2, 2, 4]"));
        c.add(row("callCachedInto: key features other than the build's", iae,
                a -> cachedCall(a, f(a, 2, 1, 4), f(a, 2, 1, 4), f(a, 2, 1, 7), null, f(a, 2, 1, 4)),
                "MultiHeadAttention.callCachedInto", "key must have shape [2, 1, 4]", "[2, 1, 7]"));
        c.add(row("callCachedInto: closed query", ise,
                a -> cachedCall(a, closedF(2, 1, 4), f(a, 2, 1, 4), null, null, f(a, 2, 1, 4)),
                "MultiHeadAttention.callCachedInto", "the arena of query", "is closed"));
        c.add(row("callCachedInto: output of a wrong shape", iae,
                a -> cachedCall(a, f(a, 2, 1, 4), f(a, 2, 1, 4), null, null, f(a, 2, 2, 4)),
                "MultiHeadAttention.callCachedInto", "output must be float32 of shape [2, 1, 4]", "[2, 2, 4]"));
        c.add(row("callCachedInto: null output", npe,
                a -> cachedCall(a, f(a, 2, 1, 4), f(a, 2, 1, 4), null, null, null),
                "MultiHeadAttention.callCachedInto", "output must not be null"));
        c.add(row("callCachedInto: newLengths of a wrong count", iae,
                a -> cachedCall(a, f(a, 2, 1, 4), f(a, 2, 1, 4), null, new int[] {1}, f(a, 2, 1, 4)),
                "MultiHeadAttention.callCachedInto", "newLengths must have 2 entries", "but has 1"));
        c.add(row("callCachedInto: newLengths beyond the new positions", iae,
                a -> cachedCall(a, f(a, 2, 1, 4), f(a, 2, 1, 4), null, new int[] {1, 2}, f(a, 2, 1, 4)),
                "MultiHeadAttention.callCachedInto", "newLengths[1] must be in [0, 1]", "but is 2"));
        c.add(row("callCachedInto: more new positions than the cache holds", ise,
                a -> cachedCall(a, f(a, 2, 4, 4), f(a, 2, 4, 4), null, null, f(a, 2, 4, 4)),
                "MultiHeadAttention.callCachedInto", "holds at most 3 positions per row", "brings 4"));
        c.add(row("callCachedInto: closed cache", ise, a -> cached(a, l -> {
            KvCache cache = KvCache.create(l, 2, 3);
            cache.close();
            l.callCachedInto(cache, f(a, 2, 1, 4), f(a, 2, 1, 4), null, null, f(a, 2, 1, 4));
        }), "MultiHeadAttention.callCachedInto", "the KvCache is closed"));
        c.add(row("KvCache.truncate: longer than the rows", iae, a -> cached(a, l -> {
            try (KvCache cache = KvCache.create(l, 2, 3)) {
                cache.truncate(2);
            }
        }), "KvCache.truncate", "length must be in [0, 0]", "but is 2"));
        c.add(row("KvCache.reset: row out of range", ioobe, a -> cached(a, l -> {
            try (KvCache cache = KvCache.create(l, 2, 3)) {
                cache.reset(2);
            }
        }), "KvCache.truncate", "row must be in [0, 2)", "but is 2"));

        // config loading
        c.add(row("Layers.fromConfig: unsupported class", iae, a -> Layers.fromConfig("Dense", config()),
                "Layers.fromConfig", "unsupported layer class 'Dense'", "MultiHeadAttention"));
        c.add(row("Layers.fromConfig: null class name", npe, a -> Layers.fromConfig(null, config()),
                "Layers.fromConfig", "className must not be null"));
        c.add(row("Layers.fromConfig: null config", npe, a -> Layers.fromConfig("Attention", null),
                "Attention.fromConfig", "config must not be null"));
        c.add(row("fromConfig: unknown key", iae, a -> Layers.fromConfig("Attention", config("causal", true)),
                "Attention.fromConfig", "unknown config keys [causal]", "known keys are"));
        c.add(row("fromConfig: num_heads as a string", iae,
                a -> Layers.fromConfig("MultiHeadAttention", config("num_heads", "8", "key_dim", 4)),
                "MultiHeadAttention.fromConfig", "'num_heads' must be an integer or null", "but is 8"));
        c.add(row("fromConfig: num_heads beyond int", iae,
                a -> Layers.fromConfig("MultiHeadAttention", config("num_heads", 1L << 33, "key_dim", 4)),
                "MultiHeadAttention.fromConfig", "'num_heads' is out of the int range", "8589934592"));
        c.add(row("fromConfig: key_dim missing", iae,
                a -> Layers.fromConfig("MultiHeadAttention", config("num_heads", 2)),
                "MultiHeadAttention", "keyDim must be a positive integer", "but is null"));
        c.add(row("fromConfig: dropout as a string", iae,
                a -> Layers.fromConfig("AdditiveAttention", config("dropout", "0.1")),
                "AdditiveAttention.fromConfig", "'dropout' must be a number", "but is 0.1"));
        c.add(row("fromConfig: dropout NaN", iae, a -> Layers.fromConfig("Attention", config("dropout", Double.NaN)),
                "Attention", "dropout must be a rate in [0, 1)", "but is NaN"));
        c.add(row("fromConfig: use_scale as a string", iae,
                a -> Layers.fromConfig("Attention", config("use_scale", "yes")),
                "Attention.fromConfig", "'use_scale' must be true or false", "but is yes"));
        c.add(row("fromConfig: float16 dtype policy", iae,
                a -> Layers.fromConfig("Attention", config("dtype", "float16")),
                "Attention.fromConfig", "only the float32 dtype policy is supported", "'dtype' is float16"));
        c.add(row("fromConfig: seed not an integer", iae, a -> Layers.fromConfig("Attention", config("seed", 1.5)),
                "Attention.fromConfig", "'seed' must be an integer or null", "but is 1.5"));
        c.add(row("fromConfig: seed beyond long", iae,
                a -> Layers.fromConfig("Attention", config("seed", BigInteger.ONE.shiftLeft(64).add(BigInteger.TWO))),
                "Attention.fromConfig", "'seed' must be an integer or null", "18446744073709551618"));
        c.add(row("fromConfig: attention_axes beyond int", iae,
                a -> Layers.fromConfig("MultiHeadAttention",
                        config("num_heads", 2, "key_dim", 2, "attention_axes", List.of((1L << 32) + 1))),
                "MultiHeadAttention.fromConfig", "'attention_axes'", "4294967297"));
        c.add(row("fromConfig: attention_axes holding a string", iae,
                a -> Layers.fromConfig("MultiHeadAttention",
                        config("num_heads", 2, "key_dim", 2, "attention_axes", List.of("1"))),
                "MultiHeadAttention.fromConfig", "'attention_axes' must be an int or a list of ints", "[1]"));
        c.add(row("fromConfig: GQA heads that do not divide", iae,
                a -> Layers.fromConfig("GroupedQueryAttention",
                        config("head_dim", 2, "num_query_heads", 5, "num_key_value_heads", 2)),
                "`num_query_heads` must be divisible by `num_key_value_heads`", "numQueryHeads = 5",
                "numKeyValueHeads = 2"));
        c.add(row("Layers.fromConfigJson: null json", npe, a -> Layers.fromConfigJson("Attention", null),
                "Layers.fromConfigJson", "json must not be null"));
        c.add(row("Layers.fromConfigJson: malformed JSON", iae,
                a -> Layers.fromConfigJson("Attention", "{\"use_scale\": tru"),
                "Layers.fromConfigJson", "not valid JSON"));
        c.add(row("Layers.fromConfigJson: not an object", iae, a -> Layers.fromConfigJson("Attention", "[1, 2]"),
                "Layers.fromConfigJson", "expected a JSON object", "[1, 2]"));
        c.add(row("Layers.fromConfigJson: seed beyond long", iae,
                a -> Layers.fromConfigJson("Attention", "{\"seed\": 18446744073709551618}"),
                "Attention.fromConfig", "'seed' must be an integer or null", "18446744073709551618"));
        c.add(row("Layers.fromConfigJson: num_heads 2.5", iae,
                a -> Layers.fromConfigJson("MultiHeadAttention", "{\"num_heads\": 2.5, \"key_dim\": 4}"),
                "MultiHeadAttention.fromConfig", "'num_heads' must be an integer or null", "but is 2.5"));
        c.add(row("Initializer.of: bad VarianceScaling mode", iae,
                a -> Initializer.of(Map.of("class_name", "VarianceScaling", "config", Map.of("mode", "fan_sideways"))),
                "Initializer.of", "'mode' must be one of [fan_in, fan_out", "fan_sideways"));
        c.add(row("Regularizer.of: null spec", npe, a -> Regularizer.of(null),
                "Regularizer.of", "null"));
        c.add(row("Constraint.of: unknown name", iae, a -> Constraint.of("max"),
                "Constraint.of", "unknown constraint 'max'", "max_norm"));
        return c;
    }

    static Stream<Case> cases() {
        return catalogue().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void rejectedBeforeAnyNativeCall(Case c) {
        long gemmsBefore = gemmCalls();
        Throwable thrown = null;
        try (Arena arena = Arena.ofConfined()) {
            c.action().run(arena);
        } catch (Throwable t) {
            thrown = t;
        }
        if (thrown == null) {
            fail(c.name() + ": expected " + c.type().getSimpleName() + ", but nothing was thrown");
        }
        Throwable t = thrown;
        assertEquals(c.type(), t.getClass(), () -> c.name() + ": wrong exception type: " + t);
        String message = t.getMessage();
        assertNotNull(message, c.name() + ": no message");
        for (String fragment : c.fragments()) {
            assertTrue(message.contains(fragment),
                    () -> c.name() + ": message lacks \"" + fragment + "\":\n  " + message);
        }
        assertEquals(gemmsBefore, gemmCalls(), c.name() + ": a matrix product reached OpenBLAS");
    }

    @Test
    void catalogueHasAtLeastFortyDistinctCases() {
        List<Case> all = catalogue();
        Set<String> names = new HashSet<>();
        for (Case c : all) {
            assertTrue(names.add(c.name()), "duplicate row name: " + c.name());
            assertTrue(c.fragments().size() >= 1, c.name() + " checks no message fragment");
        }
        assertTrue(all.size() >= 40, "only " + all.size() + " cases");
        System.out.println("ValidationCatalogueTest: " + all.size() + " cases");
    }

    /** GEMM calls made so far by the native backend (0 when it is not loaded). */
    private static long gemmCalls() {
        NativeBackend nb = Backends.selection().nativeBackend();
        if (nb == null) {
            return 0;
        }
        long n = 0;
        for (GemmRoute r : GemmRoute.values()) {
            n += nb.routeCount(r);
        }
        return n;
    }
}
