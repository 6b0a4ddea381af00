package dev.attn4j.bench;

/**
 * The core attention shapes of the benchmark plan, float32, Q (B, Hq, T, d), K and V
 * (B, Hkv, S, d), out (B, Hq, T, d). Shape C (the full MultiHeadAttention layer) is
 * {@link MhaLayerBenchmark}'s.
 */
public enum CoreShape {
    /** Core attention, the reference throughput shape. */
    A(8, 8, 8, 256, 256, 64, false),
    /** Latency: one short sequence, where per-call overhead shows. */
    B(1, 8, 8, 32, 32, 64, false),
    /** Grouped-query attention: 8 query heads share 2 key/value heads. */
    D(8, 8, 2, 256, 256, 64, false),
    /** Long sequence: the score matrix alone would be 512 MiB; no scores returned. */
    E(1, 8, 8, 4096, 4096, 64, false),
    /** Causal self-attention, shape A with the causal mask. */
    F(8, 8, 8, 256, 256, 64, true);

    public final int batch;
    public final int heads;
    public final int kvHeads;
    public final int t;
    public final int s;
    public final int d;
    public final boolean causal;

    CoreShape(int batch, int heads, int kvHeads, int t, int s, int d, boolean causal) {
        this.batch = batch;
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.t = t;
        this.s = s;
        this.d = d;
        this.causal = causal;
    }

    public float scale() {
        return (float) (1 / Math.sqrt(d));
    }

    /** Query heads per key/value head. */
    public int groups() {
        return heads / kvHeads;
    }

    /**
     * Useful floating-point operations per call: 2 d for each (query, key) score and 2 d
     * for its share of P V, over the (query, key) pairs attended. A causal call attends
     * T (T + 1) / 2 pairs per head, not T S: counting the masked half would flatter a
     * kernel that computes it and throws it away.
     */
    public double flops() {
        double pairs = causal ? (double) t * (t + 1) / 2 : (double) t * s;
        return 4.0 * batch * heads * pairs * d;
    }

    public long[] qShape() {
        return new long[] {batch, heads, t, d};
    }

    public long[] kvShape() {
        return new long[] {batch, kvHeads, s, d};
    }

    public String describe() {
        return "B=" + batch + " H=" + heads + (kvHeads != heads ? " Hkv=" + kvHeads : "") + " T=" + t + " S=" + s
                + " d=" + d + (causal ? " causal" : "");
    }
}
