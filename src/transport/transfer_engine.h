// TransferEngine: kvpool's data plane. One-sided, batched, asynchronous Put/Get between memory
// registered in this process and memory registered by a peer process, over UCX UCP.
//
// How bytes move: each process creates one engine, registers (or allocates through UCX) the
// memory peers may read or write, and publishes two things over the control plane (gRPC): its
// worker_address() and, per region, a RemoteRegion {address, size, packed rkey}. A peer
// Connect()s to the worker address once and then Put()s into / Get()s from the region directly:
// the owner of the remote memory runs no code of its own per transfer. (Its progress thread
// still services the request on TCP, and on shared memory for memory not allocated through UCX,
// where UCX emulates RMA with messages; UCX-allocated memory on shared memory is mapped and
// copied by the initiator alone.)
//
// No UCX type appears in this header; <ucp/...> stays inside src/transport.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "kvpool/status.h"

namespace kvpool::transport {

/// An endpoint to one peer worker, in one TransferEngine. Ids are never reused: after a peer
/// failed or was disconnected, its id stays dead and a new Connect returns a new id.
enum class PeerId : uint64_t {};
/// A memory region registered with, or allocated by, one TransferEngine. Never reused.
enum class RegionId : uint64_t {};

/// What a process publishes about one of its regions so that peers can reach it (sent over the
/// control plane as is). A plain value type.
struct RemoteRegion {
  /// Virtual address, in the owner's process, of the region's first byte. Default: 0.
  uint64_t address = 0;
  /// Length of the region in bytes. Default: 0.
  uint64_t size_bytes = 0;
  /// Packed UCX remote key: opaque bytes, trusted input (take them only from the owner's
  /// LocalRegion::rkey through an authenticated channel). Default: empty.
  std::string rkey;
};

/// A region registered with (or allocated by) this engine. A plain value type; the engine owns
/// the registration until Deregister or its own destruction.
struct LocalRegion {
  RegionId id{};
  /// First byte of the region in this process. Default: nullptr.
  uint8_t* data = nullptr;
  /// Default: 0.
  uint64_t size_bytes = 0;
  /// Packed remote key that peers need to reach this region.
  std::string rkey;
  /// True when the engine allocated the memory (AllocateMemory, AllocateMemoryAt): it is freed
  /// on Deregister.
  bool allocated_by_engine = false;

  /// What to publish to peers: {address of data, size_bytes, rkey}.
  RemoteRegion Describe() const {
    return RemoteRegion{reinterpret_cast<uint64_t>(data), size_bytes, rkey};
  }
};

/// One contiguous copy of a batch. For Put the bytes flow local -> remote, for Get remote ->
/// local. A plain value type.
struct TransferOp {
  /// Address in this process; [local_address, + size_bytes) must lie inside one region
  /// registered with the engine that runs the transfer. Default: 0.
  uint64_t local_address = 0;
  /// Address in the peer's process; [remote_address, + size_bytes) must lie inside the
  /// RemoteRegion given with the batch. Default: 0.
  uint64_t remote_address = 0;
  /// Bytes to copy; > 0. Default: 0.
  uint64_t size_bytes = 0;
};

/// Memory of this process that one transfer's messages may fill (ExpectMessages). A plain value
/// type.
struct MessageWindow {
  uint64_t address = 0;
  uint64_t size_bytes = 0;
};

namespace internal {
struct TransferState;
}  // namespace internal

/// The outcome of one asynchronous batch (Put or Get). Cheap to copy; copies observe the same
/// batch. Thread-safe: any thread may Poll or Wait, also concurrently.
///
/// A batch is done when every byte of every op has reached its destination (for Put: remote
/// completion, established by a UCX endpoint flush) or when it failed. Final statuses:
///   OK            all bytes moved
///   UNAVAILABLE   the peer died, the link broke, or the peer was already known to have failed
///   NOT_FOUND     the peer id is unknown (never connected, or disconnected before submission)
///   CANCELLED     Disconnect() or the engine's destruction cut the batch short
/// After a failure some ops may have completed and others not: the destination bytes are
/// undefined, never outside the ranges of the batch.
class TransferHandle {
 public:
  /// An empty handle: valid() is false, Poll() true, Wait() FAILED_PRECONDITION.
  TransferHandle() = default;

  bool valid() const { return state_ != nullptr || completed_; }
  /// True once the batch is done (successfully or not). Never blocks.
  bool Poll() const;
  /// Blocks (polling for up to TransferEngineOptions::wait_spin_us first) until the batch is
  /// done or `timeout_ms` (>= 0) elapsed. Returns the final status (above), or
  /// DEADLINE_EXCEEDED when the batch is still running: it keeps running (and may still write
  /// its destinations) until it completes or its peer is Disconnect()ed.
  Status Wait(int64_t timeout_ms) const;
  /// Bytes the batch moves (the sum of its ops' sizes).
  uint64_t size_bytes() const;

 private:
  friend class TransferEngine;
  explicit TransferHandle(std::shared_ptr<internal::TransferState> state)
      : state_(std::move(state)) {}
  // A batch that finished successfully on the caller's thread (an inline copy): no shared state
  // is allocated for it.
  static TransferHandle Completed(uint64_t size_bytes) {
    TransferHandle h;
    h.completed_ = true;
    h.completed_bytes_ = size_bytes;
    return h;
  }
  // Shared with the engine's progress thread, which completes it; lives as long as either side.
  // Null for an empty or a Completed handle.
  std::shared_ptr<internal::TransferState> state_;
  bool completed_ = false;
  uint64_t completed_bytes_ = 0;
};

/// How an engine learns that a peer died.
enum class PeerErrorMode {
  /// Peers on the same host (same boot and pid namespace) whose engines both have
  /// shared-memory transports: UCX error handling NONE, so UCX 1.13 may use posix and sysv (which
  /// cannot report a dead peer, and are tens of times faster than TCP on loopback), and the engine
  /// watches the peer process itself through a pidfd: its exit fails the peer at once. Every
  /// other peer: UCP_ERR_HANDLING_MODE_PEER, UCX reports the failure. A peer in this same process
  /// (tests) is never detected dead.
  kAuto,
  /// UCP_ERR_HANDLING_MODE_PEER for every peer (plus the pidfd watch on the same host). With
  /// UCX 1.13 same-host traffic then goes over TCP or CMA, and tls "shm" alone cannot connect.
  kUcxPeer,
};

/// Options of a TransferEngine.
struct TransferEngineOptions {
  /// UCX transports, as UCX_TLS names them: "tcp", "shm" (posix, sysv, cma), "posix,cma",
  /// "rc,ud,sm" ... Empty: UCX_TLS from the environment, else UCX's default ("all", best per
  /// peer). Every other UCX_* environment variable always passes through. Default: "".
  std::string tls;
  /// Further UCX settings, (name without "UCX_", value), applied after `tls` and over the
  /// environment. Example: {"KEEPALIVE_INTERVAL", "1s"} bounds how long a silently dead peer on
  /// another host goes unnoticed (UCX's default is 20 s; a closed TCP connection is noticed at
  /// once, and a dead process on this host through its pidfd). Default: none.
  std::vector<std::pair<std::string, std::string>> ucx_config;
  /// How dead peers are detected; see PeerErrorMode. Default: kAuto.
  PeerErrorMode peer_error_mode = PeerErrorMode::kAuto;
  /// After its last piece of work the progress thread keeps polling this long before it sleeps
  /// on the worker's event fd; longer trades CPU for latency of the next request. Unit:
  /// microseconds. Default: 50.
  int64_t idle_spin_us = 50;
  /// TransferHandle::Wait polls this long for completion before it sleeps: a sleep and wake-up
  /// add about 10-20 us, as much as a 1 MiB copy over shared memory takes. 0 sleeps at once
  /// (less CPU where waits are long). Unit: microseconds. Default: 100.
  int64_t wait_spin_us = 100;
  /// A batch of at most this many bytes to a peer whose memory UCX mapped into this process
  /// (same host, posix or sysv shared memory) is copied with memcpy on the calling thread:
  /// Put/Get then return a handle that is already done, saving the hand-off to the progress
  /// thread (microseconds, most of a small block's latency). Larger batches stay asynchronous
  /// on the progress thread, so callers can overlap them with compute. 0 turns this off. The
  /// first batch to a remote region always goes through UCX (it maps the region). Unit: bytes.
  /// Default: 256 KiB.
  uint64_t inline_copy_max_bytes = 256 * 1024;
  /// While idle, the progress thread still wakes this often, so UCX keepalive and peer-failure
  /// detection run. Unit: milliseconds; > 0. Default: 100.
  int64_t idle_wakeup_ms = 100;
  /// On destruction, how long endpoints get to flush outstanding operations before the worker
  /// is destroyed anyway (batches still running then end CANCELLED). Unit: milliseconds.
  /// Default: 1000.
  int64_t shutdown_timeout_ms = 1000;
  /// Name in logs and in UCX's own logs. Default: "kvpool".
  std::string name = "kvpool";
};

/// Owns a UCP context, one UCP worker and the one progress thread that owns that worker (every
/// UCX call after Create happens on that thread; other threads hand it work through a queue and
/// wake it with ucp_worker_signal). Endpoints are cached per peer worker address.
///
/// Thread-safe: every method may be called from any thread, concurrently, except that nothing
/// may race with the destructor. Methods other than Put/Get and the accessors are synchronous
/// round trips to the progress thread (microseconds when it is idle); Put/Get only validate and
/// enqueue. TransferHandles may outlive the engine (they then read CANCELLED if unfinished).
class TransferEngine {
 public:
  /// Creates the context and worker and starts the progress thread.
  /// INVALID_ARGUMENT for bad options (a UCX setting with a bad value, negative spin times,
  /// non-positive idle_wakeup_ms; UCX itself only warns about unknown setting names);
  /// UNAVAILABLE when UCX finds no usable transport (e.g. tls names one that does not exist
  /// here); INTERNAL for other UCX or system failures.
  static Result<std::unique_ptr<TransferEngine>> Create(const TransferEngineOptions& options);

  /// Stops the progress thread: pending requests are run first, endpoints are closed (flushing
  /// for at most shutdown_timeout_ms), batches still running end CANCELLED, regions are
  /// deregistered (allocated ones freed).
  ~TransferEngine();
  TransferEngine(const TransferEngine&) = delete;
  TransferEngine& operator=(const TransferEngine&) = delete;

  /// This engine's address: opaque bytes for peers' Connect() (UCX's packed worker address in
  /// an envelope naming this process and host; see worker_address.h).
  const std::string& worker_address() const;
  /// True when this UCX moves CUDA device memory itself (the capability check that picks the
  /// GPU tier's data path, docs/gpu.md). False for Debian's UCX, which has no CUDA transport:
  /// device memory then goes through pinned staging (StagedCopier).
  bool ReachesCudaMemory() const;

  // ---- Memory --------------------------------------------------------------------------------

  /// Registers [data, data + size_bytes) (caller-owned; must stay mapped until Deregister) for
  /// transfers in both directions. INVALID_ARGUMENT for a null pointer, zero size, a range that
  /// wraps, or a range overlapping an already registered region; other UCX failures mapped
  /// (RESOURCE_EXHAUSTED when the memory cannot be pinned).
  Result<LocalRegion> RegisterMemory(void* data, uint64_t size_bytes);
  /// Allocates `size_bytes` through UCX and registers it (on one host UCX may place it in a
  /// shared-memory segment that peers map directly: the fastest memory to reach over shm). The
  /// engine frees it on Deregister. INVALID_ARGUMENT for 0; RESOURCE_EXHAUSTED when UCX cannot
  /// allocate it. The contents are unspecified (not necessarily zero).
  Result<LocalRegion> AllocateMemory(uint64_t size_bytes);
  /// Like AllocateMemory, but at exactly `address` (page-aligned): UCX maps its memory over
  /// the range, which must be the caller's own reservation (a PROT_NONE mapping), never memory
  /// in use. Deregister then unmaps it and leaves a hole, which the caller re-reserves (the
  /// overload with `after_free`). Used
  /// for kvpoold's pool slabs, each with its own remote key (docs/security.md).
  /// INVALID_ARGUMENT for a null or unaligned address, 0 bytes, a wrapping range or one
  /// overlapping a registered region; RESOURCE_EXHAUSTED when UCX cannot allocate it.
  Result<LocalRegion> AllocateMemoryAt(void* address, uint64_t size_bytes);
  /// Deregisters a region (and frees it if the engine allocated it). NOT_FOUND for an unknown
  /// id; FAILED_PRECONDITION while a batch that uses the region is still running (wait for it,
  /// or Disconnect its peer, first).
  Status Deregister(RegionId id);
  /// Deregister, then `after_free` on the engine's thread right after the memory is freed, with
  /// nothing else run in between: an AllocateMemoryAt caller re-reserves the hole there, so that
  /// the window in which another mmap of the process could take it stays microseconds short.
  /// Not called when Deregister fails.
  Status Deregister(RegionId id, absl::FunctionRef<void()> after_free);

  // ---- Peers ---------------------------------------------------------------------------------

  /// Returns the endpoint to the engine at `peer_worker_address` (bytes of a peer's
  /// worker_address()), creating it if there is none or the cached one failed (a restarted peer
  /// has a new address anyway). INVALID_ARGUMENT for bytes that are not an engine address
  /// (checked before UCX parses them; the UCX part inside is trusted); UNAVAILABLE when the peer
  /// cannot be reached with the configured transports or its process (on this host) is gone.
  Result<PeerId> Connect(std::string_view peer_worker_address);
  /// Closes the endpoint at once and forgets the id: batches still running on it end CANCELLED
  /// (their destination bytes undefined). Wait for the handles first for a graceful close. Use
  /// it to give up on a hung peer after Wait timed out, and to drop a failed peer's record.
  /// NOT_FOUND for an unknown or already disconnected id.
  Status Disconnect(PeerId peer);
  /// Drops the unpacked remote keys among `rkeys` (packed bytes, as given with batches to
  /// `peer`), so the peer's memory they mapped into this process is unmapped: for keys the
  /// peer replaced (a kvpoold slab that was unmapped and mapped anew). Keys in use by a running
  /// batch go once the peer has none outstanding. Unknown peers and keys are ignored.
  void ForgetRemoteKeys(PeerId peer, std::vector<std::string> rkeys);
  /// OK while the endpoint is usable; UNAVAILABLE once it failed (the message says why: UCX's
  /// error, or the exit of the peer's process); NOT_FOUND for an unknown or disconnected id.
  Status PeerStatus(PeerId peer);
  /// UCX's description of the endpoint's lanes and transports, for logs and tests (the
  /// transports show only after the first transfer completed the wire-up). NOT_FOUND for an
  /// unknown id.
  Result<std::string> DescribePeer(PeerId peer);

  /// The UCX transports of the endpoint's lanes, sorted and joined with '+' ("tcp",
  /// "posix+sysv", "rc_mlx5"...): for logs and metric labels. Empty before the wire-up
  /// completed (CompleteWireup). NOT_FOUND for an unknown id.
  Result<std::string> Transports(PeerId peer);
  /// True when every lane of the endpoint to `peer` is TCP. UCX then emulates one-sided
  /// operations with messages the peer's progress thread answers, and UCX 1.13 aborts the
  /// target of a Put whose writer dies mid-transfer (docs/transport.md): callers that can
  /// should let the target pull (Get) instead. Meaningful after CompleteWireup. NOT_FOUND for
  /// an unknown id.
  Result<bool> UsesOnlyTcp(PeerId peer);

  /// Finishes the connection handshake with `peer` by reading a few bytes of `remote` (into a
  /// scratch buffer of the engine; nothing of the caller's is written) and waiting up to
  /// `timeout_ms`. Call it right after Connect, before large transfers: UCX 1.13 aborts the
  /// *peer's* process (an assertion in ucp_request_send_state_ff, fixed upstream in
  /// openucx/ucx#8175) when this process dies while the peer still has the handshake's reply
  /// queued, which a long first transfer over TCP can keep queued for its whole duration.
  /// Once it succeeded for `peer`, later calls return OK at once (until Disconnect).
  /// Errors as Get and TransferHandle::Wait.
  Status CompleteWireup(PeerId peer, const RemoteRegion& remote, int64_t timeout_ms);

  // ---- Transfers -----------------------------------------------------------------------------

  /// Writes each op's local bytes to the peer's memory, one-sided. All ops are validated before
  /// anything is submitted: INVALID_ARGUMENT (nothing moves) for an empty batch, an op of zero
  /// size or with a null address, a range that wraps, a local range not inside one registered
  /// region, a remote range not inside `remote`, or a `remote` with an empty rkey, a null
  /// address, size 0 or a range that wraps.
  /// Asynchronous: other failures are reported by the handle.
  Result<TransferHandle> Put(PeerId peer, const RemoteRegion& remote,
                             std::span<const TransferOp> ops);
  /// Reads each op's remote bytes into local memory, one-sided. Validation and errors as Put.
  Result<TransferHandle> Get(PeerId peer, const RemoteRegion& remote,
                             std::span<const TransferOp> ops);

  // ---- Two-sided transfers -------------------------------------------------------------------
  // For links where a one-sided Put is unsafe (UsesOnlyTcp: UCX 1.13 aborts the target of an
  // emulated Put whose writer dies; docs/transport.md). The receiver names the windows a
  // transfer may fill and gets a token (ExpectMessages), the sender sends the bytes as eager
  // active messages tagged with it (SendMessages), the receiver waits for all of them
  // (AwaitMessages) before it uses the bytes.

  /// Registers `windows` (each inside one region registered with this engine, non-empty, none
  /// overlapping another) for messages of a new token (nonzero, random). Messages arriving
  /// more than `ttl_ms` from now are refused: set it so the windows' memory outlives it.
  /// INVALID_ARGUMENT for bad windows or ttl_ms <= 0.
  Result<uint64_t> ExpectMessages(std::span<const MessageWindow> windows, int64_t ttl_ms);
  /// Waits until every byte of the token's windows arrived (OK; the token ends), a message
  /// broke the rules (INVALID_ARGUMENT: outside the windows or over delivered bytes;
  /// DEADLINE_EXCEEDED: after the ttl; the token ends, nothing of that message was copied), or
  /// `timeout_ms` passed (DEADLINE_EXCEEDED; the token stays). NOT_FOUND for an unknown or
  /// ended token.
  Status AwaitMessages(uint64_t token, int64_t timeout_ms);
  /// Ends a token: no message writes into its windows once this returns.
  void CancelMessages(uint64_t token);
  /// Sends each op's local bytes to the peer as an eager active message for `token`, addressed
  /// to op.remote_address (which must lie inside `remote`, the peer's region, as for Put). The
  /// handle completes once UCX delivered every message to the peer's transport (an endpoint
  /// flush); only the receiver's AwaitMessages says they were all copied. Validation and
  /// errors as Put, plus INVALID_ARGUMENT for token 0.
  Result<TransferHandle> SendMessages(PeerId peer, const RemoteRegion& remote, uint64_t token,
                                      std::span<const TransferOp> ops);

 private:
  class Impl;
  explicit TransferEngine(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace kvpool::transport
