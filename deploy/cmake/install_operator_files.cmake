# Installs what an operator needs besides the binaries: systemd units, the kvpool system user
# (sysusers.d) and the sample configs. Included by `cmake --install` (cmake/KvpoolInstall.cmake
# sets KVPOOL_SOURCE_DIR, KVPOOL_BINARY_DIR and KVPOOL_INSTALL_BINDIR first), so the units name
# the prefix actually installed to: `cmake --install --prefix P` and CPack's /usr alike.
#
# Layout for prefix P: P/lib/systemd/system/*.service, P/lib/sysusers.d/kvpool.conf and the
# configs in /etc/kvpool when P is /usr, else in P/etc/kvpool (as GNUInstallDirs does).
# A config that already exists is kept: an install never overwrites an operator's edits.
set(_kvpool_prefix "${CMAKE_INSTALL_PREFIX}")
if(_kvpool_prefix STREQUAL "/usr")
  set(_kvpool_confdir "/etc/kvpool")
else()
  set(_kvpool_confdir "${_kvpool_prefix}/etc/kvpool")
endif()
if(IS_ABSOLUTE "${KVPOOL_INSTALL_BINDIR}")
  set(KVPOOL_UNIT_BINDIR "${KVPOOL_INSTALL_BINDIR}")
else()
  set(KVPOOL_UNIT_BINDIR "${_kvpool_prefix}/${KVPOOL_INSTALL_BINDIR}")
endif()
set(KVPOOL_UNIT_CONFDIR "${_kvpool_confdir}")
set(KVPOOL_UNIT_DOCDIR "${_kvpool_prefix}/share/doc/kvpool")
# One staging folder per destination, so concurrent installs (ctest -j) do not share files.
string(MD5 _kvpool_dest "$ENV{DESTDIR}${_kvpool_prefix}")
set(KVPOOL_UNIT_OUT_DIR "${KVPOOL_BINARY_DIR}/deploy/installed-units/${_kvpool_dest}")
include("${CMAKE_CURRENT_LIST_DIR}/render_units.cmake")

file(INSTALL DESTINATION "${_kvpool_prefix}/lib/systemd/system" TYPE FILE
     FILES ${KVPOOL_RENDERED_UNITS})
file(INSTALL DESTINATION "${_kvpool_prefix}/lib/sysusers.d" TYPE FILE RENAME kvpool.conf
     FILES "${KVPOOL_SOURCE_DIR}/deploy/systemd/kvpool.sysusers")
foreach(_config kvpoold.toml kvpool-scheduler.toml)
  if(EXISTS "$ENV{DESTDIR}${_kvpool_confdir}/${_config}")
    message(STATUS "Keeping: $ENV{DESTDIR}${_kvpool_confdir}/${_config}")
  else()
    file(INSTALL DESTINATION "${_kvpool_confdir}" TYPE FILE
         FILES "${KVPOOL_SOURCE_DIR}/deploy/${_config}")
  endif()
endforeach()
