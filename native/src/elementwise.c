/*
 * elementwise.c - attn4j_dropout_f32 (argument checks, dispatch and the scalar
 * kernel), attn4j_mul_row_mask_f32, attn4j_mul_f32 and attn4j_mask_from_f32.
 *
 * The last three are memory-bound single passes with no libm call: written as
 * plain loops that the compiler vectorises for the baseline ISA, with no per-ISA
 * kernels (a wider vector would not move memory faster).
 *
 * The dropout decision is a counter-based hash (attn4j_dropout_uniform in
 * internal.h, the splitmix64 finaliser applied twice): no state, so any thread
 * may drop any range, and the Java side reproduces a mask bit for bit.
 */
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

void attn4j_dropout_scalar(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream)
{
    const float keep_prob = 1.0f - rate;
    for (int64_t i = 0; i < n; ++i) {
        /* A dropped element is +0 whatever it held (Keras: where(mask, x / p, 0)),
         * so NaN and inf are dropped too. */
        x[i] = attn4j_dropout_uniform(seed, stream, (uint64_t)i) >= rate ? x[i] / keep_prob : 0.0f;
    }
}

static attn4j_dropout_fn select_dropout_fn(void)
{
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        return attn4j_dropout_avx512;
    case ATTN4J_ISA_AVX2:
        return attn4j_dropout_avx2;
#endif
    default:
        return attn4j_dropout_scalar;
    }
}

ATTN4J_API int attn4j_dropout_f32(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream)
{
    /* Written so that a NaN rate fails the first test. */
    if (!(rate >= 0.0f && rate < 1.0f) || n < 0 || (x == NULL && n > 0))
        return ATTN4J_EINVAL;
    if (n > PTRDIFF_MAX / (int64_t)sizeof(float))
        return ATTN4J_EINVAL;
    /* rate 0 keeps everything, and x / 1 would be x anyway: touch nothing. */
    if (n == 0 || rate == 0.0f)
        return ATTN4J_OK;
    select_dropout_fn()(x, n, rate, seed, stream);
    return ATTN4J_OK;
}

ATTN4J_API int attn4j_mul_row_mask_f32(float *x, int64_t rows, int64_t cols, const uint8_t *row_mask)
{
    if (x == NULL || row_mask == NULL || rows < 1 || cols < 1)
        return ATTN4J_EINVAL;
    if (rows > PTRDIFF_MAX / (int64_t)sizeof(float) / cols)
        return ATTN4J_EINVAL;
    for (int64_t r = 0; r < rows; ++r) {
        if (row_mask[r] != 0)
            continue;
        /* A multiply, not a store of 0: Keras's `output *= mask` turns NaN and inf
         * into NaN and keeps the sign of finite values. Memory-bound; the compiler
         * vectorises this loop for the baseline ISA. */
        float *xr = x + r * cols;
        for (int64_t c = 0; c < cols; ++c)
            xr[c] *= 0.0f;
    }
    return ATTN4J_OK;
}

ATTN4J_API int attn4j_mul_f32(float *x, const float *y, int64_t n)
{
    if (n < 0 || (n > 0 && (x == NULL || y == NULL)))
        return ATTN4J_EINVAL;
    if (n > PTRDIFF_MAX / (int64_t)sizeof(float))
        return ATTN4J_EINVAL;
    for (int64_t i = 0; i < n; ++i)
        x[i] = x[i] * y[i];
    return ATTN4J_OK;
}

ATTN4J_API int attn4j_mask_from_f32(const float *m, uint8_t *out, int64_t n, int32_t mode)
{
    if (n < 0 || (n > 0 && (m == NULL || out == NULL)))
        return ATTN4J_EINVAL;
    if (mode != ATTN4J_MASKCAST_NONZERO && mode != ATTN4J_MASKCAST_GT_HALF)
        return ATTN4J_EINVAL;
    if (n > PTRDIFF_MAX / (int64_t)sizeof(float))
        return ATTN4J_EINVAL;
    /* Ordered comparisons as numpy makes them: NaN != 0 is true, NaN > 0.5 false. */
    if (mode == ATTN4J_MASKCAST_NONZERO) {
        for (int64_t i = 0; i < n; ++i)
            out[i] = (uint8_t)(m[i] != 0.0f);
    } else {
        for (int64_t i = 0; i < n; ++i)
            out[i] = (uint8_t)(m[i] > 0.5f);
    }
    return ATTN4J_OK;
}
