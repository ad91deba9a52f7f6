// Process-wide malloc settings for processes that move KV blocks through heap buffers.
#pragma once

namespace kvpool {

/// Keeps glibc's malloc from giving every large buffer fresh pages.
///
/// RocksDB allocates a new buffer for every blob it reads (and the SSD tier's read-ahead a
/// value string per block), each about a block in size. Past glibc's mmap threshold (128 KiB
/// at first, adjusted as buffers are freed) each such buffer is a new mmap, and its first use
/// faults in every page: a promotion then spends most of its time in page faults (3x slower
/// here, docs/storage.md "Speed"). This serves allocations up to 32 MiB from the heap and
/// returns freed heap memory to the system only past 256 MiB at its top, so freed block
/// buffers are reused. Call once, at the start of main, before threads start (kvpoold and
/// kvpool-bench do). Returns false if glibc refused a setting.
bool TuneMallocForBlockBuffers();

}  // namespace kvpool
