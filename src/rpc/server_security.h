// TLS, mutual TLS and the bearer-token check of kvpool's gRPC servers.
//
// A server serves TLS with an optional required client certificate (mutual TLS), and checks
// `authorization: Bearer <token>` in an AuthMetadataProcessor: UNAUTHENTICATED for a missing or
// wrong token, PERMISSION_DENIED for an ordinary or namespace-scoped token on an admin method.
// A namespace-scoped token's namespaces are attached to the call's AuthContext, where the
// service checks them (CheckNamespaceAccess). Health checks are
// always open. Tokens need TLS (gRPC sends call credentials only over a secure channel, and a
// token in plaintext would be readable on the wire). Kept apart from rpc/security.h so that
// client programs (libkvpool) do not link prometheus-cpp.
#pragma once

#include <grpcpp/security/server_credentials.h>
#include <prometheus/registry.h>

#include <grpcpp/server_context.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/status.h"
#include "rpc/security.h"

namespace kvpool::rpc {

/// What a server requires, already read from files. Value type.
struct ServerSecurity {
  /// PEM certificate chain and key of the server; empty: plaintext.
  std::string cert_pem;
  std::string key_pem;
  /// PEM of the CA client certificates must chain to (with require_client_cert).
  std::string client_ca_pem;
  /// Refuse TLS handshakes without a client certificate signed by client_ca_pem.
  bool require_client_cert = false;
  /// Accepted for every method but the admin ones. Empty: no token is checked.
  std::string token;
  /// Accepted for every method, including admin_methods. Empty: admin methods accept `token`.
  std::string admin_token;
  /// Full gRPC paths ("/kvpool.v1.MemPool/Evict") that need admin_token.
  std::set<std::string> admin_methods;
  /// Tokens accepted for every method but the admin ones, each for its namespaces only (the
  /// service checks them with CheckNamespaceAccess). Default: none.
  std::vector<NamespaceToken> namespace_tokens;
  /// Names the server in kvpool_rpc_auth_failures_total.
  std::string server_name;
};

/// Server credentials for `security`: insecure, TLS, or mutual TLS, with the token check when a
/// token is set. INVALID_ARGUMENT for a token without TLS, a required client certificate without
/// a CA, or a certificate without its key. `registry` (may be null) receives
/// kvpool_rpc_auth_failures_total{server, code}.
Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security, std::shared_ptr<prometheus::Registry> registry);

/// The namespaces the call's token may use (NamespaceToken::namespaces), or nullopt when it may
/// use any: an ordinary or admin token, no token check, or no call context (`ctx` null).
std::optional<std::vector<std::string>> NamespaceScopeOf(const grpc::ServerContext* ctx);

/// OK when the call may use namespace `ns`; PERMISSION_DENIED naming the namespace otherwise.
Status CheckNamespaceAccess(const grpc::ServerContext* ctx, std::string_view ns);

/// Admin-only methods of kvpoold (DeleteNamespace, Evict, Drain, Undrain) and kvpool-scheduler
/// (DeregisterNode), as full gRPC paths.
std::set<std::string> MemPoolAdminMethods();
std::set<std::string> SchedulerAdminMethods();

}  // namespace kvpool::rpc
