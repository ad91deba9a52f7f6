#include "rpc/server_security.h"

#include <grpcpp/security/auth_metadata_processor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>

#include <string_view>
#include <utility>

#include "common/quote.h"

#include "rpc/server_metrics.h"

namespace kvpool::rpc {
namespace {

// AuthContext properties of a call made with a namespace-scoped token: kScopedProperty "1" and
// one kScopeProperty per namespace pattern. Only this processor sets them (request metadata
// never becomes a property), so a client cannot forge them.
constexpr char kScopedProperty[] = "kvpool.namespace_scoped";
constexpr char kScopeProperty[] = "kvpool.namespace";

// Compares without an early exit, so the time taken does not tell how much of a guess matched.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Checks `authorization: Bearer <token>` on every call but health checks. Runs inline in gRPC's
// auth filter (IsBlocking false): it only compares strings.
class TokenAuthProcessor final : public grpc::AuthMetadataProcessor {
 public:
  TokenAuthProcessor(const ServerSecurity& security,
                     std::shared_ptr<prometheus::Registry> registry)
      : token_(security.token),
        admin_token_(security.admin_token),
        admin_methods_(security.admin_methods),
        namespace_tokens_(security.namespace_tokens),
        server_(security.server_name),
        registry_(std::move(registry)) {
    if (registry_ != nullptr) {
      failures_ = &prometheus::BuildCounter()
                       .Name("kvpool_rpc_auth_failures_total")
                       .Help("gRPC calls refused by the bearer-token check, by status code")
                       .Register(*registry_);
    }
  }

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed, OutputMetadata*) override {
    std::string path;
    if (auto it = metadata.find(":path"); it != metadata.end()) {
      path.assign(it->second.data(), it->second.size());
    }
    if (path.rfind("/grpc.health.v1.Health/", 0) == 0) return grpc::Status::OK;
    const auto it = metadata.find("authorization");
    if (it == metadata.end()) {
      return Refuse(grpc::StatusCode::UNAUTHENTICATED,
                    "missing bearer token for " + MethodLabel(path) +
                        " (send 'authorization: Bearer <token>')");
    }
    const std::string_view value(it->second.data(), it->second.size());
    constexpr std::string_view kBearer = "Bearer ";
    if (value.substr(0, kBearer.size()) != kBearer) {
      return Refuse(grpc::StatusCode::UNAUTHENTICATED,
                    "the authorization header is not 'Bearer <token>'");
    }
    const std::string_view token = value.substr(kBearer.size());
    const bool admin = !admin_token_.empty() && ConstantTimeEquals(token, admin_token_);
    const bool user = admin || (!token_.empty() && ConstantTimeEquals(token, token_));
    // Every scoped token is compared, matched or not, so the time taken tells nothing.
    const NamespaceToken* scoped = nullptr;
    for (const NamespaceToken& t : namespace_tokens_) {
      if (ConstantTimeEquals(token, t.token)) scoped = &t;
    }
    if (!user && scoped == nullptr) {
      return Refuse(grpc::StatusCode::UNAUTHENTICATED, "wrong bearer token");
    }
    const bool admin_method = admin_methods_.count(path) > 0;
    if (!user && admin_method) {
      return Refuse(grpc::StatusCode::PERMISSION_DENIED,
                    MethodLabel(path) + " needs the admin token (a namespace token never has it)");
    }
    if (!admin && !admin_token_.empty() && admin_method) {
      return Refuse(grpc::StatusCode::PERMISSION_DENIED,
                    MethodLabel(path) + " needs the admin token");
    }
    if (!user) {
      context->AddProperty(kScopedProperty, "1");
      for (const std::string& ns : scoped->namespaces) context->AddProperty(kScopeProperty, ns);
    }
    consumed->insert(std::make_pair(std::string(it->first.data(), it->first.size()),
                                    std::string(value)));
    return grpc::Status::OK;
  }

 private:
  grpc::Status Refuse(grpc::StatusCode code, std::string message) {
    if (failures_ != nullptr) {
      failures_->Add({{"server", server_}, {"code", std::string(StatusCodeName(code))}})
          .Increment();
    }
    return grpc::Status(code, std::move(message));
  }

  const std::string token_;
  const std::string admin_token_;
  const std::set<std::string> admin_methods_;
  const std::vector<NamespaceToken> namespace_tokens_;
  const std::string server_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* failures_ = nullptr;
};

}  // namespace

Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security, std::shared_ptr<prometheus::Registry> registry) {
  const bool tls = !security.cert_pem.empty() || !security.key_pem.empty();
  const bool tokens = !security.token.empty() || !security.admin_token.empty() ||
                      !security.namespace_tokens.empty();
  if (!tls) {
    if (security.require_client_cert) {
      return InvalidArgumentError("tls-require-client-cert needs tls-cert and tls-key");
    }
    if (tokens) {
      return InvalidArgumentError(
          "auth tokens need TLS (tls-cert and tls-key): a token sent in plaintext can be read "
          "on the wire");
    }
    return grpc::InsecureServerCredentials();
  }
  if (security.cert_pem.empty() || security.key_pem.empty()) {
    return InvalidArgumentError("tls-cert and tls-key go together");
  }
  if (security.require_client_cert && security.client_ca_pem.empty()) {
    return InvalidArgumentError("tls-require-client-cert needs tls-ca (the CA of client certs)");
  }
  grpc::SslServerCredentialsOptions ssl(
      security.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_root_certs = security.client_ca_pem;
  ssl.pem_key_cert_pairs.push_back({security.key_pem, security.cert_pem});
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::SslServerCredentials(ssl);
  if (tokens) {
    creds->SetAuthMetadataProcessor(
        std::make_shared<TokenAuthProcessor>(security, std::move(registry)));
  }
  return creds;
}

std::optional<std::vector<std::string>> NamespaceScopeOf(const grpc::ServerContext* ctx) {
  if (ctx == nullptr) return std::nullopt;
  const std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  if (auth == nullptr || auth->FindPropertyValues(kScopedProperty).empty()) return std::nullopt;
  std::vector<std::string> scope;
  for (const grpc::string_ref& v : auth->FindPropertyValues(kScopeProperty)) {
    scope.emplace_back(v.data(), v.size());
  }
  return scope;
}

Status CheckNamespaceAccess(const grpc::ServerContext* ctx, std::string_view ns) {
  const std::optional<std::vector<std::string>> scope = NamespaceScopeOf(ctx);
  if (!scope.has_value() || NamespaceMatches(*scope, ns)) return Status::Ok();
  std::string allowed;
  for (const std::string& p : *scope) allowed += (allowed.empty() ? "" : ", ") + p;
  return PermissionDeniedError("this token may not use namespace " + Quote(ns) +
                               " (it may use: " + allowed + ")");
}

std::set<std::string> MemPoolAdminMethods() {
  return {"/kvpool.v1.MemPool/DeleteNamespace", "/kvpool.v1.MemPool/Evict",
          "/kvpool.v1.MemPool/Drain", "/kvpool.v1.MemPool/Undrain"};
}

std::set<std::string> SchedulerAdminMethods() {
  // DeregisterInstance stays open: instances deregister themselves through libkvpool.
  return {"/kvpool.v1.Scheduler/DeregisterNode"};
}

}  // namespace kvpool::rpc
