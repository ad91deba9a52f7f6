#include "rpc/client_channel.h"

#include <string>

#include "rpc/security.h"

namespace kvpool::rpc {

std::shared_ptr<grpc::Channel> CreateChannel(std::string_view address, uint64_t max_message_bytes,
                                             bool fast_reconnect) {
  return CreateChannel(address, max_message_bytes, fast_reconnect,
                       MakeChannelCredentials(DefaultChannelSecurity()));
}

std::shared_ptr<grpc::Channel> CreateChannel(std::string_view address, uint64_t max_message_bytes,
                                             bool fast_reconnect,
                                             std::shared_ptr<grpc::ChannelCredentials> creds) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(max_message_bytes));
  if (fast_reconnect) {
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  }
  return grpc::CreateCustomChannel(std::string(address), std::move(creds), args);
}

Status WaitConnected(grpc::Channel& channel, uint32_t timeout_ms, bool fail_on_refused,
                     std::string_view server_name, std::string_view address) {
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string what = "cannot reach " + std::string(server_name) + " at " +
                           std::string(address);
  for (;;) {
    const grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) return Status::Ok();
    if (fail_on_refused &&
        (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN)) {
      return UnavailableError(what + " (connection failed)");
    }
    if (!channel.WaitForStateChange(state, deadline)) {
      return UnavailableError(what + " within " + std::to_string(timeout_ms) + " ms");
    }
  }
}

Result<std::shared_ptr<grpc::Channel>> OpenChannel(std::string_view address,
                                                   const ClientOptions& options,
                                                   std::string_view server_name,
                                                   bool fast_reconnect) {
  if (address.empty()) return InvalidArgumentError("address must not be empty");
  ChannelSecurity security = DefaultChannelSecurity();
  if (HasChannelSecurity(options)) {
    KVPOOL_ASSIGN_OR_RETURN(security, LoadChannelSecurity(options));
  }
  auto channel = CreateChannel(address, options.max_message_bytes, fast_reconnect,
                               MakeChannelCredentials(security));
  KVPOOL_RETURN_IF_ERROR(WaitConnected(*channel, options.connect_timeout_ms,
                                       /*fail_on_refused=*/false, server_name, address));
  return channel;
}

std::unique_ptr<grpc::ClientContext> DeadlineContext(uint32_t timeout_ms) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return ctx;
}

}  // namespace kvpool::rpc
