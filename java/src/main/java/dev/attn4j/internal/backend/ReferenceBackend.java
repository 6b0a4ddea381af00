package dev.attn4j.internal.backend;

import dev.attn4j.MaskConvention;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Plain Java implementation of {@link Backend}: straightforward loops, accumulation
 * in double, no tricks. It is the independent truth the native backend is tested
 * against, and the fallback when the native libraries cannot load (much slower).
 * Stateless and thread-safe.
 */
public final class ReferenceBackend implements Backend {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** The float32 constants Keras uses for masked logits. */
    static final float KERAS_SUBTRACT = 1e9f;
    static final float KERAS_SOFTMAX_NEGATIVE = -1e9f;
    static final float KERAS_DPA_NEGATIVE = -0.7f * Float.MAX_VALUE;

    @Override
    public String name() {
        return "java";
    }

    @Override
    public void sgemmBatched(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             MemorySegment a, int lda, long aOuter, long aInner,
                             MemorySegment b, int ldb, long bOuter, long bInner, int bRepeat,
                             float beta, MemorySegment c, int ldc, long cOuter, long cInner,
                             int outer, int inner, GemmRoute route) {
        for (int o = 0; o < outer; o++) {
            for (int h = 0; h < inner; h++) {
                long offA = o * aOuter + h * aInner;
                long offB = o * bOuter + (h / bRepeat) * bInner;
                long offC = o * cOuter + h * cInner;
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double sum = 0;
                        for (int p = 0; p < k; p++) {
                            float x = a.getAtIndex(F32, offA + (transA ? (long) p * lda + i : (long) i * lda + p));
                            float y = b.getAtIndex(F32, offB + (transB ? (long) j * ldb + p : (long) p * ldb + j));
                            sum += (double) x * y;
                        }
                        long at = offC + (long) i * ldc + j;
                        // beta == 0 ignores C entirely (it may hold garbage or NaN), as BLAS does.
                        double old = beta == 0f ? 0 : (double) beta * c.getAtIndex(F32, at);
                        c.setAtIndex(F32, at, (float) (alpha * sum + old));
                    }
                }
            }
        }
    }

    @Override
    public void maskedSoftmax(MemorySegment scores, long batch, int tq, int tv, float scale,
                              MemorySegment mask, long maskBatchStride, long maskRowStride, long maskBatchDiv,
                              boolean causal, MaskConvention convention) {
        boolean hasMask = !mask.equals(MemorySegment.NULL);
        float[] logits = new float[tv];
        boolean[] keep = new boolean[tv];
        for (long bt = 0; bt < batch; bt++) {
            for (int i = 0; i < tq; i++) {
                long row = (bt * tq + i) * tv;
                long maskRow = (bt / maskBatchDiv) * maskBatchStride + (long) i * maskRowStride;
                for (int j = 0; j < tv; j++) {
                    float x = scale * scores.getAtIndex(F32, row + j);
                    keep[j] = (!hasMask || mask.get(ValueLayout.JAVA_BYTE, maskRow + j) != 0) && (!causal || j <= i);
                    logits[j] = keep[j] ? x : switch (convention) {
                        case SUBTRACT -> x - KERAS_SUBTRACT;
                        case REPLACE_THEN_ZERO -> KERAS_SOFTMAX_NEGATIVE;
                        case REPLACE -> KERAS_DPA_NEGATIVE;
                    };
                }
                // Math.max propagates NaN, so a NaN logit makes the whole row NaN, as in numpy.
                double max = Double.NEGATIVE_INFINITY;
                for (float v : logits) {
                    max = Math.max(max, v);
                }
                double sum = 0;
                for (float v : logits) {
                    sum += Math.exp(v - max);
                }
                for (int j = 0; j < tv; j++) {
                    double p = Math.exp(logits[j] - max) / sum;
                    if (convention == MaskConvention.REPLACE_THEN_ZERO && !keep[j]) {
                        p *= 0; // Keras multiplies by the mask: a NaN row stays NaN.
                    }
                    scores.setAtIndex(F32, row + j, (float) p);
                }
            }
        }
    }

    @Override
    public void tanhScores(MemorySegment q, MemorySegment k, MemorySegment scores, long batch, int tq, int tv,
                           int dim, MemorySegment weights, float inner, float outer) {
        boolean weighted = !weights.equals(MemorySegment.NULL);
        for (long b = 0; b < batch; b++) {
            for (int i = 0; i < tq; i++) {
                for (int j = 0; j < tv; j++) {
                    double sum = 0;
                    for (int d = 0; d < dim; d++) {
                        // float32 in Keras's order: t = q + k, u = inner * t, w * tanh(u)
                        float t = q.getAtIndex(F32, (b * tq + i) * dim + d) + k.getAtIndex(F32, (b * tv + j) * dim + d);
                        float th = (float) Math.tanh(inner * t);
                        sum += weighted ? weights.getAtIndex(F32, d) * th : th;
                    }
                    scores.setAtIndex(F32, (b * tq + i) * tv + j, outer * (float) sum);
                }
            }
        }
    }

    @Override
    public void dropout(MemorySegment x, long n, float rate, long seed, long stream) {
        if (rate == 0f) {
            return;
        }
        float keepProb = 1f - rate;
        for (long i = 0; i < n; i++) {
            x.setAtIndex(F32, i, Dropout.keep(seed, stream, i, rate) ? x.getAtIndex(F32, i) / keepProb : 0f);
        }
    }

    @Override
    public void mulRowMask(MemorySegment x, long rows, int cols, MemorySegment rowMask) {
        for (long r = 0; r < rows; r++) {
            if (rowMask.get(ValueLayout.JAVA_BYTE, r) == 0) {
                for (int c = 0; c < cols; c++) {
                    x.setAtIndex(F32, r * cols + c, x.getAtIndex(F32, r * cols + c) * 0f);
                }
            }
        }
    }
}
