#include "transport/transfer_engine.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "transport/direct_windows.h"
#include "transport/message_inbox.h"
#include "transport/ucx_handles.h"
#include "transport/worker_address.h"

namespace kvpool::transport {

namespace internal {

// The shared state of one batch. `status` is written once by the progress thread before
// `done.Notify()`; Notify/HasBeenNotified order that write before every read.
struct TransferState {
  uint64_t size_bytes = 0;
  int64_t wait_spin_us = 0;  // TransferEngineOptions::wait_spin_us
  Status status;
  absl::Notification done;

  void Complete(Status final_status) {
    status = std::move(final_status);
    done.Notify();
  }
};

}  // namespace internal

// ---- TransferHandle ----------------------------------------------------------------------------

bool TransferHandle::Poll() const { return state_ == nullptr || state_->done.HasBeenNotified(); }

Status TransferHandle::Wait(int64_t timeout_ms) const {
  if (completed_) return Status::Ok();
  if (state_ == nullptr) return FailedPreconditionError("Wait on an empty TransferHandle");
  if (!state_->done.HasBeenNotified() && state_->wait_spin_us > 0 && timeout_ms > 0) {
    // Poll first: most transfers finish within tens of microseconds, and a futex sleep and
    // wake-up would add as much again.
    const auto spin_until = std::chrono::steady_clock::now() +
                            std::chrono::microseconds(std::min(state_->wait_spin_us,
                                                               timeout_ms * 1000));
    while (!state_->done.HasBeenNotified() && std::chrono::steady_clock::now() < spin_until) {
      // Yield on every round: with fewer cores than busy threads, the progress thread that
      // completes this transfer may be waiting for this very core (see the progress loop).
      std::this_thread::yield();
    }
  }
  if (!state_->done.HasBeenNotified() &&
      !state_->done.WaitForNotificationWithTimeout(
          absl::Milliseconds(timeout_ms < 0 ? 0 : timeout_ms))) {
    return DeadlineExceededError("transfer of " + std::to_string(state_->size_bytes) +
                                 " bytes still running after " + std::to_string(timeout_ms) +
                                 " ms");
  }
  return state_->status;
}

uint64_t TransferHandle::size_bytes() const {
  if (completed_) return completed_bytes_;
  return state_ == nullptr ? 0 : state_->size_bytes;
}

// ---- Engine internals --------------------------------------------------------------------------

namespace {

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// How often a busy progress thread checks whether watched peer processes exited. An idle one
// sleeps on the same epoll set and wakes at once.
constexpr int64_t kPeerProcessCheckIntervalUs = 1000;

// With transfers in flight, the progress thread polls this long after the last event before it
// sleeps, and then sleeps at most kInFlightSleepMs.
constexpr int64_t kInFlightSpinUs = 2000;

constexpr int kInFlightSleepMs = 1;

// Owns a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string ErrnoText(int err) { return std::strerror(err); }

// Above this many cached remote keys per peer, an idle peer's cache is cleared before the next
// unpack. A kvpoold node publishes one key per pool slab (32 MiB by default: 16384 keys reach
// 512 GiB of pool), so this only bounds pathological use.
constexpr size_t kMaxCachedRemoteKeysPerPeer = 16384;

}  // namespace

// Active-message id of SendMessages' messages.
constexpr unsigned kMessageAmId = 1;

class TransferEngine::Impl {
 public:
  struct RegionEntry {
    RegionId id{};
    MemoryRegion region;
    // Batches submitted and not yet finished that read or write this region.
    uint64_t inflight = 0;
  };

  enum class PeerState { kConnected, kFailed, kDisconnected };

  // One endpoint. Owned by `peers_` and used only on the progress thread; its address is the
  // UCX error-handler argument, so it lives until its endpoint is closed and no batch uses it.
  struct Peer {
    Impl* engine = nullptr;
    uint64_t id = 0;
    std::string address;  // the full engine address (envelope)
    uint32_t pid = 0;
    bool same_host = false;
    // UCP_ERR_HANDLING_MODE_PEER (else NONE, with `pidfd` watching the process).
    bool ucx_error_handling = true;
    // Readable once the peer's process exited; registered in epoll_fd_ with the peer's id.
    UniqueFd pidfd;
    PeerState state = PeerState::kConnected;
    Status failure;  // set when state becomes kFailed
    size_t outstanding_batches = 0;
    ucs_status_ptr_t close_request = nullptr;
    bool closing = false;  // StartClose called and close_request not yet finished
    UcpEndpoint endpoint;
    // Declared after `endpoint`, so destroyed before it (UCX requires rkeys to go first).
    std::unordered_map<std::string, RemoteKey> rkeys;
    // ForgetRemoteKeys while batches were outstanding: dropped once none is.
    std::vector<std::string> forget_later;
  };

  struct PreparedOp {
    void* local = nullptr;
    uint64_t remote_address = 0;
    uint64_t size_bytes = 0;
    ucp_mem_h memh = nullptr;
  };

  // One submitted batch. Owned by the progress thread from submission to Finish (via
  // live_batches_), passed to UCX callbacks as user_data.
  struct Batch {
    Impl* engine = nullptr;
    bool is_put = true;
    // SendMessages: the ops go as eager active messages tagged with this token (is_put true).
    bool is_message = false;
    uint64_t token = 0;
    std::vector<std::array<uint64_t, 2>> headers;  // per op {token, address}; live until Finish
    uint64_t peer_id = 0;
    Peer* peer = nullptr;
    std::string rkey;
    uint64_t remote_address = 0;  // the RemoteRegion the batch was given
    uint64_t remote_size_bytes = 0;
    std::vector<PreparedOp> ops;
    std::vector<uint64_t> region_starts;  // regions whose inflight count this batch holds
    std::shared_ptr<internal::TransferState> state;
    size_t pending = 0;  // UCX requests (and the submission guard) not yet completed
    ucs_status_t first_error = UCS_OK;
    // Set when the batch fails before reaching UCX; Finish reports it.
    std::optional<Status> early_status;
  };

  explicit Impl(const TransferEngineOptions& options) : options_(options) {}
  ~Impl();

  Status Init();

  // Runs `fn` on the progress thread and returns its result. FAILED_PRECONDITION if the engine
  // is shutting down.
  template <typename Fn>
  auto RunOnProgressThread(Fn&& fn) -> decltype(fn());

  bool Enqueue(absl::AnyInvocable<void()> work);

  // Caller side of Put/Get.
  // `token` != 0: SendMessages (is_put must be true).
  Result<TransferHandle> Submit(bool is_put, PeerId peer, const RemoteRegion& remote,
                                std::span<const TransferOp> ops, uint64_t token = 0);
  // Checks that every op's local range lies inside one registered region; with a batch, also
  // sets each op's memory handle and the batch's region_starts (sorted, unique).
  Status FindLocalRegionsLocked(const char* verb, std::span<const TransferOp> ops,
                                Batch* batch) const ABSL_SHARED_LOCKS_REQUIRED(regions_mu_);

  // Progress thread only.
  // Destroys `peer`'s unpacked keys among `keys` (and their inline-copy windows); no batch of
  // the peer may be outstanding.
  void DropRemoteKeys(Peer* peer, std::vector<std::string> keys) {
    for (const std::string& key : keys) {
      windows_.Revoke(peer->id, key);
      peer->rkeys.erase(key);
    }
  }
  // `data` null with `allocate`: UCX picks the address; otherwise the region is at `data`.
  Result<LocalRegion> RegisterOnThread(void* data, uint64_t size_bytes, bool allocate);
  Result<PeerId> ConnectOnThread(std::string_view address);
  Status DisconnectOnThread(uint64_t id);
  Status PeerStatusOnThread(uint64_t id);
  void StartBatch(Batch* batch);
  // StartBatch of a SendMessages batch: one eager active message per op, then a flush.
  void StartMessages(Batch* batch);
  // Counts a just-issued UCX request of `batch` (nullptr: done at once; an error: recorded).
  static void Account(Batch* batch, ucs_status_ptr_t request);
  // Issues the endpoint flush that completes the batch once the peer has every earlier
  // operation (Put, SendMessages); nothing after an error.
  void Flush(Batch* batch, ucp_ep_h ep);
  // Records the batch's remote region as a direct window when UCX mapped it into this process.
  void MapWindow(const Peer* peer, const RemoteKey& rkey, const Batch& batch);
  void Finish(Batch* batch);
  void BeginClose(Peer* peer, bool force);
  void MarkFailed(Peer* peer, Status why);
  void StopWatching(Peer* peer);
  // Waits up to `timeout_ms` on the worker's event fd and the watched peer processes; fails the
  // peers whose process exited.
  void WaitForEvents(int timeout_ms);
  void ProcessPeerEvents();
  void Loop();
  void ShutdownOnThread();

  static void OnPeerError(void* arg, ucp_ep_h ep, ucs_status_t status);
  // The AM handler of SendMessages' messages: hands each to inbox_.
  static ucs_status_t OnMessage(void* arg, const void* header, size_t header_length, void* data,
                                size_t length, const ucp_am_recv_param_t* param);
  static void OnOpDone(void* request, ucs_status_t status, void* user_data);

  Status DeregisterRegion(RegionId id, absl::FunctionRef<void()> after_free);

  const TransferEngineOptions options_;
  // Declaration order is destruction order in reverse: the context outlives the worker, which
  // outlives everything else.
  UcpContext context_;
  UcpWorker worker_;
  ProcessIdentity identity_;
  bool shared_memory_ = false;  // the context opened a shared-memory transport
  bool reaches_cuda_ = false;   // UCX reports CUDA among its memory types
  std::string worker_address_;
  int event_fd_ = -1;  // owned by worker_
  // The worker's event fd (data 0) and every watched peer's pidfd (data = peer id).
  UniqueFd epoll_fd_;
  std::thread thread_;

  // ---- Work queue: any thread -> progress thread.
  absl::Mutex queue_mu_;
  std::vector<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;
  // Hints that let the progress thread and producers skip the mutex and the wake-up syscall.
  // Both are accessed seq_cst: a producer stores queue_nonempty_ then loads sleeping_, the
  // progress thread stores sleeping_ then loads queue_nonempty_; with a single total order at
  // least one of them sees the other's store, so no wake-up is lost.
  std::atomic<bool> queue_nonempty_{false};
  std::atomic<bool> sleeping_{false};

  // ---- Registered regions, keyed by start address. Read by submitting threads, changed by the
  // progress thread (registration) and by Deregister.
  absl::Mutex regions_mu_;
  std::map<uint64_t, RegionEntry> regions_ ABSL_GUARDED_BY(regions_mu_);
  std::unordered_map<uint64_t, uint64_t> region_start_by_id_ ABSL_GUARDED_BY(regions_mu_);
  uint64_t next_region_id_ ABSL_GUARDED_BY(regions_mu_) = 1;

  // ---- Peers' memory mapped into this process: the inline copy path of small batches.
  internal::DirectWindows windows_;

  // ---- Windows that peers' messages may fill (ExpectMessages), fed by OnMessage.
  internal::MessageInbox inbox_;

  // ---- CompleteWireup's landing buffer, allocated on first use (0: not yet).
  absl::Mutex scratch_mu_;
  uint64_t scratch_address_ ABSL_GUARDED_BY(scratch_mu_) = 0;
  // Peers whose wire-up completed: CompleteWireup returns at once for them (a node pulling
  // from a client region calls it on every request). Forgotten on Disconnect.
  absl::Mutex wired_mu_;
  absl::flat_hash_set<uint64_t> wired_ ABSL_GUARDED_BY(wired_mu_);

  // ---- Progress-thread state (no lock: only that thread touches it after Init).
  std::unordered_map<uint64_t, std::unique_ptr<Peer>> peers_;
  std::unordered_map<std::string, uint64_t> peer_by_address_;
  std::vector<Peer*> newly_failed_;   // filled by OnPeerError, drained by ProcessPeerEvents
  std::vector<uint64_t> closing_peers_;
  std::unordered_set<Batch*> live_batches_;
  uint64_t next_peer_id_ = 1;
  // Set once the worker is about to be destroyed: UCX callbacks then only free their requests.
  bool final_teardown_ = false;
};

Status TransferEngine::Impl::Init() {
  if (options_.idle_wakeup_ms <= 0) {
    return InvalidArgumentError("idle_wakeup_ms must be > 0, got " +
                                std::to_string(options_.idle_wakeup_ms));
  }
  if (options_.idle_spin_us < 0) {
    return InvalidArgumentError("idle_spin_us must be >= 0, got " +
                                std::to_string(options_.idle_spin_us));
  }
  if (options_.wait_spin_us < 0) {
    return InvalidArgumentError("wait_spin_us must be >= 0, got " +
                                std::to_string(options_.wait_spin_us));
  }
  UcpContextOptions context_options;
  context_options.tls = options_.tls;
  context_options.config = options_.ucx_config;
  context_options.name = options_.name;
  context_options.enable_active_messages = true;  // SendMessages
  KVPOOL_ASSIGN_OR_RETURN(context_, UcpContext::Create(context_options));
  KVPOOL_ASSIGN_OR_RETURN(worker_, UcpWorker::Create(context_));
  {
    ucp_am_handler_param_t handler{};
    handler.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                         UCP_AM_HANDLER_PARAM_FIELD_ARG;
    handler.id = kMessageAmId;
    handler.cb = &Impl::OnMessage;
    handler.arg = this;
    const ucs_status_t st = ucp_worker_set_am_recv_handler(worker_.get(), &handler);
    if (st != UCS_OK) {
      return InternalError(std::string("registering the message handler: ") +
                           ucs_status_string(st));
    }
  }
  KVPOOL_ASSIGN_OR_RETURN(identity_, CurrentProcessIdentity());
  shared_memory_ = context_.HasSharedMemoryTransport();
  reaches_cuda_ = context_.ReachesCudaMemory();
  WorkerAddress address;
  address.process = identity_;
  address.shared_memory = shared_memory_;
  KVPOOL_ASSIGN_OR_RETURN(address.ucx_address, worker_.PackedAddress());
  worker_address_ = EncodeWorkerAddress(address);
  KVPOOL_ASSIGN_OR_RETURN(event_fd_, worker_.EventFd());
  epoll_fd_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_.valid()) return InternalError("epoll_create1: " + ErrnoText(errno));
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = 0;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, event_fd_, &event) != 0) {
    return InternalError("epoll_ctl(worker fd): " + ErrnoText(errno));
  }
  // Hand-off: everything above happens-before the thread starts; from here on only the
  // progress thread calls into UCX.
  thread_ = std::thread([this] { Loop(); });
  std::string thread_name = options_.name.substr(0, 11) + "-ucx";
  pthread_setname_np(thread_.native_handle(), thread_name.c_str());
  return Status::Ok();
}

TransferEngine::Impl::~Impl() {
  if (thread_.joinable()) {
    {
      absl::MutexLock lock(&queue_mu_);
      stopping_ = true;
      queue_nonempty_.store(true);
    }
    worker_.Signal();
    thread_.join();
  }
  // The thread is gone, so this thread now owns the worker. Remote keys go before their
  // endpoints, endpoints before the worker (which completes any request still alive, with
  // final_teardown_ set), batches after the worker, regions after the endpoints, the context
  // last.
  final_teardown_ = true;
  windows_.RevokeAll();
  for (auto& [id, peer] : peers_) {
    peer->rkeys.clear();
    if (peer->endpoint.is_open()) peer->close_request = peer->endpoint.StartClose(/*force=*/true);
    if (peer->close_request != nullptr && !UCS_PTR_IS_ERR(peer->close_request)) {
      ucp_request_free(peer->close_request);  // released by UCX when it completes
    }
    peer->close_request = nullptr;
  }
  // Peers outlive the worker: UCX may still call OnPeerError with them while it tears down.
  worker_ = UcpWorker();
  peers_.clear();
  for (Batch* batch : live_batches_) {
    if (!batch->state->done.HasBeenNotified()) {
      batch->state->Complete(CancelledError("transfer engine destroyed"));
    }
    delete batch;
  }
  live_batches_.clear();
  absl::MutexLock lock(&regions_mu_);
  regions_.clear();
  region_start_by_id_.clear();
}

bool TransferEngine::Impl::Enqueue(absl::AnyInvocable<void()> work) {
  {
    absl::MutexLock lock(&queue_mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(work));
    queue_nonempty_.store(true);
  }
  if (sleeping_.exchange(false)) worker_.Signal();
  return true;
}

template <typename Fn>
auto TransferEngine::Impl::RunOnProgressThread(Fn&& fn) -> decltype(fn()) {
  using R = decltype(fn());
  if (std::this_thread::get_id() == thread_.get_id()) return fn();
  std::optional<R> result;
  absl::Notification done;
  bool accepted = Enqueue([&] {
    result.emplace(fn());
    done.Notify();
  });
  if (!accepted) return R(FailedPreconditionError("transfer engine is shutting down"));
  done.WaitForNotification();
  return std::move(*result);
}

void TransferEngine::Impl::Loop() {
  int64_t last_activity_us = NowUs();
  int64_t last_process_check_us = last_activity_us;
  while (true) {
    bool did_work = false;
    if (queue_nonempty_.load()) {
      std::vector<absl::AnyInvocable<void()>> work;
      bool stopping = false;
      {
        absl::MutexLock lock(&queue_mu_);
        work.swap(queue_);
        queue_nonempty_.store(false);
        stopping = stopping_;
      }
      for (auto& item : work) item();
      did_work = !work.empty();
      // stopping_ is set under the lock that also closes the queue, so nothing can follow.
      if (stopping) break;
    }
    while (worker_.Progress() != 0) did_work = true;
    const int64_t now_us = NowUs();
    if (now_us - last_process_check_us >= kPeerProcessCheckIntervalUs) {
      WaitForEvents(0);
      last_process_check_us = now_us;
    }
    if (!newly_failed_.empty() || !closing_peers_.empty()) ProcessPeerEvents();

    if (did_work) {
      last_activity_us = now_us;
      continue;
    }
    // Poll without sleeping for a while after the last event: the next request or completion
    // usually follows within microseconds, and a sleep and wake-up would cost more. With
    // transfers in flight the window is longer, and the sleep after it short, because not every
    // completion raises an event on the worker's fd; a transfer stuck on a hung peer then costs
    // little CPU.
    const bool in_flight = !live_batches_.empty();
    const int64_t spin_us =
        in_flight ? std::max(options_.idle_spin_us, kInFlightSpinUs) : options_.idle_spin_us;
    if (now_us - last_activity_us < spin_us) {
      // Polling, but giving the core away on every round if anyone else wants it: with more
      // busy threads than cores (the caller waiting, this thread, a peer's progress thread) a
      // pure spin costs whole scheduler time slices. Measured with kvpool-bench transfer, 16 KiB
      // one-block Get on shm, 2-core VM with one CPU hog: p50/p90/p99 4.4/175/223 us before,
      // 5.8/5.9/7.4 us with the yields; idle, the p50 rises from 4.0 to about 5 us.
      std::this_thread::yield();
      continue;
    }

    // Arm first: it consumes pending signals, so a signal sent before the sleeping_ store below
    // must not be lost; the queue check after the store catches work enqueued in between.
    if (!worker_.Arm()) continue;
    sleeping_.store(true);
    if (queue_nonempty_.load()) {
      sleeping_.store(false);
      continue;
    }
    WaitForEvents(in_flight ? kInFlightSleepMs : static_cast<int>(options_.idle_wakeup_ms));
    sleeping_.store(false);
    // last_activity_us stays: if the wake-up brought work, the next round records it.
  }
  ShutdownOnThread();
}

void TransferEngine::Impl::ShutdownOnThread() {
  // Graceful first: flush and close every live endpoint, progressing until all closes finished
  // or the deadline passed. What remains is torn down by ~Impl.
  for (auto& [id, peer] : peers_) {
    if (peer->state == PeerState::kConnected) {
      peer->state = PeerState::kDisconnected;
      BeginClose(peer.get(), /*force=*/false);
    }
  }
  peer_by_address_.clear();
  const int64_t deadline_us = NowUs() + options_.shutdown_timeout_ms * 1000;
  while ((!closing_peers_.empty() || !newly_failed_.empty()) && NowUs() < deadline_us) {
    worker_.Progress();
    ProcessPeerEvents();
  }
  if (!closing_peers_.empty()) {
    KVPOOL_LOG(WARNING) << options_.name << ": " << closing_peers_.size()
                        << " UCX endpoint(s) did not close within " << options_.shutdown_timeout_ms
                        << " ms; destroying the worker anyway";
  }
}

// ---- Regions -----------------------------------------------------------------------------------

Result<LocalRegion> TransferEngine::Impl::RegisterOnThread(void* data, uint64_t size_bytes,
                                                          bool allocate) {
  const auto start = reinterpret_cast<uint64_t>(data);
  if (data != nullptr) {
    absl::MutexLock lock(&regions_mu_);
    auto next = regions_.lower_bound(start);
    if (next != regions_.end() && next->first < start + size_bytes) {
      return InvalidArgumentError("region [" + std::to_string(start) + ", +" +
                                  std::to_string(size_bytes) + ") overlaps registered region " +
                                  std::to_string(static_cast<uint64_t>(next->second.id)));
    }
    if (next != regions_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second.region.size_bytes() > start) {
        return InvalidArgumentError("region [" + std::to_string(start) + ", +" +
                                    std::to_string(size_bytes) +
                                    ") overlaps registered region " +
                                    std::to_string(static_cast<uint64_t>(prev->second.id)));
      }
    }
  }
  // Registration pins pages and may take a while; it runs outside regions_mu_ so submitters
  // are not blocked. Only this thread inserts, so the overlap check above stays valid.
  Result<MemoryRegion> mapped =
      !allocate         ? MemoryRegion::Register(context_, data, size_bytes)
      : data != nullptr ? MemoryRegion::AllocateAt(context_, data, size_bytes)
                        : MemoryRegion::Allocate(context_, size_bytes);
  if (!mapped.ok()) return mapped.status();
  MemoryRegion region = std::move(mapped).value();
  LocalRegion info;
  info.data = static_cast<uint8_t*>(region.address());
  info.size_bytes = region.size_bytes();
  info.rkey = region.packed_rkey();
  info.allocated_by_engine = allocate;
  const auto address = reinterpret_cast<uint64_t>(region.address());

  absl::MutexLock lock(&regions_mu_);
  if (regions_.count(address) != 0) {
    return InternalError("UCX returned memory at an address that is already registered");
  }
  info.id = RegionId{next_region_id_++};
  RegionEntry entry;
  entry.id = info.id;
  entry.region = std::move(region);
  regions_.emplace(address, std::move(entry));
  region_start_by_id_.emplace(static_cast<uint64_t>(info.id), address);
  return info;
}

Status TransferEngine::Impl::DeregisterRegion(RegionId id,
                                             absl::FunctionRef<void()> after_free) {
  std::optional<MemoryRegion> doomed;
  {
    absl::MutexLock lock(&regions_mu_);
    auto by_id = region_start_by_id_.find(static_cast<uint64_t>(id));
    if (by_id == region_start_by_id_.end()) {
      return NotFoundError("no registered region with id " +
                           std::to_string(static_cast<uint64_t>(id)));
    }
    auto it = regions_.find(by_id->second);
    if (it->second.inflight != 0) {
      return FailedPreconditionError("region " + std::to_string(static_cast<uint64_t>(id)) +
                                     " is used by " + std::to_string(it->second.inflight) +
                                     " running transfer(s)");
    }
    doomed.emplace(std::move(it->second.region));
    regions_.erase(it);
    region_start_by_id_.erase(by_id);
  }
  // ucp_mem_unmap belongs on the progress thread with every other UCX call.
  return RunOnProgressThread([&]() -> Status {
    doomed.reset();
    after_free();
    return Status::Ok();
  });
}

// ---- Peers -------------------------------------------------------------------------------------

Result<PeerId> TransferEngine::Impl::ConnectOnThread(std::string_view address) {
  auto cached = peer_by_address_.find(std::string(address));
  if (cached != peer_by_address_.end()) {
    Peer* peer = peers_.at(cached->second).get();
    if (peer->state == PeerState::kConnected) return PeerId{peer->id};
    peer_by_address_.erase(cached);
  }
  Result<WorkerAddress> decoded = DecodeWorkerAddress(address);
  if (!decoded.ok()) return decoded.status().WithContext("Connect");
  const ProcessIdentity& process = decoded->process;

  auto peer = std::make_unique<Peer>();
  peer->engine = this;
  peer->id = next_peer_id_++;
  peer->address = std::string(address);
  peer->pid = process.pid;
  peer->same_host = process.SameHostAs(identity_);
  if (peer->same_host && process.pid != identity_.pid) {
    // Watch the process: its exit fails the peer at once, whatever the transport.
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, process.pid, 0));
    if (fd < 0 && errno == ESRCH) {
      return UnavailableError("Connect: peer process " + std::to_string(process.pid) +
                              " has exited");
    }
    if (fd >= 0) {
      peer->pidfd = UniqueFd(fd);
      // The pid may already belong to a newer process: the start time tells.
      Result<uint64_t> start = ProcessStartTimeTicks(static_cast<pid_t>(process.pid));
      if (!start.ok() || *start != process.start_time_ticks) {
        return UnavailableError("Connect: peer process " + std::to_string(process.pid) +
                                " has exited (the pid now names another process)");
      }
    } else {
      KVPOOL_LOG(WARNING) << options_.name << ": pidfd_open(" << process.pid
                          << ") failed: " << ErrnoText(errno)
                          << "; relying on UCX to detect the peer's failure";
    }
  }
  // Error handling NONE only where the pid watch replaces it (or the peer shares this process,
  // so it cannot die alone) and both sides can use shared memory (so UCX picks posix/sysv, not
  // TCP, which needs PEER mode to survive a dead peer).
  const bool same_process = peer->same_host && process.pid == identity_.pid;
  peer->ucx_error_handling =
      !(options_.peer_error_mode == PeerErrorMode::kAuto &&
        (peer->pidfd.valid() || same_process) && shared_memory_ && decoded->shared_memory);
  if (!peer->ucx_error_handling) {
    KVPOOL_LOG(DEBUG) << options_.name << ": peer " << peer->id << " (pid " << process.pid
                      << ") is on this host: UCX error handling NONE, process watched";
  }
  KVPOOL_ASSIGN_OR_RETURN(peer->endpoint,
                          UcpEndpoint::Create(worker_, decoded->ucx_address,
                                              peer->ucx_error_handling, &Impl::OnPeerError,
                                              peer.get()));
  if (peer->pidfd.valid()) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = peer->id;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, peer->pidfd.get(), &event) != 0) {
      return InternalError("epoll_ctl(pidfd): " + ErrnoText(errno));
    }
  }
  const uint64_t id = peer->id;
  peer_by_address_[peer->address] = id;
  peers_.emplace(id, std::move(peer));
  return PeerId{id};
}

Status TransferEngine::Impl::DisconnectOnThread(uint64_t id) {
  auto it = peers_.find(id);
  if (it == peers_.end() || it->second->state == PeerState::kDisconnected) {
    return NotFoundError("no peer with id " + std::to_string(id));
  }
  Peer* peer = it->second.get();
  if (peer->state == PeerState::kConnected) {
    auto by_address = peer_by_address_.find(peer->address);
    if (by_address != peer_by_address_.end() && by_address->second == id) {
      peer_by_address_.erase(by_address);
    }
  }
  const bool already_closing = peer->closing || !peer->endpoint.is_open();
  peer->state = PeerState::kDisconnected;
  windows_.Revoke(id);
  StopWatching(peer);
  if (!already_closing) {
    // Forced: Disconnect is how a caller gives up on a slow or hung peer, so operations still
    // in flight end now (CANCELED) instead of waiting for a flush that may never come.
    BeginClose(peer, /*force=*/true);
  } else if (std::find(closing_peers_.begin(), closing_peers_.end(), id) ==
             closing_peers_.end()) {
    closing_peers_.push_back(id);  // a failed peer, closed already: reap it
  }
  return Status::Ok();
}

Status TransferEngine::Impl::PeerStatusOnThread(uint64_t id) {
  auto it = peers_.find(id);
  if (it == peers_.end() || it->second->state == PeerState::kDisconnected) {
    return NotFoundError("no peer with id " + std::to_string(id));
  }
  if (it->second->state == PeerState::kFailed) return it->second->failure;
  return Status::Ok();
}

void TransferEngine::Impl::BeginClose(Peer* peer, bool force) {
  if (peer->closing || !peer->endpoint.is_open()) return;
  peer->close_request = peer->endpoint.StartClose(force);
  peer->closing = true;
  closing_peers_.push_back(peer->id);
}

void TransferEngine::Impl::OnPeerError(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* peer = static_cast<Peer*>(arg);
  peer->engine->MarkFailed(peer, UnavailableError("peer " + std::to_string(peer->id) +
                                                  " failed: " + ucs_status_string(status)));
}

void TransferEngine::Impl::MarkFailed(Peer* peer, Status why) {
  if (peer->state != PeerState::kConnected) return;
  peer->state = PeerState::kFailed;
  peer->failure = std::move(why);
  windows_.Revoke(peer->id);
  StopWatching(peer);
  // The endpoint must be closed, but not from inside a UCX callback: ProcessPeerEvents does it.
  newly_failed_.push_back(peer);
}

void TransferEngine::Impl::StopWatching(Peer* peer) {
  if (!peer->pidfd.valid()) return;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, peer->pidfd.get(), nullptr);
  peer->pidfd.reset();
}

void TransferEngine::Impl::WaitForEvents(int timeout_ms) {
  epoll_event events[16];
  const int n = ::epoll_wait(epoll_fd_.get(), events, 16, timeout_ms);
  for (int i = 0; i < n; ++i) {
    const uint64_t id = events[i].data.u64;
    if (id == 0) continue;  // the worker: the caller progresses it next
    auto it = peers_.find(id);
    if (it == peers_.end()) continue;
    Peer* peer = it->second.get();
    MarkFailed(peer, UnavailableError("peer " + std::to_string(id) + ": its process " +
                                      std::to_string(peer->pid) + " exited"));
  }
}

void TransferEngine::Impl::ProcessPeerEvents() {
  std::vector<Peer*> failed;
  failed.swap(newly_failed_);
  for (Peer* peer : failed) {
    KVPOOL_LOG(INFO) << options_.name << ": " << peer->failure.message();
    auto by_address = peer_by_address_.find(peer->address);
    if (by_address != peer_by_address_.end() && by_address->second == peer->id) {
      peer_by_address_.erase(by_address);
    }
    // A failed endpoint can only be force-closed; its outstanding operations end with an error.
    BeginClose(peer, /*force=*/true);
  }
  for (size_t i = 0; i < closing_peers_.size();) {
    auto it = peers_.find(closing_peers_[i]);
    if (it == peers_.end()) {
      closing_peers_[i] = closing_peers_.back();
      closing_peers_.pop_back();
      continue;
    }
    Peer* peer = it->second.get();
    if (peer->closing) {
      ucs_status_ptr_t request = peer->close_request;
      if (request != nullptr && !UCS_PTR_IS_ERR(request)) {
        if (ucp_request_check_status(request) == UCS_INPROGRESS) {
          ++i;
          continue;
        }
        ucp_request_free(request);
      }
      peer->close_request = nullptr;
      peer->closing = false;
    }
    if (peer->outstanding_batches != 0) {
      ++i;
      continue;
    }
    windows_.Revoke(peer->id);
    peer->rkeys.clear();
    if (peer->state == PeerState::kDisconnected) peers_.erase(it);
    // A failed peer stays as a tombstone (PeerStatus reports why) until Disconnect.
    closing_peers_[i] = closing_peers_.back();
    closing_peers_.pop_back();
  }
}

// ---- Transfers ---------------------------------------------------------------------------------

Result<TransferHandle> TransferEngine::Impl::Submit(bool is_put, PeerId peer,
                                                    const RemoteRegion& remote,
                                                    std::span<const TransferOp> ops,
                                                    uint64_t token) {
  const char* verb = token != 0 ? "SendMessages" : is_put ? "Put" : "Get";
  auto invalid = [&](std::string what) {
    return InvalidArgumentError(std::string(verb) + ": " + what);
  };
  if (ops.empty()) return invalid("empty batch");
  if (remote.rkey.empty()) return invalid("remote region has an empty rkey");
  if (remote.address == 0) return invalid("remote region address is null");
  if (remote.size_bytes == 0) return invalid("remote region has size 0");
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  if (remote.size_bytes > kMax - remote.address) return invalid("remote region wraps around");
  const uint64_t remote_end = remote.address + remote.size_bytes;

  // Validation builds no strings unless an op is bad: this runs on every call, and a one-block
  // inline Get is well under a microsecond.
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const TransferOp& op = ops[i];
    const char* bad = nullptr;
    if (op.size_bytes == 0) bad = "size_bytes is 0";
    else if (op.local_address == 0) bad = "local_address is null";
    else if (op.remote_address == 0) bad = "remote_address is null";
    else if (op.size_bytes > kMax - op.local_address) bad = "local range wraps";
    else if (op.size_bytes > kMax - op.remote_address) bad = "remote range wraps";
    if (bad != nullptr) return invalid("op " + std::to_string(i) + ": " + bad);
    if (op.remote_address < remote.address || op.remote_address + op.size_bytes > remote_end) {
      return invalid("op " + std::to_string(i) + ": remote range [" +
                     std::to_string(op.remote_address) + ", +" + std::to_string(op.size_bytes) +
                     ") is outside the remote region [" + std::to_string(remote.address) +
                     ", +" + std::to_string(remote.size_bytes) + ")");
    }
    total_bytes += op.size_bytes;
  }

  // Small batches into a peer region mapped in this process: copy here, now. The reader lock
  // keeps every local region of the batch registered until the copies are done (Deregister
  // takes the writer lock), so no Batch and no in-flight count are needed.
  if (token == 0 && total_bytes <= options_.inline_copy_max_bytes) {
    absl::ReaderMutexLock lock(&regions_mu_);
    KVPOOL_RETURN_IF_ERROR(FindLocalRegionsLocked(verb, ops, nullptr));
    if (windows_.TryCopy(is_put, static_cast<uint64_t>(peer), remote.rkey, ops)) {
      return TransferHandle::Completed(total_bytes);
    }
  }

  auto batch = std::make_unique<Batch>();
  batch->engine = this;
  batch->is_put = is_put;
  batch->is_message = token != 0;
  batch->token = token;
  batch->peer_id = static_cast<uint64_t>(peer);
  batch->rkey = remote.rkey;
  batch->remote_address = remote.address;
  batch->remote_size_bytes = remote.size_bytes;
  batch->ops.reserve(ops.size());
  batch->state = std::make_shared<internal::TransferState>();
  batch->state->wait_spin_us = options_.wait_spin_us;
  batch->state->size_bytes = total_bytes;
  for (const TransferOp& op : ops) {
    batch->ops.push_back(PreparedOp{reinterpret_cast<void*>(op.local_address), op.remote_address,
                                    op.size_bytes, nullptr});
  }
  {
    absl::MutexLock lock(&regions_mu_);
    KVPOOL_RETURN_IF_ERROR(FindLocalRegionsLocked(verb, ops, batch.get()));
    for (uint64_t start : batch->region_starts) ++regions_.at(start).inflight;
  }

  TransferHandle handle(batch->state);
  Batch* raw = batch.release();
  if (!Enqueue([this, raw] { StartBatch(raw); })) {
    absl::MutexLock lock(&regions_mu_);
    for (uint64_t start : raw->region_starts) --regions_.at(start).inflight;
    delete raw;
    return FailedPreconditionError("transfer engine is shutting down");
  }
  return handle;
}

Status TransferEngine::Impl::FindLocalRegionsLocked(const char* verb,
                                                    std::span<const TransferOp> ops,
                                                    Batch* batch) const {
  // Consecutive ops usually hit the same region: remember the last one.
  const RegionEntry* last = nullptr;
  uint64_t last_start = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const uint64_t start = ops[i].local_address;
    const uint64_t end = start + ops[i].size_bytes;
    if (last == nullptr || start < last_start || end > last_start + last->region.size_bytes()) {
      auto next = regions_.upper_bound(start);
      if (next == regions_.begin()) last = nullptr;
      else {
        --next;
        last_start = next->first;
        last = &next->second;
      }
      if (last == nullptr || end > last_start + last->region.size_bytes()) {
        return InvalidArgumentError(std::string(verb) + ": op " + std::to_string(i) +
                                    ": local range [" + std::to_string(start) + ", +" +
                                    std::to_string(ops[i].size_bytes) +
                                    ") is not inside one region registered with this engine");
      }
    }
    if (batch == nullptr) continue;
    batch->ops[i].memh = last->region.memh();
    if (batch->region_starts.empty() || batch->region_starts.back() != last_start) {
      batch->region_starts.push_back(last_start);
    }
  }
  if (batch != nullptr) {
    std::sort(batch->region_starts.begin(), batch->region_starts.end());
    batch->region_starts.erase(
        std::unique(batch->region_starts.begin(), batch->region_starts.end()),
        batch->region_starts.end());
  }
  return Status::Ok();
}

void TransferEngine::Impl::OnOpDone(void* request, ucs_status_t status, void* user_data) {
  auto* batch = static_cast<Batch*>(user_data);
  ucp_request_free(request);
  if (batch->engine->final_teardown_) return;
  if (status != UCS_OK && batch->first_error == UCS_OK) batch->first_error = status;
  if (--batch->pending == 0) batch->engine->Finish(batch);
}

void TransferEngine::Impl::MapWindow(const Peer* peer, const RemoteKey& rkey,
                                     const Batch& batch) {
  if (options_.inline_copy_max_bytes == 0 || peer->state != PeerState::kConnected) return;
  auto* first = static_cast<uint8_t*>(rkey.LocalPointer(batch.remote_address));
  if (first == nullptr) return;
  // One mapping must cover the whole region, contiguously, for offsets to carry over.
  const uint64_t last = batch.remote_address + batch.remote_size_bytes - 1;
  if (rkey.LocalPointer(last) != first + (batch.remote_size_bytes - 1)) return;
  windows_.Add(peer->id, batch.rkey, batch.remote_address, batch.remote_size_bytes, first);
}

void TransferEngine::Impl::StartBatch(Batch* batch) {
  live_batches_.insert(batch);
  auto peer_it = peers_.find(batch->peer_id);
  if (peer_it == peers_.end() || peer_it->second->state == PeerState::kDisconnected) {
    batch->early_status = NotFoundError("no peer with id " + std::to_string(batch->peer_id));
    Finish(batch);
    return;
  }
  Peer* peer = peer_it->second.get();
  if (peer->state == PeerState::kFailed) {
    batch->early_status = peer->failure;
    Finish(batch);
    return;
  }
  batch->peer = peer;
  ++peer->outstanding_batches;
  if (batch->is_message) {
    StartMessages(batch);
    return;
  }

  auto rkey_it = peer->rkeys.find(batch->rkey);
  if (rkey_it == peer->rkeys.end()) {
    if (peer->rkeys.size() >= kMaxCachedRemoteKeysPerPeer && peer->outstanding_batches == 1) {
      windows_.Revoke(peer->id);
      peer->rkeys.clear();
    }
    Result<RemoteKey> unpacked = RemoteKey::Unpack(peer->endpoint, batch->rkey);
    if (!unpacked.ok()) {
      batch->early_status = unpacked.status().WithContext("unpacking the remote key");
      Finish(batch);
      return;
    }
    rkey_it = peer->rkeys.emplace(batch->rkey, std::move(unpacked).value()).first;
    MapWindow(peer, rkey_it->second, *batch);
  }
  ucp_rkey_h rkey = rkey_it->second.get();
  ucp_ep_h ep = peer->endpoint.get();

  ucp_request_param_t param{};
  param.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_MEMH;
  param.cb.send = &Impl::OnOpDone;
  param.user_data = batch;

  // The guard keeps the batch alive while requests are still being issued.
  batch->pending = 1;
  for (const PreparedOp& op : batch->ops) {
    param.memh = op.memh;
    ++batch->pending;
    Account(batch, batch->is_put ? ucp_put_nbx(ep, op.local, op.size_bytes, op.remote_address,
                                               rkey, &param)
                                 : ucp_get_nbx(ep, op.local, op.size_bytes, op.remote_address,
                                               rkey, &param));
    if (batch->first_error != UCS_OK) break;
  }
  // A Get is complete when its data has landed locally; a Put only when the peer has it.
  if (batch->is_put) Flush(batch, ep);
  if (--batch->pending == 0) Finish(batch);
}

void TransferEngine::Impl::Account(Batch* batch, ucs_status_ptr_t request) {
  // Counted before the call returned, so a callback can never see pending reach zero early.
  if (request == nullptr) {
    --batch->pending;
  } else if (UCS_PTR_IS_ERR(request)) {
    --batch->pending;
    if (batch->first_error == UCS_OK) batch->first_error = UCS_PTR_STATUS(request);
  }
}

void TransferEngine::Impl::Flush(Batch* batch, ucp_ep_h ep) {
  // The endpoint flush completes after every earlier operation on the endpoint reached the peer.
  if (batch->first_error != UCS_OK) return;
  ucp_request_param_t flush_param{};
  flush_param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  flush_param.cb.send = &Impl::OnOpDone;
  flush_param.user_data = batch;
  ++batch->pending;
  Account(batch, ucp_ep_flush_nbx(ep, &flush_param));
}

void TransferEngine::Impl::StartMessages(Batch* batch) {
  ucp_ep_h ep = batch->peer->endpoint.get();
  ucp_request_param_t param{};
  param.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  param.cb.send = &Impl::OnOpDone;
  param.user_data = batch;
  // Eager: the bytes travel in the messages and the receiver acknowledges nothing, so a sender
  // that dies mid-way leaves the receiver a partial delivery, not a failed acknowledgement
  // (docs/transport.md: UCX 1.13 aborts on the latter).
  param.flags = UCP_AM_SEND_FLAG_EAGER;
  batch->headers.reserve(batch->ops.size());
  batch->pending = 1;  // the guard, as in StartBatch
  for (const PreparedOp& op : batch->ops) {
    batch->headers.push_back({batch->token, op.remote_address});
    ++batch->pending;
    Account(batch, ucp_am_send_nbx(ep, kMessageAmId, batch->headers.back().data(),
                                   sizeof(batch->headers.back()), op.local, op.size_bytes,
                                   &param));
    if (batch->first_error != UCS_OK) break;
  }
  Flush(batch, ep);
  if (--batch->pending == 0) Finish(batch);
}

ucs_status_t TransferEngine::Impl::OnMessage(void* arg, const void* header, size_t header_length,
                                             void* data, size_t length,
                                             const ucp_am_recv_param_t* param) {
  auto* self = static_cast<Impl*>(arg);
  // Only eager messages of the expected shape are taken; anything else is dropped (a rendezvous
  // one by returning without receiving its data), and the transfer it names then never
  // completes: its AwaitMessages times out.
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0 ||
      header_length != 2 * sizeof(uint64_t)) {
    KVPOOL_LOG(WARNING) << "dropped a message of unexpected shape (" << header_length
                        << "-byte header, " << length << " bytes)";
    return UCS_OK;
  }
  uint64_t fields[2];
  std::memcpy(fields, header, sizeof(fields));
  if (Status st = self->inbox_.Deliver(fields[0], fields[1], data, length); !st.ok()) {
    KVPOOL_LOG(WARNING) << "refused a message: " << st;
  }
  return UCS_OK;
}

void TransferEngine::Impl::Finish(Batch* batch) {
  Status status;
  if (batch->early_status.has_value()) {
    status = std::move(*batch->early_status);
  } else if (batch->first_error != UCS_OK) {
    Peer* peer = batch->peer;
    if (peer != nullptr && peer->state == PeerState::kFailed) {
      status = peer->failure;
    } else if (batch->first_error == UCS_ERR_CANCELED && peer != nullptr &&
               peer->state == PeerState::kDisconnected) {
      status = CancelledError("peer " + std::to_string(batch->peer_id) +
                              " was disconnected before the transfer completed");
    } else {
      status = UnavailableError(std::string(batch->is_message ? "SendMessages"
                                            : batch->is_put     ? "Put"
                                                                : "Get") +
                                " to peer " +
                                std::to_string(batch->peer_id) +
                                " failed: " + ucs_status_string(batch->first_error));
    }
  }
  if (batch->peer != nullptr && --batch->peer->outstanding_batches == 0 &&
      !batch->peer->forget_later.empty()) {
    DropRemoteKeys(batch->peer, std::exchange(batch->peer->forget_later, {}));
  }
  // Regions are released before the waiter wakes, so a caller may Deregister right after Wait.
  if (!batch->region_starts.empty()) {
    absl::MutexLock lock(&regions_mu_);
    for (uint64_t start : batch->region_starts) {
      auto it = regions_.find(start);
      if (it != regions_.end()) --it->second.inflight;
    }
  }
  batch->state->Complete(std::move(status));
  live_batches_.erase(batch);
  delete batch;
}

// ---- TransferEngine ----------------------------------------------------------------------------

TransferEngine::TransferEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TransferEngine::~TransferEngine() = default;

Result<std::unique_ptr<TransferEngine>> TransferEngine::Create(
    const TransferEngineOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  KVPOOL_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<TransferEngine>(new TransferEngine(std::move(impl)));
}

const std::string& TransferEngine::worker_address() const { return impl_->worker_address_; }

bool TransferEngine::ReachesCudaMemory() const { return impl_->reaches_cuda_; }

Result<LocalRegion> TransferEngine::RegisterMemory(void* data, uint64_t size_bytes) {
  if (data == nullptr) return InvalidArgumentError("RegisterMemory: null pointer");
  if (size_bytes == 0) return InvalidArgumentError("RegisterMemory: size_bytes is 0");
  if (size_bytes > std::numeric_limits<uint64_t>::max() - reinterpret_cast<uint64_t>(data)) {
    return InvalidArgumentError("RegisterMemory: range wraps around");
  }
  return impl_->RunOnProgressThread(
      [&] { return impl_->RegisterOnThread(data, size_bytes, /*allocate=*/false); });
}

Result<LocalRegion> TransferEngine::AllocateMemory(uint64_t size_bytes) {
  if (size_bytes == 0) return InvalidArgumentError("AllocateMemory: size_bytes is 0");
  return impl_->RunOnProgressThread(
      [&] { return impl_->RegisterOnThread(nullptr, size_bytes, /*allocate=*/true); });
}

Result<LocalRegion> TransferEngine::AllocateMemoryAt(void* address, uint64_t size_bytes) {
  if (address == nullptr || reinterpret_cast<uintptr_t>(address) % 4096 != 0) {
    return InvalidArgumentError("AllocateMemoryAt: the address must be non-null and page-aligned");
  }
  if (size_bytes == 0) return InvalidArgumentError("AllocateMemoryAt: size_bytes is 0");
  if (reinterpret_cast<uint64_t>(address) + size_bytes < reinterpret_cast<uint64_t>(address)) {
    return InvalidArgumentError("AllocateMemoryAt: range wraps around");
  }
  return impl_->RunOnProgressThread(
      [&] { return impl_->RegisterOnThread(address, size_bytes, /*allocate=*/true); });
}

Status TransferEngine::Deregister(RegionId id) {
  return impl_->DeregisterRegion(id, [] {});
}

Status TransferEngine::Deregister(RegionId id, absl::FunctionRef<void()> after_free) {
  return impl_->DeregisterRegion(id, after_free);
}

Result<PeerId> TransferEngine::Connect(std::string_view peer_worker_address) {
  if (peer_worker_address.empty()) {
    return InvalidArgumentError("Connect: peer worker address is empty");
  }
  return impl_->RunOnProgressThread([&] { return impl_->ConnectOnThread(peer_worker_address); });
}

Status TransferEngine::Disconnect(PeerId peer) {
  {
    absl::MutexLock lock(&impl_->wired_mu_);
    impl_->wired_.erase(static_cast<uint64_t>(peer));
  }
  return impl_->RunOnProgressThread(
      [&] { return impl_->DisconnectOnThread(static_cast<uint64_t>(peer)); });
}

void TransferEngine::ForgetRemoteKeys(PeerId peer, std::vector<std::string> rkeys) {
  if (rkeys.empty()) return;
  impl_->RunOnProgressThread([&]() -> Status {
    auto it = impl_->peers_.find(static_cast<uint64_t>(peer));
    if (it == impl_->peers_.end()) return Status::Ok();
    Impl::Peer* p = it->second.get();
    if (p->outstanding_batches == 0) {
      impl_->DropRemoteKeys(p, std::move(rkeys));
    } else {
      for (std::string& key : rkeys) p->forget_later.push_back(std::move(key));
    }
    return Status::Ok();
  }).IgnoreError();
}

Status TransferEngine::PeerStatus(PeerId peer) {
  return impl_->RunOnProgressThread(
      [&] { return impl_->PeerStatusOnThread(static_cast<uint64_t>(peer)); });
}

Result<std::string> TransferEngine::DescribePeer(PeerId peer) {
  return impl_->RunOnProgressThread([&]() -> Result<std::string> {
    auto it = impl_->peers_.find(static_cast<uint64_t>(peer));
    if (it == impl_->peers_.end() || it->second->state == Impl::PeerState::kDisconnected) {
      return NotFoundError("no peer with id " + std::to_string(static_cast<uint64_t>(peer)));
    }
    const Impl::Peer& p = *it->second;
    std::string text = "kvpool peer " + std::to_string(p.id) + ": pid " + std::to_string(p.pid) +
                       (p.same_host ? " on this host" : " on another host") +
                       ", UCX error handling " + (p.ucx_error_handling ? "PEER" : "NONE") +
                       (p.pidfd.valid() ? ", process watched" : "") + ", " +
                       std::to_string(impl_->windows_.CountFor(p.id)) +
                       " region(s) mapped for inline copies\n";
    return text + p.endpoint.Describe();
  });
}

Result<std::string> TransferEngine::Transports(PeerId peer) {
  KVPOOL_ASSIGN_OR_RETURN(const std::string text, DescribePeer(peer));
  // ucp_ep_print_info writes one line per lane: "lane[0]:  1:tcp/lo.0 md[0] -> ...".
  std::set<std::string> names;
  for (size_t at = text.find("lane["); at != std::string::npos; at = text.find("lane[", at + 1)) {
    const size_t end = text.find('\n', at);
    const size_t label_end = text.find(':', at);
    const size_t resource_end = text.find(':', label_end + 1);
    const size_t slash = text.find('/', resource_end);
    if (label_end >= end || resource_end >= end || slash >= end) continue;
    names.insert(text.substr(resource_end + 1, slash - resource_end - 1));
  }
  std::string joined;
  for (const std::string& name : names) joined += (joined.empty() ? "" : "+") + name;
  return joined;
}

Result<bool> TransferEngine::UsesOnlyTcp(PeerId peer) {
  KVPOOL_ASSIGN_OR_RETURN(const std::string transports, Transports(peer));
  return transports == "tcp";
}

Status TransferEngine::CompleteWireup(PeerId peer, const RemoteRegion& remote,
                                      int64_t timeout_ms) {
  {
    absl::MutexLock lock(&impl_->wired_mu_);
    if (impl_->wired_.contains(static_cast<uint64_t>(peer))) return Status::Ok();
  }
  uint64_t scratch = 0;
  {
    absl::MutexLock lock(&impl_->scratch_mu_);
    if (impl_->scratch_address_ == 0) {
      // Engine-allocated (UCX aligns registrations to pages); freed with the engine.
      KVPOOL_ASSIGN_OR_RETURN(LocalRegion region, AllocateMemory(4096));
      impl_->scratch_address_ = reinterpret_cast<uint64_t>(region.data);
    }
    scratch = impl_->scratch_address_;
  }
  // Concurrent calls may land in the scratch buffer together: its bytes are never read.
  const TransferOp op{scratch, remote.address, std::min<uint64_t>(8, remote.size_bytes)};
  KVPOOL_ASSIGN_OR_RETURN(TransferHandle handle, Get(peer, remote, std::span(&op, 1)));
  KVPOOL_RETURN_IF_ERROR(handle.Wait(timeout_ms));
  absl::MutexLock lock(&impl_->wired_mu_);
  impl_->wired_.insert(static_cast<uint64_t>(peer));
  return Status::Ok();
}

Result<uint64_t> TransferEngine::ExpectMessages(std::span<const MessageWindow> windows,
                                                int64_t ttl_ms) {
  if (ttl_ms <= 0) return InvalidArgumentError("ExpectMessages: ttl_ms must be > 0");
  std::vector<internal::InboxWindow> inbox_windows;
  inbox_windows.reserve(windows.size());
  {
    // Messages may only ever land in memory registered with this engine.
    absl::ReaderMutexLock lock(&impl_->regions_mu_);
    for (size_t i = 0; i < windows.size(); ++i) {
      const MessageWindow& w = windows[i];
      auto next = impl_->regions_.upper_bound(w.address);
      const bool inside =
          next != impl_->regions_.begin() &&
          w.address + w.size_bytes <= std::prev(next)->first + std::prev(next)->second.region.size_bytes() &&
          w.address + w.size_bytes >= w.address;
      if (!inside) {
        return InvalidArgumentError("ExpectMessages: window " + std::to_string(i) + " [" +
                                    std::to_string(w.address) + ", +" +
                                    std::to_string(w.size_bytes) +
                                    ") is not inside one region registered with this engine");
      }
      inbox_windows.push_back({w.address, w.size_bytes});
    }
  }
  return impl_->inbox_.Expect(std::move(inbox_windows), internal::MessageInbox::Clock::now() +
                                                            std::chrono::milliseconds(ttl_ms));
}

Status TransferEngine::AwaitMessages(uint64_t token, int64_t timeout_ms) {
  return impl_->inbox_.Await(token, timeout_ms);
}

void TransferEngine::CancelMessages(uint64_t token) { impl_->inbox_.Cancel(token); }

Result<TransferHandle> TransferEngine::SendMessages(PeerId peer, const RemoteRegion& remote,
                                                    uint64_t token,
                                                    std::span<const TransferOp> ops) {
  if (token == 0) return InvalidArgumentError("SendMessages: token 0 names no transfer");
  return impl_->Submit(/*is_put=*/true, peer, remote, ops, token);
}

Result<TransferHandle> TransferEngine::Put(PeerId peer, const RemoteRegion& remote,
                                           std::span<const TransferOp> ops) {
  return impl_->Submit(/*is_put=*/true, peer, remote, ops);
}

Result<TransferHandle> TransferEngine::Get(PeerId peer, const RemoteRegion& remote,
                                           std::span<const TransferOp> ops) {
  return impl_->Submit(/*is_put=*/false, peer, remote, ops);
}

}  // namespace kvpool::transport
