/*
 * activation.c - attn4j_bias_act_f32: argument checks, dispatch, and the scalar
 * kernel (libm expf / tanhf / erf; the reference the vector kernels follow
 * operation by operation, and the path for CPUs without AVX2).
 *
 * Each activation is the float32 formula of Keras 3's numpy backend, operation
 * by operation (attn4j.h lists them); -ffp-contract=off keeps v * (e + 1) and
 * the bias add from being fused into anything. GELU runs here on every
 * instruction set: its erf is evaluated in double per element (scipy's float32
 * erf does exactly that), which no vector path would do better.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* np.sqrt(2).astype(float32). */
#define SQRT2_F32 0x1.6a09e6p+0f

/* 1 / (1 + exp(-v)). expf of an argument below -104 underflows to +0 through
 * glibc's error path; the shortcut gives the same +0. */
static float sigmoid(float v)
{
    const float m = -v;
    const float e = m < ATTN4J_EXP_LO ? 0.0f : expf(m);
    return 1.0f / (1.0f + e);
}

static float act(float v, int32_t activation)
{
    switch (activation) {
    case ATTN4J_ACT_SIGMOID:
        return sigmoid(v);
    case ATTN4J_ACT_RELU:
        /* numpy's maximum(v, 0): NaN propagates, -0 gives +0. The + 0 quiets a
         * signalling NaN as the vector kernels' max + 0 does, so every path
         * gives the same bits. */
        return (isnan(v) || v > 0.0f ? v : 0.0f) + 0.0f;
    case ATTN4J_ACT_TANH:
        return tanhf(v);
    case ATTN4J_ACT_GELU: {
        const float t = v / SQRT2_F32;
        const float e = (float)erf((double)t);
        return (v * (e + 1.0f)) / 2.0f;
    }
    case ATTN4J_ACT_SILU:
        return v * sigmoid(v);
    default:
        return v;
    }
}

void attn4j_bias_act_scalar(float *x, int64_t rows, int64_t cols, const float *bias,
                            int32_t activation)
{
    for (int64_t r = 0; r < rows; ++r) {
        float *xr = x + r * cols;
        if (bias == NULL) {
            for (int64_t c = 0; c < cols; ++c)
                xr[c] = act(xr[c], activation);
        } else {
            for (int64_t c = 0; c < cols; ++c)
                xr[c] = act(xr[c] + bias[c], activation);
        }
    }
}

static attn4j_bias_act_fn select_bias_act_fn(int32_t activation)
{
    if (activation == ATTN4J_ACT_GELU)
        return attn4j_bias_act_scalar;
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        return attn4j_bias_act_avx512;
    case ATTN4J_ISA_AVX2:
        return attn4j_bias_act_avx2;
#endif
    default:
        return attn4j_bias_act_scalar;
    }
}

ATTN4J_API int attn4j_bias_act_f32(float *x, int64_t rows, int64_t cols, const float *bias,
                                   int32_t activation)
{
    if (x == NULL || rows < 1 || cols < 1)
        return ATTN4J_EINVAL;
    if (activation < ATTN4J_ACT_LINEAR || activation > ATTN4J_ACT_SILU)
        return ATTN4J_EINVAL;
    if (rows > PTRDIFF_MAX / (int64_t)sizeof(float) / cols)
        return ATTN4J_EINVAL;
    if (activation == ATTN4J_ACT_LINEAR && bias == NULL)
        return ATTN4J_OK;
    /* Without a bias every element is treated alike: one long row, one tail. */
    if (bias == NULL) {
        cols *= rows;
        rows = 1;
    }
    select_bias_act_fn(activation)(x, rows, cols, bias, activation);
    return ATTN4J_OK;
}
