// TLS and bearer tokens for kvpool's gRPC servers and client channels.
//
// Servers: TLS with an optional required client certificate (mutual TLS), and a bearer-token
// check (`authorization: Bearer <token>`) in an AuthMetadataProcessor: UNAUTHENTICATED for a
// missing or wrong token, PERMISSION_DENIED for an ordinary token on an admin method. Health
// checks are always open. Tokens need TLS (gRPC sends call credentials only over a secure
// channel, and a token in plaintext would be readable on the wire).
//
// Clients: every channel is made in rpc/client_channel, which asks ChannelCredentialsFor.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <prometheus/registry.h>

#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "kvpool/client.h"
#include "kvpool/status.h"

namespace kvpool::rpc {

/// What a client channel presents, already read from files. Value type.
struct ChannelSecurity {
  /// Connect with TLS. Default: false (plaintext).
  bool tls = false;
  /// PEM of the CA the server's certificate must chain to; empty: the system roots.
  std::string ca_pem;
  /// PEM certificate and key presented to the server (mutual TLS); both or neither.
  std::string cert_pem;
  std::string key_pem;
  /// Sent as `authorization: Bearer <token>` on every call; needs `tls`. Default: "" (none).
  std::string token;
};

/// Reads the TLS files and token of `options` (ClientOptions::tls_ca_file and friends).
/// NOT_FOUND naming a file that cannot be read; INVALID_ARGUMENT for a certificate without its
/// key (or the reverse), or a token without TLS.
Result<ChannelSecurity> LoadChannelSecurity(const ClientOptions& options);

/// True if `options` sets any TLS file or a token.
bool HasChannelSecurity(const ClientOptions& options);

/// Credentials for a channel with `security`.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ChannelSecurity& security);

/// Sets what channels made without explicit security use (CreateChannel, and OpenChannel when
/// ClientOptions sets none): the daemons call it once at start-up so that their node-to-node and
/// node-to-scheduler channels use the daemon's TLS identity and token. Thread-safe.
void SetDefaultChannelSecurity(ChannelSecurity security);
/// The process default (plaintext until SetDefaultChannelSecurity). Thread-safe.
ChannelSecurity DefaultChannelSecurity();

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
  /// Names the server in kvpool_rpc_auth_failures_total.
  std::string server_name;
};

/// Reads a token file: its first line with surrounding whitespace removed. NOT_FOUND if the
/// file cannot be read, INVALID_ARGUMENT if the token is empty or has inner whitespace.
Result<std::string> ReadTokenFile(const std::string& path);
/// Reads a whole PEM file. NOT_FOUND naming the file if it cannot be read; INVALID_ARGUMENT if
/// it holds no PEM block.
Result<std::string> ReadPemFile(const std::string& path);

/// Server credentials for `security`: insecure, TLS, or mutual TLS, with the token check when a
/// token is set. INVALID_ARGUMENT for a token without TLS, a required client certificate without
/// a CA, or a certificate without its key. `registry` (may be null) receives
/// kvpool_rpc_auth_failures_total{server, code}.
Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security, std::shared_ptr<prometheus::Registry> registry);

/// Admin-only methods of kvpoold (DeleteNamespace, Evict, Drain) and kvpool-scheduler
/// (DeregisterNode), as full gRPC paths.
std::set<std::string> MemPoolAdminMethods();
std::set<std::string> SchedulerAdminMethods();

}  // namespace kvpool::rpc
