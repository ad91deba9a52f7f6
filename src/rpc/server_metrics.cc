#include "rpc/server_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <chrono>
#include <map>

#include "common/metrics.h"

namespace kvpool::rpc {
namespace {

struct RpcFamilies {
  std::shared_ptr<prometheus::Registry> registry;
  std::string server;
  prometheus::Family<prometheus::Counter>* requests;
  prometheus::Family<prometheus::Histogram>* duration;
};

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(const RpcFamilies* families, std::string method)
      : families_(families),
        method_(std::move(method)),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      families_->requests
          ->Add({{"server", families_->server},
                 {"method", method_},
                 {"code", std::string(StatusCodeName(status.error_code()))}})
          .Increment();
      families_->duration
          ->Add({{"server", families_->server}, {"method", method_}},
                metrics::LatencyBucketsSeconds())
          .Observe(seconds);
    }
    methods->Proceed();
  }

 private:
  const RpcFamilies* families_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(RpcFamilies families) : families_(std::move(families)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(&families_, MethodLabel(info->method()));
  }

 private:
  RpcFamilies families_;
};

}  // namespace

std::string MethodLabel(std::string_view path) {
  constexpr std::string_view kOwn[] = {"/kvpool.v1.MemPool/", "/kvpool.v1.Scheduler/"};
  for (std::string_view prefix : kOwn) {
    if (path.substr(0, prefix.size()) == prefix) return std::string(path.substr(prefix.size()));
  }
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return std::string(path);
}

std::string_view StatusCodeName(int code) {
  static constexpr std::string_view kNames[] = {
      "OK",        "CANCELLED",         "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",      "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  if (code < 0 || code >= static_cast<int>(std::size(kNames))) return "UNKNOWN";
  return kNames[code];
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeServerMetricsInterceptor(std::shared_ptr<prometheus::Registry> registry,
                             std::string_view server) {
  RpcFamilies f;
  f.registry = std::move(registry);
  f.server = std::string(server);
  f.requests = &prometheus::BuildCounter()
                    .Name("kvpool_rpc_requests_total")
                    .Help("gRPC calls finished, by server, method and status code")
                    .Register(*f.registry);
  f.duration = &prometheus::BuildHistogram()
                    .Name("kvpool_rpc_duration_seconds")
                    .Help("gRPC call latency from the first byte received to the status sent")
                    .Register(*f.registry);
  return std::make_unique<MetricsInterceptorFactory>(std::move(f));
}

}  // namespace kvpool::rpc
