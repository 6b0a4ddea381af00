/*
 * cpu.c - which kernel set runs: the best the CPU supports, lowered (never raised)
 * by the environment variable ATTN4J_ISA. Resolved once under pthread_once, so
 * concurrent first calls from several Java threads agree and the result is
 * read-only afterwards. Compiled for the baseline ISA: nothing here may use an
 * instruction the CPU has not been checked for.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static enum attn4j_isa_level isa_level = ATTN4J_ISA_SCALAR;

static const char *const isa_names[] = {"scalar", "avx2", "avx512"};

enum attn4j_isa_level attn4j_isa_detect(void)
{
#if defined(ATTN4J_HAVE_X86) && (defined(__GNUC__) || defined(__clang__))
    /* __builtin_cpu_supports also checks that the OS saves the YMM/ZMM state
     * (XCR0), so a "yes" here means the instructions can really run. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return ATTN4J_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return ATTN4J_ISA_AVX2;
#endif
    return ATTN4J_ISA_SCALAR;
}

static void resolve_isa(void)
{
    enum attn4j_isa_level level = attn4j_isa_detect();
    /* An unset, empty or unknown value leaves the CPU's choice: the variable is a
     * testing aid and the library has no channel to report a typo through;
     * attn4j_isa() shows what is in use. */
    const char *want = getenv("ATTN4J_ISA");
    if (want != NULL) {
        for (int k = 0; k < (int)(sizeof isa_names / sizeof isa_names[0]); ++k) {
            if (strcmp(want, isa_names[k]) == 0) {
                if ((enum attn4j_isa_level)k < level)
                    level = (enum attn4j_isa_level)k;
                break;
            }
        }
    }
    isa_level = level;
}

enum attn4j_isa_level attn4j_isa_level(void)
{
    pthread_once(&isa_once, resolve_isa);
    return isa_level;
}

ATTN4J_API const char *attn4j_isa(void)
{
    return isa_names[attn4j_isa_level()];
}

ATTN4J_API const char *attn4j_version(void)
{
    return ATTN4J_VERSION_STRING;
}
