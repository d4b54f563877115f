# Warnings for the project's own targets: on, and treated as what they are (fix them).
function(simdbn_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wconversion-null
                                           -Wnon-virtual-dtor -Wcast-align -Wformat=2)
endfunction()
