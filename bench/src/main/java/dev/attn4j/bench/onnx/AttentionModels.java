package dev.attn4j.bench.onnx;

import java.util.List;

/** The ONNX models the benchmarks give ONNX Runtime. */
public final class AttentionModels {
    private AttentionModels() {}

    /**
     * Core attention, one opset-23 {@code Attention} node on 4-D inputs: Q (B, Hq, T, d),
     * K and V (B, Hkv, S, d), output Y (B, Hq, T, d). With Hkv < Hq the operator shares
     * each K/V head among Hq / Hkv query heads (grouped-query attention); with
     * {@code causal}, query i sees keys j <= i (is_causal = 1, no cache: top-left).
     */
    public static byte[] core(int batch, int heads, int kvHeads, int t, int s, int d, float scale, boolean causal) {
        OnnxGraph g = new OnnxGraph("core_attention")
                .input("Q", batch, heads, t, d)
                .input("K", batch, kvHeads, s, d)
                .input("V", batch, kvHeads, s, d)
                .output("Y", batch, heads, t, d);
        g.node("Attention", List.of("Q", "K", "V"), "Y")
                .attr("is_causal", causal ? 1L : 0L)
                .attr("scale", scale);
        return g.toModelBytes();
    }

    /**
     * A Keras MultiHeadAttention layer (self-attention, with biases) as ONNX: input X
     * (B, T, D); projections {@code X @ W + b} with W (D, N*H) (Keras's (D, N, H) kernel
     * read row-major), Reshape to (B, T, N, H) and Transpose to (B, N, T, H); Attention
     * with scale 1/sqrt(H); back to (B, T, N*H); output projection with Wo (N*H, D) and bo.
     * Weights in Keras order: wq, bq, wk, bk, wv, bv, wo, bo.
     */
    public static byte[] multiHeadAttention(int batch, int t, int dModel, int heads, int keyDim, float[][] weights) {
        int hidden = heads * keyDim;
        OnnxGraph g = new OnnxGraph("multi_head_attention")
                .input("X", batch, t, dModel)
                .output("Y", batch, t, dModel);
        String[] names = {"q", "k", "v"};
        for (int i = 0; i < 3; i++) {
            g.initializer("W" + names[i], weights[2 * i], dModel, hidden);
            g.initializer("b" + names[i], weights[2 * i + 1], hidden);
        }
        g.initializer("Wo", weights[6], hidden, dModel);
        g.initializer("bo", weights[7], dModel);
        g.initializerInt64("heads_shape", new long[] {batch, t, heads, keyDim}, 4);
        g.initializerInt64("merged_shape", new long[] {batch, t, hidden}, 3);
        long[] perm = {0, 2, 1, 3};
        for (String n : names) {
            g.node("MatMul", List.of("X", "W" + n), n + "_mm");
            g.node("Add", List.of(n + "_mm", "b" + n), n + "_proj");
            g.node("Reshape", List.of(n + "_proj", "heads_shape"), n + "_split");
            g.node("Transpose", List.of(n + "_split"), n + "_heads").attr("perm", perm);
        }
        g.node("Attention", List.of("q_heads", "k_heads", "v_heads"), "attn")
                .attr("scale", (float) (1 / Math.sqrt(keyDim)));
        g.node("Transpose", List.of("attn"), "attn_t").attr("perm", perm);
        g.node("Reshape", List.of("attn_t", "merged_shape"), "attn_merged");
        g.node("MatMul", List.of("attn_merged", "Wo"), "out_mm");
        g.node("Add", List.of("out_mm", "bo"), "Y");
        return g.toModelBytes();
    }

    /**
     * One cached decode step of a Keras MultiHeadAttention (kvHeads = heads) or
     * GroupQueryAttention layer, with biases, as ONNX Runtime serves it: input X (B, 1, D);
     * projections {@code X @ W + b} (W (D, N*H) and (D, K*H), Keras's kernels read
     * row-major); the contrib operator {@code com.microsoft.GroupQueryAttention} over the
     * cache past_key / past_value (B, K, maxLen, H), whose outputs present_key /
     * present_value the caller binds to the same buffers, so that ONNX Runtime appends the
     * new key and value in place (its shared-buffer mode, no copy of the cache);
     * seqlens_k = pastLength (the total length minus 1) and total_sequence_length =
     * pastLength + 1 as constants; the output projection with Wo (N*H, D) and bo. Weights in
     * Keras order: wq, bq, wk, bk, wv, bv, wo, bo.
     */
    public static byte[] cachedDecodeStep(int batch, int dModel, int heads, int kvHeads, int headDim, int maxLen,
                                          int pastLength, float[][] weights) {
        int q = heads * headDim;
        int kv = kvHeads * headDim;
        OnnxGraph g = new OnnxGraph("cached_decode_step")
                .opset("com.microsoft", 1)
                .input("X", batch, 1, dModel)
                .input("past_key", batch, kvHeads, maxLen, headDim)
                .input("past_value", batch, kvHeads, maxLen, headDim)
                .output("Y", batch, 1, dModel)
                .output("present_key", batch, kvHeads, maxLen, headDim)
                .output("present_value", batch, kvHeads, maxLen, headDim);
        String[] names = {"q", "k", "v"};
        int[] widths = {q, kv, kv};
        for (int i = 0; i < 3; i++) {
            g.initializer("W" + names[i], weights[2 * i], dModel, widths[i]);
            g.initializer("b" + names[i], weights[2 * i + 1], widths[i]);
            g.node("MatMul", List.of("X", "W" + names[i]), names[i] + "_mm");
            g.node("Add", List.of(names[i] + "_mm", "b" + names[i]), names[i] + "_proj");
        }
        g.initializer("Wo", weights[6], q, dModel);
        g.initializer("bo", weights[7], dModel);
        int[] seqlens = new int[batch];
        java.util.Arrays.fill(seqlens, pastLength);
        g.initializerInt32("seqlens_k", seqlens, batch);
        g.initializerInt32("total_sequence_length", new int[] {pastLength + 1});
        g.node("com.microsoft", "GroupQueryAttention",
                        List.of("q_proj", "k_proj", "v_proj", "past_key", "past_value", "seqlens_k",
                                "total_sequence_length"),
                        "attn", "present_key", "present_value")
                .attr("num_heads", (long) heads)
                .attr("kv_num_heads", (long) kvHeads)
                .attr("scale", (float) (1 / Math.sqrt(headDim)));
        g.node("MatMul", List.of("attn", "Wo"), "out_mm");
        g.node("Add", List.of("out_mm", "bo"), "Y");
        return g.toModelBytes();
    }
}
