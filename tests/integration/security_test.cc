// TLS, mutual TLS and bearer tokens on real daemons. Certificates are made at test time with
// openssl in a temporary directory; none are committed.
#include <sys/wait.h>

#include <string>
#include <vector>

#include "kvpool/block_hash.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

// A CA, a certificate for 127.0.0.1/localhost signed by it (used by daemons as server and client
// certificate), a client certificate signed by it, and a client certificate of another CA.
struct TestPki {
  explicit TestPki(const TempDir& dir) : dir_(dir) {
    WriteFile(dir.File("san.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    MakeCa("ca");
    MakeCa("rogue-ca");
    MakeCert("node", "ca", "localhost");
    MakeCert("client", "ca", "kvpool-client");
    MakeCert("rogue", "rogue-ca", "kvpool-rogue");
    WriteFile(dir.File("user.token"), "user-secret-1\n");
    WriteFile(dir.File("admin.token"), "admin-secret-2\n");
  }
  std::string File(const std::string& name) const { return dir_.File(name); }

  ClientOptions Client(const std::string& cert, const std::string& token) const {
    ClientOptions o;
    o.connect_timeout_ms = 3'000;
    o.timeout_ms = 5'000;
    o.tls_ca_file = File("ca.pem");
    if (!cert.empty()) {
      o.tls_cert_file = File(cert + ".pem");
      o.tls_key_file = File(cert + ".key");
    }
    o.auth_token = token;
    return o;
  }
  /// kvpoold / kvpool-scheduler flags: mutual TLS and both tokens.
  std::vector<std::string> ServerFlags() const {
    return {"--tls-cert=" + File("node.pem"), "--tls-key=" + File("node.key"),
            "--tls-ca=" + File("ca.pem"), "--tls-require-client-cert",
            "--auth-token-file=" + File("user.token"),
            "--admin-token-file=" + File("admin.token")};
  }

 private:
  void Run(const std::vector<std::string>& argv) {
    std::vector<std::string> full{"/usr/bin/openssl"};
    full.insert(full.end(), argv.begin(), argv.end());
    const CommandResult r = RunCommand(full, 30'000);
    INFO("openssl " << argv[0] << ": " << r.err);
    REQUIRE(r.exit_code == 0);
  }
  void MakeCa(const std::string& name) {
    Run({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", File(name + ".key"), "-out", File(name + ".pem"), "-days", "2", "-subj",
         "/CN=" + name});
  }
  void MakeCert(const std::string& name, const std::string& ca, const std::string& cn) {
    Run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         File(name + ".key"), "-out", File(name + ".csr"), "-subj", "/CN=" + cn});
    Run({"x509", "-req", "-in", File(name + ".csr"), "-CA", File(ca + ".pem"), "-CAkey",
         File(ca + ".key"), "-CAcreateserial", "-out", File(name + ".pem"), "-days", "2",
         "-extfile", File("san.cnf")});
  }
  const TempDir& dir_;
};

std::unique_ptr<launch::LocalKvpoold> StartNode(const TempDir& dir,
                                                std::vector<std::string> flags) {
  launch::LocalKvpooldOptions options;
  options.binary = kKvpooldPath;
  options.work_dir = dir.File("node");
  options.capacity = "64MiB";
  options.extra_args = std::move(flags);
  options.extra_args.push_back("--no-data-plane");
  Result<std::unique_ptr<launch::LocalKvpoold>> started = launch::LocalKvpoold::Start(options);
  if (!started.ok()) {
    FAIL("kvpoold did not start: " << started.status().ToString() << "\n"
                                   << ReadFile(dir.File("node/kvpoold.log")));
  }
  return std::move(started).value();
}

}  // namespace

TEST_CASE("Security: mutual TLS and tokens on kvpoold refuse what they must and keep serving",
          "[integration][security]") {
  TempDir dir;
  TestPki pki(dir);
  auto node = StartNode(dir, pki.ServerFlags());
  const std::string address = node->address();

  // No TLS at all, TLS without a client certificate, and a certificate of another CA: the
  // handshake fails, so the connection is refused.
  ClientOptions plain;
  plain.connect_timeout_ms = 2'000;
  CHECK(!Client::Connect(address, plain).ok());
  CHECK(!Client::Connect(address, pki.Client("", "user-secret-1")).ok());
  CHECK(!Client::Connect(address, pki.Client("rogue", "user-secret-1")).ok());

  // With a certificate: health is open, everything else needs a token.
  auto anonymous = KVPOOL_IT_VALUE(Client::Connect(address, pki.Client("client", "")));
  CHECK(KVPOOL_IT_VALUE(anonymous->Health()));
  KVPOOL_IT_CHECK_ERROR(anonymous->ListNamespaces(), StatusCode::kUnauthenticated,
                        "missing bearer token");
  auto wrong = KVPOOL_IT_VALUE(Client::Connect(address, pki.Client("client", "guess")));
  KVPOOL_IT_CHECK_ERROR(wrong->ListNamespaces(), StatusCode::kUnauthenticated,
                        "wrong bearer token");

  // The ordinary token: data calls work, admin calls are PERMISSION_DENIED.
  auto user = KVPOOL_IT_VALUE(Client::Connect(address, pki.Client("client", "user-secret-1")));
  KVPOOL_IT_REQUIRE_OK(user->CreateNamespace({"t", 16, 4096, "salt-a"}));
  KVPOOL_IT_CHECK_ERROR(user->DeleteNamespace("t"), StatusCode::kPermissionDenied,
                        "DeleteNamespace needs the admin token");
  KVPOOL_IT_CHECK_ERROR(user->Evict("", 1), StatusCode::kPermissionDenied, "Evict");
  CHECK(KVPOOL_IT_VALUE(user->ListNamespaces()).size() == 1);

  // The admin token may do both.
  auto admin = KVPOOL_IT_VALUE(Client::Connect(address, pki.Client("client", "admin-secret-2")));
  KVPOOL_IT_REQUIRE_OK(admin->Evict("", 1));
  KVPOOL_IT_REQUIRE_OK(admin->DeleteNamespace("t"));

  // After all the refusals the server still serves.
  CHECK(KVPOOL_IT_VALUE(user->ListNamespaces()).empty());
  CHECK(node->process().Running());

  // kvpoolctl: the same flags.
  const std::vector<std::string> tls{"--tls-ca", pki.File("ca.pem"), "--tls-cert",
                                     pki.File("client.pem"), "--tls-key", pki.File("client.key")};
  std::vector<std::string> args = tls;
  args.insert(args.end(), {"--token-file", pki.File("admin.token"), "status"});
  const CommandResult ok = RunKvpoolctl(address, args);
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  args = tls;
  args.push_back("namespaces");
  const CommandResult refused = RunKvpoolctl(address, args);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.err, Catch::Contains("UNAUTHENTICATED"));

  // Any libkvpool program without TLS options of its own takes them from the environment.
  ChildProcess from_env({kKvpoolctlPath, "-a", address, "--timeout-ms", "5000", "namespaces"},
                        dir.File("env.out"), dir.File("env.err"),
                        {"KVPOOL_TLS_CA=" + pki.File("ca.pem"),
                         "KVPOOL_TLS_CERT=" + pki.File("client.pem"),
                         "KVPOOL_TLS_KEY=" + pki.File("client.key"),
                         "KVPOOL_TOKEN_FILE=" + pki.File("user.token")});
  const std::optional<int> env_status = from_env.Wait(20'000);
  INFO(ReadFile(dir.File("env.out")) << ReadFile(dir.File("env.err")));
  REQUIRE(env_status.has_value());
  CHECK(WIFEXITED(*env_status));
  CHECK(WEXITSTATUS(*env_status) == 0);
}

TEST_CASE("Security: a node joins a mutual-TLS scheduler with its certificate and admin token",
          "[integration][security]") {
  TempDir dir;
  TestPki pki(dir);
  const std::string port_file = dir.File("scheduler.port");
  std::vector<std::string> argv{kSchedulerPath, "--listen=127.0.0.1:0",
                                "--port-file=" + port_file, "--expire-interval-ms=100"};
  for (const std::string& f : pki.ServerFlags()) argv.push_back(f);
  ChildProcess scheduler(argv, dir.File("scheduler.out"), dir.File("scheduler.err"));
  const bool up = PollUntil(15'000, [&] { return !ReadFile(port_file).empty(); });
  INFO("scheduler log:\n" << ReadFile(dir.File("scheduler.err")));
  REQUIRE(up);
  const std::string sched_address = "127.0.0.1:" + std::to_string(std::stoi(ReadFile(port_file)));

  std::vector<std::string> node_flags = pki.ServerFlags();
  node_flags.insert(node_flags.end(), {"--scheduler=" + sched_address, "--node-id=secure-node",
                                       "--scheduler-heartbeat-ms=200"});
  auto node = StartNode(dir, node_flags);
  auto user = KVPOOL_IT_VALUE(
      Client::Connect(node->address(), pki.Client("client", "user-secret-1")));
  KVPOOL_IT_REQUIRE_OK(user->CreateNamespace({"s", 16, 4096, ""}));
  const std::vector<uint32_t> prompt = MakeTokens(2 * 16, 3);
  const Allocation alloc = KVPOOL_IT_VALUE(user->AllocMem("s", 2));
  KVPOOL_IT_REQUIRE_OK(user->Insert("s", PromptView::Tokens(prompt), 0, HandlesOf(alloc),
                                    alloc.lease.id));

  auto sched = KVPOOL_IT_VALUE(
      SchedulerClient::Connect(sched_address, pki.Client("client", "user-secret-1")));
  std::vector<PoolNode> nodes;
  const bool synced = PollUntil(10'000, [&] {
    Result<std::vector<PoolNode>> listed = sched->ListNodes();
    if (!listed.ok()) return false;
    nodes = *listed;
    return nodes.size() == 1 && nodes[0].synced && nodes[0].indexed_blocks.total() == 2;
  });
  INFO("node log:\n" << ReadFile(node->log_path()));
  CHECK(synced);

  // A scheduler client without a certificate never gets in.
  CHECK(!SchedulerClient::Connect(sched_address, pki.Client("", "user-secret-1")).ok());
}

TEST_CASE("Security: Drain and Undrain need the admin token", "[integration][security]") {
  TempDir dir;
  TestPki pki(dir);
  auto node = StartNode(dir, pki.ServerFlags());
  auto user = KVPOOL_IT_VALUE(
      Client::Connect(node->address(), pki.Client("client", "user-secret-1")));
  KVPOOL_IT_CHECK_ERROR(user->Drain(), StatusCode::kPermissionDenied,
                        "Drain needs the admin token");
  KVPOOL_IT_CHECK_ERROR(user->Undrain(), StatusCode::kPermissionDenied,
                        "Undrain needs the admin token");
  const std::vector<std::string> tls{"--tls-ca", pki.File("ca.pem"), "--tls-cert",
                                     pki.File("client.pem"), "--tls-key", pki.File("client.key")};
  std::vector<std::string> args = tls;
  args.insert(args.end(), {"--token-file", pki.File("user.token"), "drain"});
  const CommandResult refused = RunKvpoolctl(node->address(), args);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.err, Catch::Contains("PERMISSION_DENIED"));

  auto admin = KVPOOL_IT_VALUE(
      Client::Connect(node->address(), pki.Client("client", "admin-secret-2")));
  CHECK_FALSE(KVPOOL_IT_VALUE(admin->Drain()).was_draining);
  args = tls;
  args.insert(args.end(), {"--token-file", pki.File("admin.token"), "undrain"});
  const CommandResult undrained = RunKvpoolctl(node->address(), args);
  CHECK(undrained.exit_code == 0);
  CHECK_THAT(undrained.out, Catch::Contains("back in service"));
  CHECK(node->process().Running());
}

TEST_CASE("Security: a namespace-scoped token reaches only its namespaces and their leases",
          "[integration][security]") {
  TempDir dir;
  TestPki pki(dir);
  WriteFile(dir.File("ns.tokens"),
            "# token            namespaces\n"
            "tenant-a-secret    tenant-a, shared-*\n"
            "\n"
            "tenant-b-secret    tenant-b\n");
  std::vector<std::string> flags = pki.ServerFlags();
  flags.push_back("--namespace-tokens-file=" + dir.File("ns.tokens"));
  auto node = StartNode(dir, flags);
  const std::string address = node->address();
  auto admin = KVPOOL_IT_VALUE(Client::Connect(address, pki.Client("client", "admin-secret-2")));
  auto a = KVPOOL_IT_VALUE(Client::Connect(address, pki.Client("client", "tenant-a-secret")));
  auto b = KVPOOL_IT_VALUE(Client::Connect(address, pki.Client("client", "tenant-b-secret")));

  // Each tenant creates and uses its own namespaces; the other's are PERMISSION_DENIED.
  KVPOOL_IT_REQUIRE_OK(a->CreateNamespace({"tenant-a", 16, 4096, "salt-a"}));
  KVPOOL_IT_REQUIRE_OK(a->CreateNamespace({"shared-docs", 16, 4096, ""}));
  KVPOOL_IT_CHECK_ERROR(a->CreateNamespace({"tenant-b", 16, 4096, ""}),
                        StatusCode::kPermissionDenied, "may not use namespace 'tenant-b'");
  KVPOOL_IT_REQUIRE_OK(b->CreateNamespace({"tenant-b", 16, 4096, "salt-b"}));
  KVPOOL_IT_REQUIRE_OK(admin->CreateNamespace({"ops", 16, 4096, ""}));

  const std::vector<uint32_t> prompt = MakeTokens(2 * 16, 4);
  const Allocation a_alloc = KVPOOL_IT_VALUE(a->AllocMem("tenant-a", 2));
  KVPOOL_IT_REQUIRE_OK(a->Insert("tenant-a", PromptView::Tokens(prompt), 0, HandlesOf(a_alloc),
                                 a_alloc.lease.id));
  CHECK(KVPOOL_IT_VALUE(a->Match("tenant-a", PromptView::Tokens(prompt))).matched_blocks == 2);
  const Allocation b_alloc = KVPOOL_IT_VALUE(b->AllocMem("tenant-b", 2));

  // Calls naming the other namespace: nothing runs, nothing is handed out.
  KVPOOL_IT_CHECK_ERROR(b->Match("tenant-a", PromptView::Tokens(prompt)),
                        StatusCode::kPermissionDenied, "may not use namespace 'tenant-a'");
  KVPOOL_IT_CHECK_ERROR(b->AllocMem("tenant-a", 1), StatusCode::kPermissionDenied, "tenant-a");
  KVPOOL_IT_CHECK_ERROR(b->Exists("tenant-a", PromptView::Tokens(prompt)),
                        StatusCode::kPermissionDenied, "tenant-a");
  KVPOOL_IT_CHECK_ERROR(b->GetNamespace("tenant-a"), StatusCode::kPermissionDenied, "tenant-a");
  KVPOOL_IT_CHECK_ERROR(b->Delete("tenant-a", PromptView::Tokens(prompt)),
                        StatusCode::kPermissionDenied, "tenant-a");
  KVPOOL_IT_CHECK_ERROR(b->AllocMem("ops", 1), StatusCode::kPermissionDenied, "'ops'");
  // ... or a lease of it: its blocks' addresses and the lease itself stay the owner's.
  KVPOOL_IT_CHECK_ERROR(b->ResolveBlocks(a_alloc.lease.id, HandlesOf(a_alloc), false),
                        StatusCode::kPermissionDenied, "tenant-a");
  KVPOOL_IT_CHECK_ERROR(b->Renew(a_alloc.lease.id), StatusCode::kPermissionDenied, "tenant-a");
  KVPOOL_IT_CHECK_ERROR(b->Release(a_alloc.lease.id), StatusCode::kPermissionDenied,
                        "tenant-a");
  KVPOOL_IT_CHECK_ERROR(b->TransferToNode(a_alloc.lease.id, HandlesOf(a_alloc),
                                          NodeBlocks{"elsewhere", b_alloc.lease.id,
                                                     HandlesOf(b_alloc)}),
                        StatusCode::kPermissionDenied, "tenant-a");
  KVPOOL_IT_CHECK_ERROR(a->Release(b_alloc.lease.id), StatusCode::kPermissionDenied,
                        "tenant-b");
  // Admin methods are never a tenant's.
  KVPOOL_IT_CHECK_ERROR(a->Evict("tenant-a", 1), StatusCode::kPermissionDenied,
                        "needs the admin token");
  KVPOOL_IT_CHECK_ERROR(a->DeleteNamespace("tenant-a"), StatusCode::kPermissionDenied,
                        "needs the admin token");

  // Listings show a tenant only its namespaces; the admin token sees all.
  auto names = [](const std::vector<NamespaceInfo>& infos) {
    std::vector<std::string> out;
    for (const NamespaceInfo& i : infos) out.push_back(i.spec.name);
    return out;
  };
  CHECK(names(KVPOOL_IT_VALUE(a->ListNamespaces())) ==
        std::vector<std::string>{"shared-docs", "tenant-a"});
  CHECK(names(KVPOOL_IT_VALUE(b->GetStats()).namespaces) == std::vector<std::string>{"tenant-b"});
  CHECK(names(KVPOOL_IT_VALUE(admin->ListNamespaces())).size() == 4);

  // The owner's own lease calls work; the server still serves everyone.
  KVPOOL_IT_VALUE(a->Renew(a_alloc.lease.id));
  KVPOOL_IT_VALUE(a->Release(a_alloc.lease.id));
  KVPOOL_IT_VALUE(b->Release(b_alloc.lease.id));
  auto wrong = KVPOOL_IT_VALUE(Client::Connect(address, pki.Client("client", "tenant-c-secret")));
  KVPOOL_IT_CHECK_ERROR(wrong->ListNamespaces(), StatusCode::kUnauthenticated,
                        "wrong bearer token");
  CHECK(node->process().Running());
}

TEST_CASE("Security: namespaces with different salts never match each other's prefixes",
          "[integration][security]") {
  TestDaemon d;
  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace({"tenant-a", 16, 4096, "salt-a"}));
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace({"tenant-b", 16, 4096, "salt-b"}));
  const std::vector<uint32_t> prompt = MakeTokens(4 * 16, 9);
  const Allocation alloc = KVPOOL_IT_VALUE(c.AllocMem("tenant-a", 4));
  KVPOOL_IT_REQUIRE_OK(c.Insert("tenant-a", PromptView::Tokens(prompt), 0, HandlesOf(alloc),
                                alloc.lease.id));
  CHECK(KVPOOL_IT_VALUE(c.Match("tenant-a", PromptView::Tokens(prompt))).matched_blocks == 4);
  // Equal tokens under the other salt: nothing, by tokens or by tenant A's hashes.
  CHECK(KVPOOL_IT_VALUE(c.Match("tenant-b", PromptView::Tokens(prompt))).matched_blocks == 0);
  const std::vector<BlockHash> a_hashes = BlockHasher("tenant-a", "salt-a", 16).HashPrompt(prompt);
  CHECK(KVPOOL_IT_VALUE(c.Match("tenant-b", PromptView::Hashes(a_hashes))).matched_blocks == 0);
  // The same namespace name with another salt hashes every block differently.
  const std::vector<BlockHash> other = BlockHasher("tenant-a", "salt-b", 16).HashPrompt(prompt);
  for (size_t i = 0; i < a_hashes.size(); ++i) CHECK(a_hashes[i] != other[i]);
}

}  // namespace kvpool::itest
