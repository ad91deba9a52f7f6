# Renders the systemd unit templates (deploy/systemd/*.service.in) with the paths they name.
# Used at install time (install_operator_files.cmake) and by tests/deploy, which renders units
# pointing at the build tree's binaries for `systemd-analyze verify`.
#   cmake -DKVPOOL_UNIT_BINDIR=DIR -DKVPOOL_UNIT_CONFDIR=DIR -DKVPOOL_UNIT_DOCDIR=DIR
#         -DKVPOOL_UNIT_OUT_DIR=DIR -P deploy/cmake/render_units.cmake
foreach(var KVPOOL_UNIT_BINDIR KVPOOL_UNIT_CONFDIR KVPOOL_UNIT_DOCDIR KVPOOL_UNIT_OUT_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "render_units.cmake: ${var} is not set")
  endif()
endforeach()
file(GLOB _kvpool_unit_templates "${CMAKE_CURRENT_LIST_DIR}/../systemd/*.service.in")
set(KVPOOL_RENDERED_UNITS "")
foreach(_template IN LISTS _kvpool_unit_templates)
  get_filename_component(_unit "${_template}" NAME)
  string(REGEX REPLACE "\\.in$" "" _unit "${_unit}")
  configure_file("${_template}" "${KVPOOL_UNIT_OUT_DIR}/${_unit}" @ONLY)
  list(APPEND KVPOOL_RENDERED_UNITS "${KVPOOL_UNIT_OUT_DIR}/${_unit}")
endforeach()
