// What both daemons share for operations: the /metrics endpoint, TLS and bearer tokens.
// Flags and config-file keys are the same in kvpoold and kvpool-scheduler (docs/monitoring.md,
// docs/security.md).
#pragma once

#include <string>

#include "kvpool/status.h"

namespace CLI {
class App;
}  // namespace CLI

namespace kvpool::daemon {

/// Metrics and security options of a daemon. Plain value type.
struct OpsOptions {
  /// host:port of the Prometheus endpoint (GET /metrics); port 0 picks a free port.
  /// Default: "" (off).
  std::string metrics_listen;
  /// PEM certificate chain and private key this daemon serves gRPC with; also its client
  /// certificate on node-to-node and node-to-scheduler links. Default: "" (plaintext).
  std::string tls_cert_file;
  std::string tls_key_file;
  /// PEM of the CA that signed the cluster's certificates: verifies the servers this daemon
  /// connects to, and client certificates when tls_require_client_cert. Default: "" (system
  /// roots for servers).
  std::string tls_ca_file;
  /// Mutual TLS: refuse connections without a client certificate signed by tls_ca_file.
  /// Default: false.
  bool tls_require_client_cert = false;
  /// File whose first line is the bearer token clients must send. Needs TLS. This daemon also
  /// sends it on its own calls when no admin token is set. Default: "" (no token check).
  std::string auth_token_file;
  /// File whose first line is the admin token: needed for admin methods, accepted for all.
  /// This daemon sends it on its own calls (nodes deregister from the scheduler with it).
  /// Default: "" (admin methods accept the ordinary token).
  std::string admin_token_file;
  /// kvpoold only: file of namespace-scoped tokens, one `TOKEN NS[,NS...]` per line
  /// (rpc::ReadNamespaceTokensFile): each may use only its namespaces. Needs TLS. Default: ""
  /// (none).
  std::string namespace_tokens_file;

  /// INVALID_ARGUMENT naming the inconsistent option (a key without its certificate, a token
  /// or client-certificate requirement without TLS, a bad metrics-listen).
  Status Validate() const;
};

/// Adds --metrics-listen, --tls-cert, --tls-key, --tls-ca, --tls-require-client-cert,
/// --auth-token-file and --admin-token-file to `app`, writing into `opts` (borrowed; must outlive
/// parsing).
void AddOpsFlags(CLI::App& app, OpsOptions* opts);
/// Adds --namespace-tokens-file (kvpoold only: the scheduler has no per-namespace checks).
void AddNamespaceTokensFlag(CLI::App& app, OpsOptions* opts);

}  // namespace kvpool::daemon
