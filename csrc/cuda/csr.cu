// CSR from COO edges on the GPU, sorted stably by destination.
//
// Stability comes from CUB's LSD radix sort (stable by construction) of (destination, edge id)
// pairs over only the bits a node id needs, so the permutation is deterministic and equals a
// stable torch.sort. rowptr needs no atomics or scan: where the sorted destinations step from
// a to b at position k, rowptr[a+1 .. b] = k, so each entry is written exactly once.

#include <cub/device/device_radix_sort.cuh>

#include <limits>
#include <stdexcept>
#include <string>

#include "common.cuh"
#include "ops.h"

namespace astrobio_cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void make_keys(const T* src, const T* dst, int64_t num_edges, int64_t num_nodes,
                          uint32_t* keys, uint32_t* values, int* out_of_range) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < num_edges;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t s = src[e], d = dst[e];
    if (s < 0 || s >= num_nodes || d < 0 || d >= num_nodes) *out_of_range = 1;
    keys[e] = static_cast<uint32_t>(d);
    values[e] = static_cast<uint32_t>(e);
  }
}

template <typename T>
__global__ void finish_csr(const T* src, const uint32_t* sorted_dst, const uint32_t* order,
                           int64_t num_edges, int64_t num_nodes, int64_t* rowptr, int64_t* col,
                           int64_t* perm) {
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k <= num_edges;
       k += int64_t{gridDim.x} * blockDim.x) {
    if (k < num_edges) {
      perm[k] = order[k];
      col[k] = src[order[k]];
    }
    const int64_t before = k == 0 ? -1 : int64_t{sorted_dst[k - 1]};
    const int64_t here = k == num_edges ? num_nodes : int64_t{sorted_dst[k]};
    for (int64_t v = before + 1; v <= here; ++v) rowptr[v] = k;
  }
}

int key_bits(int64_t num_nodes) {
  int bits = 1;
  while (bits < 32 && (int64_t{1} << bits) < num_nodes) ++bits;
  return bits;
}

size_t sort_bytes(int64_t num_edges, int64_t num_nodes) {
  size_t bytes = 0;
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint32_t*>(nullptr),
                                             static_cast<uint32_t*>(nullptr),
                                             static_cast<const uint32_t*>(nullptr),
                                             static_cast<uint32_t*>(nullptr),
                                             static_cast<int>(num_edges), 0, key_bits(num_nodes)),
             "radix sort size query");
  return bytes;
}

void check_sizes(int64_t num_edges, int64_t num_nodes) {
  if (num_nodes < 0 || num_edges < 0) throw std::invalid_argument("csr_from_edges: negative size");
  if (num_edges > std::numeric_limits<int32_t>::max() ||
      num_nodes > std::numeric_limits<uint32_t>::max()) {
    throw std::invalid_argument("csr_from_edges (cuda): at most 2^31-1 edges and 2^32 nodes");
  }
}

}  // namespace

size_t csr_workspace_bytes(int64_t num_edges, int64_t num_nodes) {
  check_sizes(num_edges, num_nodes);
  return aligned(sizeof(int)) + 4 * aligned(num_edges * sizeof(uint32_t)) +
         aligned(num_edges ? sort_bytes(num_edges, num_nodes) : 0);
}

void csr_from_edges(int device, const void* edge_index, bool index_is_int64, int64_t num_edges,
                    int64_t num_nodes, int64_t* rowptr, int64_t* col, int64_t* perm,
                    void* workspace, size_t workspace_bytes, uintptr_t stream_handle) {
  check_sizes(num_edges, num_nodes);
  const DeviceGuard guard(device);
  const cudaStream_t stream = as_stream(stream_handle);
  Workspace ws{static_cast<char*>(workspace), workspace_bytes};
  int* out_of_range = ws.take<int>(1);
  uint32_t* keys = ws.take<uint32_t>(num_edges);
  uint32_t* sorted_keys = ws.take<uint32_t>(num_edges);
  uint32_t* values = ws.take<uint32_t>(num_edges);
  uint32_t* sorted_values = ws.take<uint32_t>(num_edges);
  size_t temp_bytes = num_edges ? sort_bytes(num_edges, num_nodes) : 0;
  void* temp = ws.take<char>(temp_bytes);

  auto run = [&](auto zero) {
    using T = decltype(zero);
    const T* src = static_cast<const T*>(edge_index);
    const T* dst = src + num_edges;
    if (num_edges > 0) {
      check_cuda(cudaMemsetAsync(out_of_range, 0, sizeof(int), stream), "memset");
      make_keys<T><<<blocks_for(num_edges, kThreads), kThreads, 0, stream>>>(
          src, dst, num_edges, num_nodes, keys, values, out_of_range);
      check_cuda(cudaGetLastError(), "make_keys launch");
      int host_flag = 0;
      check_cuda(cudaMemcpyAsync(&host_flag, out_of_range, sizeof(int), cudaMemcpyDeviceToHost,
                                 stream),
                 "copy range flag");
      check_cuda(cudaStreamSynchronize(stream), "synchronize");
      if (host_flag) {
        throw std::invalid_argument("edge_index has indices outside [0, " +
                                    std::to_string(num_nodes) + ") (num_nodes)");
      }
      check_cuda(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys, sorted_keys, values,
                                                 sorted_values, static_cast<int>(num_edges), 0,
                                                 key_bits(num_nodes), stream),
                 "radix sort");
    }
    finish_csr<T><<<blocks_for(num_edges + 1, kThreads), kThreads, 0, stream>>>(
        src, sorted_keys, sorted_values, num_edges, num_nodes, rowptr, col, perm);
    check_cuda(cudaGetLastError(), "finish_csr launch");
  };
  if (index_is_int64) {
    run(int64_t{0});
  } else {
    run(int32_t{0});
  }
}

}  // namespace astrobio_cuda
