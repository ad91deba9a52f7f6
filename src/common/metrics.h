// Prometheus metrics: the HTTP endpoint that serves /metrics, a helper to build gauge and
// counter families at scrape time, and the process-wide recorder of data-plane transfers.
//
// Metrics are read where they already live (a Collectable asks the pool or the scheduler for
// its counters at scrape time) rather than instrumented into src/node or src/scheduler, so the
// hot paths pay nothing. docs/monitoring.md lists every metric.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvpool/status.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace kvpool::metrics {

/// Serves the text exposition of collectables at http://LISTEN/metrics on a small civetweb
/// thread pool. Owns the listening socket; destroying it stops serving. Thread-safe.
class MetricsServer {
 public:
  /// Binds `listen` (host:port; port 0 picks a free port) and serves `registry`.
  /// INVALID_ARGUMENT if `listen` is not host:port, UNAVAILABLE if it cannot be bound.
  static Result<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// Also serves `collectable` (kept alive by the server).
  void Add(std::shared_ptr<prometheus::Collectable> collectable);
  /// Stops serving `collectable`; a scrape that is collecting it finishes first. For
  /// collectables that read objects about to be destroyed (see ScopedCollectable).
  void Remove(const std::shared_ptr<prometheus::Collectable>& collectable);
  /// The port actually bound.
  int port() const { return port_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port);
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::vector<std::shared_ptr<prometheus::Collectable>> owned_;
  std::shared_ptr<prometheus::Registry> registry_;
  int port_ = 0;
};

/// Serves a collectable for as long as it lives: declared after the objects the collectable
/// reads, it stops serving it (waiting for a scrape in progress) before they go. A null server
/// serves nothing. Move-only.
class ScopedCollectable {
 public:
  ScopedCollectable(MetricsServer* server, std::shared_ptr<prometheus::Collectable> collectable)
      : server_(server), collectable_(std::move(collectable)) {
    if (server_ != nullptr) server_->Add(collectable_);
  }
  ~ScopedCollectable() {
    if (server_ != nullptr && collectable_ != nullptr) server_->Remove(collectable_);
  }
  ScopedCollectable(ScopedCollectable&& other) noexcept
      : server_(other.server_), collectable_(std::move(other.collectable_)) {}
  ScopedCollectable& operator=(ScopedCollectable&&) = delete;
  ScopedCollectable(const ScopedCollectable&) = delete;
  ScopedCollectable& operator=(const ScopedCollectable&) = delete;

 private:
  MetricsServer* server_;
  std::shared_ptr<prometheus::Collectable> collectable_;
};

/// Label name/value pairs of one sample.
using Labels = std::vector<std::pair<std::string, std::string>>;

/// Builds a gauge or counter family sample by sample, for Collectables that read their values
/// at scrape time. Not thread-safe; a value type.
class FamilyBuilder {
 public:
  /// `name` follows Prometheus conventions (counters end in _total).
  static FamilyBuilder Gauge(std::string name, std::string help);
  static FamilyBuilder Counter(std::string name, std::string help);
  /// Adds one sample.
  FamilyBuilder& Add(const Labels& labels, double value);
  /// The finished family (moved out: call once).
  prometheus::MetricFamily Build() { return std::move(family_); }

 private:
  prometheus::MetricFamily family_;
};

/// Bucket upper bounds for latencies in seconds: 50 us .. 10 s, about x2.5 per step.
std::vector<double> LatencyBucketsSeconds();
/// Bucket upper bounds for transfer sizes in bytes: 4 KiB .. 4 GiB, x4 per step.
std::vector<double> SizeBucketsBytes();

/// Makes RecordTransfer write into `registry`: the families kvpool_transfer_size_bytes,
/// kvpool_transfer_duration_seconds and kvpool_transfer_failures_total. Call once at start-up,
/// before transfers run; a second call is ignored. The registry is kept alive for the process.
/// Thread-safe.
void InstallTransferMetrics(std::shared_ptr<prometheus::Registry> registry);

/// True once InstallTransferMetrics ran: callers skip work (such as naming the transport)
/// whose only use is RecordTransfer. Thread-safe.
bool TransferMetricsInstalled();

/// Records one data-plane transfer: `transport` is the UCX transport or path ("shm", "tcp",
/// "rdma", "local"...), `direction` "put", "get" or "node" (node to node), `bytes` moved and
/// `seconds` from post to completion; `ok` false counts a failure (bytes and time are then not
/// observed). No-op until InstallTransferMetrics ran. Thread-safe and cheap (a few atomic adds
/// after a label lookup).
void RecordTransfer(std::string_view transport, std::string_view direction, uint64_t bytes,
                    double seconds, bool ok = true);

}  // namespace kvpool::metrics
