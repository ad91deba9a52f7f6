// RPC metrics of a gRPC server: a server interceptor that counts every call by method and
// status code and observes its latency.
#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <string_view>

namespace kvpool::rpc {

/// An interceptor factory for grpc::ServerBuilder::experimental().SetInterceptorCreators that
/// records, in `registry`:
///   kvpool_rpc_requests_total{server, method, code}   counter, one per finished call
///   kvpool_rpc_duration_seconds{server, method}        histogram, first byte in to status out
/// `server` names the process ("kvpoold", "kvpool-scheduler"); `method` is the short method
/// name ("Insert", "Health/Check" for services other than kvpool's own keep their last two
/// path parts). The registry is kept alive by the factory. Thread-safe.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeServerMetricsInterceptor(std::shared_ptr<prometheus::Registry> registry,
                             std::string_view server);

/// The label value of a gRPC path: "/kvpool.v1.MemPool/Insert" -> "Insert",
/// "/grpc.health.v1.Health/Check" -> "grpc.health.v1.Health/Check".
std::string MethodLabel(std::string_view path);

/// Canonical name of a gRPC status code ("OK", "NOT_FOUND", ...).
std::string_view StatusCodeName(int code);

}  // namespace kvpool::rpc
