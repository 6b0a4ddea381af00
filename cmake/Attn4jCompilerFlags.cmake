# Attn4jCompilerFlags.cmake - compiler flags shared by libattn4j and its tests, and
# the flags of the per-ISA kernel translation units.
#
# Sets:
#   ATTN4J_SIMD          ON when the AVX2 / AVX-512 kernels are built (x86-64 with
#                        GCC or Clang); otherwise only the scalar kernel exists.
#   ATTN4J_AVX2_FLAGS    flags of src/*_avx2.c
#   ATTN4J_AVX512_FLAGS  flags of src/*_avx512.c
# Defines:
#   attn4j_target_flags(<target>)  warnings and floating-point flags
include_guard(GLOBAL)

option(ATTN4J_WERROR "Treat compiler warnings as errors" OFF)

set(ATTN4J_SIMD OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|x64)$"
   AND CMAKE_C_COMPILER_ID MATCHES "^(GNU|Clang|AppleClang)$")
  set(ATTN4J_SIMD ON)
endif()

# The library itself is built for the baseline ISA (no -march): only the *_avx2.c
# and *_avx512.c files get wider instructions, and cpu.c decides at run time
# whether they run.
# The -m flags here must match the cpuid checks in src/cpu.c.
set(ATTN4J_AVX2_FLAGS -mavx2 -mfma)
set(ATTN4J_AVX512_FLAGS -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma)

function(attn4j_target_flags target)
  if(CMAKE_C_COMPILER_ID MATCHES "^(GNU|Clang|AppleClang)$")
    target_compile_options(${target} PRIVATE
      -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
      # Never fuse a*b+c into an FMA behind our back: the masked logit
      # fl32(scale*s - 1e9) must round twice, as Keras computes it. The kernels
      # use FMA only where they ask for it (the exp and tanh polynomials).
      -ffp-contract=off)
    if(ATTN4J_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()
