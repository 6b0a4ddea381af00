# Attn4jCheckExports.cmake - script mode (cmake -P): fail unless the dynamic symbols
# a shared library defines are exactly the expected ones. Run by ctest as the test
# "exports", so a kernel or helper that loses its hidden visibility is caught.
#
#   cmake -DNM=<nm> -DLIBRARY=<file.so> -DEXPECTED=<sym1,sym2,...> -P Attn4jCheckExports.cmake
foreach(_v NM LIBRARY EXPECTED)
  if(NOT DEFINED ${_v})
    message(FATAL_ERROR "Attn4jCheckExports: -D${_v}=... is required")
  endif()
endforeach()

execute_process(COMMAND "${NM}" -D --defined-only "${LIBRARY}"
                OUTPUT_VARIABLE _out ERROR_VARIABLE _err RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "Attn4jCheckExports: '${NM} -D --defined-only ${LIBRARY}' failed (${_rc}): ${_err}")
endif()

string(REPLACE "\n" ";" _lines "${_out}")
set(_found "")
foreach(_line IN LISTS _lines)
  # "<address> <type> <name>"
  if(_line MATCHES "^[0-9A-Fa-f]* *[A-Za-z] +([^ ]+)$")
    list(APPEND _found "${CMAKE_MATCH_1}")
  endif()
endforeach()

string(REPLACE "," ";" _expected "${EXPECTED}")
set(_unexpected ${_found})
list(REMOVE_ITEM _unexpected ${_expected})
set(_missing ${_expected})
if(_found)
  list(REMOVE_ITEM _missing ${_found})
endif()

if(_unexpected OR _missing)
  message(FATAL_ERROR "Attn4jCheckExports: ${LIBRARY}\n"
                      "  unexpected exports: ${_unexpected}\n"
                      "  missing exports:    ${_missing}\n"
                      "  nm output:\n${_out}")
endif()
list(SORT _found)
message(STATUS "exports of ${LIBRARY}: ${_found}")
