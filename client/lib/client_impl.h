// Client's private state, shared inside libkvpool (DataPlane borrows the lease book).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "client/lib/lease_book.h"
#include "client/lib/slab_key_book.h"
#include "kvpool/client.h"
#include "kvpool/v1/mempool.grpc.pb.h"
#include "rpc/client_channel.h"

namespace kvpool {

struct Client::Impl {
  std::string address;
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::MemPool::Stub> stub;
  /// What this client's leases hold: the data plane checks every transfer against it.
  std::shared_ptr<client_internal::LeaseBook> leases =
      std::make_shared<client_internal::LeaseBook>();
  /// The remote keys of the node's slabs that came with this client's blocks.
  std::shared_ptr<client_internal::SlabKeyBook> slab_keys =
      std::make_shared<client_internal::SlabKeyBook>();

  // Runs one unary RPC with the configured deadline.
  template <typename Req, typename Resp>
  Status Call(grpc::Status (v1::MemPool::Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
              const Req& req, Resp* resp) const {
    return rpc::CallUnary(*stub, method, req, resp, options.timeout_ms);
  }
};

}  // namespace kvpool
