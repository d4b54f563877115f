# Warnings for the project's own targets: on, and treated as what they are (fix them). CI turns
# them into errors (SIMDBN_WERROR) so that a new one cannot land.
function(simdbn_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wcast-align -Wformat=2
                         $<$<COMPILE_LANGUAGE:CXX>:-Wconversion-null -Wnon-virtual-dtor>
                         $<$<BOOL:${SIMDBN_WERROR}>:-Werror>)
endfunction()
