package dev.attn4j.layers;

/**
 * A plain, double-precision restatement of Keras 3.15.1 Attention / AdditiveAttention
 * for tests, written from the formulas (not from attn4j's code). Only the masking step
 * is float32, as Keras's {@code s - 1e9} must be to give its fully-masked rows.
 */
final class AttentionReference {
    enum Mode { DOT, CONCAT, ADDITIVE }

    record Result(float[] output, float[] scores) {}

    /**
     * q (B, Tq, D), v (B, Tv, Dv), k (B, Tv, D) or null (then v); masks (B, Tq) and (B, Tv)
     * or null; scale and concatWeight used as the mode says; addScale (D) or null.
     */
    static Result compute(Mode mode, float[] q, float[] v, float[] k, int b, int tq, int tv, int d, int dv,
                          float scale, float concatWeight, float[] addScale,
                          boolean[] queryMask, boolean[] valueMask, boolean causal) {
        float[] key = k == null ? v : k;
        float[] scores = new float[b * tq * tv];
        float[] out = new float[b * tq * dv];
        double[] logits = new double[tv];
        for (int n = 0; n < b; n++) {
            for (int i = 0; i < tq; i++) {
                for (int j = 0; j < tv; j++) {
                    double s = 0;
                    for (int x = 0; x < d; x++) {
                        double qi = q[(n * tq + i) * d + x];
                        double kj = key[(n * tv + j) * d + x];
                        s += switch (mode) {
                            case DOT -> qi * kj;
                            case CONCAT -> Math.tanh(scale * (qi + kj));
                            case ADDITIVE -> (addScale == null ? 1 : addScale[x]) * Math.tanh(qi + kj);
                        };
                    }
                    if (mode == Mode.DOT) {
                        s *= scale;
                    } else if (mode == Mode.CONCAT) {
                        s *= concatWeight;
                    }
                    boolean keep = (valueMask == null || valueMask[n * tv + j]) && (!causal || j <= i);
                    logits[j] = keep ? s : (float) s - 1e9f;
                }
                double max = Double.NEGATIVE_INFINITY;
                for (double l : logits) {
                    max = Math.max(max, l);
                }
                double sum = 0;
                for (double l : logits) {
                    sum += Math.exp(l - max);
                }
                for (int j = 0; j < tv; j++) {
                    scores[(n * tq + i) * tv + j] = (float) (Math.exp(logits[j] - max) / sum);
                }
                boolean rowKept = queryMask == null || queryMask[n * tq + i];
                for (int y = 0; y < dv; y++) {
                    double o = 0;
                    for (int j = 0; j < tv; j++) {
                        o += Math.exp(logits[j] - max) / sum * v[(n * tv + j) * dv + y];
                    }
                    out[(n * tq + i) * dv + y] = rowKept ? (float) o : 0f;
                }
            }
        }
        return new Result(out, scores);
    }
}
