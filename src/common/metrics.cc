#include "common/metrics.h"

#include <algorithm>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <atomic>
#include <exception>
#include <map>

#include "common/quote.h"

namespace kvpool::metrics {

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, std::shared_ptr<prometheus::Registry> registry) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    return InvalidArgumentError("metrics-listen must be host:port, got " + Quote(listen));
  }
  // civetweb throws when it cannot bind; no exception leaves this adapter.
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/2);
  } catch (const std::exception& e) {
    return UnavailableError("cannot serve metrics on " + Quote(listen) + ": " + e.what());
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) return UnavailableError("cannot serve metrics on " + Quote(listen));
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(exposer), ports.front()));
  server->registry_ = std::move(registry);
  server->exposer_->RegisterCollectable(server->registry_);
  return server;
}

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port)
    : exposer_(std::move(exposer)), port_(port) {}

MetricsServer::~MetricsServer() = default;

void MetricsServer::Add(std::shared_ptr<prometheus::Collectable> collectable) {
  exposer_->RegisterCollectable(collectable);
  owned_.push_back(std::move(collectable));
}

void MetricsServer::Remove(const std::shared_ptr<prometheus::Collectable>& collectable) {
  // The exposer collects under the same lock RemoveCollectable takes.
  exposer_->RemoveCollectable(collectable);
  owned_.erase(std::remove(owned_.begin(), owned_.end(), collectable), owned_.end());
}

FamilyBuilder FamilyBuilder::Gauge(std::string name, std::string help) {
  FamilyBuilder b;
  b.family_.name = std::move(name);
  b.family_.help = std::move(help);
  b.family_.type = prometheus::MetricType::Gauge;
  return b;
}

FamilyBuilder FamilyBuilder::Counter(std::string name, std::string help) {
  FamilyBuilder b = Gauge(std::move(name), std::move(help));
  b.family_.type = prometheus::MetricType::Counter;
  return b;
}

FamilyBuilder& FamilyBuilder::Add(const Labels& labels, double value) {
  prometheus::ClientMetric m;
  for (const auto& [name, val] : labels) m.label.push_back({name, val});
  if (family_.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family_.metric.push_back(std::move(m));
  return *this;
}

std::vector<double> LatencyBucketsSeconds() {
  return {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3,
          25e-3, 50e-3,  100e-3, 250e-3, 500e-3, 1.0,  2.5,    10.0};
}

std::vector<double> SizeBucketsBytes() {
  std::vector<double> b;
  for (double v = 4096; v <= 4.0 * (1ull << 30); v *= 4) b.push_back(v);
  return b;
}

namespace {

class TransferMetrics {
 public:
  explicit TransferMetrics(std::shared_ptr<prometheus::Registry> registry)
      : registry_(std::move(registry)),
        size_(prometheus::BuildHistogram()
                  .Name("kvpool_transfer_size_bytes")
                  .Help("Bytes moved per data-plane transfer, by transport and direction")
                  .Register(*registry_)),
        duration_(prometheus::BuildHistogram()
                      .Name("kvpool_transfer_duration_seconds")
                      .Help("Time from post to completion of a data-plane transfer")
                      .Register(*registry_)),
        failures_(prometheus::BuildCounter()
                      .Name("kvpool_transfer_failures_total")
                      .Help("Data-plane transfers that failed")
                      .Register(*registry_)) {}

  void Record(std::string_view transport, std::string_view direction, uint64_t bytes,
              double seconds, bool ok) {
    const std::map<std::string, std::string> labels{{"transport", std::string(transport)},
                                                    {"direction", std::string(direction)}};
    if (!ok) {
      failures_.Add(labels).Increment();
      return;
    }
    size_.Add(labels, SizeBucketsBytes()).Observe(static_cast<double>(bytes));
    duration_.Add(labels, LatencyBucketsSeconds()).Observe(seconds);
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>& size_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Counter>& failures_;
};

// Set once and never freed: recorders may run on transport threads until the process exits.
// Acquire/release: a recorder that sees the pointer sees the constructed families.
std::atomic<TransferMetrics*> g_transfer_metrics{nullptr};

}  // namespace

void InstallTransferMetrics(std::shared_ptr<prometheus::Registry> registry) {
  if (g_transfer_metrics.load(std::memory_order_acquire) != nullptr) return;
  auto* metrics = new TransferMetrics(std::move(registry));
  TransferMetrics* expected = nullptr;
  if (!g_transfer_metrics.compare_exchange_strong(expected, metrics, std::memory_order_acq_rel)) {
    delete metrics;
  }
}

bool TransferMetricsInstalled() {
  return g_transfer_metrics.load(std::memory_order_acquire) != nullptr;
}

void RecordTransfer(std::string_view transport, std::string_view direction, uint64_t bytes,
                    double seconds, bool ok) {
  TransferMetrics* metrics = g_transfer_metrics.load(std::memory_order_acquire);
  if (metrics != nullptr) metrics->Record(transport, direction, bytes, seconds, ok);
}

}  // namespace kvpool::metrics
