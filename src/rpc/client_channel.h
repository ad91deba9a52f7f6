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

/// Opens an insecure channel to `address` with `options`' message limits and waits up to
/// `options.connect_timeout_ms` for it to connect. `fast_reconnect` caps gRPC's reconnect
/// backoff at 1 s (for a server that restarts, like the scheduler). UNAVAILABLE names
/// `server_name` and the address when it cannot connect.
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
