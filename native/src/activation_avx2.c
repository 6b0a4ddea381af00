/*
 * activation_avx2.c - bias and activation for AVX2 + FMA, 8 floats per step.
 * Compiled with -mavx2 -mfma; only called after cpu.c has checked the CPU.
 *
 * The float operations of attn4j_bias_act_scalar in activation.c, in the same
 * order, with v8_exp / v8_tanh of vmath_avx2.h instead of expf / tanhf;
 * the tail (cols % 8) runs the same code under a lane mask and is stored with
 * v8_store_first (a masked store would stall the next row's loads). GELU never
 * comes here (activation.c keeps it scalar).
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"
#include "vmath_avx2.h"

#define W 8 /* floats per vector */

/* `activation` is a constant at every call site. */
ALWAYS_INLINE __m256 act(const __m256 v, int32_t activation)
{
    switch (activation) {
    case ATTN4J_ACT_SIGMOID:
        return v8_sigmoid(v);
    case ATTN4J_ACT_RELU: {
        /* maxps returns its second operand when either is NaN and when both are
         * zeros: NaN stays NaN, -0 stays -0, which + 0 turns into +0. */
        const __m256 zero = _mm256_setzero_ps();
        return _mm256_add_ps(_mm256_max_ps(zero, v), zero);
    }
    case ATTN4J_ACT_TANH:
        return v8_tanh(v);
    case ATTN4J_ACT_SILU:
        return _mm256_mul_ps(v, v8_sigmoid(v));
    default:
        return v;
    }
}

ALWAYS_INLINE void rows_act(float *x, int64_t rows, int64_t cols, const float *bias, int32_t activation,
                            int has_bias)
{
    for (int64_t r = 0; r < rows; ++r) {
        float *xr = x + r * cols;
        int64_t c = 0;
        for (; c + W <= cols; c += W) {
            __m256 v = _mm256_loadu_ps(xr + c);
            if (has_bias)
                v = _mm256_add_ps(v, _mm256_loadu_ps(bias + c));
            _mm256_storeu_ps(xr + c, act(v, activation));
        }
        if (c < cols) {
            const __m256i tail = v8_lanes_below(cols - c);
            __m256 v = _mm256_maskload_ps(xr + c, tail);
            if (has_bias)
                v = _mm256_add_ps(v, _mm256_maskload_ps(bias + c, tail));
            const __m256 y = act(v, activation);
            v8_store_first(xr + c, y, cols - c);
        }
    }
}

#define CASES(has_bias)                                                                        \
    switch (activation) {                                                                      \
    case ATTN4J_ACT_SIGMOID:                                                                   \
        rows_act(x, rows, cols, bias, ATTN4J_ACT_SIGMOID, has_bias);                           \
        break;                                                                                 \
    case ATTN4J_ACT_RELU:                                                                      \
        rows_act(x, rows, cols, bias, ATTN4J_ACT_RELU, has_bias);                              \
        break;                                                                                 \
    case ATTN4J_ACT_TANH:                                                                      \
        rows_act(x, rows, cols, bias, ATTN4J_ACT_TANH, has_bias);                              \
        break;                                                                                 \
    case ATTN4J_ACT_SILU:                                                                      \
        rows_act(x, rows, cols, bias, ATTN4J_ACT_SILU, has_bias);                              \
        break;                                                                                 \
    default:                                                                                   \
        rows_act(x, rows, cols, bias, ATTN4J_ACT_LINEAR, has_bias);                            \
        break;                                                                                 \
    }

void attn4j_bias_act_avx2(float *x, int64_t rows, int64_t cols, const float *bias, int32_t activation)
{
    if (bias != NULL) {
        CASES(1)
    } else {
        CASES(0)
    }
}
