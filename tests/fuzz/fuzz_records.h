// The input format of the gRPC service fuzzers, shared with the seed writer: a sequence of
// records, each [method: u8][flags: u8][length: u16 little-endian][length bytes: a serialized
// request of that method]. A record cut short by the end of the input takes what is left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvpool::fuzz {

/// The methods of kvpool.v1.MemPool, numbered as mempool_service_fuzzer reads them.
enum class MemPoolMethod : uint8_t {
  kCreateNamespace, kGetNamespace, kListNamespaces, kDeleteNamespace, kAllocMem, kFreeMem,
  kInsert, kMatch, kExists, kDelete, kRenew, kRelease, kGetStats, kEvict, kGetDataPlane,
  kResolveBlocks, kTransfer, kTransferWithInsert, kTransferFromRegion, kSwapOut, kSwapIn,
  kDrain, kUndrain,
  kCount,
};

/// The methods of kvpool.v1.Scheduler as scheduler_service_fuzzer reads them, plus kExpireDead
/// (advance the clock by 1000 ms * flags and call SchedulerService::ExpireDead).
enum class SchedulerMethod : uint8_t {
  kRegisterNode, kNodeHeartbeat, kPublishEvents, kSyncSnapshot, kRegisterInstance, kReportLoad,
  kDeregisterNode, kDeregisterInstance, kLookup, kRoute, kPlace, kListNodes, kListInstances,
  kGetIndexStats, kExpireDead,
  kCount,
};

/// MemPool record flags: patch the request with what earlier responses returned, so mutated
/// inputs reach past handle and lease validation.
inline constexpr uint8_t kUseLastLease = 1;    ///< lease-id fields := the last lease returned
inline constexpr uint8_t kUseLastHandles = 2;  ///< handle lists := the last handles returned
inline constexpr uint8_t kAdvanceClock = 4;    ///< before the call: clock += (flags >> 3) s,
                                               ///< then expire leases

/// One record of an input.
struct Record {
  uint8_t method = 0;
  uint8_t flags = 0;
  std::string_view payload;
};

/// Reads records from the front of an input. Not thread-safe; a local of one fuzz iteration.
class RecordReader {
 public:
  RecordReader(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  /// The next record, or false at the end of the input.
  bool Next(Record* out) {
    if (rest_.size() < 2) return false;
    out->method = static_cast<uint8_t>(rest_[0]);
    out->flags = static_cast<uint8_t>(rest_[1]);
    rest_.remove_prefix(2);
    size_t length = 0;
    if (rest_.size() >= 2) {
      length = static_cast<uint8_t>(rest_[0]) | (size_t{static_cast<uint8_t>(rest_[1])} << 8);
      rest_.remove_prefix(2);
    } else {
      rest_ = {};
    }
    if (length > rest_.size()) length = rest_.size();
    out->payload = rest_.substr(0, length);
    rest_.remove_prefix(length);
    return true;
  }

 private:
  std::string_view rest_;
};

/// Appends one record to `out` (seed writer). `payload` longer than 65535 bytes is cut.
inline void AppendRecord(std::string* out, uint8_t method, uint8_t flags,
                         std::string_view payload) {
  if (payload.size() > 0xFFFF) payload = payload.substr(0, 0xFFFF);
  out->push_back(static_cast<char>(method));
  out->push_back(static_cast<char>(flags));
  out->push_back(static_cast<char>(payload.size() & 0xFF));
  out->push_back(static_cast<char>(payload.size() >> 8));
  out->append(payload);
}

}  // namespace kvpool::fuzz
