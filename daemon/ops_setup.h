// Applies OpsOptions to a daemon: server credentials, the process's client-channel security,
// the RPC metrics interceptor and the /metrics endpoint.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <memory>
#include <set>
#include <string>

#include "common/metrics.h"
#include "daemon/ops_options.h"
#include "kvpool/status.h"

namespace kvpool::daemon {

/// What a daemon's main holds for operations. Not thread-safe; owned by the main, which keeps it
/// alive until the gRPC server is gone.
class OpsSetup {
 public:
  /// Reads the TLS files and tokens of `options`, makes the server credentials (admin methods:
  /// `admin_methods`, full gRPC paths), sets the process's default channel security (this
  /// daemon's certificate, CA and admin-or-ordinary token) and, if metrics_listen is set, starts
  /// the /metrics endpoint. `server_name` labels the RPC metrics. NOT_FOUND / INVALID_ARGUMENT
  /// for unreadable or inconsistent files; UNAVAILABLE if the metrics port cannot be bound.
  static Result<std::unique_ptr<OpsSetup>> Create(const OpsOptions& options,
                                                  const std::string& server_name,
                                                  std::set<std::string> admin_methods);

  /// Credentials for builder.AddListeningPort.
  std::shared_ptr<grpc::ServerCredentials> server_credentials() const { return credentials_; }
  /// Adds the RPC metrics interceptor to `builder` (when metrics are on).
  void Instrument(grpc::ServerBuilder& builder) const;
  /// The registry the daemon's collectors register into (always valid).
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }
  /// The metrics endpoint, or null when metrics are off.
  metrics::MetricsServer* metrics_server() const { return metrics_.get(); }
  /// "plaintext", "tls" or "mutual-tls", plus "+token" when tokens are checked (for the log).
  const std::string& mode() const { return mode_; }

 private:
  OpsSetup() = default;
  std::string server_name_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  std::unique_ptr<metrics::MetricsServer> metrics_;
  std::string mode_;
};

}  // namespace kvpool::daemon
