/*
 * activation_avx512.c - bias and activation for AVX-512 (F, BW, VL, DQ), 16
 * floats per step. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq
 * -mfma; only called after cpu.c has checked the CPU.
 *
 * The float operations of attn4j_bias_act_scalar in activation.c, in the same
 * order, with v16_exp / v16_tanh of vmath_avx512.h instead of expf / tanhf;
 * the tail (cols % 16) runs the same code under a lane mask and is stored with
 * v16_store_first (a masked store would stall the next row's loads). GELU never
 * comes here (activation.c keeps it scalar).
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"
#include "vmath_avx512.h"

#define W 16 /* floats per vector */

/* `activation` is a constant at every call site. */
ALWAYS_INLINE __m512 act(const __m512 v, int32_t activation)
{
    switch (activation) {
    case ATTN4J_ACT_SIGMOID:
        return v16_sigmoid(v);
    case ATTN4J_ACT_RELU: {
        /* maxps returns its second operand when either is NaN and when both are
         * zeros: NaN stays NaN, -0 stays -0, which + 0 turns into +0. */
        const __m512 zero = _mm512_setzero_ps();
        return _mm512_add_ps(_mm512_max_ps(zero, v), zero);
    }
    case ATTN4J_ACT_TANH:
        return v16_tanh(v);
    case ATTN4J_ACT_SILU:
        return _mm512_mul_ps(v, v16_sigmoid(v));
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
            __m512 v = _mm512_loadu_ps(xr + c);
            if (has_bias)
                v = _mm512_add_ps(v, _mm512_loadu_ps(bias + c));
            _mm512_storeu_ps(xr + c, act(v, activation));
        }
        if (c < cols) {
            const __mmask16 tail = v16_lanes_below(cols - c);
            __m512 v = _mm512_maskz_loadu_ps(tail, xr + c);
            if (has_bias)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(tail, bias + c));
            const __m512 y = act(v, activation);
            v16_store_first(xr + c, y, cols - c);
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

void attn4j_bias_act_avx512(float *x, int64_t rows, int64_t cols, const float *bias, int32_t activation)
{
    if (bias != NULL) {
        CASES(1)
    } else {
        CASES(0)
    }
}
