#include "daemon/ops_options.h"

#include <CLI/CLI.hpp>

#include "common/quote.h"

namespace kvpool::daemon {

Status OpsOptions::Validate() const {
  if (!metrics_listen.empty()) {
    const auto colon = metrics_listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == metrics_listen.size()) {
      return InvalidArgumentError("metrics-listen must be host:port, got " +
                                  Quote(metrics_listen));
    }
  }
  if (tls_cert_file.empty() != tls_key_file.empty()) {
    return InvalidArgumentError(tls_cert_file.empty() ? "tls-key needs tls-cert"
                                                      : "tls-cert needs tls-key");
  }
  const bool tls = !tls_cert_file.empty();
  if (tls_require_client_cert && (!tls || tls_ca_file.empty())) {
    return InvalidArgumentError("tls-require-client-cert needs tls-cert, tls-key and tls-ca");
  }
  if (!tls && (!auth_token_file.empty() || !admin_token_file.empty() ||
               !namespace_tokens_file.empty())) {
    return InvalidArgumentError(
        "auth-token-file, admin-token-file and namespace-tokens-file need TLS (tls-cert and "
        "tls-key): a token sent in plaintext can be read on the wire");
  }
  return Status::Ok();
}

void AddOpsFlags(CLI::App& app, OpsOptions* opts) {
  app.add_option("--metrics-listen", opts->metrics_listen,
                 "Serve Prometheus metrics at http://HOST:PORT/metrics (default: off)")
      ->group("Metrics");
  app.add_option("--tls-cert", opts->tls_cert_file,
                 "PEM certificate chain to serve gRPC with TLS (also this daemon's client cert)")
      ->group("Security");
  app.add_option("--tls-key", opts->tls_key_file, "PEM private key of --tls-cert")
      ->group("Security");
  app.add_option("--tls-ca", opts->tls_ca_file,
                 "PEM CA that verifies servers this daemon calls and, with "
                 "--tls-require-client-cert, its clients")
      ->group("Security");
  app.add_flag("--tls-require-client-cert", opts->tls_require_client_cert,
               "Mutual TLS: refuse clients without a certificate signed by --tls-ca")
      ->group("Security");
  app.add_option("--auth-token-file", opts->auth_token_file,
                 "File holding the bearer token clients must send (needs TLS)")
      ->group("Security");
  app.add_option("--admin-token-file", opts->admin_token_file,
                 "File holding the admin token that admin methods need (needs TLS)")
      ->group("Security");
}

void AddNamespaceTokensFlag(CLI::App& app, OpsOptions* opts) {
  app.add_option("--namespace-tokens-file", opts->namespace_tokens_file,
                 "File of namespace-scoped tokens, one 'TOKEN NS[,NS...]' per line: each may use "
                 "only its namespaces (needs TLS)")
      ->group("Security");
}

}  // namespace kvpool::daemon
