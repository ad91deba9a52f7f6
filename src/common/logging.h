// Minimal structured logging: one line per event on stderr,
//   2026-11-23T10:00:00.123Z INFO kvpoold.cc:42] message key=value ...
// Thread-safe. Hot paths must not log per request at INFO.
#pragma once

#include <sstream>
#include <string_view>

namespace kvpool {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

/// Sets the lowest level written. Default: kInfo.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
/// Parses "debug", "info", "warning"/"warn" or "error"; false if unknown.
bool ParseLogLevel(std::string_view text, LogLevel* level);

namespace internal {
/// Accumulates one log line and writes it, atomically, when destroyed.
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};
/// Turns a stream expression into void so both arms of the ?: in KVPOOL_LOG match.
struct LogVoidify {
  void operator&(std::ostream&) {}
};
}  // namespace internal

}  // namespace kvpool

#define KVPOOL_LOG_LEVEL_DEBUG ::kvpool::LogLevel::kDebug
#define KVPOOL_LOG_LEVEL_INFO ::kvpool::LogLevel::kInfo
#define KVPOOL_LOG_LEVEL_WARNING ::kvpool::LogLevel::kWarning
#define KVPOOL_LOG_LEVEL_ERROR ::kvpool::LogLevel::kError

/// KVPOOL_LOG(INFO) << "listening on " << address;
/// The stream expression is not evaluated when the level is below the current one.
#define KVPOOL_LOG(severity)                                                            \
  (KVPOOL_LOG_LEVEL_##severity < ::kvpool::GetLogLevel())                               \
      ? (void)0                                                                         \
      : ::kvpool::internal::LogVoidify() &                                              \
            ::kvpool::internal::LogMessage(KVPOOL_LOG_LEVEL_##severity, __FILE__, __LINE__) \
                .stream()
