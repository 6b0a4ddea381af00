# Attn4jSanitizers.cmake - the ATTN4J_SANITIZE option.
#
#   -DATTN4J_SANITIZE="address;undefined"   (a comma-separated value works too)
#
# adds -fsanitize=address,undefined -fno-omit-frame-pointer
# -fno-sanitize-recover=all to the compilation of the library and the tests, and
# -fsanitize=... to their link, so any finding fails the test that hit it. Empty
# (the default) builds without sanitizers.
#
# A sanitized libattn4j.so needs its runtime loaded first when a JVM loads it
# (LD_PRELOAD=$(gcc -print-file-name=libasan.so)); the C tests need nothing.
include_guard(GLOBAL)

set(ATTN4J_SANITIZE "" CACHE STRING
    "Sanitizers for libattn4j and its tests, e.g. address;undefined (empty: none)")

string(REPLACE "," ";" _attn4j_sanitizers "${ATTN4J_SANITIZE}")
foreach(_s IN LISTS _attn4j_sanitizers)
  if(NOT _s MATCHES "^(address|undefined|leak|thread)$")
    message(FATAL_ERROR "ATTN4J_SANITIZE: unknown sanitizer '${_s}' in '${ATTN4J_SANITIZE}'; "
                        "expected a list of address, undefined, leak, thread")
  endif()
endforeach()
if("thread" IN_LIST _attn4j_sanitizers AND "address" IN_LIST _attn4j_sanitizers)
  message(FATAL_ERROR "ATTN4J_SANITIZE: 'thread' and 'address' cannot be combined")
endif()
list(JOIN _attn4j_sanitizers "," ATTN4J_SANITIZE_FLAG)
if(ATTN4J_SANITIZE_FLAG)
  message(STATUS "attn4j: sanitizers ${ATTN4J_SANITIZE_FLAG}")
endif()

# attn4j_target_sanitizers(<target>): compile (and, unless an object library, link)
# <target> with the sanitizers chosen in ATTN4J_SANITIZE.
function(attn4j_target_sanitizers target)
  if(NOT ATTN4J_SANITIZE_FLAG)
    return()
  endif()
  target_compile_options(${target} PRIVATE
    -fsanitize=${ATTN4J_SANITIZE_FLAG} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  get_target_property(_type ${target} TYPE)
  if(NOT _type STREQUAL "OBJECT_LIBRARY")
    target_link_options(${target} PRIVATE -fsanitize=${ATTN4J_SANITIZE_FLAG})
  endif()
endfunction()
