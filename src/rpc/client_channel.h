// Opening client channels and running unary calls: shared by libkvpool's clients.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string_view>

#include "kvpool/client.h"
#include "kvpool/status.h"
#include "rpc/status_convert.h"

namespace kvpool::rpc {

/// A channel to `address` that connects on first use (not waited for), with messages up to
/// `max_message_bytes` both ways, secured as the process default says (DefaultChannelSecurity in
/// rpc/security.h: plaintext unless a daemon configured TLS and a token). `fast_reconnect` caps
/// gRPC's reconnect backoff at 1 s (its default grows to two minutes), for a server that
/// restarts, like the scheduler.
std::shared_ptr<grpc::Channel> CreateChannel(std::string_view address, uint64_t max_message_bytes,
                                             bool fast_reconnect);

/// CreateChannel with explicit credentials.
std::shared_ptr<grpc::Channel> CreateChannel(std::string_view address, uint64_t max_message_bytes,
                                             bool fast_reconnect,
                                             std::shared_ptr<grpc::ChannelCredentials> creds);

/// Waits up to `timeout_ms` for `channel` to connect. With `fail_on_refused` the first failed
/// connection attempt ends the wait (for a server that should be up now: the caller hears at
/// once that it is not). UNAVAILABLE names `server_name` and `address`.
Status WaitConnected(grpc::Channel& channel, uint32_t timeout_ms, bool fail_on_refused,
                     std::string_view server_name, std::string_view address);

/// CreateChannel with `options`' message limit and TLS/token (the process default when
/// `options` sets none), then WaitConnected for `options.connect_timeout_ms`, retrying refused
/// connections until then. NOT_FOUND / INVALID_ARGUMENT for unreadable or inconsistent TLS
/// files (LoadChannelSecurity).
Result<std::shared_ptr<grpc::Channel>> OpenChannel(std::string_view address,
                                                   const ClientOptions& options,
                                                   std::string_view server_name,
                                                   bool fast_reconnect = false);

/// A context whose deadline is `timeout_ms` from now.
std::unique_ptr<grpc::ClientContext> DeadlineContext(uint32_t timeout_ms);

/// Runs one unary call `method` of `stub` with a deadline of `timeout_ms`.
template <typename Stub, typename Req, typename Resp>
Status CallUnary(Stub& stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                 const Req& req, Resp* resp, uint32_t timeout_ms) {
  const auto ctx = DeadlineContext(timeout_ms);
  return FromGrpcStatus((stub.*method)(ctx.get(), req, resp));
}

}  // namespace kvpool::rpc
