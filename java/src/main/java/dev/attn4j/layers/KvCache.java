package dev.attn4j.layers;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The key/value cache of one {@link MultiHeadAttention} or {@link GroupQueryAttention}
 * layer for incremental (token by token, or chunk by chunk) causal decoding, off-heap.
 *
 * <p>Dimensions: B batch rows (sequences); L {@link #maxLength()} positions per row; K
 * key/value heads of the layer (N for MHA; GQA stores only its K shared heads, never the
 * N / K repeats); H key size per head; Hv value size per head. Keys are laid out
 * (B, K, L, H) and values (B, K, L, Hv), row-major, so the prefix of every (row, head) is
 * one contiguous run that the attention reads in place. Each row has its own length
 * ({@link #length(int)}): ragged prompts, continuous batching.
 *
 * <p>Use, with {@link MultiHeadAttention#callCachedInto} (the same on GQA):
 * <pre>{@code
 * try (KvCache cache = KvCache.create(mha, 1, 4096)) {
 *     mha.callCachedInto(cache, prompt, prompt, null, null, out);   // (1, T, D): the prompt, causal
 *     for (...) {
 *         mha.callCachedInto(cache, token, token, null, null, next);  // (1, 1, D): one step
 *     }
 * }
 * }</pre>
 * A cached call appends the projected keys and values of its new positions at each row's
 * length, attends causally over the row's cache and the new positions, and advances the
 * length; decoding a sequence this way gives what one causal call on the whole sequence
 * gives ({@code CallArgs.withUseCausalMask(true)}, self-attention), including the
 * layer's sliding window over absolute positions.
 *
 * <p><b>Memory.</b> The cache owns its arena ({@link #close()} frees it); it takes
 * {@link #byteSize()} bytes, allocated at creation and zeroed. Slots at positions at or
 * beyond a row's length are kept zero (reset and truncate clear what they drop), so
 * whatever a step reads past a shorter row's end is finite and masked out.
 *
 * <p><b>Threads.</b> A cache holds the state of its sequences and serves one call at a
 * time: use one cache per sequence group (per request, or per batch of requests), from
 * any thread, but not from two at once (a concurrent use is detected and is an
 * {@link IllegalStateException}). The layer itself stays shareable: many threads may run
 * cached calls of one layer at the same time, each with its own cache.
 */
public final class KvCache implements AutoCloseable {
    private final MultiHeadBase layer;
    private final int batch;
    private final int maxLength;
    private final int kvHeads;
    private final int keySize;
    private final int valueSize;
    private final Arena arena;
    private final MemorySegment keys;
    private final MemorySegment values;
    /** Bytes 1 (L of them) and 0 (L of them): the sources the step copies its mask rows from. */
    final MemorySegment ones;
    final MemorySegment zeros;
    private final int[] lengths;
    private final AtomicBoolean busy = new AtomicBoolean();
    private volatile boolean closed;

    private KvCache(MultiHeadBase layer, int batch, int maxLength) {
        this.layer = layer;
        this.batch = batch;
        this.maxLength = maxLength;
        this.kvHeads = layer.keyValueHeads();
        this.keySize = layer.keySize();
        this.valueSize = layer.valueSize();
        this.lengths = new int[batch];
        this.arena = Arena.ofShared();
        this.keys = arena.allocate((long) batch * kvHeads * maxLength * keySize * Float.BYTES, 64);
        this.values = arena.allocate((long) batch * kvHeads * maxLength * valueSize * Float.BYTES, 64);
        this.ones = arena.allocate(maxLength, 64).fill((byte) 1);
        this.zeros = arena.allocate(maxLength, 64);
    }

    /**
     * A cache for {@code batch} sequences of up to {@code maxLength} positions of this
     * (built) MultiHeadAttention layer, which must take 3-D inputs (B, T, D).
     */
    public static KvCache create(MultiHeadAttention layer, int batch, int maxLength) {
        return create((MultiHeadBase) layer, batch, maxLength);
    }

    /** A cache for {@code batch} sequences of up to {@code maxLength} positions of this (built) layer. */
    public static KvCache create(GroupQueryAttention layer, int batch, int maxLength) {
        return create((MultiHeadBase) layer, batch, maxLength);
    }

    static KvCache create(MultiHeadBase layer, int batch, int maxLength) {
        String action = "KvCache.create";
        Objects.requireNonNull(layer, action + ": layer must not be null");
        layer.checkOpen(action);
        if (!layer.isBuilt()) {
            throw new IllegalStateException(action + ": layer '" + layer.name() + "' is not built yet; build it "
                    + "(or call it once) first: the cache's sizes come from its weights");
        }
        CachedAttention.checkCacheable(action, layer);
        if (batch < 1) {
            throw new IllegalArgumentException(action + ": batch must be >= 1, but is " + batch);
        }
        if (maxLength < 1) {
            throw new IllegalArgumentException(action + ": maxLength must be >= 1, but is " + maxLength);
        }
        long width = Math.max(layer.keySize(), layer.valueSize());
        // One row's (heads, positions) block and the scores of a step are indexed with ints natively.
        if ((long) layer.keyValueHeads() * maxLength * width > Integer.MAX_VALUE
                || (long) layer.queryHeads() * maxLength > Integer.MAX_VALUE
                || (long) batch * layer.keyValueHeads() * maxLength * width > Long.MAX_VALUE / 8) {
            throw new IllegalArgumentException(action + ": batch " + batch + " x maxLength " + maxLength + " with "
                    + layer.keyValueHeads() + " key/value heads of size " + width
                    + " exceeds the 32-bit sizes the native calls take");
        }
        return new KvCache(layer, batch, maxLength);
    }

    /** The layer this cache belongs to; another layer's cached call rejects it. */
    MultiHeadBase layer() {
        return layer;
    }

    /** B: the sequences (batch rows) the cache holds. */
    public int batch() {
        return batch;
    }

    /** L: the most positions a row can hold. */
    public int maxLength() {
        return maxLength;
    }

    /** K: the key/value heads stored (the layer's numKeyValueHeads; N for MHA). */
    public int keyValueHeads() {
        return kvHeads;
    }

    /** H: the key size per head. */
    public int keySize() {
        return keySize;
    }

    /** Hv: the value size per head. */
    public int valueSize() {
        return valueSize;
    }

    /** Off-heap bytes of the keys and values. */
    public long byteSize() {
        return keys.byteSize() + values.byteSize();
    }

    /** The positions row {@code row} holds. */
    public int length(int row) {
        checkRow("KvCache.length", row);
        return lengths[row];
    }

    /** Every row's length (a copy). */
    public int[] lengths() {
        return lengths.clone();
    }

    /** The most positions any row holds. */
    public int maxUsedLength() {
        int max = 0;
        for (int l : lengths) {
            max = Math.max(max, l);
        }
        return max;
    }

    /**
     * Read-only view of the keys, (B, K, L, H) float32; positions at or past a row's
     * length are zero. Valid until the cache is closed; a running call may change it.
     */
    public MemorySegment keys() {
        checkOpen("KvCache.keys");
        return keys.asReadOnly();
    }

    /** Read-only view of the values, (B, K, L, Hv) float32 (see {@link #keys()}). */
    public MemorySegment values() {
        checkOpen("KvCache.values");
        return values.asReadOnly();
    }

    /** Empties every row (lengths 0; the slots are cleared). */
    public void reset() {
        String action = "KvCache.reset";
        acquire(action);
        try {
            for (int b = 0; b < batch; b++) {
                clear(b, 0, lengths[b]);
                lengths[b] = 0;
            }
        } finally {
            release();
        }
    }

    /** Empties row {@code row}: a new sequence can start there while the others go on. */
    public void reset(int row) {
        truncate(row, 0);
    }

    /**
     * Shortens every row to {@code length} positions (e.g. to drop rejected speculative
     * tokens); {@code length} must not exceed any row's length.
     */
    public void truncate(int length) {
        String action = "KvCache.truncate";
        acquire(action);
        try {
            for (int b = 0; b < batch; b++) {
                checkTruncate(action, b, length);
            }
            for (int b = 0; b < batch; b++) {
                clear(b, length, lengths[b]);
                lengths[b] = length;
            }
        } finally {
            release();
        }
    }

    /** Shortens row {@code row} to {@code length} positions, at most its length. */
    public void truncate(int row, int length) {
        String action = "KvCache.truncate";
        acquire(action);
        try {
            checkRow(action, row);
            checkTruncate(action, row, length);
            clear(row, length, lengths[row]);
            lengths[row] = length;
        } finally {
            release();
        }
    }

    private void checkTruncate(String action, int row, int length) {
        if (length < 0 || length > lengths[row]) {
            throw new IllegalArgumentException(action + ": length must be in [0, " + lengths[row]
                    + "] (the length of row " + row + "), but is " + length);
        }
    }

    private void checkRow(String action, int row) {
        if (row < 0 || row >= batch) {
            throw new IndexOutOfBoundsException(action + ": row must be in [0, " + batch + "), but is " + row);
        }
    }

    /** Zeroes positions [from, to) of every head of one row. */
    private void clear(int row, int from, int to) {
        if (to <= from) {
            return;
        }
        for (int g = 0; g < kvHeads; g++) {
            zero(keys, keyOffset(row, g, from) * Float.BYTES, (long) (to - from) * keySize * Float.BYTES);
            zero(values, valueOffset(row, g, from) * Float.BYTES, (long) (to - from) * valueSize * Float.BYTES);
        }
    }

    /** Zeroes bytes [at, at + count) by copies from {@link #zeros} (no slice objects: rewinding allocates nothing). */
    private void zero(MemorySegment target, long at, long count) {
        for (long done = 0; done < count; done += maxLength) {
            MemorySegment.copy(zeros, 0, target, at + done, Math.min(maxLength, count - done));
        }
    }

    /** Element offset of (row, head, position) in the keys. */
    long keyOffset(int row, int head, int position) {
        return (((long) row * kvHeads + head) * maxLength + position) * keySize;
    }

    long valueOffset(int row, int head, int position) {
        return (((long) row * kvHeads + head) * maxLength + position) * valueSize;
    }

    MemorySegment keySegment() {
        return keys;
    }

    MemorySegment valueSegment() {
        return values;
    }

    int[] lengthsArray() {
        return lengths;
    }

    /** Marks the cache in use by one call; a second concurrent user gets an exception. */
    void acquire(String action) {
        checkOpen(action);
        if (!busy.compareAndSet(false, true)) {
            throw new IllegalStateException(action + ": the KvCache is in use by another thread; a cache serves "
                    + "one call at a time (use one cache per sequence group)");
        }
        if (closed) {
            busy.set(false);
            throw new IllegalStateException(action + ": the KvCache is closed");
        }
    }

    void release() {
        busy.set(false);
    }

    void checkOpen(String action) {
        if (closed) {
            throw new IllegalStateException(action + ": the KvCache is closed");
        }
    }

    public boolean isOpen() {
        return !closed;
    }

    /** Frees the off-heap memory. Idempotent; not while a call is using the cache. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        if (!busy.compareAndSet(false, true)) {
            throw new IllegalStateException("KvCache.close: the KvCache is in use by a running call");
        }
        try {
            if (!closed) {
                closed = true;
                arena.close();
            }
        } finally {
            busy.set(false);
        }
    }

    @Override
    public String toString() {
        return "KvCache[layer=" + layer.name() + ", batch=" + batch + ", maxLength=" + maxLength + ", heads="
                + kvHeads + ", keySize=" + keySize + ", valueSize=" + valueSize + ", lengths="
                + (batch <= 8 ? Arrays.toString(lengths) : "max " + maxUsedLength()) + (closed ? ", closed" : "")
                + "]";
    }
}
