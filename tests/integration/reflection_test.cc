// Server reflection is on: a generic client (no generated reflection stubs are installed by
// Debian) asks kvpoold to list its services, as grpcurl would.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "daemon_fixture.h"

namespace kvpool::itest {
namespace {

// Waits for the completion of `tag` on `cq`; false if the operation failed or timed out.
bool Await(grpc::CompletionQueue& cq, void* tag) {
  void* got = nullptr;
  bool ok = false;
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);
  if (cq.AsyncNext(&got, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) return false;
  return got == tag && ok;
}

std::string ByteBufferToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return {};
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

}  // namespace

TEST_CASE("kvpoold: server reflection lists the MemPool and health services", "[integration]") {
  TestDaemon d;
  auto channel = grpc::CreateChannel(d.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  REQUIRE(call);
  int start = 0, write = 0, done = 0, read = 0, finish = 0;
  call->StartCall(&start);
  REQUIRE(Await(cq, &start));
  // ServerReflectionRequest { list_services = "" }: field 7, length-delimited, empty.
  const std::string request("\x3a\x00", 2);
  grpc::Slice slice(request);
  grpc::ByteBuffer out_buffer(&slice, 1);
  call->Write(out_buffer, &write);
  REQUIRE(Await(cq, &write));
  call->WritesDone(&done);
  REQUIRE(Await(cq, &done));
  grpc::ByteBuffer in_buffer;
  call->Read(&in_buffer, &read);
  REQUIRE(Await(cq, &read));
  const std::string response = ByteBufferToString(in_buffer);
  CHECK_THAT(response, Catch::Contains("kvpool.v1.MemPool"));
  CHECK_THAT(response, Catch::Contains("grpc.health.v1.Health"));
  grpc::Status status;
  call->Finish(&status, &finish);
  REQUIRE(Await(cq, &finish));
  CHECK(status.ok());
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace kvpool::itest
