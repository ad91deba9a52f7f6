#include "transport/staged_copier.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace kvpool::transport {
namespace {

using Clock = std::chrono::steady_clock;

// One piece of an op that lands in a staging chunk at `slot_offset`.
struct Piece {
  uint64_t device_address;
  uint64_t remote_address;
  uint64_t size_bytes;
  uint64_t slot_offset;
};

// The ops cut into chunks of at most chunk_bytes; small ops share a chunk.
std::vector<std::vector<Piece>> CutIntoChunks(std::span<const TransferOp> ops,
                                              uint64_t chunk_bytes) {
  std::vector<std::vector<Piece>> chunks;
  uint64_t used = chunk_bytes;  // forces a new chunk for the first piece
  for (const TransferOp& op : ops) {
    uint64_t done = 0;
    while (done < op.size_bytes) {
      if (used == chunk_bytes) {
        chunks.emplace_back();
        used = 0;
      }
      const uint64_t n = std::min(op.size_bytes - done, chunk_bytes - used);
      chunks.back().push_back(Piece{op.local_address + done, op.remote_address + done, n, used});
      used += n;
      done += n;
    }
  }
  return chunks;
}

// The network side of one chunk: each piece between its place in the staging slot and the peer.
void NetworkOps(const std::vector<Piece>& chunk, const uint8_t* slot,
                std::vector<TransferOp>* ops) {
  ops->clear();
  for (const Piece& p : chunk) {
    ops->push_back(TransferOp{reinterpret_cast<uint64_t>(slot) + p.slot_offset, p.remote_address,
                              p.size_bytes});
  }
}

int64_t MsLeft(Clock::time_point deadline) {
  return std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
}

}  // namespace

// Pinned buffers (chunks_in_flight slots of chunk_bytes), their registration and a copy stream.
struct StagedCopier::Lane {
  std::unique_ptr<memory::PinnedBuffer> pinned;
  RegionId region{};
  std::unique_ptr<memory::CopyStream> stream;
  // Network operations of the last transfer; a failed transfer may leave some running.
  std::vector<TransferHandle> inflight;

  bool Idle() const {
    return std::all_of(inflight.begin(), inflight.end(),
                       [](const TransferHandle& h) { return h.Poll(); });
  }
};

struct StagedCopier::Shared {
  absl::Mutex mu;
  std::vector<std::unique_ptr<Lane>> lanes;  // all of them, for the destructor
  std::vector<Lane*> free ABSL_GUARDED_BY(mu);
  absl::CondVar returned;  // signalled when a lane goes back on `free`
};

namespace {
// Waits for a lane's device copies on every exit, so that a failed transfer leaves no copy
// running into memory the caller may reuse.
class DrainOnExit {
 public:
  explicit DrainOnExit(memory::CopyStream* stream) : stream_(stream) {}
  ~DrainOnExit() { stream_->Synchronize().IgnoreError(); }
  DrainOnExit(const DrainOnExit&) = delete;
  DrainOnExit& operator=(const DrainOnExit&) = delete;

 private:
  memory::CopyStream* stream_;
};
}  // namespace

// A lane checked out by one transfer; returned on destruction.
class StagedCopier::LaneLease {
 public:
  LaneLease(Shared* shared, Lane* lane) : shared_(shared), lane_(lane) {}
  LaneLease(LaneLease&& other) noexcept
      : shared_(other.shared_), lane_(std::exchange(other.lane_, nullptr)) {}
  LaneLease& operator=(LaneLease&&) = delete;
  LaneLease(const LaneLease&) = delete;
  LaneLease& operator=(const LaneLease&) = delete;
  ~LaneLease() {
    if (lane_ == nullptr) return;
    absl::MutexLock lock(&shared_->mu);
    shared_->free.push_back(lane_);
    shared_->returned.Signal();
  }
  Lane* operator->() const { return lane_; }

 private:
  Shared* shared_;
  Lane* lane_;
};

StagedCopier::StagedCopier(TransferEngine* engine, StagingOptions options)
    : engine_(engine), options_(options), shared_(std::make_unique<Shared>()) {}

Result<std::unique_ptr<StagedCopier>> StagedCopier::Create(TransferEngine* engine,
                                                           memory::DeviceRuntime* device,
                                                           const StagingOptions& options) {
  if (options.chunk_bytes == 0 || options.chunks_in_flight == 0 || options.lanes == 0) {
    return InvalidArgumentError("staging needs chunk_bytes, chunks_in_flight and lanes > 0 (got " +
                                std::to_string(options.chunk_bytes) + ", " +
                                std::to_string(options.chunks_in_flight) + ", " +
                                std::to_string(options.lanes) + ")");
  }
  std::unique_ptr<StagedCopier> copier(new StagedCopier(engine, options));
  const uint64_t lane_bytes = options.chunk_bytes * options.chunks_in_flight;
  for (uint32_t i = 0; i < options.lanes; ++i) {
    auto lane = std::make_unique<Lane>();
    KVPOOL_ASSIGN_OR_RETURN(lane->pinned, device->AllocatePinned(lane_bytes));
    KVPOOL_ASSIGN_OR_RETURN(lane->stream, device->NewStream());
    Result<LocalRegion> region = engine->RegisterMemory(lane->pinned->data(), lane_bytes);
    if (!region.ok()) return region.status();
    lane->region = region->id;
    absl::MutexLock lock(&copier->shared_->mu);
    copier->shared_->free.push_back(lane.get());
    copier->shared_->lanes.push_back(std::move(lane));
  }
  return copier;
}

StagedCopier::~StagedCopier() {
  for (auto& lane : shared_->lanes) {
    for (const TransferHandle& h : lane->inflight) h.Wait(1000).IgnoreError();
    if (lane->region != RegionId{}) engine_->Deregister(lane->region).IgnoreError();
  }
}

Result<StagedCopier::LaneLease> StagedCopier::AcquireLane(int64_t timeout_ms) {
  const absl::Time deadline = absl::Now() + absl::Milliseconds(timeout_ms);
  absl::MutexLock lock(&shared_->mu);
  for (;;) {
    // A lane still running operations of a failed transfer waits until they end.
    for (auto it = shared_->free.begin(); it != shared_->free.end(); ++it) {
      if ((*it)->Idle()) {
        Lane* lane = *it;
        shared_->free.erase(it);
        lane->inflight.assign(options_.chunks_in_flight, TransferHandle());
        return LaneLease(shared_.get(), lane);
      }
    }
    // Lanes come back on release; ones with running operations are polled every 10 ms.
    const absl::Time wake = std::min(deadline, absl::Now() + absl::Milliseconds(10));
    shared_->returned.WaitWithDeadline(&shared_->mu, wake);
    if (absl::Now() >= deadline) {
      return DeadlineExceededError("all " + std::to_string(options_.lanes) +
                                   " GPU staging lanes stayed busy for " +
                                   std::to_string(timeout_ms) + " ms");
    }
  }
}

Status StagedCopier::Put(PeerId peer, const RemoteRegion& remote,
                         std::span<const TransferOp> ops, int64_t timeout_ms) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::vector<std::vector<Piece>> chunks = CutIntoChunks(ops, options_.chunk_bytes);
  if (chunks.empty()) return InvalidArgumentError("a staged put needs at least one op");
  KVPOOL_ASSIGN_OR_RETURN(LaneLease lane, AcquireLane(timeout_ms));
  const DrainOnExit drain(lane->stream.get());
  const uint32_t k = options_.chunks_in_flight;
  auto slot = [&](size_t j) { return lane->pinned->data() + (j % k) * options_.chunk_bytes; };
  std::vector<uint64_t> tickets(chunks.size());
  std::vector<TransferOp> net;
  // Sends chunk j once its device copy is in the slot.
  auto send = [&](size_t j) -> Status {
    KVPOOL_RETURN_IF_ERROR(lane->stream->WaitFor(tickets[j]));
    NetworkOps(chunks[j], slot(j), &net);
    KVPOOL_ASSIGN_OR_RETURN(lane->inflight[j % k], engine_->Put(peer, remote, net));
    return Status::Ok();
  };
  for (size_t j = 0; j < chunks.size(); ++j) {
    TransferHandle& previous = lane->inflight[j % k];
    if (previous.valid()) KVPOOL_RETURN_IF_ERROR(previous.Wait(MsLeft(deadline)));
    for (const Piece& p : chunks[j]) {
      KVPOOL_RETURN_IF_ERROR(lane->stream->CopyAsync(
          slot(j) + p.slot_offset, reinterpret_cast<const void*>(p.device_address),
          p.size_bytes));
    }
    KVPOOL_ASSIGN_OR_RETURN(tickets[j], lane->stream->Mark());
    // The network sends chunk j - 1 while the device copies chunk j.
    if (j > 0) KVPOOL_RETURN_IF_ERROR(send(j - 1));
  }
  KVPOOL_RETURN_IF_ERROR(send(chunks.size() - 1));
  for (const TransferHandle& h : lane->inflight) {
    if (h.valid()) KVPOOL_RETURN_IF_ERROR(h.Wait(MsLeft(deadline)));
  }
  return Status::Ok();
}

Status StagedCopier::Get(PeerId peer, const RemoteRegion& remote,
                         std::span<const TransferOp> ops, int64_t timeout_ms) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::vector<std::vector<Piece>> chunks = CutIntoChunks(ops, options_.chunk_bytes);
  if (chunks.empty()) return InvalidArgumentError("a staged get needs at least one op");
  KVPOOL_ASSIGN_OR_RETURN(LaneLease lane, AcquireLane(timeout_ms));
  const DrainOnExit drain(lane->stream.get());
  const uint32_t k = options_.chunks_in_flight;
  auto slot = [&](size_t j) { return lane->pinned->data() + (j % k) * options_.chunk_bytes; };
  std::vector<uint64_t> tickets(chunks.size());
  std::vector<TransferOp> net;
  // Copies chunk j to the device once the network delivered it into its slot.
  auto unstage = [&](size_t j) -> Status {
    KVPOOL_RETURN_IF_ERROR(lane->inflight[j % k].Wait(MsLeft(deadline)));
    for (const Piece& p : chunks[j]) {
      KVPOOL_RETURN_IF_ERROR(lane->stream->CopyAsync(reinterpret_cast<void*>(p.device_address),
                                                     slot(j) + p.slot_offset, p.size_bytes));
    }
    KVPOOL_ASSIGN_OR_RETURN(tickets[j], lane->stream->Mark());
    return Status::Ok();
  };
  for (size_t j = 0; j < chunks.size(); ++j) {
    // The slot is free once the device copy of the chunk that used it before has run.
    if (j >= k) KVPOOL_RETURN_IF_ERROR(lane->stream->WaitFor(tickets[j - k]));
    NetworkOps(chunks[j], slot(j), &net);
    KVPOOL_ASSIGN_OR_RETURN(lane->inflight[j % k], engine_->Get(peer, remote, net));
    // The device copies chunk j - 1 while the network delivers chunk j.
    if (j > 0) KVPOOL_RETURN_IF_ERROR(unstage(j - 1));
  }
  KVPOOL_RETURN_IF_ERROR(unstage(chunks.size() - 1));
  return lane->stream->Synchronize();
}

}  // namespace kvpool::transport
