// kvpool_it_putter: a libkvpool client that Puts into a kvpoold node's blocks in a loop until it
// is killed. Integration tests SIGKILL it mid-transfer to show that the node survives and frees
// what the client held.
//
//   kvpool_it_putter ADDRESS TLS NAMESPACE BLOCK_BYTES BLOCKS LEASE_TTL_MS
//
// Prints "putting" on stdout (flushed) once the first batch was submitted.
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "kvpool/client.h"
#include "kvpool/data_plane.h"

int main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: kvpool_it_putter ADDRESS TLS NAMESPACE BLOCK_BYTES BLOCKS LEASE_TTL_MS\n";
    return 2;
  }
  const std::string address = argv[1];
  kvpool::DataPlaneOptions options;
  options.tls = argv[2];
  const std::string ns = argv[3];
  const uint64_t block_bytes = std::strtoull(argv[4], nullptr, 10);
  const uint32_t blocks = static_cast<uint32_t>(std::strtoul(argv[5], nullptr, 10));
  const uint32_t ttl_ms = static_cast<uint32_t>(std::strtoul(argv[6], nullptr, 10));

  // Declared before the DataPlane, so it is freed after it: over tcp the node reads it through
  // this process's UCX, which may still be answering such reads when a Put gives up.
  std::vector<uint8_t> buffer(blocks * block_bytes, 0x5a);
  auto client = kvpool::Client::Connect(address);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 1;
  }
  auto dp = kvpool::DataPlane::Connect(**client, options);
  if (!dp.ok()) {
    std::cerr << dp.status() << "\n";
    return 1;
  }
  auto alloc = (*client)->AllocMem(ns, blocks, kvpool::Tier::kHost, ttl_ms);
  if (!alloc.ok()) {
    std::cerr << alloc.status() << "\n";
    return 1;
  }
  auto region = (*dp)->RegisterMemory(buffer.data(), buffer.size());
  if (!region.ok()) {
    std::cerr << region.status() << "\n";
    return 1;
  }
  std::vector<uint64_t> offsets;
  for (uint32_t i = 0; i < blocks; ++i) offsets.push_back(i * block_bytes);
  bool announced = false;
  for (;;) {
    auto handle = (*dp)->Put(*region, offsets, alloc->blocks);
    if (!handle.ok()) {
      std::cerr << handle.status() << "\n";
      return 1;
    }
    if (!announced) {
      std::cout << "putting" << std::endl;
      announced = true;
    }
    if (kvpool::Status st = handle->Wait(60'000); !st.ok()) {
      std::cerr << st << "\n";
      return 1;
    }
  }
}
