// Uses an installed libkvpool: hashes a prompt the canonical way and, given an address,
// asks a running kvpoold how much of it is cached.
//   kvpool_consumer                 # hash only
//   kvpool_consumer 127.0.0.1:7700  # also Match against a node
#include <iostream>
#include <numeric>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/client.h"

int main(int argc, char** argv) {
  std::vector<uint32_t> tokens(64);
  std::iota(tokens.begin(), tokens.end(), 0u);
  const kvpool::BlockHasher hasher("consumer-demo", "", 16);
  const std::vector<kvpool::BlockHash> hashes = hasher.HashPrompt(tokens);
  std::cout << "blocks=" << hashes.size() << " first=" << hashes.front().ToHex() << "\n";
  if (argc < 2) return hashes.size() == 4 ? 0 : 1;

  auto client = kvpool::Client::Connect(argv[1]);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 1;
  }
  auto created = (*client)->CreateNamespace({"consumer-demo", 16, 4096, ""});
  if (!created.ok()) {
    std::cerr << created.status() << "\n";
    return 1;
  }
  auto match = (*client)->Match("consumer-demo", kvpool::PromptView::Hashes(hashes));
  if (!match.ok()) {
    std::cerr << match.status() << "\n";
    return 1;
  }
  std::cout << "matched " << match->matched_blocks << " of " << match->prompt_blocks << " blocks\n";
  return 0;
}
