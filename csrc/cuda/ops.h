// Host entry points of astrobio._cuda. Plain C++ (no CUDA or torch headers): pointers are
// device addresses from tensor.data_ptr(), `stream` is torch's cudaStream_t as an integer, and
// workspaces are allocated by the caller (torch's caching allocator) at the size asked for.
// Out-of-range input throws std::invalid_argument; a CUDA error throws std::runtime_error.
#pragma once

#include <cstddef>
#include <cstdint>

namespace astrobio_cuda {

enum class Reduce : int { kSum = 0, kMean = 1, kMax = 2 };
enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

int runtime_version();
int device_count();  // 0 where there is no GPU or no driver

size_t csr_workspace_bytes(int64_t num_edges, int64_t num_nodes);

// edge_index: contiguous [2, E] int32/int64. Outputs int64: rowptr [N+1], col [E], perm [E].
void csr_from_edges(int device, const void* edge_index, bool index_is_int64, int64_t num_edges,
                    int64_t num_nodes, int64_t* rowptr, int64_t* col, int64_t* perm,
                    void* workspace, size_t workspace_bytes, uintptr_t stream);

size_t spmm_workspace_bytes(int64_t num_rows, int64_t num_edges, int64_t num_features);

// rowptr [N+1], col [E] (int32/int64), x [M, F] contiguous, edge_weight [E] float32 or null,
// out [N, F] of x's dtype.
void spmm(int device, const void* rowptr, const void* col, bool index_is_int64, const void* x,
          DType dtype, const float* edge_weight, Reduce reduce, int64_t num_rows,
          int64_t num_cols, int64_t num_edges, int64_t num_features, void* out,
          void* workspace, size_t workspace_bytes, uintptr_t stream);

}  // namespace astrobio_cuda
