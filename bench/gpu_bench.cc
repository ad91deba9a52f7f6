#include "bench/gpu_bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <vector>

#include "common/table.h"
#include "common/units.h"
#include "memory/device.h"
#include "transport/staged_copier.h"
#include "transport/transfer_engine.h"

namespace kvpool::bench {
namespace {

using Clock = std::chrono::steady_clock;

double GBps(uint64_t bytes, double seconds) { return seconds > 0 ? bytes / seconds / 1e9 : 0; }

// Median seconds of `rounds` runs of `run` (after one warm-up run).
Result<double> MedianSeconds(uint32_t rounds, const std::function<Status()>& run) {
  KVPOOL_RETURN_IF_ERROR(run());
  std::vector<double> seconds;
  for (uint32_t i = 0; i < rounds; ++i) {
    const auto start = Clock::now();
    KVPOOL_RETURN_IF_ERROR(run());
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace

Result<nlohmann::json> RunGpuBench(const GpuBenchOptions& opt, bool quiet) {
  if (opt.block_bytes == 0 || opt.blocks == 0 || opt.rounds == 0) {
    return InvalidArgumentError("block bytes, blocks and rounds must be > 0");
  }
  std::unique_ptr<memory::DeviceRuntime> device;
  if (opt.emulate) {
    device = memory::NewEmulatedDevice();
  } else {
    KVPOOL_ASSIGN_OR_RETURN(device, memory::OpenCudaDevice(opt.device));
  }
  const uint64_t batch = opt.block_bytes * opt.blocks;
  KVPOOL_ASSIGN_OR_RETURN(auto dev, device->AllocateDevice(batch));
  KVPOOL_ASSIGN_OR_RETURN(auto pinned, device->AllocatePinned(batch));
  KVPOOL_ASSIGN_OR_RETURN(auto stream, device->NewStream());

  // The reference: cudaMemcpy of the same bytes between device and pinned host memory.
  auto copy = [&](void* dst, const void* src) -> Status {
    KVPOOL_RETURN_IF_ERROR(stream->CopyAsync(dst, src, batch));
    return stream->Synchronize();
  };
  KVPOOL_ASSIGN_OR_RETURN(const double h2d_s,
                          MedianSeconds(opt.rounds, [&] { return copy(dev->data(), pinned->data()); }));
  KVPOOL_ASSIGN_OR_RETURN(const double d2h_s,
                          MedianSeconds(opt.rounds, [&] { return copy(pinned->data(), dev->data()); }));

  // Two engines on loopback: the device side (this process's "engine") and the pool.
  transport::TransferEngineOptions eo;
  eo.tls = opt.tls;
  eo.name = "bench-gpu-device";
  KVPOOL_ASSIGN_OR_RETURN(auto side, transport::TransferEngine::Create(eo));
  eo.name = "bench-gpu-pool";
  KVPOOL_ASSIGN_OR_RETURN(auto pool, transport::TransferEngine::Create(eo));
  KVPOOL_ASSIGN_OR_RETURN(transport::LocalRegion pool_region, pool->AllocateMemory(batch));
  KVPOOL_ASSIGN_OR_RETURN(transport::PeerId peer, side->Connect(pool->worker_address()));
  const transport::RemoteRegion remote = pool_region.Describe();
  KVPOOL_RETURN_IF_ERROR(side->CompleteWireup(peer, remote, 10'000));
  transport::StagingOptions so;
  so.chunk_bytes = opt.chunk_bytes;
  so.chunks_in_flight = opt.chunks_in_flight;
  so.lanes = 1;
  KVPOOL_ASSIGN_OR_RETURN(auto staging, transport::StagedCopier::Create(side.get(), device.get(), so));

  // Device block i <-> pool block (blocks - 1 - i): scattered, as a KV cache's blocks are.
  std::vector<transport::TransferOp> staged_ops;
  std::vector<transport::TransferOp> pinned_ops;
  for (uint32_t i = 0; i < opt.blocks; ++i) {
    const uint64_t remote_at = remote.address + (opt.blocks - 1 - i) * opt.block_bytes;
    staged_ops.push_back({reinterpret_cast<uint64_t>(dev->data()) + i * opt.block_bytes,
                          remote_at, opt.block_bytes});
    pinned_ops.push_back({reinterpret_cast<uint64_t>(pinned->data()) + i * opt.block_bytes,
                          remote_at, opt.block_bytes});
  }
  // Correctness first: a pattern through device -> pool -> device.
  for (uint64_t i = 0; i < batch; ++i) pinned->data()[i] = static_cast<uint8_t>(i * 131 + 7);
  KVPOOL_RETURN_IF_ERROR(copy(dev->data(), pinned->data()));
  KVPOOL_RETURN_IF_ERROR(staging->Put(peer, remote, staged_ops, 30'000));
  std::vector<uint8_t> expect(pinned->data(), pinned->data() + batch);
  for (uint32_t i = 0; i < opt.blocks; ++i) {
    if (std::memcmp(pool_region.data + (opt.blocks - 1 - i) * opt.block_bytes,
                    expect.data() + i * opt.block_bytes, opt.block_bytes) != 0) {
      return DataLossError("staged put: block " + std::to_string(i) + " differs in the pool");
    }
  }
  std::memset(pinned->data(), 0, batch);
  KVPOOL_RETURN_IF_ERROR(copy(dev->data(), pinned->data()));
  KVPOOL_RETURN_IF_ERROR(staging->Get(peer, remote, staged_ops, 30'000));
  KVPOOL_RETURN_IF_ERROR(copy(pinned->data(), dev->data()));
  if (std::memcmp(pinned->data(), expect.data(), batch) != 0) {
    return DataLossError("staged get: the device bytes differ after the round trip");
  }

  KVPOOL_ASSIGN_OR_RETURN(const double put_s, MedianSeconds(opt.rounds, [&] {
                            return staging->Put(peer, remote, staged_ops, 30'000);
                          }));
  KVPOOL_ASSIGN_OR_RETURN(const double get_s, MedianSeconds(opt.rounds, [&] {
                            return staging->Get(peer, remote, staged_ops, 30'000);
                          }));
  KVPOOL_ASSIGN_OR_RETURN(transport::LocalRegion pinned_region,
                          side->RegisterMemory(pinned->data(), batch));
  KVPOOL_ASSIGN_OR_RETURN(const double ucx_put_s, MedianSeconds(opt.rounds, [&]() -> Status {
                            KVPOOL_ASSIGN_OR_RETURN(auto h, side->Put(peer, remote, pinned_ops));
                            return h.Wait(30'000);
                          }));
  side->Deregister(pinned_region.id).IgnoreError();

  nlohmann::json out = {
      {"device", device->Describe()},
      {"emulated", device->emulated()},
      {"tls", opt.tls},
      {"block_bytes", opt.block_bytes},
      {"blocks", opt.blocks},
      {"batch_bytes", batch},
      {"rounds", opt.rounds},
      {"chunk_bytes", opt.chunk_bytes},
      {"chunks_in_flight", opt.chunks_in_flight},
      {"staged_put_gbps", GBps(batch, put_s)},
      {"staged_get_gbps", GBps(batch, get_s)},
      {"cuda_memcpy_d2h_gbps", GBps(batch, d2h_s)},
      {"cuda_memcpy_h2d_gbps", GBps(batch, h2d_s)},
      {"ucx_put_pinned_gbps", GBps(batch, ucx_put_s)},
      {"put_vs_d2h", d2h_s > 0 ? d2h_s / put_s : 0},
      {"get_vs_h2d", h2d_s > 0 ? h2d_s / get_s : 0},
  };
  if (!quiet) {
    std::cout << "GPU tier data path on " << device->Describe() << ", UCX tls=" << opt.tls
              << ", " << opt.blocks << " blocks of " << FormatBytes(opt.block_bytes)
              << " per batch, median of " << opt.rounds << " batches\n";
    TextTable t({"WHAT", "GB/s", "REFERENCE", "REF GB/s", "RATIO"});
    auto row = [&](const char* what, double s, const char* ref, double ref_s) {
      t.AddRow({what, FormatFixed(GBps(batch, s), 2), ref, FormatFixed(GBps(batch, ref_s), 2),
                FormatFixed(ref_s / s, 2)});
    };
    row("device -> pool (staged put)", put_s, "cudaMemcpy D2H (pinned)", d2h_s);
    row("pool -> device (staged get)", get_s, "cudaMemcpy H2D (pinned)", h2d_s);
    row("pinned host -> pool (UCX put)", ucx_put_s, "cudaMemcpy D2H (pinned)", d2h_s);
    t.Print(std::cout);
  }
  return out;
}

}  // namespace kvpool::bench
