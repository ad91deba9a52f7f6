// Catch2 runner of kvpool_transport_tests, plus the --transport-peer mode in which the binary
// runs the peer engine of the two-process tests (re-executing itself keeps it one binary and
// avoids forking a process that already runs UCX threads).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <string_view>

#include "transport_test_util.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "--transport-peer") {
    return kvpool::transport::testing::RunTransportPeer(argc, argv);
  }
  if (argc > 1 && std::string_view(argv[1]) == "--message-sender") {
    return kvpool::transport::testing::RunMessageSender(argc, argv);
  }
  return Catch::Session().run(argc, argv);
}
