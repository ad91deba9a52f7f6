// Layout of a BlockHandle on a node: [namespace id:16][generation:16][slot:32].
//
// The namespace id makes handles of other namespaces detectable; the generation (bumped on
// every free) makes handles of freed or evicted blocks detectable until it wraps after 65536
// reuses of the same slot, and a lease check guards every mutation besides.
#pragma once

#include <cstdint>

#include "kvpool/types.h"

namespace kvpool::node {

struct DecodedHandle {
  uint32_t namespace_id = 0;
  uint16_t generation = 0;
  uint32_t slot = 0;
};

inline BlockHandle EncodeHandle(uint32_t namespace_id, uint16_t generation, uint32_t slot) {
  return (static_cast<uint64_t>(namespace_id & 0xffff) << 48) |
         (static_cast<uint64_t>(generation) << 32) | slot;
}

inline DecodedHandle DecodeHandle(BlockHandle handle) {
  return DecodedHandle{static_cast<uint32_t>(handle >> 48),
                       static_cast<uint16_t>((handle >> 32) & 0xffff),
                       static_cast<uint32_t>(handle & 0xffffffffu)};
}

}  // namespace kvpool::node
