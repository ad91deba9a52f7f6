#include "transport/ucx_handles.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "common/clock.h"
#include "common/logging.h"

namespace kvpool::transport {
namespace {

std::string UcsText(ucs_status_t status) { return ucs_status_string(status); }

struct ConfigDeleter {
  void operator()(ucp_config_t* config) const { ucp_config_release(config); }
};
using ConfigPtr = std::unique_ptr<ucp_config_t, ConfigDeleter>;

}  // namespace

Status FromUcsStatus(ucs_status_t status, std::string_view what) {
  if (status == UCS_OK) return Status::Ok();
  std::string message = std::string(what) + ": " + UcsText(status);
  switch (status) {
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_NO_RESOURCE:
    case UCS_ERR_EXCEEDS_LIMIT:
      return ResourceExhaustedError(std::move(message));
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_INVALID_ADDR:
      return InvalidArgumentError(std::move(message));
    case UCS_ERR_UNSUPPORTED:
    case UCS_ERR_NOT_IMPLEMENTED:
      return UnimplementedError(std::move(message));
    case UCS_ERR_CANCELED:
      return CancelledError(std::move(message));
    case UCS_ERR_TIMED_OUT:
      return DeadlineExceededError(std::move(message));
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_IO_ERROR:
    case UCS_ERR_REJECTED:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_NO_DEVICE:
    case UCS_ERR_BUSY:
    case UCS_ERR_SHMEM_SEGMENT:
    case UCS_ERR_NO_PROGRESS:
      return UnavailableError(std::move(message));
    default:
      return InternalError(std::move(message));
  }
}

// ---- UcpContext --------------------------------------------------------------------------------

Result<UcpContext> UcpContext::Create(const UcpContextOptions& options) {
  ucp_config_t* raw_config = nullptr;
  // Reads every UCX_* environment variable: this is how UCX_TLS and friends pass through.
  ucs_status_t status = ucp_config_read(nullptr, nullptr, &raw_config);
  if (status != UCS_OK) return FromUcsStatus(status, "ucp_config_read");
  ConfigPtr config(raw_config);

  auto modify = [&](const std::string& name, const std::string& value) -> Status {
    ucs_status_t s = ucp_config_modify(config.get(), name.c_str(), value.c_str());
    if (s == UCS_OK) return Status::Ok();
    return InvalidArgumentError("UCX config " + name + "=" + value + ": " + UcsText(s));
  };
  if (!options.tls.empty()) KVPOOL_RETURN_IF_ERROR(modify("TLS", options.tls));
  for (const auto& [name, value] : options.config) {
    if (name.empty()) return InvalidArgumentError("UCX config name is empty");
    KVPOOL_RETURN_IF_ERROR(modify(name, value));
  }

  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_REQUEST_SIZE |
                      UCP_PARAM_FIELD_MT_WORKERS_SHARED | UCP_PARAM_FIELD_NAME;
  params.features = 0;
  if (options.enable_rma) params.features |= UCP_FEATURE_RMA;
  if (options.enable_active_messages) params.features |= UCP_FEATURE_AM;
  if (options.enable_wakeup) params.features |= UCP_FEATURE_WAKEUP;
  if (params.features == 0) return InvalidArgumentError("UCP context with no feature enabled");
  params.request_size = options.request_size_bytes;
  params.mt_workers_shared = 0;
  params.name = options.name.c_str();

  ucp_context_h context = nullptr;
  status = ucp_init(&params, config.get(), &context);
  if (status != UCS_OK) {
    return FromUcsStatus(status, "ucp_init (tls='" + options.tls + "')");
  }
  return UcpContext(context);
}

UcpContext::~UcpContext() {
  if (context_ != nullptr) ucp_cleanup(context_);
}

UcpContext& UcpContext::operator=(UcpContext&& other) noexcept {
  if (this != &other) {
    if (context_ != nullptr) ucp_cleanup(context_);
    context_ = std::exchange(other.context_, nullptr);
  }
  return *this;
}

std::vector<std::string> UcpContext::ResourceNames() const {
  std::vector<std::string> names;
  char* buffer = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&buffer, &size);
  if (stream == nullptr) return names;
  // UCX has no query for its resources; its printout has one "resource N : ... tl/dev" line per
  // opened transport and device.
  ucp_context_print_info(context_, stream);
  std::fclose(stream);
  std::string text(buffer, size);
  std::free(buffer);
  size_t line_start = 0;
  while (line_start < text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = text.size();
    std::string_view line(text.data() + line_start, line_end - line_start);
    while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
    if (line.find(" resource ") != std::string_view::npos) {
      // The last word: "tl/dev".
      std::string_view name = line.substr(line.rfind(' ') + 1);
      if (name.find('/') != std::string_view::npos) names.emplace_back(name);
    }
    line_start = line_end + 1;
  }
  return names;
}

bool UcpContext::ReachesCudaMemory() const {
  ucp_context_attr_t attr{};
  attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  if (ucp_context_query(context_, &attr) != UCS_OK) return false;
  return (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;
}

bool UcpContext::HasSharedMemoryTransport() const {
  for (const std::string& name : ResourceNames()) {
    for (std::string_view tl : {"posix/", "sysv/", "cma/", "xpmem/", "knem/"}) {
      if (name.rfind(tl, 0) == 0) return true;
    }
  }
  return false;
}

// ---- UcpWorker ---------------------------------------------------------------------------------

Result<UcpWorker> UcpWorker::Create(const UcpContext& context) {
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;
  ucp_worker_h worker = nullptr;
  ucs_status_t status = ucp_worker_create(context.get(), &params, &worker);
  if (status != UCS_OK) return FromUcsStatus(status, "ucp_worker_create");
  return UcpWorker(worker);
}

UcpWorker::~UcpWorker() {
  if (worker_ != nullptr) ucp_worker_destroy(worker_);
}

UcpWorker& UcpWorker::operator=(UcpWorker&& other) noexcept {
  if (this != &other) {
    if (worker_ != nullptr) ucp_worker_destroy(worker_);
    worker_ = std::exchange(other.worker_, nullptr);
  }
  return *this;
}

Result<std::string> UcpWorker::PackedAddress() const {
  ucp_address_t* address = nullptr;
  size_t length = 0;
  ucs_status_t status = ucp_worker_get_address(worker_, &address, &length);
  if (status != UCS_OK) return FromUcsStatus(status, "ucp_worker_get_address");
  std::string bytes(reinterpret_cast<const char*>(address), length);
  ucp_worker_release_address(worker_, address);
  return bytes;
}

Result<int> UcpWorker::EventFd() const {
  int fd = -1;
  ucs_status_t status = ucp_worker_get_efd(worker_, &fd);
  if (status != UCS_OK) return FromUcsStatus(status, "ucp_worker_get_efd");
  return fd;
}

bool UcpWorker::Arm() const {
  ucs_status_t status = ucp_worker_arm(worker_);
  if (status == UCS_OK) return true;
  if (status != UCS_ERR_BUSY) {
    KVPOOL_LOG(WARNING) << "ucp_worker_arm failed: " << UcsText(status);
  }
  return false;
}

void UcpWorker::Signal() const {
  ucs_status_t status = ucp_worker_signal(worker_);
  if (status != UCS_OK) KVPOOL_LOG(WARNING) << "ucp_worker_signal failed: " << UcsText(status);
}

ucs_status_t WaitForRequest(ucp_worker_h worker, ucs_status_ptr_t request, int64_t timeout_ms) {
  if (request == nullptr) return UCS_OK;
  if (UCS_PTR_IS_ERR(request)) return UCS_PTR_STATUS(request);
  const int64_t deadline_ms = SteadyClock::Default()->NowMs() + timeout_ms;
  ucs_status_t status = ucp_request_check_status(request);
  while (status == UCS_INPROGRESS) {
    ucp_worker_progress(worker);
    status = ucp_request_check_status(request);
    if (status == UCS_INPROGRESS && SteadyClock::Default()->NowMs() > deadline_ms) {
      status = UCS_ERR_TIMED_OUT;
    }
  }
  // Freeing an unfinished request is allowed: UCX releases it when it completes.
  ucp_request_free(request);
  return status;
}

// ---- UcpEndpoint -------------------------------------------------------------------------------

Result<UcpEndpoint> UcpEndpoint::Create(const UcpWorker& worker, std::string_view peer_address,
                                        bool peer_error_handling, ErrorHandler on_error,
                                        void* arg) {
  if (peer_address.empty()) return InvalidArgumentError("peer worker address is empty");
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(peer_address.data());
  params.err_mode = peer_error_handling ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
  params.err_handler.cb = on_error;
  params.err_handler.arg = arg;
  ucp_ep_h ep = nullptr;
  ucs_status_t status = ucp_ep_create(worker.get(), &params, &ep);
  if (status != UCS_OK) {
    Status error = FromUcsStatus(status, "ucp_ep_create");
    // Every failure to reach a peer reads as UNAVAILABLE to callers.
    if (error.code() == StatusCode::kInternal) return UnavailableError(error.message());
    return error;
  }
  return UcpEndpoint(worker.get(), ep);
}

UcpEndpoint::~UcpEndpoint() {
  if (ep_ == nullptr) return;
  ucs_status_t status = WaitForRequest(worker_, StartClose(/*force=*/true), 1000);
  if (status != UCS_OK && status != UCS_ERR_CANCELED && status != UCS_ERR_CONNECTION_RESET &&
      status != UCS_ERR_ENDPOINT_TIMEOUT) {
    KVPOOL_LOG(DEBUG) << "closing UCX endpoint: " << UcsText(status);
  }
}

UcpEndpoint& UcpEndpoint::operator=(UcpEndpoint&& other) noexcept {
  if (this != &other) {
    UcpEndpoint old(std::move(*this));  // closes the current endpoint, if any
    worker_ = std::exchange(other.worker_, nullptr);
    ep_ = std::exchange(other.ep_, nullptr);
  }
  return *this;
}

ucs_status_ptr_t UcpEndpoint::StartClose(bool force) {
  if (ep_ == nullptr) return nullptr;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  ucs_status_ptr_t request = ucp_ep_close_nbx(std::exchange(ep_, nullptr), &param);
  return request;
}

std::string UcpEndpoint::Describe() const {
  if (ep_ == nullptr) return "(closed)";
  char* buffer = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&buffer, &size);
  if (stream == nullptr) return "(open_memstream failed)";
  ucp_ep_print_info(ep_, stream);
  std::fclose(stream);
  std::string text(buffer, size);
  std::free(buffer);
  return text;
}

// ---- MemoryRegion ------------------------------------------------------------------------------

Result<MemoryRegion> MemoryRegion::Register(const UcpContext& context, void* address,
                                            uint64_t size_bytes) {
  if (address == nullptr) return InvalidArgumentError("cannot register a null address");
  if (size_bytes == 0) return InvalidArgumentError("cannot register 0 bytes");
  return Map(context, address, size_bytes, /*allocate=*/false, /*fixed=*/false);
}

Result<MemoryRegion> MemoryRegion::Allocate(const UcpContext& context, uint64_t size_bytes) {
  if (size_bytes == 0) return InvalidArgumentError("cannot allocate 0 bytes");
  return Map(context, nullptr, size_bytes, /*allocate=*/true, /*fixed=*/false);
}

Result<MemoryRegion> MemoryRegion::AllocateAt(const UcpContext& context, void* address,
                                              uint64_t size_bytes) {
  constexpr uintptr_t kPage = 4096;
  if (address == nullptr || reinterpret_cast<uintptr_t>(address) % kPage != 0) {
    return InvalidArgumentError("a fixed allocation needs a page-aligned address");
  }
  if (size_bytes == 0) return InvalidArgumentError("cannot allocate 0 bytes");
  return Map(context, address, size_bytes, /*allocate=*/true, /*fixed=*/true);
}

Result<MemoryRegion> MemoryRegion::Map(const UcpContext& context, void* address,
                                       uint64_t size_bytes, bool allocate, bool fixed) {
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  params.length = size_bytes;
  if (allocate && fixed) {
    params.field_mask |= UCP_MEM_MAP_PARAM_FIELD_ADDRESS;
    params.address = address;
    params.flags = UCP_MEM_MAP_ALLOCATE | UCP_MEM_MAP_FIXED;
  } else if (allocate) {
    params.flags = UCP_MEM_MAP_ALLOCATE;
  } else {
    params.field_mask |= UCP_MEM_MAP_PARAM_FIELD_ADDRESS;
    params.address = address;
    params.flags = 0;
  }
  MemoryRegion region;
  region.context_ = context.get();
  ucs_status_t status = ucp_mem_map(context.get(), &params, &region.memh_);
  if (status != UCS_OK) {
    region.memh_ = nullptr;
    Status error = FromUcsStatus(status, allocate ? "ucp_mem_map (allocate " +
                                                        std::to_string(size_bytes) + " bytes)"
                                                  : "ucp_mem_map (register " +
                                                        std::to_string(size_bytes) + " bytes)");
    if (allocate && error.code() == StatusCode::kInternal) {
      return ResourceExhaustedError(error.message());
    }
    return error;
  }
  region.allocated_by_ucx_ = allocate;
  // From here on the destructor unmaps the handle on every error path.

  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  status = ucp_mem_query(region.memh_, &attr);
  if (status != UCS_OK) return FromUcsStatus(status, "ucp_mem_query");
  region.address_ = attr.address;
  // UCX may round an allocation up; the region is what the caller asked for. At a fixed address
  // rounding up would have mapped over the caller's next range.
  if (fixed && attr.length > size_bytes) {
    return InternalError("UCX mapped " + std::to_string(attr.length) + " bytes at a fixed address "
                         "for " + std::to_string(size_bytes) + " asked (align the range to huge "
                         "pages, or set UCX_POSIX_HUGETLB_MODE=n)");
  }
  region.size_bytes_ = size_bytes;
  if ((!allocate || fixed) && attr.address != address) {
    return InternalError("ucp_mem_map returned a different address than the one asked for");
  }

  void* rkey_buffer = nullptr;
  size_t rkey_size = 0;
  status = ucp_rkey_pack(context.get(), region.memh_, &rkey_buffer, &rkey_size);
  if (status != UCS_OK) return FromUcsStatus(status, "ucp_rkey_pack");
  region.packed_rkey_.assign(static_cast<const char*>(rkey_buffer), rkey_size);
  ucp_rkey_buffer_release(rkey_buffer);
  return region;
}

MemoryRegion::~MemoryRegion() {
  if (memh_ == nullptr) return;
  ucs_status_t status = ucp_mem_unmap(context_, memh_);
  if (status != UCS_OK) KVPOOL_LOG(WARNING) << "ucp_mem_unmap failed: " << UcsText(status);
}

MemoryRegion::MemoryRegion(MemoryRegion&& other) noexcept
    : context_(std::exchange(other.context_, nullptr)),
      memh_(std::exchange(other.memh_, nullptr)),
      address_(std::exchange(other.address_, nullptr)),
      size_bytes_(std::exchange(other.size_bytes_, 0)),
      allocated_by_ucx_(std::exchange(other.allocated_by_ucx_, false)),
      packed_rkey_(std::move(other.packed_rkey_)) {}

MemoryRegion& MemoryRegion::operator=(MemoryRegion&& other) noexcept {
  if (this != &other) {
    MemoryRegion old(std::move(*this));  // unmaps the current region, if any
    context_ = std::exchange(other.context_, nullptr);
    memh_ = std::exchange(other.memh_, nullptr);
    address_ = std::exchange(other.address_, nullptr);
    size_bytes_ = std::exchange(other.size_bytes_, 0);
    allocated_by_ucx_ = std::exchange(other.allocated_by_ucx_, false);
    packed_rkey_ = std::move(other.packed_rkey_);
  }
  return *this;
}

// ---- RemoteKey ---------------------------------------------------------------------------------

Result<RemoteKey> RemoteKey::Unpack(const UcpEndpoint& endpoint, std::string_view packed) {
  if (packed.empty()) return InvalidArgumentError("remote key is empty");
  if (!endpoint.is_open()) return FailedPreconditionError("endpoint is closed");
  ucp_rkey_h rkey = nullptr;
  ucs_status_t status = ucp_ep_rkey_unpack(endpoint.get(), packed.data(), &rkey);
  if (status != UCS_OK) return FromUcsStatus(status, "ucp_ep_rkey_unpack");
  return RemoteKey(rkey);
}

void* RemoteKey::LocalPointer(uint64_t remote_address) const {
  if (rkey_ == nullptr) return nullptr;
  void* local = nullptr;
  if (ucp_rkey_ptr(rkey_, remote_address, &local) != UCS_OK) return nullptr;
  return local;
}

RemoteKey::~RemoteKey() {
  if (rkey_ != nullptr) ucp_rkey_destroy(rkey_);
}

RemoteKey& RemoteKey::operator=(RemoteKey&& other) noexcept {
  if (this != &other) {
    if (rkey_ != nullptr) ucp_rkey_destroy(rkey_);
    rkey_ = std::exchange(other.rkey_, nullptr);
  }
  return *this;
}

}  // namespace kvpool::transport
