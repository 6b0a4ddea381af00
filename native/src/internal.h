/*
 * internal.h - what the translation units of libattn4j share and nothing else
 * sees: the per-ISA row kernels, the CPU dispatch and the constants both vector
 * paths must agree on. Nothing here is exported (-fvisibility=hidden); the unit
 * tests reach it by linking the objects directly.
 *
 * softmax_avx2.c and softmax_avx512.c are compiled with their own -m flags. Keep
 * every helper shared between translation units a macro or a `static inline`
 * function: a plain (extern) inline function could be emitted by several units
 * and the linker could keep the copy compiled with -mavx512f, which would then
 * run on a CPU that does not have it.
 */
#ifndef ATTN4J_INTERNAL_H
#define ATTN4J_INTERNAL_H

#include <stdint.h>

#include "attn4j.h"

/* ---- Masked logits (see ATTN4J_MASK_* in attn4j.h) ---------------------------- */

/* SUBTRACT: Keras Attention does `scores -= 1e9 * (1 - mask)` in float32, so a
 * masked logit is fl32(x - 1e9f) and a kept one is x - 0 = x. */
#define ATTN4J_SUBTRACT_BIAS 1e9f
/* REPLACE_ZERO: keras.layers.Softmax puts -1e9 at masked positions. */
#define ATTN4J_REPLACE_ZERO_LOGIT (-1e9f)
/* REPLACE: ops.dot_product_attention puts -0.7 * finfo(float32).max at masked
 * positions. fl32(-0.7f * FLT_MAX) and fl32(-0.7 * (double)FLT_MAX) are the same
 * float, written out here so no compiler evaluation mode can change it. */
#define ATTN4J_REPLACE_LOGIT (-0x1.666664p+127f)

/* ---- Vector exp constants (shared by the AVX2 and AVX-512 paths) --------------
 *
 * exp(x) = 2^n * exp(r), n = rint(x * log2(e)), r = x - n*ln2 with ln2 split in
 * two floats (Cody-Waite; the FMA makes n*ln2_hi exact), then
 * exp(r) ~ 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4) on |r| <= 0.351.
 * c2..c6 are a weighted least-squares fit iterated towards minimax (Lawson) of the
 * relative error on [-0.3506, 0.3506], rounded to float: relative error 5.2e-9,
 * i.e. ~0.04 ulp, so the result is within 1 ulp of exp (see test/test_exp.c).
 *
 * Inputs are clamped to [ATTN4J_EXP_LO, ATTN4J_EXP_HI] first (NaN passes the
 * clamp unchanged): below -150 ln2 = -103.972 the result rounds to +0, above
 * 128 ln2 = 88.723 it overflows to +inf, and the clamp keeps n within [-150, 128]
 * so that 2^n can be built from exponent bits without integer overflow.
 */
#define ATTN4J_EXP_LO (-104.0f)
#define ATTN4J_EXP_HI 88.8f
#define ATTN4J_LOG2E 0x1.715476p+0f
#define ATTN4J_LN2_HI 0x1.62e430p-1f
#define ATTN4J_LN2_LO (-0x1.05c610p-29f)
#define ATTN4J_EXP_C2 0x1.fffffcp-2f
#define ATTN4J_EXP_C3 0x1.555488p-3f
#define ATTN4J_EXP_C4 0x1.55591cp-5f
#define ATTN4J_EXP_C5 0x1.1240bep-7f
#define ATTN4J_EXP_C6 0x1.6a18d6p-10f

/* ---- Row kernels ---------------------------------------------------------------
 *
 * One softmax row of length tv, in place. Column j is kept when
 *     j < keep_end && (mask_row == NULL || mask_row[j] != 0)
 * keep_end is the causal boundary (i + 1 clamped to tv, or tv when not causal), so
 * causality costs one comparison per SIMD chunk, not a test per element.
 * `convention` is one of ATTN4J_MASK_*, already validated.
 */
typedef void (*attn4j_row_fn)(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                              float scale, int32_t convention);

void attn4j_row_scalar(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                       float scale, int32_t convention);

/* ---- CPU dispatch (cpu.c) ------------------------------------------------------ */

enum attn4j_isa_level { ATTN4J_ISA_SCALAR = 0, ATTN4J_ISA_AVX2 = 1, ATTN4J_ISA_AVX512 = 2 };

/* The level in use: resolved once (thread-safe), read-only afterwards. */
enum attn4j_isa_level attn4j_isa_level(void);

/* The best level this CPU and OS support, ignoring ATTN4J_ISA. */
enum attn4j_isa_level attn4j_isa_detect(void);

#if defined(ATTN4J_HAVE_X86)
/* softmax_avx2.c: needs AVX2 + FMA. */
void attn4j_row_avx2(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                     float scale, int32_t convention);
/* y[k] = exp(x[k]) with the vector exp of the row kernel; for the tests. */
void attn4j_exp_avx2(const float *x, float *y, int64_t n);

/* softmax_avx512.c: needs AVX-512 F, BW, VL, DQ (+ FMA). */
void attn4j_row_avx512(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                       float scale, int32_t convention);
void attn4j_exp_avx512(const float *x, float *y, int64_t n);
#endif

#endif /* ATTN4J_INTERNAL_H */
