/*
 * test_flash_util.h - what test_flash.c and test_flash_backward.c share: the
 * sentinel of untouched outputs and the random key padding of a spec. Include
 * after test_util.h (its random numbers).
 */
#ifndef ATTN4J_TEST_FLASH_UTIL_H
#define ATTN4J_TEST_FLASH_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* What every float a call must not write holds before it. */
#define SENTINEL 12345.5f

static inline void fill_sentinel(float *x, int64_t n)
{
    for (int64_t e = 0; e < n; ++e)
        x[e] = SENTINEL;
}

/* Key padding of kind 0: none (NULL); 1: random; 2: random, one batch entry all
 * padded; 3: random, leading keys padded. (b, tk) bytes to free, shared by the
 * heads of a batch entry (col_mask_div = N). */
static inline uint8_t *key_padding(int64_t b, int64_t tk, int kind)
{
    if (kind == 0)
        return NULL;
    uint8_t *mask = malloc((size_t)(b * tk));
    for (int64_t e = 0; e < b * tk; ++e)
        mask[e] = (uint8_t)(rng_next() % 4 != 0);
    if (kind == 2)
        memset(mask + (b - 1) * tk, 0, (size_t)tk);
    if (kind == 3) /* the first keys padded: causal rows before them keep nothing */
        for (int64_t e = 0; e < b; ++e)
            memset(mask + e * tk, 0, (size_t)(tk < 37 ? tk - 1 : 37));
    return mask;
}

#endif /* ATTN4J_TEST_FLASH_UTIL_H */
