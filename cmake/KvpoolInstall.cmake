# Install layout and the exported CMake package, so an inference server can:
#   find_package(kvpool REQUIRED)
#   target_link_libraries(my_engine PRIVATE kvpool::client)
include(CMakePackageConfigHelpers)

set_target_properties(kvpool_client PROPERTIES EXPORT_NAME client)
install(TARGETS kvpool_client EXPORT kvpoolTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/kvpool DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(KVPOOL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kvpool)
install(EXPORT kvpoolTargets NAMESPACE kvpool:: DESTINATION ${KVPOOL_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/kvpoolConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/kvpoolConfig.cmake INSTALL_DESTINATION ${KVPOOL_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/kvpoolConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/kvpoolConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/kvpoolConfigVersion.cmake
        DESTINATION ${KVPOOL_CMAKE_DIR})

# Operator files: the binaries install themselves (daemon/, client/kvpoolctl/, bench/); the
# systemd units, the kvpool system user and the sample configs are written at install time, so
# the units name the prefix actually used (deploy/cmake/install_operator_files.cmake).
install(CODE "
  set(KVPOOL_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
  set(KVPOOL_BINARY_DIR \"${PROJECT_BINARY_DIR}\")
  set(KVPOOL_INSTALL_BINDIR \"${CMAKE_INSTALL_BINDIR}\")")
install(SCRIPT ${PROJECT_SOURCE_DIR}/deploy/cmake/install_operator_files.cmake)
install(FILES ${PROJECT_SOURCE_DIR}/docs/operations.md ${PROJECT_SOURCE_DIR}/docs/configuration.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
