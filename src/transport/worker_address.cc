#include "transport/worker_address.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <fstream>
#include <sstream>

namespace kvpool::transport {
namespace {

constexpr char kMagic[4] = {'K', 'V', 'P', 'W'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kFlagSharedMemory = 1;
constexpr size_t kBootIdBytes = 36;
// magic, version, flags, 2 reserved, pid, pid namespace, start time, boot id, UCX length.
constexpr size_t kHeaderBytes = 4 + 1 + 1 + 2 + 4 + 8 + 8 + kBootIdBytes + 4;

template <typename T>
void AppendLittleEndian(std::string* out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    out->push_back(static_cast<char>(static_cast<uint64_t>(value) >> (8 * i)));
  }
}

template <typename T>
T ReadLittleEndian(const char* p) {
  uint64_t value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return static_cast<T>(value);
}

}  // namespace

Result<uint64_t> ProcessStartTimeTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (stat.empty()) return NotFoundError("no process " + std::to_string(pid));
  // The command name (field 2) is in parentheses and may itself contain spaces and ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) {
    return InternalError("unparsable /proc/" + std::to_string(pid) + "/stat");
  }
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  // Fields 3..21 come first; starttime is field 22.
  for (int i = 3; i <= 21; ++i) fields >> field;
  uint64_t start_time = 0;
  if (!(fields >> start_time)) {
    return InternalError("no start time in /proc/" + std::to_string(pid) + "/stat");
  }
  return start_time;
}

Result<ProcessIdentity> CurrentProcessIdentity() {
  ProcessIdentity identity;
  std::ifstream boot_id("/proc/sys/kernel/random/boot_id");
  if (!(boot_id >> identity.boot_id) || identity.boot_id.size() != kBootIdBytes) {
    return InternalError("cannot read /proc/sys/kernel/random/boot_id");
  }
  struct stat ns {};
  if (::stat("/proc/self/ns/pid", &ns) != 0) {
    return InternalError(std::string("cannot stat /proc/self/ns/pid: ") + std::strerror(errno));
  }
  identity.pid_namespace = ns.st_ino;
  identity.pid = static_cast<uint32_t>(::getpid());
  KVPOOL_ASSIGN_OR_RETURN(identity.start_time_ticks, ProcessStartTimeTicks(::getpid()));
  return identity;
}

std::string EncodeWorkerAddress(const WorkerAddress& address) {
  std::string out(kMagic, sizeof(kMagic));
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(address.shared_memory ? kFlagSharedMemory : 0));
  AppendLittleEndian<uint16_t>(&out, 0);
  AppendLittleEndian<uint32_t>(&out, address.process.pid);
  AppendLittleEndian<uint64_t>(&out, address.process.pid_namespace);
  AppendLittleEndian<uint64_t>(&out, address.process.start_time_ticks);
  std::string boot_id = address.process.boot_id;
  boot_id.resize(kBootIdBytes, '\0');
  out += boot_id;
  AppendLittleEndian<uint32_t>(&out, static_cast<uint32_t>(address.ucx_address.size()));
  out += address.ucx_address;
  return out;
}

Result<WorkerAddress> DecodeWorkerAddress(std::string_view bytes) {
  if (bytes.size() < kHeaderBytes) {
    return InvalidArgumentError("worker address of " + std::to_string(bytes.size()) +
                                " bytes is shorter than its " + std::to_string(kHeaderBytes) +
                                "-byte header");
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return InvalidArgumentError("worker address does not start with the kvpool magic 'KVPW'");
  }
  const char* p = bytes.data() + 4;
  if (static_cast<uint8_t>(p[0]) != kVersion) {
    return InvalidArgumentError("worker address version " +
                                std::to_string(static_cast<uint8_t>(p[0])) +
                                " is not supported (expected " + std::to_string(kVersion) + ")");
  }
  WorkerAddress address;
  address.shared_memory = (static_cast<uint8_t>(p[1]) & kFlagSharedMemory) != 0;
  p += 4;
  address.process.pid = ReadLittleEndian<uint32_t>(p);
  p += 4;
  address.process.pid_namespace = ReadLittleEndian<uint64_t>(p);
  p += 8;
  address.process.start_time_ticks = ReadLittleEndian<uint64_t>(p);
  p += 8;
  address.process.boot_id.assign(p, kBootIdBytes);
  p += kBootIdBytes;
  const uint32_t ucx_bytes = ReadLittleEndian<uint32_t>(p);
  if (ucx_bytes == 0) return InvalidArgumentError("worker address holds no UCX address");
  if (bytes.size() - kHeaderBytes != ucx_bytes) {
    return InvalidArgumentError("worker address announces " + std::to_string(ucx_bytes) +
                                " UCX bytes but carries " +
                                std::to_string(bytes.size() - kHeaderBytes));
  }
  address.ucx_address.assign(bytes.substr(kHeaderBytes));
  return address;
}

}  // namespace kvpool::transport
