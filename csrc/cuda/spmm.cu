// Load-balanced CSR SpMM on the GPU (merge path, Merrill & Garland 2016):
// out[i] = reduce_{e in rowptr[i]:rowptr[i+1]} w[e] * x[col[e]], reduce in sum | mean | max.
//
// The N row ends and E edges form one merged sequence of N + E items; each warp takes a fixed
// run of kItems of it (found by binary search on rowptr), so a hub row of 10^5 edges is spread
// over many warps and empty rows cost one item. Rows that start and end inside a warp's run are
// written directly. A row cut by run boundaries leaves fp32 partials: a "tail" in every run
// that ends inside it and a "head" in the run that finishes it; a second kernel combines them
// in run order. Nothing depends on timing (no atomics), so the result is deterministic.
// Lanes own features (lane + 32 v, v < V), accumulating in fp32 for every input dtype.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <type_traits>

#include "common.cuh"
#include "ops.h"

namespace astrobio_cuda {
namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpsPerBlock = 4;
constexpr int64_t kItems = 128;  // merged items (row ends + edges) per warp

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float identity(Reduce reduce) {
  return reduce == Reduce::kMax ? -INFINITY : 0.0f;
}

// max propagates NaN like torch's amax.
__device__ __forceinline__ float combine(Reduce reduce, float acc, float v) {
  if (reduce != Reduce::kMax) return acc + v;
  return (v > acc || isnan(v)) ? v : acc;
}

__device__ __forceinline__ float finalize(Reduce reduce, float acc, int64_t degree) {
  if (degree == 0) return 0.0f;
  return reduce == Reduce::kMean ? acc / static_cast<float>(degree) : acc;
}

// Split of the merged sequence before item `diagonal`: (rows finished, edges consumed).
template <typename I>
__device__ void merge_path_search(int64_t diagonal, const I* rowptr, int64_t num_rows,
                                  int64_t num_edges, int64_t& row, int64_t& edge) {
  int64_t lo = diagonal > num_edges ? diagonal - num_edges : 0;
  int64_t hi = diagonal < num_rows ? diagonal : num_rows;
  while (lo < hi) {
    const int64_t pivot = (lo + hi) >> 1;
    if (static_cast<int64_t>(rowptr[pivot + 1]) <= diagonal - pivot - 1) {
      lo = pivot + 1;
    } else {
      hi = pivot;
    }
  }
  row = lo;
  edge = diagonal - lo;
}

template <typename T, typename I, int V>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    spmm_merge_path(const I* __restrict__ rowptr, const I* __restrict__ col,
                    const T* __restrict__ x, const float* __restrict__ weight, Reduce reduce,
                    int64_t num_rows, int64_t num_cols, int64_t num_edges,
                    int64_t num_features, int64_t num_runs, T* __restrict__ out,
                    int64_t* __restrict__ head_row, float* __restrict__ head_val,
                    int64_t* __restrict__ tail_row, float* __restrict__ tail_val) {
  const int64_t run = blockIdx.x * int64_t{kWarpsPerBlock} + threadIdx.x / kWarp;
  if (run >= num_runs) return;
  const int lane = threadIdx.x % kWarp;
  const int64_t f0 = blockIdx.y * int64_t{kWarp * V} + lane;
  const int64_t total = num_rows + num_edges;
  const int64_t begin = run * kItems;
  const int64_t end = begin + kItems < total ? begin + kItems : total;

  int64_t row, edge;
  merge_path_search(begin, rowptr, num_rows, num_edges, row, edge);
  const int64_t first_row = row, first_edge = edge;
  const bool started_mid_row = row < num_rows && edge > static_cast<int64_t>(rowptr[row]);

  float acc[V];
#pragma unroll
  for (int v = 0; v < V; ++v) acc[v] = identity(reduce);
  const bool write_run_rows = blockIdx.y == 0 && lane == 0;
  if (write_run_rows) head_row[run] = -1;

  int64_t row_end = row < num_rows ? static_cast<int64_t>(rowptr[row + 1]) : num_edges;
  for (int64_t chunk = begin; chunk < end; chunk += kWarp) {
    // The lanes fetch the next 32 column indices and weights together and the walk takes them
    // by shuffle: 32 items consume at most 32 edges. Control flow is warp-uniform.
    const int64_t chunk_edge = edge;
    int64_t lane_col = -1;
    float lane_weight = 1.0f;
    if (chunk_edge + lane < num_edges) {
      lane_col = static_cast<int64_t>(col[chunk_edge + lane]);
      if (weight) lane_weight = weight[chunk_edge + lane];
    }
    const int64_t chunk_end = chunk + kWarp < end ? chunk + kWarp : end;
    for (int64_t item = chunk; item < chunk_end; ++item) {
      if (row < num_rows && edge < row_end && edge < num_edges) {
        const int slot = static_cast<int>(edge - chunk_edge);
        const int64_t c = __shfl_sync(kFullMask, lane_col, slot);
        const float w = __shfl_sync(kFullMask, lane_weight, slot);
        if (c >= 0 && c < num_cols) {  // a bad column contributes nothing instead of faulting
#pragma unroll
          for (int v = 0; v < V; ++v) {
            const int64_t f = f0 + v * kWarp;
            if (f < num_features) {
              acc[v] = combine(reduce, acc[v], w * to_float(x[c * num_features + f]));
            }
          }
        }
        ++edge;
      } else if (row < num_rows) {
        const int64_t degree = row_end - static_cast<int64_t>(rowptr[row]);
        const bool is_head = row == first_row && started_mid_row;
#pragma unroll
        for (int v = 0; v < V; ++v) {
          const int64_t f = f0 + v * kWarp;
          if (f >= num_features) continue;
          if (is_head) {
            head_val[run * num_features + f] = acc[v];
          } else {
            out[row * num_features + f] = from_float<T>(finalize(reduce, acc[v], degree));
          }
          acc[v] = identity(reduce);
        }
        if (is_head && write_run_rows) head_row[run] = row;
        ++row;
        if (row < num_rows) row_end = static_cast<int64_t>(rowptr[row + 1]);
      }  // else: only a malformed rowptr (rowptr[N] != E) gets here; the item is skipped
    }
  }
  // Edges of an unfinished row consumed here: a tail for the fix-up.
  const int64_t row_start = row == first_row ? first_edge : static_cast<int64_t>(rowptr[row]);
  const bool has_tail = row < num_rows && edge > row_start;
  if (write_run_rows) tail_row[run] = has_tail ? row : -1;
  if (has_tail) {
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t f = f0 + v * kWarp;
      if (f < num_features) tail_val[run * num_features + f] = acc[v];
    }
  }
}

// A run with a head finishes a row cut by earlier runs: combine their tails, in run order, with
// the head and write the row.
template <typename T, typename I, int V>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    spmm_fix_up(const I* __restrict__ rowptr, Reduce reduce, int64_t num_features,
                int64_t num_runs, T* __restrict__ out, const int64_t* __restrict__ head_row,
                const float* __restrict__ head_val, const int64_t* __restrict__ tail_row,
                const float* __restrict__ tail_val) {
  const int64_t run = blockIdx.x * int64_t{kWarpsPerBlock} + threadIdx.x / kWarp;
  if (run >= num_runs) return;
  const int64_t row = head_row[run];
  if (row < 0) return;
  int64_t first = run;
  while (first > 0 && tail_row[first - 1] == row) --first;
  const int64_t degree =
      static_cast<int64_t>(rowptr[row + 1]) - static_cast<int64_t>(rowptr[row]);
  const int64_t f0 = blockIdx.y * int64_t{kWarp * V} + threadIdx.x % kWarp;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    const int64_t f = f0 + v * kWarp;
    if (f >= num_features) continue;
    float acc = identity(reduce);
    for (int64_t r = first; r < run; ++r) {
      acc = combine(reduce, acc, tail_val[r * num_features + f]);
    }
    acc = combine(reduce, acc, head_val[run * num_features + f]);
    out[row * num_features + f] = from_float<T>(finalize(reduce, acc, degree));
  }
}

int64_t runs_for(int64_t num_rows, int64_t num_edges) {
  return (num_rows + num_edges + kItems - 1) / kItems;
}

template <typename T, typename I, int V>
void launch(const I* rowptr, const I* col, const T* x, const float* weight, Reduce reduce,
            int64_t num_rows, int64_t num_cols, int64_t num_edges, int64_t num_features, T* out,
            Workspace& ws, cudaStream_t stream) {
  const int64_t runs = runs_for(num_rows, num_edges);
  auto* head_row = ws.take<int64_t>(runs);
  auto* tail_row = ws.take<int64_t>(runs);
  auto* head_val = ws.take<float>(runs * num_features);
  auto* tail_val = ws.take<float>(runs * num_features);
  const int64_t feature_tiles = (num_features + kWarp * V - 1) / (kWarp * V);
  if (feature_tiles > 65535) throw std::invalid_argument("spmm (cuda): too many features");
  const int64_t blocks = (runs + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 2147483647) throw std::invalid_argument("spmm (cuda): graph too large");
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(feature_tiles));
  spmm_merge_path<T, I, V><<<grid, kWarp * kWarpsPerBlock, 0, stream>>>(
      rowptr, col, x, weight, reduce, num_rows, num_cols, num_edges, num_features, runs, out,
      head_row, head_val, tail_row, tail_val);
  check_cuda(cudaGetLastError(), "spmm_merge_path launch");
  spmm_fix_up<T, I, V><<<grid, kWarp * kWarpsPerBlock, 0, stream>>>(
      rowptr, reduce, num_features, runs, out, head_row, head_val, tail_row, tail_val);
  check_cuda(cudaGetLastError(), "spmm_fix_up launch");
}

template <typename T, typename I>
void launch_for_width(const void* rowptr, const void* col, const void* x, const float* weight,
                      Reduce reduce, int64_t num_rows, int64_t num_cols, int64_t num_edges,
                      int64_t num_features, void* out, Workspace& ws, cudaStream_t stream) {
  auto go = [&](auto width) {
    launch<T, I, decltype(width)::value>(
        static_cast<const I*>(rowptr), static_cast<const I*>(col), static_cast<const T*>(x),
        weight, reduce, num_rows, num_cols, num_edges, num_features, static_cast<T*>(out), ws,
        stream);
  };
  if (num_features <= kWarp) {
    go(std::integral_constant<int, 1>{});
  } else if (num_features <= 2 * kWarp) {
    go(std::integral_constant<int, 2>{});
  } else {
    go(std::integral_constant<int, 4>{});
  }
}

template <typename T>
void launch_for_index(bool index_is_int64, const void* rowptr, const void* col, const void* x,
                      const float* weight, Reduce reduce, int64_t num_rows, int64_t num_cols,
                      int64_t num_edges, int64_t num_features, void* out, Workspace& ws,
                      cudaStream_t stream) {
  if (index_is_int64) {
    launch_for_width<T, int64_t>(rowptr, col, x, weight, reduce, num_rows, num_cols, num_edges,
                                 num_features, out, ws, stream);
  } else {
    launch_for_width<T, int32_t>(rowptr, col, x, weight, reduce, num_rows, num_cols, num_edges,
                                 num_features, out, ws, stream);
  }
}

}  // namespace

size_t spmm_workspace_bytes(int64_t num_rows, int64_t num_edges, int64_t num_features) {
  const int64_t runs = runs_for(num_rows, num_edges);
  return 2 * aligned(runs * sizeof(int64_t)) + 2 * aligned(runs * num_features * sizeof(float));
}

void spmm(int device, const void* rowptr, const void* col, bool index_is_int64, const void* x,
          DType dtype, const float* edge_weight, Reduce reduce, int64_t num_rows,
          int64_t num_cols, int64_t num_edges, int64_t num_features, void* out, void* workspace,
          size_t workspace_bytes, uintptr_t stream_handle) {
  if (num_rows < 0 || num_cols < 0 || num_edges < 0 || num_features < 0) {
    throw std::invalid_argument("spmm (cuda): negative size");
  }
  if (num_rows == 0 || num_features == 0) return;
  const DeviceGuard guard(device);
  const cudaStream_t stream = as_stream(stream_handle);
  Workspace ws{static_cast<char*>(workspace), workspace_bytes};
  switch (dtype) {
    case DType::kFloat32:
      launch_for_index<float>(index_is_int64, rowptr, col, x, edge_weight, reduce, num_rows,
                              num_cols, num_edges, num_features, out, ws, stream);
      break;
    case DType::kFloat16:
      launch_for_index<__half>(index_is_int64, rowptr, col, x, edge_weight, reduce, num_rows,
                               num_cols, num_edges, num_features, out, ws, stream);
      break;
    case DType::kBFloat16:
      launch_for_index<__nv_bfloat16>(index_is_int64, rowptr, col, x, edge_weight, reduce,
                                       num_rows, num_cols, num_edges, num_features, out, ws,
                                       stream);
      break;
    default:
      throw std::invalid_argument("spmm (cuda): dtype must be float32, float16 or bfloat16");
  }
}

}  // namespace astrobio_cuda
