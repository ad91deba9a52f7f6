# Third-party packages, all from Debian 12 (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)           # CMake's FindProtobuf: protobuf::libprotobuf, protoc
find_package(gRPC CONFIG REQUIRED)        # needs protobuf-compiler-grpc for the plugin check
find_package(absl CONFIG REQUIRED)
find_package(ucx CONFIG REQUIRED)          # data plane: ucx::ucp, ucx::ucs (src/transport only)
find_package(PkgConfig REQUIRED)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
find_package(CLI11 CONFIG REQUIRED)       # command-line parsing in the mains only
find_package(nlohmann_json CONFIG REQUIRED)  # --json output of the CLI and benchmarks
find_package(RocksDB CONFIG REQUIRED)     # SSD tier: RocksDB::rocksdb-shared (src/storage only)
find_package(prometheus-cpp CONFIG REQUIRED)  # /metrics: prometheus-cpp::core, ::pull
if(KVPOOL_BUILD_TESTS)
  find_package(Catch2 2 REQUIRED)
endif()
