# SIMDBN_SANITIZE builds everything (library, tests, benchmarks) with ASan + UBSan, so that any
# read or write past a caller's buffer on any SIMD target fails the test suite.
if(SIMDBN_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
