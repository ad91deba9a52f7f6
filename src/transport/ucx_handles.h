// RAII wrappers for UCX UCP handles (context, worker, endpoint, memory region, remote key).
//
// Internal to src/transport: together with the .cc files of this folder, the only code that
// includes <ucp/...>. Code outside src/transport uses transport/transfer_engine.h, which names
// no UCX type.
//
// Every wrapper is move-only and owns exactly one UCX handle; a moved-from wrapper is empty and
// its destructor does nothing. Lifetimes are the caller's to order: a UcpContext must outlive
// every worker and memory region made from it, a UcpWorker every endpoint made on it, and an
// endpoint every remote key unpacked for it. The TransferEngine guarantees this order.
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvpool/status.h"

namespace kvpool::transport {

/// Maps a UCX status to kvpool's canonical codes; the message is `what` followed by UCX's text.
///   UCS_OK -> OK; NO_MEMORY, NO_RESOURCE, EXCEEDS_LIMIT -> RESOURCE_EXHAUSTED;
///   INVALID_PARAM, INVALID_ADDR -> INVALID_ARGUMENT; UNSUPPORTED, NOT_IMPLEMENTED ->
///   UNIMPLEMENTED; CANCELED -> CANCELLED; TIMED_OUT -> DEADLINE_EXCEEDED; peer and link
///   failures (UNREACHABLE, CONNECTION_RESET, ENDPOINT_TIMEOUT, IO_ERROR, REJECTED,
///   NOT_CONNECTED, ...) -> UNAVAILABLE; anything else -> INTERNAL.
Status FromUcsStatus(ucs_status_t status, std::string_view what);

/// Options of a UcpContext. Configuration is read from the environment first (UCX_TLS and every
/// other UCX_* variable pass through unchanged); the fields below then override it.
struct UcpContextOptions {
  /// Transports, as UCX_TLS names them ("tcp", "shm", "posix,cma", "^tcp", ...). Empty: keep
  /// UCX_TLS from the environment or UCX's default ("all"). Default: "".
  std::string tls;
  /// Further UCX settings as (name without the "UCX_" prefix, value), applied in order after
  /// `tls`, e.g. {"KEEPALIVE_INTERVAL", "1s"}. A bad value fails Create with INVALID_ARGUMENT;
  /// UCX 1.13 accepts an unknown name and only warns about it later. Default: none.
  std::vector<std::pair<std::string, std::string>> config;
  /// UCP_FEATURE_RMA: one-sided put/get. Default: true.
  bool enable_rma = true;
  /// UCP_FEATURE_AM: active messages (reserved for control messages over UCX). Default: false.
  bool enable_active_messages = false;
  /// UCP_FEATURE_WAKEUP: an event fd for the worker, so an idle progress thread can sleep.
  /// Default: true.
  bool enable_wakeup = true;
  /// Bytes UCX reserves in every request for the caller (ucp_params_t::request_size). kvpool
  /// passes per-operation state through `user_data` instead, so 0 suffices. Default: 0.
  size_t request_size_bytes = 0;
  /// Name UCX prints in its logs. Default: "kvpool".
  std::string name = "kvpool";
};

/// Owns a ucp_context_h (ucp_init / ucp_cleanup). Created with mt_workers_shared = 0: all use of
/// the context after Create happens on one thread at a time (the engine's progress thread).
/// Not thread-safe.
class UcpContext {
 public:
  /// INVALID_ARGUMENT for a bad config value or empty name; other UCX failures mapped by
  /// FromUcsStatus (e.g. UNAVAILABLE when no transport of `tls` exists here).
  static Result<UcpContext> Create(const UcpContextOptions& options);
  UcpContext() = default;
  ~UcpContext();
  UcpContext(UcpContext&& other) noexcept : context_(std::exchange(other.context_, nullptr)) {}
  UcpContext& operator=(UcpContext&& other) noexcept;
  UcpContext(const UcpContext&) = delete;
  UcpContext& operator=(const UcpContext&) = delete;

  /// The raw handle, owned by this wrapper; null when empty.
  ucp_context_h get() const { return context_; }

  /// The transport resources UCX opened, as "transport/device" ("tcp/lo", "posix/memory", ...).
  std::vector<std::string> ResourceNames() const;
  /// True when a shared-memory transport (posix, sysv, cma, xpmem, knem) is among them.
  bool HasSharedMemoryTransport() const;
  /// True when UCX can move CUDA device memory itself (a UCX built with its CUDA transports).
  bool ReachesCudaMemory() const;

 private:
  explicit UcpContext(ucp_context_h context) : context_(context) {}
  ucp_context_h context_ = nullptr;
};

/// Owns a ucp_worker_h (ucp_worker_create / ucp_worker_destroy).
///
/// Thread mode UCS_THREAD_MODE_SINGLE: UCX takes no locks on the worker, because exactly one
/// thread uses it at a time (the engine creates it, hands it to its progress thread, and
/// destroys it after joining that thread). Signal() is the only method safe from any thread.
class UcpWorker {
 public:
  /// Failures mapped by FromUcsStatus.
  static Result<UcpWorker> Create(const UcpContext& context);
  UcpWorker() = default;
  ~UcpWorker();
  UcpWorker(UcpWorker&& other) noexcept : worker_(std::exchange(other.worker_, nullptr)) {}
  UcpWorker& operator=(UcpWorker&& other) noexcept;
  UcpWorker(const UcpWorker&) = delete;
  UcpWorker& operator=(const UcpWorker&) = delete;

  /// The raw handle, owned by this wrapper; null when empty.
  ucp_worker_h get() const { return worker_; }

  /// The packed worker address: opaque bytes a peer passes to UcpEndpoint::Create.
  Result<std::string> PackedAddress() const;
  /// The wake-up fd (needs enable_wakeup). Owned by the worker; do not close it.
  Result<int> EventFd() const;
  /// One round of ucp_worker_progress; returns the number of events processed.
  unsigned Progress() const { return ucp_worker_progress(worker_); }
  /// ucp_worker_arm: true when armed (safe to sleep on EventFd()), false when events are
  /// pending and the caller must progress again first.
  bool Arm() const;
  /// Wakes a thread sleeping on EventFd(). Thread-safe (UCX guarantees it in every mode).
  void Signal() const;

 private:
  explicit UcpWorker(ucp_worker_h worker) : worker_(worker) {}
  ucp_worker_h worker_ = nullptr;
};

/// Completes a non-blocking UCX request by progressing `worker`: returns its final status
/// (UCS_OK for a null request, the error for an error pointer) and frees the request. Gives up
/// after `timeout_ms` and returns UCS_ERR_TIMED_OUT (the request is then freed and completes in
/// the background).
ucs_status_t WaitForRequest(ucp_worker_h worker, ucs_status_ptr_t request, int64_t timeout_ms);

/// Owns a ucp_ep_h connected to a peer worker by its packed address. With error handling mode
/// UCP_ERR_HANDLING_MODE_PEER, when the peer dies or the link breaks, outstanding operations
/// fail and `on_error` runs (on the progress thread, from ucp_worker_progress) instead of
/// hanging. Not thread-safe; used only by the thread that owns the worker.
class UcpEndpoint {
 public:
  using ErrorHandler = void (*)(void* arg, ucp_ep_h ep, ucs_status_t status);

  /// `peer_address` must be bytes from a peer's UcpWorker::PackedAddress (UCX parses them
  /// without a length, so they are trusted input). With `peer_error_handling` the endpoint uses
  /// UCP_ERR_HANDLING_MODE_PEER, otherwise UCP_ERR_HANDLING_MODE_NONE (UCX 1.13's posix and
  /// sysv transports support only NONE; the caller must then detect a dead peer itself).
  /// INVALID_ARGUMENT when empty; UNAVAILABLE when the peer is unreachable with the configured
  /// transports.
  static Result<UcpEndpoint> Create(const UcpWorker& worker, std::string_view peer_address,
                                    bool peer_error_handling, ErrorHandler on_error, void* arg);
  UcpEndpoint() = default;
  /// Closes a still-open endpoint with UCP_EP_CLOSE_FLAG_FORCE (outstanding operations complete
  /// with UCS_ERR_CANCELED), progressing the worker for at most 1 s.
  ~UcpEndpoint();
  UcpEndpoint(UcpEndpoint&& other) noexcept
      : worker_(std::exchange(other.worker_, nullptr)), ep_(std::exchange(other.ep_, nullptr)) {}
  UcpEndpoint& operator=(UcpEndpoint&& other) noexcept;
  UcpEndpoint(const UcpEndpoint&) = delete;
  UcpEndpoint& operator=(const UcpEndpoint&) = delete;

  /// The raw handle, owned by this wrapper; null when empty or closing.
  ucp_ep_h get() const { return ep_; }
  /// False once StartClose was called (or for an empty wrapper).
  bool is_open() const { return ep_ != nullptr; }

  /// Starts closing: `force` releases at once (outstanding operations fail with CANCELED),
  /// otherwise outstanding operations are flushed first. Returns the close request (or null /
  /// an error pointer when done); the caller progresses the worker until it completes and frees
  /// it. The wrapper is empty afterwards.
  ucs_status_ptr_t StartClose(bool force);

  /// UCX's description of the endpoint's lanes and transports (ucp_ep_print_info).
  std::string Describe() const;

 private:
  UcpEndpoint(ucp_worker_h worker, ucp_ep_h ep) : worker_(worker), ep_(ep) {}
  ucp_worker_h worker_ = nullptr;
  ucp_ep_h ep_ = nullptr;
};

/// Owns a ucp_mem_h: an existing buffer registered with ucp_mem_map, or memory allocated by UCX
/// (UCP_MEM_MAP_ALLOCATE, which on one host may come from a shared-memory segment that peers map
/// directly: several times faster to reach over shm than registered process memory, which goes
/// through CMA). Carries the packed remote key bytes that peers need to reach it.
/// Unmapped (and, if allocated, freed) in the destructor. Not thread-safe.
class MemoryRegion {
 public:
  /// Registers [address, address + size_bytes) for local and remote read and write.
  /// INVALID_ARGUMENT for a null address or zero size; other failures from FromUcsStatus.
  static Result<MemoryRegion> Register(const UcpContext& context, void* address,
                                       uint64_t size_bytes);
  /// Allocates and registers `size_bytes`. INVALID_ARGUMENT for 0; RESOURCE_EXHAUSTED when UCX
  /// cannot allocate.
  static Result<MemoryRegion> Allocate(const UcpContext& context, uint64_t size_bytes);
  /// Allocates `size_bytes` at exactly `address` (UCP_MEM_MAP_FIXED; page-aligned): UCX maps
  /// its memory over whatever was there, so the range must be the caller's own reservation
  /// (e.g. PROT_NONE), never memory in use. Unmapping leaves a hole at the address.
  /// INVALID_ARGUMENT for a null or unaligned address or 0 bytes.
  static Result<MemoryRegion> AllocateAt(const UcpContext& context, void* address,
                                         uint64_t size_bytes);
  MemoryRegion() = default;
  ~MemoryRegion();
  MemoryRegion(MemoryRegion&& other) noexcept;
  MemoryRegion& operator=(MemoryRegion&& other) noexcept;
  MemoryRegion(const MemoryRegion&) = delete;
  MemoryRegion& operator=(const MemoryRegion&) = delete;

  /// First byte of the region (for Allocate, where UCX put it).
  void* address() const { return address_; }
  /// Length as requested (UCX may have allocated more).
  uint64_t size_bytes() const { return size_bytes_; }
  /// Packed remote key (ucp_rkey_pack), for peers' RemoteKey::Unpack.
  const std::string& packed_rkey() const { return packed_rkey_; }
  /// The raw handle, owned by this wrapper; pass it with operations on this memory.
  ucp_mem_h memh() const { return memh_; }
  /// True for Allocate: the memory goes away with the region.
  bool allocated_by_ucx() const { return allocated_by_ucx_; }

 private:
  static Result<MemoryRegion> Map(const UcpContext& context, void* address, uint64_t size_bytes,
                                  bool allocate, bool fixed);
  ucp_context_h context_ = nullptr;
  ucp_mem_h memh_ = nullptr;
  void* address_ = nullptr;
  uint64_t size_bytes_ = 0;
  bool allocated_by_ucx_ = false;
  std::string packed_rkey_;
};

/// Owns a ucp_rkey_h: a peer's packed remote key unpacked for one endpoint. Must be destroyed
/// before that endpoint is closed and after the last operation that uses it completed.
/// Not thread-safe.
class RemoteKey {
 public:
  /// `packed` must be bytes from a peer's MemoryRegion::packed_rkey (UCX parses them without a
  /// length, so they are trusted input). INVALID_ARGUMENT when empty; other failures from
  /// FromUcsStatus.
  static Result<RemoteKey> Unpack(const UcpEndpoint& endpoint, std::string_view packed);
  RemoteKey() = default;
  ~RemoteKey();
  RemoteKey(RemoteKey&& other) noexcept : rkey_(std::exchange(other.rkey_, nullptr)) {}
  RemoteKey& operator=(RemoteKey&& other) noexcept;
  RemoteKey(const RemoteKey&) = delete;
  RemoteKey& operator=(const RemoteKey&) = delete;

  /// The raw handle, owned by this wrapper; null when empty.
  ucp_rkey_h get() const { return rkey_; }
  /// Where the peer's `remote_address` is mapped into this process, when a shared-memory
  /// transport maps the peer's memory (ucp_rkey_ptr: posix, sysv); nullptr otherwise (tcp, cma,
  /// or an address outside the key's memory). Valid while this key lives.
  void* LocalPointer(uint64_t remote_address) const;

 private:
  explicit RemoteKey(ucp_rkey_h rkey) : rkey_(rkey) {}
  ucp_rkey_h rkey_ = nullptr;
};

}  // namespace kvpool::transport
