#include "kvpool/types.h"

namespace kvpool {

std::string_view TierName(Tier tier) {
  switch (tier) {
    case Tier::kNone: return "none";
    case Tier::kGpu: return "gpu";
    case Tier::kHost: return "host";
    case Tier::kDisk: return "disk";
  }
  return "unknown";
}

}  // namespace kvpool
