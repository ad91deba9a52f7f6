#include "rpc/security.h"

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>

#include "common/logging.h"
#include "common/quote.h"

namespace kvpool::rpc {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

Result<std::string> ReadFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + std::string(what) + " " + Quote(path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// What a process that did not call SetDefaultChannelSecurity uses: the KVPOOL_TLS_* and
// KVPOOL_TOKEN_FILE environment, so that any libkvpool program (kvpool-bench, an inference
// server) reaches secured daemons without code of its own.
ChannelSecurity FromEnvironment() {
  ClientOptions o;
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v == nullptr ? "" : v;
  };
  o.tls = !env("KVPOOL_TLS").empty() && env("KVPOOL_TLS") != "0";
  o.tls_ca_file = env("KVPOOL_TLS_CA");
  o.tls_cert_file = env("KVPOOL_TLS_CERT");
  o.tls_key_file = env("KVPOOL_TLS_KEY");
  const std::string token_file = env("KVPOOL_TOKEN_FILE");
  if (!token_file.empty()) {
    Result<std::string> token = ReadTokenFile(token_file);
    if (!token.ok()) {
      KVPOOL_LOG(ERROR) << "ignoring KVPOOL_TOKEN_FILE: " << token.status();
    } else {
      o.auth_token = *token;
    }
  }
  if (!HasChannelSecurity(o)) return {};
  Result<ChannelSecurity> loaded = LoadChannelSecurity(o);
  if (!loaded.ok()) {
    KVPOOL_LOG(ERROR) << "ignoring the KVPOOL_TLS_* environment: " << loaded.status();
    return {};
  }
  return *std::move(loaded);
}

std::mutex g_default_mu;
ChannelSecurity& DefaultSecurityLocked() {
  static auto* security = new ChannelSecurity(FromEnvironment());
  return *security;
}

}  // namespace

Result<std::string> ReadTokenFile(const std::string& path) {
  KVPOOL_ASSIGN_OR_RETURN(std::string text, ReadFile(path, "token file"));
  const std::string_view line = Trim(std::string_view(text).substr(0, text.find('\n')));
  if (line.empty()) return InvalidArgumentError("token file " + Quote(path) + " is empty");
  if (line.find_first_of(" \t") != std::string_view::npos) {
    return InvalidArgumentError("token file " + Quote(path) + " holds whitespace in its token");
  }
  return std::string(line);
}

bool NamespaceMatches(const std::vector<std::string>& patterns, std::string_view ns) {
  for (const std::string& p : patterns) {
    if (!p.empty() && p.back() == '*') {
      const std::string_view prefix(p.data(), p.size() - 1);
      if (ns.substr(0, prefix.size()) == prefix) return true;
    } else if (ns == p) {
      return true;
    }
  }
  return false;
}

namespace {

// A namespace name (node/validation: [A-Za-z0-9._-], 1..128 characters), optionally followed by
// '*'; "*" alone is allowed.
bool ValidNamespacePattern(std::string_view p) {
  if (!p.empty() && p.back() == '*') p.remove_suffix(1);
  if (p.size() > 128) return false;
  for (char c : p) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Result<std::vector<NamespaceToken>> ReadNamespaceTokensFile(const std::string& path) {
  KVPOOL_ASSIGN_OR_RETURN(std::string text, ReadFile(path, "namespace-tokens file"));
  std::vector<NamespaceToken> tokens;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const std::string where = "namespace-tokens file " + Quote(path) + " line " +
                              std::to_string(number);
    const std::string_view trimmed = Trim(line);
    if (trimmed.empty() || trimmed.front() == '#') continue;
    std::istringstream fields{std::string(trimmed)};
    NamespaceToken entry;
    fields >> entry.token;
    std::string rest;
    for (std::string word; fields >> word;) rest += word + ",";
    std::istringstream names(rest);
    for (std::string name; std::getline(names, name, ',');) {
      if (name.empty()) continue;
      if (!ValidNamespacePattern(name)) {
        return InvalidArgumentError(where + ": " + Quote(name) +
                                    " is not a namespace name or prefix* ([A-Za-z0-9._-])");
      }
      entry.namespaces.push_back(name);
    }
    if (entry.namespaces.empty()) {
      return InvalidArgumentError(where + ": expected 'TOKEN NAMESPACE[,NAMESPACE...]'");
    }
    for (const NamespaceToken& other : tokens) {
      if (other.token == entry.token) {
        return InvalidArgumentError(where + ": this token is already given on an earlier line");
      }
    }
    tokens.push_back(std::move(entry));
  }
  if (tokens.empty()) {
    return InvalidArgumentError("namespace-tokens file " + Quote(path) + " holds no token");
  }
  return tokens;
}

Result<std::string> ReadPemFile(const std::string& path) {
  KVPOOL_ASSIGN_OR_RETURN(std::string pem, ReadFile(path, "PEM file"));
  if (pem.find("-----BEGIN ") == std::string::npos) {
    return InvalidArgumentError("file " + Quote(path) + " holds no PEM block");
  }
  return pem;
}

bool HasChannelSecurity(const ClientOptions& options) {
  return !options.tls_ca_file.empty() || !options.tls_cert_file.empty() ||
         !options.tls_key_file.empty() || !options.auth_token.empty() || options.tls;
}

Result<ChannelSecurity> LoadChannelSecurity(const ClientOptions& options) {
  ChannelSecurity s;
  s.tls = options.tls || !options.tls_ca_file.empty() || !options.tls_cert_file.empty();
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return InvalidArgumentError("tls_cert_file and tls_key_file go together; got only " +
                                std::string(options.tls_cert_file.empty() ? "the key"
                                                                          : "the certificate"));
  }
  if (!options.tls_ca_file.empty()) {
    KVPOOL_ASSIGN_OR_RETURN(s.ca_pem, ReadPemFile(options.tls_ca_file));
  }
  if (!options.tls_cert_file.empty()) {
    KVPOOL_ASSIGN_OR_RETURN(s.cert_pem, ReadPemFile(options.tls_cert_file));
    KVPOOL_ASSIGN_OR_RETURN(s.key_pem, ReadPemFile(options.tls_key_file));
  }
  s.token = options.auth_token;
  if (!s.token.empty() && !s.tls) {
    return InvalidArgumentError("a bearer token needs TLS: set tls_ca_file (or tls)");
  }
  return s;
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ChannelSecurity& security) {
  if (!security.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = security.ca_pem;
  ssl.pem_cert_chain = security.cert_pem;
  ssl.pem_private_key = security.key_pem;
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(ssl);
  if (security.token.empty()) return creds;
  return grpc::CompositeChannelCredentials(creds, grpc::AccessTokenCredentials(security.token));
}

void SetDefaultChannelSecurity(ChannelSecurity security) {
  std::lock_guard<std::mutex> lock(g_default_mu);
  DefaultSecurityLocked() = std::move(security);
}

ChannelSecurity DefaultChannelSecurity() {
  std::lock_guard<std::mutex> lock(g_default_mu);
  return DefaultSecurityLocked();
}

}  // namespace kvpool::rpc
