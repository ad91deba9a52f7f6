#include "daemon/ops_setup.h"

#include <utility>
#include <vector>

#include "rpc/security.h"
#include "rpc/server_security.h"
#include "rpc/server_metrics.h"

namespace kvpool::daemon {

Result<std::unique_ptr<OpsSetup>> OpsSetup::Create(const OpsOptions& options,
                                                   const std::string& server_name,
                                                   std::set<std::string> admin_methods) {
  KVPOOL_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<OpsSetup> ops(new OpsSetup());
  ops->server_name_ = server_name;
  ops->registry_ = std::make_shared<prometheus::Registry>();

  rpc::ServerSecurity server;
  rpc::ChannelSecurity client;
  if (!options.tls_cert_file.empty()) {
    KVPOOL_ASSIGN_OR_RETURN(server.cert_pem, rpc::ReadPemFile(options.tls_cert_file));
    KVPOOL_ASSIGN_OR_RETURN(server.key_pem, rpc::ReadPemFile(options.tls_key_file));
    client.tls = true;
    client.cert_pem = server.cert_pem;
    client.key_pem = server.key_pem;
  }
  if (!options.tls_ca_file.empty()) {
    KVPOOL_ASSIGN_OR_RETURN(client.ca_pem, rpc::ReadPemFile(options.tls_ca_file));
    client.tls = true;
    server.client_ca_pem = client.ca_pem;
  }
  server.require_client_cert = options.tls_require_client_cert;
  if (!options.auth_token_file.empty()) {
    KVPOOL_ASSIGN_OR_RETURN(server.token, rpc::ReadTokenFile(options.auth_token_file));
  }
  if (!options.admin_token_file.empty()) {
    KVPOOL_ASSIGN_OR_RETURN(server.admin_token, rpc::ReadTokenFile(options.admin_token_file));
  }
  if (!options.namespace_tokens_file.empty()) {
    KVPOOL_ASSIGN_OR_RETURN(server.namespace_tokens,
                            rpc::ReadNamespaceTokensFile(options.namespace_tokens_file));
    for (const rpc::NamespaceToken& t : server.namespace_tokens) {
      if (t.token == server.token || t.token == server.admin_token) {
        return InvalidArgumentError("namespace-tokens-file " + options.namespace_tokens_file +
                                    " repeats the ordinary or admin token; give each its own");
      }
    }
  }
  server.admin_methods = std::move(admin_methods);
  server.server_name = server_name;
  client.token = server.admin_token.empty() ? server.token : server.admin_token;
  KVPOOL_ASSIGN_OR_RETURN(ops->credentials_, rpc::MakeServerCredentials(server, ops->registry_));
  rpc::SetDefaultChannelSecurity(std::move(client));

  ops->mode_ = server.cert_pem.empty()          ? "plaintext"
               : server.require_client_cert ? "mutual-tls"
                                            : "tls";
  if (!server.token.empty() || !server.admin_token.empty()) ops->mode_ += "+token";
  if (!server.namespace_tokens.empty()) {
    ops->mode_ += "+" + std::to_string(server.namespace_tokens.size()) + "-namespace-tokens";
  }

  if (!options.metrics_listen.empty()) {
    metrics::InstallTransferMetrics(ops->registry_);
    KVPOOL_ASSIGN_OR_RETURN(ops->metrics_,
                            metrics::MetricsServer::Start(options.metrics_listen, ops->registry_));
  }
  return ops;
}

void OpsSetup::Instrument(grpc::ServerBuilder& builder) const {
  if (metrics_ == nullptr) return;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(rpc::MakeServerMetricsInterceptor(registry_, server_name_));
  builder.experimental().SetInterceptorCreators(std::move(creators));
}

}  // namespace kvpool::daemon
