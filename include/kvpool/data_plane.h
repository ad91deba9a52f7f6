// libkvpool's data plane: moves KV bytes between the caller's memory and a kvpoold node's pool
// blocks, one-sided over UCX (shared memory on one host, TCP or RDMA otherwise); the node's CPU
// runs no code per block.
//
//   auto client = kvpool::Client::Connect("127.0.0.1:7700");
//   auto dp = kvpool::DataPlane::Connect(**client);            // GetDataPlane + UCX connect
//   auto region = (*dp)->RegisterMemory(kv_buffer, kv_bytes);  // the engine's own KV memory
//   std::vector<uint64_t> offsets = {0, block_bytes, 2 * block_bytes};
//   (*dp)->PutAndInsert(**client, "llama3-8b", PromptView::Tokens(tokens), 0, *region, offsets);
//   auto got = (*dp)->MatchAndGet(**client, "llama3-8b", PromptView::Tokens(tokens), *region,
//                                 offsets);                    // blocks read back
//
// Only std and kvpool types appear here: no UCX, gRPC, protobuf or absl.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "kvpool/client.h"
#include "kvpool/status.h"
#include "kvpool/types.h"

namespace kvpool {

/// Where registered memory lives.
enum class MemoryKind : uint8_t {
  kHost = 0,    ///< host DRAM of this process
  kDevice = 1,  ///< CUDA device memory of this process, moved through pinned staging
};

/// A memory region registered with one DataPlane. Never reused within that DataPlane.
enum class RegionId : uint64_t {};

/// How DataPlane::Put moves bytes.
enum class PutPath : uint8_t {
  /// kNodePulls where the link to the node is TCP alone, else kDirect.
  kAuto = 0,
  /// This process writes one-sided into the node's memory.
  kDirect = 1,
  /// The node reads this process's memory (TransferFromRegion), so the node is never the target
  /// of a one-sided write: with UCX 1.13 over TCP, a writer that dies mid-write can abort the
  /// target process (docs/transport.md "Known limitations"). One RPC per batch more.
  kNodePulls = 2,
};

struct DataPlaneOptions {
  /// UCX transports, as UCX_TLS names them: "tcp", "shm", "posix,cma", ... Empty: UCX_TLS from
  /// the environment, else UCX's choice. Other UCX_* environment variables always pass through.
  /// For shm the node must also have shared-memory transports. Default: "" (empty).
  std::string tls;
  /// How long the convenience flows (PutAndInsert, MatchAndGet) wait for their transfer, in
  /// milliseconds. Default: 10000.
  uint32_t transfer_timeout_ms = 10'000;
  /// Debugging: the convenience flows compare checksums of every block on both ends after
  /// the transfer (Verify), failing with DATA_LOSS on a difference. Costs a read of every byte
  /// on both sides and one more RPC. Default: false.
  bool verify_checksums = false;
  /// How Put moves bytes. Default: PutPath::kAuto.
  PutPath put_path = PutPath::kAuto;
  /// CUDA device whose memory RegisterMemory(..., MemoryKind::kDevice) takes. Default: 0.
  int cuda_device = 0;
  /// For tests and demos without a GPU, like kvpoold's --gpu-emulate: device regions are host
  /// memory of this process (any host range is accepted as MemoryKind::kDevice) and the device
  /// copies of the staging paths are memcpy, so every device-region path runs without CUDA.
  /// cuda_device is then ignored. Not for production. Default: false.
  bool emulate_device = false;
};

/// The outcome of one asynchronous Put or Get batch. Cheap to copy; copies observe the same
/// batch. Thread-safe. May outlive its DataPlane (an unfinished batch then ends CANCELLED).
class TransferHandle {
 public:
  /// An empty handle: valid() false, Poll() true, Wait() FAILED_PRECONDITION.
  TransferHandle();
  ~TransferHandle();
  TransferHandle(const TransferHandle&);
  TransferHandle& operator=(const TransferHandle&);

  bool valid() const;
  /// True once the batch is done, successfully or not. Never blocks.
  bool Poll() const;
  /// Blocks until the batch is done or `timeout_ms` (>= 0) elapsed. OK: every byte arrived
  /// (for Put: in the node's memory). UNAVAILABLE: the node died or the link broke; CANCELLED:
  /// the DataPlane was destroyed first; DEADLINE_EXCEEDED: still running (it keeps running and
  /// may still write its destinations). After a failure the destination bytes are undefined,
  /// never outside the batch's ranges.
  Status Wait(int64_t timeout_ms) const;
  /// Bytes the batch moves.
  uint64_t size_bytes() const;

 private:
  friend class DataPlane;
  struct Impl;
  explicit TransferHandle(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

/// A UCX endpoint to one kvpoold node's pool memory, plus the caller's registered memory.
/// Owns its own transfer engine (one progress thread). Block locations come from the node's
/// AllocMem and Match (BlockLocation::offset, ::length) through the Client this DataPlane was
/// connected with, and that Client must hold a live lease on every block: one-sided transfers
/// run no code on the node, so the library checks before any byte moves (Put: blocks allocated
/// and not yet inserted; Get: allocated or pinned by a Match lease) and the caller keeps the
/// lease until the transfer is done.
///
/// Thread-safe: every method may be called from any thread, concurrently; nothing may race with
/// the destructor. The Client passed to Connect and to the flows is only borrowed for the call.
class DataPlane {
 public:
  /// Asks the node for its data plane (GetDataPlane), creates this process's transfer engine
  /// with `options.tls` and connects to the node's worker. FAILED_PRECONDITION when the node
  /// runs without a data plane; UNAVAILABLE when the node or its worker cannot be reached with
  /// these transports; INVALID_ARGUMENT for bad options; the RPC's status otherwise.
  static Result<std::unique_ptr<DataPlane>> Connect(Client& client,
                                                    const DataPlaneOptions& options = {});
  /// Closes the endpoint; unfinished batches end CANCELLED; registered regions are deregistered.
  ~DataPlane();
  DataPlane(const DataPlane&) = delete;
  DataPlane& operator=(const DataPlane&) = delete;

  /// Bytes of the node's pool region (valid block offsets lie below it).
  uint64_t node_region_bytes() const;
  /// True when Put runs as a pull by the node (DataPlaneOptions::put_path, decided at Connect).
  bool node_pulls_puts() const;

  // ---- Memory --------------------------------------------------------------------------------

  /// Registers [ptr, ptr + size_bytes) (caller-owned; must stay valid until Deregister or the
  /// DataPlane's destruction) as a source and destination of transfers. INVALID_ARGUMENT for a
  /// null pointer, zero size or a range overlapping a registered one; RESOURCE_EXHAUSTED when
  /// the memory cannot be registered.
  ///
  /// MemoryKind::kDevice: `ptr` is CUDA device memory (cudaMalloc) of options.cuda_device, e.g.
  /// the engine's own KV cache (with options.emulate_device: any host memory). UCX here cannot
  /// reach device memory, so its transfers go through pinned host memory of this DataPlane:
  /// for host-tier blocks staging buffers (device -> pinned -> UCX and back, pipelined in
  /// chunks), for GPU-tier blocks a bounce buffer that the node reads or writes itself (see
  /// Put; docs/gpu.md). UNAVAILABLE without a CUDA device or driver, UNIMPLEMENTED in a build
  /// without CUDA, INVALID_ARGUMENT when `ptr` is not device memory. A device region cannot be
  /// exported.
  Result<RegionId> RegisterMemory(void* ptr, size_t size_bytes,
                                  MemoryKind kind = MemoryKind::kHost);
  /// NOT_FOUND for an unknown region; FAILED_PRECONDITION while a batch uses it.
  Status Deregister(RegionId region);
  /// What a kvpoold node needs to write into `region` (Client::TransferToRegion): this
  /// process's engine address, the region's address, size and remote key. Hand it only to
  /// nodes you trust with the region. NOT_FOUND for an unknown region; FAILED_PRECONDITION for
  /// a device region.
  Result<RegionDescriptor> ExportRegion(RegionId region);

  // ---- Transfers -----------------------------------------------------------------------------

  /// Writes, for each i, blocks[i].length bytes from `region` + region_offsets[i] into the
  /// node's block blocks[i] (at its offset). Batched and asynchronous. Blocks of the node's GPU
  /// tier, which no peer can reach one-sided, are written by the node itself (it pulls the
  /// region and stages the bytes to the device: TransferFromRegion). A batch with GPU-tier
  /// blocks from a device region goes through a pinned bounce buffer of this DataPlane (at
  /// least 4 MiB, at least the largest block): chunk by chunk, device -> bounce, then the node
  /// pulls the bounce buffer; one such batch at a time per DataPlane, others wait. Refused
  /// before any byte moves: INVALID_ARGUMENT for an empty batch, spans of different lengths, a
  /// block of length 0 or of the disk tier, a host block outside the node's region, or a
  /// region range outside `region`; FAILED_PRECONDITION for a block the Client holds no live
  /// lease for, one already inserted (read-only), or one whose offset or length differs from
  /// the node's; NOT_FOUND for an unknown region; UNAVAILABLE when the node is known dead.
  /// While the batch runs, Deregister(region) is refused.
  Result<TransferHandle> Put(RegionId region, std::span<const uint64_t> region_offsets,
                             std::span<const BlockLocation> blocks);
  /// Reads each block into `region` + region_offsets[i]. Refusals as Put, except that blocks
  /// pinned by a Match lease may be read. GPU-tier blocks are sent by the node (Transfer to
  /// this region; for a device region into the bounce buffer, then bounce -> device, chunk by
  /// chunk).
  Result<TransferHandle> Get(std::span<const BlockLocation> blocks, RegionId region,
                             std::span<const uint64_t> region_offsets);
  /// Debugging: compares BlockChecksum of each block's bytes on the node (ResolveBlocks, which
  /// also checks that `lease_id` holds them) with the checksum of region + region_offsets[i]
  /// here. DATA_LOSS naming the first block that differs; the refusals of Get; the RPC's
  /// status. Run it only when no transfer writes these bytes.
  Status Verify(uint64_t lease_id, std::span<const BlockLocation> blocks, RegionId region,
                std::span<const uint64_t> region_offsets);

  // ---- Convenience flows ---------------------------------------------------------------------

  /// Stores region_offsets.size() blocks of `region` as blocks start_block.. of `prompt` in
  /// namespace `ns`: AllocMem, Put, wait, Insert, Release. The blocks become matchable only
  /// after every byte landed; on any failure the allocation is released, so nothing leaks and
  /// nothing half-written is ever matchable. Returns Insert's result (duplicates: blocks that
  /// were already cached, whose new copy was dropped). Errors: those of each step (Put's
  /// refusals, AllocMem's RESOURCE_EXHAUSTED, the transfer's status, ...). `client` must be
  /// the one this DataPlane was connected with (INVALID_ARGUMENT otherwise).
  Result<InsertResult> PutAndInsert(Client& client, std::string_view ns, PromptView prompt,
                                    uint32_t start_block, RegionId region,
                                    std::span<const uint64_t> region_offsets);
  /// Reads the prompt's longest cached prefix (at most region_offsets.size() blocks) into
  /// `region`: Match with a lease, Get, wait, Release. Returns how many blocks were read (0 when
  /// nothing matched; the region is then untouched). Errors: those of each step. `client` must
  /// be the one this DataPlane was connected with.
  Result<uint32_t> MatchAndGet(Client& client, std::string_view ns, PromptView prompt,
                               RegionId region, std::span<const uint64_t> region_offsets);

 private:
  struct Impl;
  explicit DataPlane(std::unique_ptr<Impl> impl);
  Status CheckSameClient(const Client& client) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvpool
