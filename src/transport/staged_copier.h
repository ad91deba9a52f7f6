// StagedCopier: moves bytes between device (GPU) memory in this process and a peer's registered
// memory when UCX cannot reach device memory itself (Debian's UCX has no CUDA transport).
// Device bytes go through pinned host staging buffers: device -> pinned -> UCX for a Put, UCX ->
// pinned -> device for a Get, in chunks, pipelined so that the device copy of one chunk overlaps
// the network transfer of the others (docs/gpu.md).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "kvpool/status.h"
#include "memory/device.h"
#include "transport/transfer_engine.h"

namespace kvpool::transport {

struct StagingOptions {
  /// Bytes of one staging chunk: each network operation moves at most this much. Larger chunks
  /// cost fewer operations, smaller ones overlap sooner. Default: 1 MiB.
  uint64_t chunk_bytes = 1 << 20;
  /// Chunks in flight per transfer (staging buffers per lane). Default: 4.
  uint32_t chunks_in_flight = 4;
  /// Transfers that can stage at the same time; a further one waits for a free lane. Each lane
  /// pins chunk_bytes * chunks_in_flight of host memory. Default: 4.
  uint32_t lanes = 4;
};

/// Pipelined staging of device memory. Thread-safe: concurrent transfers use separate lanes
/// (pinned buffers, registered with the engine once, and a copy stream each).
///
/// Statuses as TransferHandle::Wait (UNAVAILABLE, NOT_FOUND, CANCELLED, DEADLINE_EXCEEDED), the
/// engine's INVALID_ARGUMENT for ops outside the remote region, and the device's INTERNAL for a
/// failed device copy. After a failure the destination bytes are undefined; the caller closes
/// the endpoint (as for any failed batch) and a lane whose network operations are still running
/// is not reused until they end.
class StagedCopier {
 public:
  /// Allocates and registers the lanes' pinned buffers. INVALID_ARGUMENT for a zero option;
  /// the device's and the engine's errors. `engine` and `device` must outlive the copier.
  static Result<std::unique_ptr<StagedCopier>> Create(TransferEngine* engine,
                                                      memory::DeviceRuntime* device,
                                                      const StagingOptions& options);
  /// Deregisters the buffers (waiting up to a second for running operations of failed
  /// transfers) and frees them.
  ~StagedCopier();
  StagedCopier(const StagedCopier&) = delete;
  StagedCopier& operator=(const StagedCopier&) = delete;

  /// Writes each op's device bytes (local_address: device memory of `device`) to the peer's
  /// memory and waits until all landed, up to `timeout_ms`.
  Status Put(PeerId peer, const RemoteRegion& remote, std::span<const TransferOp> ops,
             int64_t timeout_ms);
  /// Reads each op's remote bytes into device memory (local_address) and waits until they are
  /// on the device, up to `timeout_ms`.
  Status Get(PeerId peer, const RemoteRegion& remote, std::span<const TransferOp> ops,
             int64_t timeout_ms);

  const StagingOptions& options() const { return options_; }

 private:
  struct Lane;
  class LaneLease;
  StagedCopier(TransferEngine* engine, StagingOptions options);
  Result<LaneLease> AcquireLane(int64_t timeout_ms);

  TransferEngine* const engine_;
  const StagingOptions options_;
  struct Shared;
  std::unique_ptr<Shared> shared_;
};

}  // namespace kvpool::transport
