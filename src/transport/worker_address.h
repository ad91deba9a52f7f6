// The bytes a TransferEngine publishes as its worker address: UCX's packed worker address in a
// small envelope that says which process on which host it belongs to.
//
// Why an envelope: UCX 1.13's shared-memory transports (posix, sysv) cannot report a dead peer,
// so for a peer on the same host the engine watches the peer's process itself (pidfd) and needs
// its pid; and UCX parses an address without knowing its length, so the envelope lets Connect
// refuse malformed bytes before UCX sees them. No UCX types here.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "kvpool/status.h"

namespace kvpool::transport {

/// Identifies one process on one host (boot), so that a pid cannot be confused with a later
/// process that reuses it. A plain value type.
struct ProcessIdentity {
  /// /proc/sys/kernel/random/boot_id: differs between hosts and between boots. 36 characters.
  std::string boot_id;
  /// Inode of /proc/self/ns/pid: pids compare only within one pid namespace.
  uint64_t pid_namespace = 0;
  uint32_t pid = 0;
  /// Field 22 of /proc/<pid>/stat (clock ticks after boot): tells a reused pid apart.
  uint64_t start_time_ticks = 0;

  /// Same boot and same pid namespace: the pid can be watched from here.
  bool SameHostAs(const ProcessIdentity& other) const {
    return boot_id == other.boot_id && pid_namespace == other.pid_namespace;
  }
};

/// This process. INTERNAL when /proc cannot be read.
Result<ProcessIdentity> CurrentProcessIdentity();
/// Start time of process `pid` in clock ticks after boot. NOT_FOUND when there is no such
/// process.
Result<uint64_t> ProcessStartTimeTicks(pid_t pid);

/// A decoded engine address. A plain value type.
struct WorkerAddress {
  ProcessIdentity process;
  /// The engine has shared-memory transports enabled (posix, sysv, cma, ...).
  bool shared_memory = false;
  /// UCX's packed worker address.
  std::string ucx_address;
};

/// Encodes `address` (fixed-size little-endian header, then the UCX bytes).
std::string EncodeWorkerAddress(const WorkerAddress& address);
/// Decodes bytes from EncodeWorkerAddress. INVALID_ARGUMENT (saying what is wrong) for anything
/// else: wrong magic or version, truncated, trailing bytes, empty UCX address.
Result<WorkerAddress> DecodeWorkerAddress(std::string_view bytes);

}  // namespace kvpool::transport
