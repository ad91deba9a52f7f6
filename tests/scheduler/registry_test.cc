#include "scheduler/registry.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include <string>
#include <vector>

#include "common/clock.h"
#include "scheduler/global_index.h"
#include "scheduler_test_util.h"

namespace kvpool::scheduler {
namespace {

NodeRegistration Node(const std::string& id, uint64_t host_bytes = 1 << 30) {
  return NodeRegistration{id, id + ":7000", "ucx-" + id, TierBytes{0, host_bytes, 0}};
}

TEST_CASE("Registry: nodes register, heartbeat and expire after the timeout", "[scheduler]") {
  ManualClock clock;
  Registry registry(RegistryOptions{/*node_timeout_ms=*/1000, /*instance_timeout_ms=*/500},
                    &clock);
  REQUIRE(registry.RegisterNode(Node("a"))->new_member);
  REQUIRE(registry.RegisterNode(Node("b"))->new_member);
  const NodeInfo* a = registry.FindNode("a");
  REQUIRE(a != nullptr);
  REQUIRE(a->address == "a:7000");
  REQUIRE(a->ucx_worker_address == "ucx-a");
  REQUIRE(a->capacity_bytes.host == 1 << 30);

  clock.AdvanceMs(800);
  REQUIRE(registry.NodeHeartbeat("a", TierBytes{0, 4096, 0}).ok());
  REQUIRE(registry.FindNode("a")->used_bytes == TierBytes{0, 4096, 0});
  clock.AdvanceMs(300);  // b: 1100 ms since its last heartbeat; a: 300 ms.
  REQUIRE(registry.IsAlive(*registry.FindNode("a"), clock.NowMs()));
  REQUIRE_FALSE(registry.IsAlive(*registry.FindNode("b"), clock.NowMs()));

  ExpiredMembers expired = registry.ExpireDead();
  REQUIRE(expired.nodes == std::vector<std::string>{"b"});
  REQUIRE(expired.instances.empty());
  REQUIRE(registry.FindNode("b") == nullptr);
  REQUIRE(registry.NodeHeartbeat("b").code() == StatusCode::kNotFound);
  // Exactly at the timeout a node is still alive.
  clock.AdvanceMs(700);
  REQUIRE(registry.ExpireDead().nodes.empty());
  clock.AdvanceMs(1);
  REQUIRE(registry.ExpireDead().nodes == std::vector<std::string>{"a"});
}

TEST_CASE("Registry: the caller drops an expired node's blocks from the index", "[scheduler]") {
  ManualClock clock;
  Registry registry(RegistryOptions{1000, 1000}, &clock);
  GlobalIndex index;
  REQUIRE(registry.RegisterNode(Node("a")).ok());
  testing::Join(index, "a");
  testing::Store(index, "a", 1, "m", testing::Range(0, 10));
  clock.AdvanceMs(5000);
  for (const std::string& node : registry.ExpireDead().nodes) index.DropNode(node);
  REQUIRE(index.blocks() == 0);
}

TEST_CASE("Registry: a node that reconnects with a new capacity is updated", "[scheduler]") {
  ManualClock clock;
  Registry registry(RegistryOptions{}, &clock);
  REQUIRE(registry.RegisterNode(Node("a", 100)).ok());
  REQUIRE(registry.NodeHeartbeat("a", TierBytes{0, 50, 0}).ok());
  Result<RegisterOutcome> same = registry.RegisterNode(Node("a", 100));
  REQUIRE_FALSE(same->new_member);
  REQUIRE_FALSE(same->changed);
  Result<RegisterOutcome> bigger = registry.RegisterNode(Node("a", 200));
  REQUIRE_FALSE(bigger->new_member);
  REQUIRE(bigger->changed);
  REQUIRE(registry.FindNode("a")->capacity_bytes.host == 200);
  REQUIRE(registry.FindNode("a")->used_bytes == TierBytes{0, 50, 0});
  REQUIRE(registry.nodes().size() == 1);
}

TEST_CASE("Registry: bad registrations and unknown ids are refused clearly", "[scheduler]") {
  ManualClock clock;
  Registry registry(RegistryOptions{}, &clock);
  REQUIRE(registry.RegisterNode(NodeRegistration{"", "x:1", "", {}}).status().code() ==
          StatusCode::kInvalidArgument);
  REQUIRE(registry.RegisterNode(NodeRegistration{"a", "", "", {}}).status().code() ==
          StatusCode::kInvalidArgument);
  REQUIRE(registry.RegisterInstance(InstanceRegistration{"", InstanceRole::kPrefill, "a", 0})
              .status()
              .code() == StatusCode::kInvalidArgument);
  InstanceRegistration bad_role{"i", static_cast<InstanceRole>(7), "a", 0};
  REQUIRE(registry.RegisterInstance(bad_role).status().code() == StatusCode::kInvalidArgument);
  Status unknown = registry.ReportLoad("nope", {});
  REQUIRE(unknown.code() == StatusCode::kNotFound);
  REQUIRE_THAT(unknown.message(), Catch::Contains("nope"));
  REQUIRE(registry.NoteRouted("nope", 10).code() == StatusCode::kNotFound);
  REQUIRE(registry.RemoveInstance("nope").code() == StatusCode::kNotFound);
  REQUIRE(registry.RemoveNode("nope").code() == StatusCode::kNotFound);
  REQUIRE(RegistryOptions{0, 10}.Validate().code() == StatusCode::kInvalidArgument);
  REQUIRE(RegistryOptions{10, -1}.Validate().code() == StatusCode::kInvalidArgument);
  REQUIRE(RegistryOptions{}.Validate().ok());
}

TEST_CASE("Registry: routed load counts until the instance's next report", "[scheduler]") {
  ManualClock clock;
  Registry registry(RegistryOptions{1000, 1000}, &clock);
  REQUIRE(registry.RegisterInstance({"i1", InstanceRole::kPrefill, "a", 8}).ok());
  REQUIRE(registry.ReportLoad("i1", InstanceLoad{100, 2}).ok());
  REQUIRE(registry.NoteRouted("i1", 50).ok());
  REQUIRE(registry.NoteRouted("i1", 25).ok());
  const InstanceInfo* i1 = registry.FindInstance("i1");
  REQUIRE(i1->EstimatedLoad() == InstanceLoad{175, 4});
  REQUIRE(i1->reported == InstanceLoad{100, 2});
  REQUIRE(registry.ReportLoad("i1", InstanceLoad{30, 1}).ok());
  REQUIRE(registry.FindInstance("i1")->EstimatedLoad() == InstanceLoad{30, 1});
}

TEST_CASE("Registry: a reported queue time grows by the routed prefill estimates",
          "[scheduler]") {
  ManualClock clock;
  Registry registry(RegistryOptions{1000, 1000}, &clock);
  REQUIRE(registry.RegisterInstance({"i1", InstanceRole::kColocated, "a", 0}).ok());
  // Without a reported queue time the routed seconds are not added to anything.
  REQUIRE(registry.NoteRouted("i1", 10, 0.25).ok());
  REQUIRE(registry.FindInstance("i1")->EstimatedLoad() == InstanceLoad{10, 1, 0});
  REQUIRE(registry.ReportLoad("i1", InstanceLoad{100, 2, 0.5}).ok());
  REQUIRE(registry.NoteRouted("i1", 50, 0.25).ok());
  REQUIRE(registry.NoteRouted("i1", 25, 0.125).ok());
  REQUIRE(registry.FindInstance("i1")->EstimatedLoad() == InstanceLoad{175, 4, 0.875});

  // A bad queue time is refused, naming it, and the last good report stays.
  for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    Status st = registry.ReportLoad("i1", InstanceLoad{1, 1, bad});
    REQUIRE(st.code() == StatusCode::kInvalidArgument);
    REQUIRE_THAT(st.message(), Catch::Contains("queued_prefill_s"));
  }
  REQUIRE(registry.FindInstance("i1")->reported == InstanceLoad{100, 2, 0.5});
  REQUIRE(registry.ReportLoad("i1", InstanceLoad{0, 0, 0}).ok());
  REQUIRE(registry.FindInstance("i1")->EstimatedLoad() == InstanceLoad{});
}

TEST_CASE("Registry: instances expire on missed load reports", "[scheduler]") {
  ManualClock clock;
  Registry registry(RegistryOptions{10'000, 1000}, &clock);
  REQUIRE(registry.RegisterInstance({"p", InstanceRole::kPrefill, "a", 0}).ok());
  REQUIRE(registry.RegisterInstance({"d", InstanceRole::kDecode, "a", 0}).ok());
  clock.AdvanceMs(900);
  REQUIRE(registry.ReportLoad("d", {}).ok());
  clock.AdvanceMs(200);
  ExpiredMembers expired = registry.ExpireDead(clock.NowMs());
  REQUIRE(expired.instances == std::vector<std::string>{"p"});
  REQUIRE(registry.FindInstance("d") != nullptr);

  // Re-registering brings it back with a clean load.
  Result<RegisterOutcome> again = registry.RegisterInstance({"p", InstanceRole::kColocated, "b", 0});
  REQUIRE(again->new_member);
  REQUIRE(registry.FindInstance("p")->role == InstanceRole::kColocated);
  Result<RegisterOutcome> moved = registry.RegisterInstance({"d", InstanceRole::kDecode, "c", 0});
  REQUIRE_FALSE(moved->new_member);
  REQUIRE(moved->changed);
}

TEST_CASE("Registry: role names round-trip", "[scheduler]") {
  for (InstanceRole role :
       {InstanceRole::kPrefill, InstanceRole::kDecode, InstanceRole::kColocated}) {
    REQUIRE(*ParseInstanceRole(InstanceRoleName(role)) == role);
  }
  REQUIRE(ParseInstanceRole("both").status().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvpool::scheduler
