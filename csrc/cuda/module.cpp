// astrobio._cuda: pybind11 bindings of the CUDA graph ops. Pointers and streams arrive as
// integers (tensor.data_ptr(), torch.cuda.current_stream().cuda_stream), so this module links
// neither torch nor the shared CUDA runtime (cudart is static) and imports on a machine with
// no GPU: nothing here calls CUDA until an op runs.

#include <pybind11/pybind11.h>

#include "ops.h"

namespace py = pybind11;
namespace ac = astrobio_cuda;

namespace {

template <typename T>
T* ptr(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "AstroBio graph-structure ops on the GPU (CUDA, static runtime)";
  m.def("runtime_version", &ac::runtime_version, "CUDA runtime version built in, e.g. 13000");
  m.def("device_count", &ac::device_count, "GPUs visible to this runtime (0 without a driver)");
  m.def("csr_workspace_bytes", &ac::csr_workspace_bytes, py::arg("num_edges"),
        py::arg("num_nodes"));
  m.def(
      "csr_from_edges",
      [](int device, uintptr_t edge_index, bool index_is_int64, int64_t num_edges,
         int64_t num_nodes, uintptr_t rowptr, uintptr_t col, uintptr_t perm, uintptr_t workspace,
         size_t workspace_bytes, uintptr_t stream) {
        py::gil_scoped_release release;
        ac::csr_from_edges(device, ptr<const void>(edge_index), index_is_int64, num_edges,
                           num_nodes, ptr<int64_t>(rowptr), ptr<int64_t>(col),
                           ptr<int64_t>(perm), ptr<void>(workspace), workspace_bytes, stream);
      },
      py::arg("device"), py::arg("edge_index"), py::arg("index_is_int64"), py::arg("num_edges"),
      py::arg("num_nodes"), py::arg("rowptr"), py::arg("col"), py::arg("perm"),
      py::arg("workspace"), py::arg("workspace_bytes"), py::arg("stream"),
      "Destination-sorted CSR of a contiguous [2, E] edge_index into int64 rowptr/col/perm.");
  m.def("spmm_workspace_bytes", &ac::spmm_workspace_bytes, py::arg("num_rows"),
        py::arg("num_edges"), py::arg("num_features"));
  m.def(
      "spmm",
      [](int device, uintptr_t rowptr, uintptr_t col, bool index_is_int64, uintptr_t x,
         int dtype, uintptr_t edge_weight, int reduce, int64_t num_rows, int64_t num_cols,
         int64_t num_edges, int64_t num_features, uintptr_t out, uintptr_t workspace,
         size_t workspace_bytes, uintptr_t stream) {
        if (dtype < 0 || dtype > 2) throw py::value_error("spmm: dtype code must be 0, 1 or 2");
        if (reduce < 0 || reduce > 2) throw py::value_error("spmm: reduce code must be 0, 1 or 2");
        py::gil_scoped_release release;
        ac::spmm(device, ptr<const void>(rowptr), ptr<const void>(col), index_is_int64,
                 ptr<const void>(x), static_cast<ac::DType>(dtype), ptr<const float>(edge_weight),
                 static_cast<ac::Reduce>(reduce), num_rows, num_cols, num_edges, num_features,
                 ptr<void>(out), ptr<void>(workspace), workspace_bytes, stream);
      },
      py::arg("device"), py::arg("rowptr"), py::arg("col"), py::arg("index_is_int64"),
      py::arg("x"), py::arg("dtype"), py::arg("edge_weight"), py::arg("reduce"),
      py::arg("num_rows"), py::arg("num_cols"), py::arg("num_edges"), py::arg("num_features"),
      py::arg("out"), py::arg("workspace"), py::arg("workspace_bytes"), py::arg("stream"),
      "out [N, F] = reduce over CSR rows of edge_weight * x[col]; dtype 0 fp32, 1 fp16, "
      "2 bf16; reduce 0 sum, 1 mean, 2 max; edge_weight 0 for none (else float32 [E]).");
}
