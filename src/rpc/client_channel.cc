#include "rpc/client_channel.h"

#include <string>

namespace kvpool::rpc {

Result<std::shared_ptr<grpc::Channel>> OpenChannel(std::string_view address,
                                                   const ClientOptions& options,
                                                   std::string_view server_name,
                                                   bool fast_reconnect) {
  if (address.empty()) return InvalidArgumentError("address must not be empty");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  if (fast_reconnect) {
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  }
  auto channel =
      grpc::CreateCustomChannel(std::string(address), grpc::InsecureChannelCredentials(), args);
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::milliseconds(options.connect_timeout_ms);
  if (!channel->WaitForConnected(deadline)) {
    return UnavailableError("cannot reach " + std::string(server_name) + " at " +
                            std::string(address) + " within " +
                            std::to_string(options.connect_timeout_ms) + " ms");
  }
  return channel;
}

std::unique_ptr<grpc::ClientContext> DeadlineContext(uint32_t timeout_ms) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return ctx;
}

}  // namespace kvpool::rpc
