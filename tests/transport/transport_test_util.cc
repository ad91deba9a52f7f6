#include "transport_test_util.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace kvpool::transport::testing {
namespace {

uint8_t PatternByte(uint64_t seed, uint64_t offset) {
  // splitmix64 of (seed, offset / 8), one byte per position.
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + (offset >> 3) + 1;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<uint8_t>(x >> ((offset & 7) * 8));
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 15]);
  }
  return hex;
}

bool FromHex(std::string_view hex, std::string* bytes) {
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  bytes->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    bytes->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

std::string SelfExe() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).string();
}

}  // namespace

void FillPattern(std::span<uint8_t> bytes, uint64_t seed) {
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = PatternByte(seed, i);
}

bool HasPattern(std::span<const uint8_t> bytes, uint64_t seed, uint64_t* where) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != PatternByte(seed, i)) {
      if (where != nullptr) *where = i;
      return false;
    }
  }
  return true;
}

TransferEngineOptions LoopbackOptions(const std::string& tls, const std::string& name) {
  TransferEngineOptions options;
  options.tls = tls;
  options.name = name;
  options.ucx_config = {{"KEEPALIVE_INTERVAL", "200ms"}};
  return options;
}

EnginePair MakeEnginePair(const std::string& tls) {
  EnginePair pair;
  auto b = TransferEngine::Create(LoopbackOptions(tls, "test-b"));
  REQUIRE(b.ok());
  pair.b = std::move(b).value();
  auto a = TransferEngine::Create(LoopbackOptions(tls, "test-a"));
  REQUIRE(a.ok());
  pair.a = std::move(a).value();
  auto peer = pair.a->Connect(pair.b->worker_address());
  REQUIRE(peer.ok());
  pair.a_to_b = *peer;
  return pair;
}

Status WaitForPeerFailure(TransferEngine& engine, PeerId peer, int64_t timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  Status status = engine.PeerStatus(peer);
  while (status.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    status = engine.PeerStatus(peer);
  }
  return status;
}

// ---- PeerProcess -------------------------------------------------------------------------------

PeerProcess::PeerProcess(const std::string& tls, uint64_t region_bytes, bool allocate) {
  char dir_template[] = "/tmp/kvpool-transport-XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  dir_ = dir_template;
  const std::string info_path = dir_ + "/peer.info";
  auto started = Subprocess::Start({SelfExe(), "--transport-peer", info_path, tls,
                                    std::to_string(region_bytes), allocate ? "alloc" : "reg"},
                                   dir_ + "/peer.log");
  REQUIRE(started.ok());
  process_ = std::move(started).value();

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    std::ifstream in(info_path);
    std::string address_hex, rkey_hex;
    if (in >> address_hex >> info_.region.address >> info_.region.size_bytes >> rkey_hex) {
      REQUIRE(FromHex(address_hex, &info_.worker_address));
      REQUIRE(FromHex(rkey_hex, &info_.region.rkey));
      break;
    }
    if (!process_->Running()) {
      std::ifstream log(dir_ + "/peer.log");
      std::stringstream text;
      text << log.rdbuf();
      FAIL("peer process exited early; its log:\n" << text.str());
    }
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

PeerProcess::~PeerProcess() {
  process_.reset();  // SIGTERM, then SIGKILL
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

int RunTransportPeer(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: " << argv[0]
              << " --transport-peer INFO_FILE TLS REGION_BYTES alloc|reg\n";
    return 2;
  }
  const std::string info_path = argv[2];
  const std::string tls = argv[3];
  const uint64_t region_bytes = std::strtoull(argv[4], nullptr, 10);
  const bool allocate = std::string_view(argv[5]) == "alloc";

  auto engine = TransferEngine::Create(LoopbackOptions(tls, "test-peer"));
  if (!engine.ok()) {
    std::cerr << "peer: " << engine.status() << "\n";
    return 1;
  }
  std::vector<uint8_t> heap;
  Result<LocalRegion> region = InvalidArgumentError("unset");
  if (allocate) {
    region = (*engine)->AllocateMemory(region_bytes);
  } else {
    heap.resize(region_bytes);
    region = (*engine)->RegisterMemory(heap.data(), heap.size());
  }
  if (!region.ok()) {
    std::cerr << "peer: " << region.status() << "\n";
    return 1;
  }
  FillPattern(Bytes(*region), kPeerSeed);
  const RemoteRegion remote = region->Describe();
  {
    std::ofstream out(info_path + ".tmp");
    out << ToHex((*engine)->worker_address()) << "\n"
        << remote.address << "\n"
        << remote.size_bytes << "\n"
        << ToHex(remote.rkey) << "\n";
  }
  if (std::rename((info_path + ".tmp").c_str(), info_path.c_str()) != 0) return 1;
  // The parent drives everything; this process only has to stay alive (its progress thread
  // serves TCP requests) until it is killed.
  while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
}

std::unique_ptr<Subprocess> StartMessageSender(const std::string& tls,
                                               const std::string& receiver_address,
                                               const RemoteRegion& region, uint64_t token,
                                               uint64_t block_bytes, int pause_ms,
                                               const std::string& log_path) {
  auto started = Subprocess::Start(
      {SelfExe(), "--message-sender", tls, ToHex(receiver_address), std::to_string(region.address),
       std::to_string(region.size_bytes), ToHex(region.rkey), std::to_string(token),
       std::to_string(block_bytes), std::to_string(pause_ms)},
      log_path);
  REQUIRE(started.ok());
  return std::move(started).value();
}

int RunMessageSender(int argc, char** argv) {
  if (argc != 10) {
    std::cerr << "usage: " << argv[0]
              << " --message-sender TLS ADDRESS_HEX REGION_ADDRESS REGION_BYTES RKEY_HEX TOKEN "
                 "BLOCK_BYTES PAUSE_MS\n";
    return 2;
  }
  std::string address, rkey;
  if (!FromHex(argv[3], &address) || !FromHex(argv[6], &rkey)) return 2;
  const RemoteRegion region{std::strtoull(argv[4], nullptr, 10),
                            std::strtoull(argv[5], nullptr, 10), rkey};
  const uint64_t token = std::strtoull(argv[7], nullptr, 10);
  const uint64_t block = std::strtoull(argv[8], nullptr, 10);
  const int pause_ms = std::atoi(argv[9]);
  auto engine = TransferEngine::Create(LoopbackOptions(argv[2], "test-sender"));
  if (!engine.ok()) {
    std::cerr << "sender: " << engine.status() << "\n";
    return 1;
  }
  std::vector<uint8_t> bytes(block);
  FillPattern(bytes, kPeerSeed);
  Result<LocalRegion> local = (*engine)->RegisterMemory(bytes.data(), bytes.size());
  Result<PeerId> peer = (*engine)->Connect(address);
  if (!local.ok() || !peer.ok()) {
    std::cerr << "sender: " << (local.ok() ? peer.status() : local.status()) << "\n";
    return 1;
  }
  for (uint64_t offset = 0; offset + block <= region.size_bytes; offset += block) {
    const TransferOp op{Address(bytes.data()), region.address + offset, block};
    Result<TransferHandle> sent = (*engine)->SendMessages(*peer, region, token, {&op, 1});
    const Status st = sent.ok() ? sent->Wait(10'000) : sent.status();
    if (!st.ok()) {
      std::cerr << "sender: " << st << "\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
  }
  return 0;
}

}  // namespace kvpool::transport::testing
