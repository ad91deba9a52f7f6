// TLS and bearer tokens of kvpool's client channels (every channel is made in
// rpc/client_channel), and the PEM and token files both sides read. The servers' side is in
// rpc/server_security.h. docs/security.md describes the whole scheme.
#pragma once

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
/// The process default. Until SetDefaultChannelSecurity it comes from the environment, read
/// once: KVPOOL_TLS=1 (TLS with the system roots), KVPOOL_TLS_CA, KVPOOL_TLS_CERT,
/// KVPOOL_TLS_KEY (PEM files) and KVPOOL_TOKEN_FILE; unset or unusable (logged at ERROR):
/// plaintext. Thread-safe.
ChannelSecurity DefaultChannelSecurity();

/// Reads a token file: its first line with surrounding whitespace removed. NOT_FOUND if the
/// file cannot be read, INVALID_ARGUMENT if the token is empty or has inner whitespace.
Result<std::string> ReadTokenFile(const std::string& path);
/// A bearer token that may use only some namespaces (kvpoold --namespace-tokens-file,
/// docs/security.md "Namespace-scoped tokens"). Value type.
struct NamespaceToken {
  std::string token;
  /// Namespace names, or prefixes ending in '*' ("tenant-a-*"; "*" alone: every namespace).
  std::vector<std::string> namespaces;
};

/// True if `ns` is one of `patterns` or starts with the part before the '*' of one that ends
/// in '*'.
bool NamespaceMatches(const std::vector<std::string>& patterns, std::string_view ns);

/// Reads a namespace-tokens file: one `TOKEN NAMESPACE[,NAMESPACE...]` per line (blank lines
/// and lines starting with '#' skipped; namespaces separated by commas and/or whitespace; a
/// namespace may end in '*' to name a prefix). NOT_FOUND if the file cannot be read;
/// INVALID_ARGUMENT naming the file and line for a line without namespaces, a bad namespace
/// pattern, a token given twice, or a file without any token.
Result<std::vector<NamespaceToken>> ReadNamespaceTokensFile(const std::string& path);

/// Reads a whole PEM file. NOT_FOUND naming the file if it cannot be read; INVALID_ARGUMENT if
/// it holds no PEM block.
Result<std::string> ReadPemFile(const std::string& path);

}  // namespace kvpool::rpc
