// kvpool's one error type: Status and Result<T>.
//
// Every fallible kvpool function returns Status (no value) or Result<T> (a value or an error).
// Codes mirror gRPC's canonical set one to one, so a status crosses the wire unchanged.
// No exception crosses kvpool's code.
#pragma once

#include <cassert>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace kvpool {

/// Canonical status codes; the numeric values equal gRPC's `grpc::StatusCode`.
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

/// The canonical name of `code`, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);

/// The outcome of an operation: OK, or a code and a message that says what was wrong and with
/// which value. Cheap to copy when OK. Thread-compatible (a value type).
class [[nodiscard]] Status {
 public:
  /// An OK status.
  Status() = default;
  /// A status with `code` and `message`; `code == kOk` ignores the message.
  Status(StatusCode code, std::string message)
      : code_(code), message_(code == StatusCode::kOk ? std::string() : std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// "OK" or "CODE_NAME: message".
  std::string ToString() const;

  /// Returns a copy whose message is `context + ": " + message()`; OK stays OK.
  Status WithContext(std::string_view context) const;

  /// Drops the status on purpose. Use it where an error really does not matter, so that every
  /// ignored error is visible and easy to grep.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

std::ostream& operator<<(std::ostream& os, const Status& status);

/// Factory helpers, one per code in common use.
Status CancelledError(std::string message);
Status UnknownError(std::string message);
Status InvalidArgumentError(std::string message);
Status DeadlineExceededError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status PermissionDeniedError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status AbortedError(std::string message);
Status OutOfRangeError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);
Status DataLossError(std::string message);
Status UnauthenticatedError(std::string message);

/// A value of type T or a non-OK Status. Thread-compatible (a value type).
///
/// Accessing value() of an error Result is a programming error (asserts in debug builds).
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::decay_t<T>, Status>, "Result<Status> is not allowed");

 public:
  /// An error result. `status` must not be OK.
  Result(Status status) : status_(std::move(status)) {  // NOLINT(implicit)
    assert(!status_.ok() && "Result constructed from an OK Status without a value");
    if (status_.ok()) status_ = InternalError("Result constructed from OK status without value");
  }
  /// A value result.
  Result(T value) : value_(std::move(value)) {}  // NOLINT(implicit)
  /// Converting constructor from a value convertible to T.
  template <typename U,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                        !std::is_same_v<std::decay_t<U>, T> &&
                                        !std::is_same_v<std::decay_t<U>, Status> &&
                                        !std::is_same_v<std::decay_t<U>, Result<T>>>>
  Result(U&& value) : value_(T(std::forward<U>(value))) {}  // NOLINT(implicit)

  bool ok() const { return value_.has_value(); }
  /// OK when a value is held, else the error.
  const Status& status() const { return status_; }

  const T& value() const& { assert(ok()); return *value_; }
  T& value() & { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  /// The value, or `fallback` on error.
  T value_or(T fallback) const& { return ok() ? *value_ : std::move(fallback); }

 private:
  Status status_;
  std::optional<T> value_;
};

namespace internal {
inline const Status& AsStatus(const Status& s) { return s; }
template <typename T>
const Status& AsStatus(const Result<T>& r) { return r.status(); }
}  // namespace internal

}  // namespace kvpool

#define KVPOOL_CONCAT_INNER_(a, b) a##b
#define KVPOOL_CONCAT_(a, b) KVPOOL_CONCAT_INNER_(a, b)

/// Returns the Status of `expr` (a Status or Result) from the enclosing function if not OK.
/// The status is copied (cheap when OK), so `KVPOOL_RETURN_IF_ERROR(Foo().status())` is safe.
#define KVPOOL_RETURN_IF_ERROR(expr)                                                   \
  do {                                                                                 \
    ::kvpool::Status kvpool_status_ = ::kvpool::internal::AsStatus((expr));            \
    if (!kvpool_status_.ok()) return kvpool_status_;                                   \
  } while (false)

#define KVPOOL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()

/// Evaluates `expr` (a Result<T>); on error returns its Status, else assigns the value to `lhs`
/// (which may be a declaration: `KVPOOL_ASSIGN_OR_RETURN(auto x, Foo());`).
#define KVPOOL_ASSIGN_OR_RETURN(lhs, expr) \
  KVPOOL_ASSIGN_OR_RETURN_IMPL_(KVPOOL_CONCAT_(kvpool_result_, __LINE__), lhs, expr)
