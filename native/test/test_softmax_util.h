/*
 * test_softmax_util.h - what test_softmax.c and test_backward.c share: one masked
 * softmax call (forward or backward), keep(b, i, j) of attn4j.h, and random masks
 * of every layout. Include after test_util.h (its random numbers).
 */
#ifndef ATTN4J_TEST_SOFTMAX_UTIL_H
#define ATTN4J_TEST_SOFTMAX_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn4j.h"
#include "test_util.h"

static const char *conv_names[] = {"SUBTRACT", "REPLACE_ZERO", "REPLACE"};

/* One call. `ex` (test_softmax.c) selects attn4j_masked_softmax_ex_f32; without
 * it row_mask and col_mask must be NULL, pad_batch_div 1 and window 0
 * (attn4j_masked_softmax_f32 has no such arguments). */
struct sm_call {
    int64_t batch, tq, tv;
    float scale;
    const uint8_t *mask;
    int64_t mask_batch_stride, mask_row_stride, mask_batch_div;
    const uint8_t *row_mask, *col_mask;
    int64_t pad_batch_div;
    int32_t causal;
    int64_t window;
    int32_t convention;
    int ex;
};

/* keep(b, i, j) of attn4j.h, one source at a time. */
static inline int sm_kept(const struct sm_call *c, int64_t b, int64_t i, int64_t j)
{
    if (c->causal && j > i)
        return 0;
    if (c->window > 0 && (i - j >= c->window || j - i >= c->window))
        return 0;
    if (c->mask != NULL &&
        c->mask[(b / c->mask_batch_div) * c->mask_batch_stride + i * c->mask_row_stride + j] == 0)
        return 0;
    if (c->row_mask != NULL && c->row_mask[(b / c->pad_batch_div) * c->tq + i] == 0)
        return 0;
    if (c->col_mask != NULL && c->col_mask[(b / c->pad_batch_div) * c->tv + j] == 0)
        return 0;
    return 1;
}

/* A mask byte: 0 (masked) a quarter of the time, else one of several non-zero
 * values, since any non-zero byte means "keep". */
static inline uint8_t rng_mask_byte(void)
{
    static const uint8_t keep_values[] = {1, 2, 128, 255};
    const uint64_t r = rng_next() >> 32;
    return (r & 3) == 0 ? 0 : keep_values[(r >> 2) & 3];
}

enum mask_layout {
    MASK_NONE,
    MASK_BATCH_TV,      /* (batch, tv): one key mask per batch */
    MASK_BATCH_TQ_TV,   /* (batch, tq, tv) */
    MASK_TQ_TV,         /* (tq, tv) broadcast over batch: batch stride 0 */
    MASK_HEADS,         /* (B, tq, tv) shared by N heads: scores (B*N, tq, tv), div N */
    MASK_PADDED_ROWS,   /* (batch, tq, tv) inside a larger buffer: strides > dense */
    MASK_LAYOUTS
};

static const char *layout_names[] = {"none", "(b,tv)", "(b,tq,tv)", "(tq,tv)", "heads", "padded"};

/* Sets c's mask, its strides and batch divisor for a layout (MASK_NONE: NULL,
 * strides 0) and returns the mask to free: exactly as many bytes as the strides
 * address, so AddressSanitizer catches a read past it; a quarter of the bytes 0,
 * and the last row of the first mask batch fully masked. */
static inline uint8_t *sm_make_mask(struct sm_call *c, enum mask_layout layout)
{
    const int64_t tq = c->tq, tv = c->tv;
    int64_t mask_batches = c->batch;
    c->mask_batch_div = 1;
    switch (layout) {
    case MASK_NONE:
        c->mask = NULL;
        c->mask_batch_stride = c->mask_row_stride = 0;
        return NULL;
    case MASK_BATCH_TV:
        c->mask_batch_stride = tv;
        c->mask_row_stride = 0;
        break;
    case MASK_BATCH_TQ_TV:
        c->mask_batch_stride = tq * tv;
        c->mask_row_stride = tv;
        break;
    case MASK_TQ_TV:
        c->mask_batch_stride = 0;
        c->mask_row_stride = tv;
        mask_batches = 1;
        break;
    case MASK_HEADS:
        c->mask_batch_div = c->batch % 3 == 0 ? 3 : c->batch % 2 == 0 ? 2 : 1;
        c->mask_batch_stride = tq * tv;
        c->mask_row_stride = tv;
        mask_batches = c->batch / c->mask_batch_div;
        break;
    default: /* MASK_PADDED_ROWS */
        c->mask_row_stride = tv + 3;
        c->mask_batch_stride = tq * (tv + 3) + 5;
        break;
    }
    const int64_t rows = c->mask_row_stride == 0 ? 1 : tq;
    const int64_t bytes = (mask_batches - 1) * c->mask_batch_stride + (rows - 1) * c->mask_row_stride + tv;
    uint8_t *m = malloc((size_t)bytes);
    /* Padding (bytes no (b, i, j) addresses) is 0: reading it by mistake masks. */
    memset(m, 0, (size_t)bytes);
    for (int64_t mb = 0; mb < mask_batches; ++mb)
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < tv; ++j)
                m[mb * c->mask_batch_stride + i * c->mask_row_stride + j] = rng_mask_byte();
    memset(m + (rows - 1) * c->mask_row_stride, 0, (size_t)tv);
    c->mask = m;
    return m;
}

/* A padding mask of ceil(batch / div) sequences of `len` bytes, exactly as many
 * bytes as the contract addresses (AddressSanitizer catches a read past them); a
 * quarter of the bytes 0, and with `mask_last` the whole last sequence. */
static inline uint8_t *make_pad(int64_t batch, int64_t div, int64_t len, int mask_last)
{
    const int64_t seqs = (batch - 1) / div + 1;
    uint8_t *m = malloc((size_t)(seqs * len));
    for (int64_t k = 0; k < seqs * len; ++k)
        m[k] = rng_mask_byte();
    if (mask_last)
        memset(m + (seqs - 1) * len, 0, (size_t)len);
    return m;
}

#endif /* ATTN4J_TEST_SOFTMAX_UTIL_H */
