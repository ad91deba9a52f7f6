#include "workload/trace.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <system_error>

#include "workload/random_internal.h"

namespace kvpool::workload {
namespace {

using Json = nlohmann::json;

// A JSON value for an error message, cut so a wrongly typed 400-element array stays readable.
std::string Shown(const Json& value) {
  constexpr size_t kMaxChars = 60;
  std::string text = value.dump();
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

std::string Where(std::string_view source, uint64_t line) {
  return std::string(source) + ":" + std::to_string(line) + ": ";
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; the id helps nobody.
std::string JsonMessage(const nlohmann::json::exception& e) {
  std::string_view text = e.what();
  if (!text.empty() && text.front() == '[') {
    const size_t end = text.find("] ");
    if (end != std::string_view::npos) text.remove_prefix(end + 2);
  }
  return std::string(text);
}

// Reads a non-negative integer field no larger than `max`.
Result<uint64_t> UnsignedField(const Json& object, const char* name, uint64_t max) {
  const auto it = object.find(name);
  if (it == object.end()) return InvalidArgumentError(std::string("missing field '") + name + "'");
  if (it->is_number_unsigned()) {
    const uint64_t value = it->get<uint64_t>();
    if (value > max) {
      return InvalidArgumentError(std::string(name) + " is out of range, at most " +
                                  std::to_string(max) + " (" + std::to_string(value) + ")");
    }
    return value;
  }
  if (it->is_number_integer()) {
    return InvalidArgumentError(std::string(name) + " is negative (" + Shown(*it) + ")");
  }
  return InvalidArgumentError(std::string(name) + " must be a non-negative integer (" +
                              Shown(*it) + ")");
}

Result<std::vector<uint64_t>> HashIdsField(const Json& object) {
  const auto it = object.find("hash_ids");
  if (it == object.end()) return InvalidArgumentError("missing field 'hash_ids'");
  if (!it->is_array()) {
    return InvalidArgumentError("hash_ids must be an array of non-negative integers (" +
                                Shown(*it) + ")");
  }
  std::vector<uint64_t> ids;
  ids.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& id = (*it)[i];
    if (!id.is_number_unsigned()) {
      return InvalidArgumentError("hash_ids[" + std::to_string(i) + "] " +
                                  (id.is_number_integer() ? "is negative"
                                                          : "must be a non-negative integer") +
                                  " (" + Shown(id) + ")");
    }
    ids.push_back(id.get<uint64_t>());
  }
  return ids;
}

// The rules shared by parsing and writing; `previous_ms` is the previous request's timestamp.
Status CheckRequest(const TraceRequest& r, uint64_t previous_ms) {
  if (r.input_length == 0) return InvalidArgumentError("input_length must be positive (0)");
  const uint64_t want = TraceBlockCount(r.input_length);
  if (r.hash_ids.size() != want) {
    return InvalidArgumentError("hash_ids has " + std::to_string(r.hash_ids.size()) +
                                " ids, but input_length " + std::to_string(r.input_length) +
                                " needs ceil(" + std::to_string(r.input_length) + " / " +
                                std::to_string(kTraceBlockTokens) + ") = " +
                                std::to_string(want));
  }
  if (r.timestamp_ms < previous_ms) {
    return InvalidArgumentError("timestamp goes backwards (" + std::to_string(r.timestamp_ms) +
                                " after " + std::to_string(previous_ms) + ")");
  }
  return Status::Ok();
}

Result<TraceRequest> ParseLine(std::string_view line, uint64_t previous_ms) {
  Json object;
  try {
    object = Json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError("malformed JSON: " + JsonMessage(e));
  }
  if (!object.is_object()) {
    return InvalidArgumentError("expected a JSON object (" + Shown(object) + ")");
  }
  TraceRequest r;
  KVPOOL_ASSIGN_OR_RETURN(r.timestamp_ms, UnsignedField(object, "timestamp",
                                                        std::numeric_limits<uint64_t>::max()));
  KVPOOL_ASSIGN_OR_RETURN(const uint64_t input,
                          UnsignedField(object, "input_length",
                                        std::numeric_limits<uint32_t>::max()));
  KVPOOL_ASSIGN_OR_RETURN(const uint64_t output,
                          UnsignedField(object, "output_length",
                                        std::numeric_limits<uint32_t>::max()));
  r.input_length = static_cast<uint32_t>(input);
  r.output_length = static_cast<uint32_t>(output);
  KVPOOL_ASSIGN_OR_RETURN(r.hash_ids, HashIdsField(object));
  KVPOOL_RETURN_IF_ERROR(CheckRequest(r, previous_ms));
  return r;
}

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

Status OpenError(const std::string& what, const std::string& path, int error) {
  std::string message = "cannot " + what + " '" + path + "': " + std::strerror(error);
  if (error == ENOENT || error == ENOTDIR) return NotFoundError(std::move(message));
  if (error == EACCES || error == EPERM || error == EROFS) {
    return PermissionDeniedError(std::move(message));
  }
  return UnavailableError(std::move(message));
}

void AppendNumber(std::string* out, uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out->append(buffer, result.ptr);
}

}  // namespace

Result<std::vector<TraceRequest>> ParseTrace(std::istream& in, std::string_view source_name) {
  std::vector<TraceRequest> requests;
  std::string line;
  uint64_t line_number = 0;
  uint64_t first_blank_line = 0;  // 0: none yet
  uint64_t previous_ms = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (IsBlank(line)) {
      if (first_blank_line == 0) first_blank_line = line_number;
      continue;
    }
    if (first_blank_line != 0) {
      return InvalidArgumentError(Where(source_name, first_blank_line) +
                                  "empty line before the end of the trace (line " +
                                  std::to_string(line_number) + " follows it)");
    }
    auto request = ParseLine(line, previous_ms);
    if (!request.ok()) {
      return InvalidArgumentError(Where(source_name, line_number) + request.status().message());
    }
    previous_ms = request->timestamp_ms;
    requests.push_back(std::move(request).value());
  }
  if (in.bad()) {
    return DataLossError(Where(source_name, line_number + 1) + "read error");
  }
  return requests;
}

Result<std::vector<TraceRequest>> ReadTrace(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return OpenError("open trace file", path, errno != 0 ? errno : ENOENT);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return OpenError("read trace file", path, EISDIR);
  return ParseTrace(in, path);
}

Status ValidateTrace(std::span<const TraceRequest> requests) {
  uint64_t previous_ms = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const Status status = CheckRequest(requests[i], previous_ms);
    if (!status.ok()) {
      return InvalidArgumentError("requests[" + std::to_string(i) + "]: " + status.message());
    }
    previous_ms = requests[i].timestamp_ms;
  }
  return Status::Ok();
}

Status WriteTrace(std::span<const TraceRequest> requests, std::ostream& out) {
  KVPOOL_RETURN_IF_ERROR(ValidateTrace(requests));
  std::string line;
  for (const TraceRequest& r : requests) {
    line.clear();
    line += "{\"timestamp\": ";
    AppendNumber(&line, r.timestamp_ms);
    line += ", \"input_length\": ";
    AppendNumber(&line, r.input_length);
    line += ", \"output_length\": ";
    AppendNumber(&line, r.output_length);
    line += ", \"hash_ids\": [";
    for (size_t i = 0; i < r.hash_ids.size(); ++i) {
      if (i != 0) line += ", ";
      AppendNumber(&line, r.hash_ids[i]);
    }
    line += "]}\n";
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
  out.flush();
  if (!out) return DataLossError("writing the trace failed");
  return Status::Ok();
}

Status WriteTrace(std::span<const TraceRequest> requests, const std::string& path) {
  KVPOOL_RETURN_IF_ERROR(ValidateTrace(requests));
  const std::string temp_path = path + ".tmp";
  {
    errno = 0;
    std::ofstream out(temp_path, std::ios::binary | std::ios::trunc);
    if (!out) return OpenError("create trace file", temp_path, errno != 0 ? errno : EIO);
    Status status = WriteTrace(requests, out);
    out.close();
    if (status.ok() && !out) status = DataLossError("closing the trace failed");
    if (!status.ok()) {
      std::remove(temp_path.c_str());
      return status.WithContext(temp_path);
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp_path, path, ec);
  if (ec) {
    std::remove(temp_path.c_str());
    return OpenError("rename the trace to", path, ec.value());
  }
  return Status::Ok();
}

namespace {
void AppendBlockTokens(uint64_t hash_id, uint32_t count, std::vector<uint32_t>* out) {
  // Mixing the id first keeps the streams of consecutive ids (0, 1, 2, ...) far apart in
  // SplitMix64's sequence.
  internal::Rng rng(internal::Mix64(hash_id));
  for (uint32_t i = 0; i < count; ++i) {
    // Multiply-shift maps the top 32 bits onto [0, vocab) without a division.
    out->push_back(static_cast<uint32_t>(((rng.Next() >> 32) * kPseudoTokenVocab) >> 32));
  }
}
}  // namespace

std::vector<uint32_t> ExpandBlockTokens(uint64_t hash_id, uint32_t count) {
  std::vector<uint32_t> tokens;
  tokens.reserve(std::min(count, kTraceBlockTokens));
  AppendBlockTokens(hash_id, std::min(count, kTraceBlockTokens), &tokens);
  return tokens;
}

std::vector<uint32_t> ExpandTokens(const TraceRequest& request) {
  std::vector<uint32_t> tokens;
  tokens.reserve(request.input_length);
  for (size_t i = 0; i < request.hash_ids.size(); ++i) {
    const uint32_t count = TraceBlockTokens(request.input_length, i);
    if (count == 0) break;
    AppendBlockTokens(request.hash_ids[i], count, &tokens);
  }
  return tokens;
}

}  // namespace kvpool::workload
