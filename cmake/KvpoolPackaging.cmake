# A Debian package of the whole install tree, so a node can `apt install ./kvpool_*.deb`:
#   cpack --config BUILD_DIR/CPackConfig.cmake -G DEB -B OUT_DIR
# It holds the daemons, kvpoolctl, kvpool-bench, libkvpool with its headers and CMake package,
# the systemd units, the kvpool user (sysusers.d) and /etc/kvpool's sample configs (conffiles).
# Depends come from dpkg-shlibdeps. Maintainer scripts: deploy/debian/.
set(CPACK_PACKAGE_NAME kvpool)
set(CPACK_PACKAGE_VENDOR kvpool)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "KV-cache memory pool for LLM serving (kvpoold, kvpool-scheduler, libkvpool)")
set(CPACK_PACKAGE_CONTACT "kvpool developers <kvpool-dev@example.invalid>")
set(CPACK_GENERATOR DEB)
# Install with DESTDIR into the staging tree and CMAKE_INSTALL_PREFIX=/usr, so the units and
# config paths written at install time are the ones the package installs (/usr/bin, /etc/kvpool)
# whatever prefix the build was configured with. Configure with -DCMAKE_INSTALL_PREFIX=/usr for
# a package: GNUInstallDirs then puts libkvpool in the multiarch dir (/usr/lib/<triplet>).
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# libkvpool.so ships in the package itself; dpkg-shlibdeps must find it there.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}/client)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS systemd)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
include(CPack)
