# Header self-containment: one generated translation unit per public header, including only
# that header, compiled with warnings as errors into the object library star_header_check (part
# of `all`). A header that forgets an #include, or warns, breaks the build. A component's headers
# (include/star/<c>.hpp, include/star/<c>/) are checked only when its target star::<c> exists.

file(GLOB_RECURSE star_public_headers CONFIGURE_DEPENDS
     RELATIVE "${PROJECT_SOURCE_DIR}/include" "${PROJECT_SOURCE_DIR}/include/star/*.hpp")
list(SORT star_public_headers)

set(star_header_check_sources)
set(star_header_check_links star::star)
foreach(component IN LISTS STAR_COMPONENTS)
  if(TARGET star::${component})
    list(APPEND star_header_check_links star::${component})
  else()
    list(FILTER star_public_headers EXCLUDE REGEX "^star/${component}(\\.hpp|/)")
  endif()
endforeach()

foreach(header IN LISTS star_public_headers)
  set(source "${PROJECT_BINARY_DIR}/header_check/${header}.cpp")
  file(CONFIGURE OUTPUT "${source}" CONTENT "#include <${header}>\n")
  list(APPEND star_header_check_sources "${source}")
endforeach()

add_library(star_header_check OBJECT ${star_header_check_sources})
target_link_libraries(star_header_check PRIVATE ${star_header_check_links})
target_compile_options(star_header_check PRIVATE -Wall -Wextra -Wpedantic -Werror)

list(LENGTH star_public_headers star_header_count)
message(STATUS "star: header self-containment check: ${star_header_count} public headers "
               "(target star_header_check, part of 'all')")
