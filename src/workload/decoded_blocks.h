// The KV blocks a request's decode completes, named as the trace names them.
//
// An engine that decodes a request holds the KV of its prompt and its generated tokens; once
// the output is done, the full 512-token blocks of that history can be cached for the
// conversation's next turn (SGLang and vLLM cache decoded tokens; MemServe's PD-caching sends
// them back from the decode instance to the prefill one). A Mooncake-format trace has no
// tokens and no conversation ids, so the generated blocks' ids are read off the next turn:
//
//   request r has k = input_length / 512 full blocks and its history m = (input_length +
//   output_length) / 512; if m > k, a later request c continues r when it starts with r's k
//   full ids, is at least input_length + output_length tokens long, and does not repeat r's
//   partial last block. r's decoded blocks are then c.hash_ids[k, m).
//
// Every later request that passes is a candidate (the conversation's next turn, and the ones
// after it, which repeat the same ids). When candidates disagree on ids [k, m) (siblings: two
// questions on one document, two conversations of one tenant whose prompt is still the system
// prompt), r gets none: it is left without decoded blocks rather than given another request's.
// One sibling alone is indistinguishable from a next turn; in the project's generated traces
// and Mooncake's such a lone sibling is rare, and it can only add the few blocks the answer
// covers.
//
// Thread-safe (a pure function).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "workload/trace.h"

namespace kvpool::workload {

/// For each request of `trace` (in order), the trace ids of the blocks its decode completes
/// (see the file comment); empty when the answer completes no block or no later request
/// continues it unambiguously. O(total blocks) memory; time grows with the candidates per
/// prefix, well under a second for Mooncake's 4,000-request trace.
std::vector<std::vector<uint64_t>> DecodedBlockIds(std::span<const TraceRequest> trace);

}  // namespace kvpool::workload
