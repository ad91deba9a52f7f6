# kvpool_warnings: an interface target carrying the warning flags for kvpool's own code.
# Third-party and generated code does not link it, so their warnings never fail the build.
add_library(kvpool_warnings INTERFACE)
target_compile_options(kvpool_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                       -Wnon-virtual-dtor -Wno-missing-field-initializers)
if(KVPOOL_WERROR)
  target_compile_options(kvpool_warnings INTERFACE -Werror)
endif()
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  target_compile_options(kvpool_warnings INTERFACE -Wthread-safety)
endif()
