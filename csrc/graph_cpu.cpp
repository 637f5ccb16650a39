// astrobio._C: graph-structure ops on the CPU (OpenMP), bound with pybind11.
//
// Indices come in as numpy arrays through the buffer protocol (int32 or int64, any strides:
// zero-copy) and go out as int64 numpy arrays. Every index is range-checked before it is used
// to address memory; bad input raises ValueError. The GIL is released while computing, so
// DataLoader threads overlap.
//
// CSR is sorted by destination: row v lists the sources of the edges ending at v, in input
// order (a stable counting sort), so the result equals a stable torch.sort by destination.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#else
inline int omp_get_max_threads() { return 1; }
inline int omp_get_thread_num() { return 0; }
inline int omp_get_num_threads() { return 1; }
#endif

namespace py = pybind11;

namespace {

// A [2, E] integer array as raw memory: row 0 sources, row 1 destinations.
struct EdgeView {
  const char* data = nullptr;
  py::ssize_t row_stride = 0;  // bytes
  py::ssize_t col_stride = 0;  // bytes
  int64_t num_edges = 0;
  bool is_int64 = true;

  template <typename T>
  T at(int row, int64_t k) const {
    return *reinterpret_cast<const T*>(data + row * row_stride + k * col_stride);
  }
};

EdgeView edge_view(const py::array& a, const std::string& what) {
  if (a.ndim() != 2 || a.shape(0) != 2) {
    std::string shape;
    for (py::ssize_t d = 0; d < a.ndim(); ++d) {
      shape += (d ? ", " : "") + std::to_string(a.shape(d));
    }
    throw py::value_error(what + " must have shape [2, E], got [" + shape + "]");
  }
  const char kind = a.dtype().kind();
  if (kind != 'i' || (a.itemsize() != 4 && a.itemsize() != 8)) {
    throw py::value_error(what + " must be int32 or int64, got " +
                          std::string(py::str(a.dtype())));
  }
  return {static_cast<const char*>(a.data()), a.strides(0), a.strides(1), a.shape(1),
          a.itemsize() == 8};
}

// Runs task(t) for t in [0, tasks), on up to `tasks` OpenMP threads. One task runs inline,
// outside any parallel region: GNU OpenMP's thread pool does not survive fork(), and a
// DataLoader worker (torch sets 1 thread there) must never start a team.
template <typename Task>
void run_tasks(int64_t tasks, Task&& task) {
  if (tasks <= 1) {
    if (tasks == 1) task(0);
    return;
  }
#pragma omp parallel num_threads(static_cast<int>(tasks))
  {
    // The runtime may grant fewer threads than asked for: every task still runs once.
    for (int64_t t = omp_get_thread_num(); t < tasks; t += omp_get_num_threads()) task(t);
  }
}

// Below this many edges a thread team costs more than it saves (a batch of 32 metabolic
// graphs takes ~50 us on one thread).
constexpr int64_t kParallelEdges = int64_t{1} << 18;

// The threads to use: `requested` (<= 0: OpenMP's default) where the work is big enough.
int64_t thread_count(int64_t requested, bool worth_it) {
  if (!worth_it) return 1;
  return std::max<int64_t>(1, requested > 0 ? requested : omp_get_max_threads());
}

// Calls f with a zero of the view's index type, so the hot loops are compiled per type.
template <typename F>
void dispatch_index(const EdgeView& v, F&& f) {
  if (v.is_int64) {
    f(int64_t{0});
  } else {
    f(int32_t{0});
  }
}

template <typename T>
py::array_t<T> view_of(py::array_t<T>& base, T* start, std::vector<py::ssize_t> shape) {
  std::vector<py::ssize_t> strides(shape.size(), sizeof(T));
  for (int d = static_cast<int>(shape.size()) - 2; d >= 0; --d) {
    strides[d] = strides[d + 1] * shape[d + 1];
  }
  return py::array_t<T>(shape, strides, start, base);
}

// ---------------------------------------------------------------------------------------------
// csr_from_edges: one graph, parallel over edges.
//
// Thread t counts the destinations of its contiguous edge chunk into its own histogram; a
// node-major scan over (node, thread) gives each thread its first slot per node; each thread
// then scatters its chunk in order. Chunks are ordered by thread, so the sort is stable and the
// result does not depend on the number of threads.

template <typename T>
void csr_single(const EdgeView& ev, int64_t num_nodes, int64_t* rowptr, int64_t* col,
                int64_t* perm, int64_t num_threads) {
  const int64_t e_total = ev.num_edges;
  // Parallel only where it pays: enough edges, and histograms not much larger than the edges.
  const int64_t threads = std::min(thread_count(num_threads, e_total >= kParallelEdges),
                                   std::max<int64_t>(1, e_total / (num_nodes + 1)));
  std::vector<int64_t> cursor(static_cast<size_t>(threads * num_nodes), 0);
  auto chunk = [&](int64_t t) {
    return std::pair{e_total * t / threads, e_total * (t + 1) / threads};
  };

  run_tasks(threads, [&](int64_t t) {
    int64_t* count = cursor.data() + t * num_nodes;
    for (auto [e, end] = chunk(t); e < end; ++e) ++count[ev.at<T>(1, e)];
  });
  int64_t running = 0;
  for (int64_t v = 0; v < num_nodes; ++v) {
    rowptr[v] = running;
    for (int64_t t = 0; t < threads; ++t) {
      running += std::exchange(cursor[t * num_nodes + v], running);
    }
  }
  rowptr[num_nodes] = running;
  run_tasks(threads, [&](int64_t t) {
    int64_t* slot = cursor.data() + t * num_nodes;
    for (auto [e, end] = chunk(t); e < end; ++e) {
      const int64_t pos = slot[ev.at<T>(1, e)]++;
      col[pos] = ev.at<T>(0, e);
      perm[pos] = e;
    }
  });
}

// Smallest and largest index of both rows.
template <typename T>
void index_range(const EdgeView& ev, int64_t& lo, int64_t& hi, int64_t threads = 1) {
  const int64_t e_total = ev.num_edges;
  std::vector<int64_t> los(threads, std::numeric_limits<int64_t>::max());
  std::vector<int64_t> his(threads, std::numeric_limits<int64_t>::min());
  run_tasks(threads, [&](int64_t t) {
    int64_t l = los[t], h = his[t];
    for (int64_t e = e_total * t / threads; e < e_total * (t + 1) / threads; ++e) {
      const int64_t s = ev.at<T>(0, e), d = ev.at<T>(1, e);
      l = std::min({l, s, d});
      h = std::max({h, s, d});
    }
    los[t] = l, his[t] = h;
  });
  lo = *std::min_element(los.begin(), los.end());
  hi = *std::max_element(his.begin(), his.end());
}

std::string range_message(int64_t lo, int64_t hi, int64_t num_nodes) {
  return "edge_index spans [" + std::to_string(lo) + ", " + std::to_string(hi) +
         "] but there are " + std::to_string(num_nodes) + " node(s)";
}

py::tuple csr_from_edges(const py::array& edge_index, int64_t num_nodes, int64_t num_threads) {
  const EdgeView ev = edge_view(edge_index, "edge_index");
  if (num_nodes < 0) {
    throw py::value_error("num_nodes must be >= 0, got " + std::to_string(num_nodes));
  }
  const int64_t e_total = ev.num_edges;
  // Separate arrays: a torch custom op may not return outputs that share memory.
  py::array_t<int64_t> rowptr_out(num_nodes + 1), col_out(e_total), perm_out(e_total);
  int64_t* rowptr = rowptr_out.mutable_data();
  int64_t* col = col_out.mutable_data();
  int64_t* perm = perm_out.mutable_data();
  {
    py::gil_scoped_release release;
    dispatch_index(ev, [&](auto zero) {
      using T = decltype(zero);
      if (e_total > 0) {
        int64_t lo, hi;
        index_range<T>(ev, lo, hi, thread_count(num_threads, e_total >= kParallelEdges));
        if (lo < 0 || hi >= num_nodes) {
          throw std::invalid_argument(range_message(lo, hi, num_nodes));
        }
      }
      csr_single<T>(ev, num_nodes, rowptr, col, perm, num_threads);
    });
  }
  return py::make_tuple(rowptr_out, col_out, perm_out);
}

// ---------------------------------------------------------------------------------------------
// Batching many small graphs. Graph g's nodes occupy [ptr[g], ptr[g+1]) and its edges a
// contiguous range of the destination-sorted edge list, so each graph is sorted on its own
// (in parallel over graphs) straight into its slice of the outputs.

struct Batch {
  std::vector<py::array> arrays;  // keeps arrays converted from other objects alive
  std::vector<EdgeView> graphs;
  std::vector<int64_t> num_nodes, node_offset, edge_offset;  // offsets have B + 1 entries
};

Batch parse_batch(const py::list& edge_indices, const std::vector<int64_t>& num_nodes) {
  const size_t b = edge_indices.size();
  if (num_nodes.size() != b) {
    throw py::value_error("got " + std::to_string(b) + " edge_index array(s) but " +
                          std::to_string(num_nodes.size()) + " node count(s)");
  }
  Batch batch;
  batch.num_nodes = num_nodes;
  batch.node_offset.assign(b + 1, 0);
  batch.edge_offset.assign(b + 1, 0);
  for (size_t g = 0; g < b; ++g) {
    const std::string what = "edge_indices[" + std::to_string(g) + "]";
    batch.arrays.push_back(edge_indices[g].cast<py::array>());
    batch.graphs.push_back(edge_view(batch.arrays.back(), what));
    if (num_nodes[g] < 0) {
      throw py::value_error("num_nodes[" + std::to_string(g) + "] must be >= 0, got " +
                            std::to_string(num_nodes[g]));
    }
    batch.node_offset[g + 1] = batch.node_offset[g] + num_nodes[g];
    batch.edge_offset[g + 1] = batch.edge_offset[g] + batch.graphs[g].num_edges;
  }
  return batch;
}

// Runs body(index zero, g, thread-local scratch) for every graph in parallel, then raises for
// the first graph (in batch order) whose indices fall outside its node range; a graph's output
// slices are written only after its indices are checked.
template <typename Body>
void for_each_graph(const Batch& batch, int64_t num_threads, Body&& body) {
  const int64_t b = static_cast<int64_t>(batch.graphs.size());
  std::vector<int64_t> bad_lo(b), bad_hi(b);
  std::vector<char> bad(b, 0);
  constexpr int64_t kGraphsPerGrab = 8;
  std::atomic<int64_t> next{0};
  const bool big = batch.edge_offset[b] >= kParallelEdges;
  const int64_t threads =
      std::min(thread_count(num_threads, big), (b + kGraphsPerGrab - 1) / kGraphsPerGrab);
  run_tasks(threads, [&](int64_t) {
    std::vector<int64_t> scratch;
    for (int64_t first; (first = next.fetch_add(kGraphsPerGrab)) < b;) {
      for (int64_t g = first; g < std::min(first + kGraphsPerGrab, b); ++g) {
        const EdgeView& ev = batch.graphs[g];
        dispatch_index(ev, [&](auto zero) {
          using T = decltype(zero);
          if (ev.num_edges > 0) {
            int64_t lo, hi;
            index_range<T>(ev, lo, hi);
            if (lo < 0 || hi >= batch.num_nodes[g]) {
              bad[g] = 1, bad_lo[g] = lo, bad_hi[g] = hi;
              return;
            }
          }
          body(T{0}, g, scratch);
        });
      }
    }
  });
  for (int64_t g = 0; g < b; ++g) {
    if (bad[g]) {
      throw std::invalid_argument("graph " + std::to_string(g) + ": " +
                                  range_message(bad_lo[g], bad_hi[g], batch.num_nodes[g]));
    }
  }
}

void fill_batch_and_ptr(const Batch& batch, int64_t g, int64_t* batch_vec, int64_t* ptr) {
  const int64_t n0 = batch.node_offset[g], n = batch.num_nodes[g];
  std::fill(batch_vec + n0, batch_vec + n0 + n, g);
  ptr[g] = n0;
}

py::tuple batch_graphs(const py::list& edge_indices, const std::vector<int64_t>& num_nodes,
                       int64_t num_threads) {
  const Batch batch = parse_batch(edge_indices, num_nodes);
  const int64_t b = static_cast<int64_t>(num_nodes.size());
  const int64_t n_total = batch.node_offset[b], e_total = batch.edge_offset[b];
  py::array_t<int64_t> out(2 * e_total + n_total + b + 1);
  int64_t* src = out.mutable_data();
  int64_t* dst = src + e_total;
  int64_t* batch_vec = dst + e_total;
  int64_t* ptr = batch_vec + n_total;
  {
    py::gil_scoped_release release;
    for_each_graph(batch, num_threads, [&](auto zero, int64_t g, std::vector<int64_t>&) {
      using T = decltype(zero);
      const EdgeView& ev = batch.graphs[g];
      const int64_t n0 = batch.node_offset[g], e0 = batch.edge_offset[g];
      for (int64_t e = 0; e < ev.num_edges; ++e) {
        src[e0 + e] = n0 + ev.at<T>(0, e);
        dst[e0 + e] = n0 + ev.at<T>(1, e);
      }
      fill_batch_and_ptr(batch, g, batch_vec, ptr);
    });
    ptr[b] = n_total;
  }
  return py::make_tuple(view_of(out, src, {2, e_total}), view_of(out, batch_vec, {n_total}),
                        view_of(out, ptr, {b + 1}));
}

// Destination-sorted edges, node→graph map, and both CSRs of a batch in one pass per graph;
// with edge_attrs, their rows are gathered into the same (destination-sorted) edge order.
py::tuple collate_graphs(const py::list& edge_indices, const std::vector<int64_t>& num_nodes,
                         const std::optional<py::list>& edge_attrs, int64_t num_threads) {
  const Batch batch = parse_batch(edge_indices, num_nodes);
  const int64_t b = static_cast<int64_t>(num_nodes.size());
  const int64_t n_total = batch.node_offset[b], e_total = batch.edge_offset[b];

  std::vector<py::array> attr_arrays;  // alive until the gather is done
  std::vector<const char*> attr_rows(b, nullptr);
  py::ssize_t attr_row_bytes = 0;
  py::object attr_out = py::none();
  char* attr_dst = nullptr;
  if (edge_attrs) {
    if (static_cast<int64_t>(edge_attrs->size()) != b) {
      throw py::value_error("got " + std::to_string(b) + " edge_index array(s) but " +
                            std::to_string(edge_attrs->size()) + " edge_attr array(s)");
    }
    if (b == 0) throw py::value_error("edge_attrs: no graphs to take a width and dtype from");
    py::dtype dtype;
    py::ssize_t width = 0;
    for (int64_t g = 0; g < b; ++g) {
      attr_arrays.push_back((*edge_attrs)[g].cast<py::array>());
      const py::array& a = attr_arrays.back();
      const std::string what = "edge_attrs[" + std::to_string(g) + "]";
      if (a.ndim() != 2) throw py::value_error(what + " must be 2-D [E, Fe]");
      if (g == 0) {
        dtype = a.dtype();
        width = a.shape(1);
        if (std::string("biufc").find(dtype.kind()) == std::string::npos) {
          throw py::value_error("edge_attrs must be numeric, got " + std::string(py::str(dtype)));
        }
      }
      if (a.shape(0) != batch.graphs[g].num_edges || a.shape(1) != width ||
          !a.dtype().equal(dtype)) {
        throw py::value_error(what + " must be [" + std::to_string(batch.graphs[g].num_edges) +
                              ", " + std::to_string(width) + "] of " + std::string(py::str(dtype)) +
                              " like edge_attrs[0] and its edge_index");
      }
      if (!(a.flags() & py::array::c_style)) throw py::value_error(what + " must be C-contiguous");
      attr_rows[g] = static_cast<const char*>(a.data());
    }
    attr_row_bytes = width * dtype.itemsize();
    py::array out_attr(dtype, std::vector<py::ssize_t>{e_total, width});
    attr_dst = static_cast<char*>(out_attr.mutable_data());
    attr_out = out_attr;
  }

  py::array_t<int64_t> out(7 * e_total + 3 * n_total + b + 3);
  int64_t* src = out.mutable_data();
  int64_t* dst = src + e_total;
  int64_t* batch_vec = dst + e_total;
  int64_t* ptr = batch_vec + n_total;
  int64_t* rowptr = ptr + b + 1;
  int64_t* col = rowptr + n_total + 1;
  int64_t* perm = col + e_total;
  int64_t* rowptr_t = perm + e_total;
  int64_t* col_t = rowptr_t + n_total + 1;
  int64_t* perm_t = col_t + e_total;
  {
    py::gil_scoped_release release;
    for_each_graph(batch, num_threads, [&](auto zero, int64_t g, std::vector<int64_t>& cursor) {
      using T = decltype(zero);
      const EdgeView& ev = batch.graphs[g];
      const int64_t n0 = batch.node_offset[g], e0 = batch.edge_offset[g];
      const int64_t n = batch.num_nodes[g], e_count = ev.num_edges;
      // By destination: counts, exclusive scan into rowptr, stable scatter.
      cursor.assign(n, 0);
      for (int64_t e = 0; e < e_count; ++e) ++cursor[ev.at<T>(1, e)];
      for (int64_t v = 0, running = e0; v < n; ++v) {
        rowptr[n0 + v] = running;
        running += std::exchange(cursor[v], running);
      }
      for (int64_t e = 0; e < e_count; ++e) {
        const int64_t s = ev.at<T>(0, e), d = ev.at<T>(1, e);
        const int64_t pos = cursor[d]++;
        src[pos] = col[pos] = n0 + s;
        dst[pos] = n0 + d;
        perm[pos] = e0 + e;
        if (attr_dst) {
          std::memcpy(attr_dst + pos * attr_row_bytes, attr_rows[g] + e * attr_row_bytes,
                      attr_row_bytes);
        }
      }
      // By source, over the destination-sorted edges: perm_t indexes the sorted edge list.
      cursor.assign(n, 0);
      for (int64_t k = e0; k < e0 + e_count; ++k) ++cursor[src[k] - n0];
      for (int64_t v = 0, running = e0; v < n; ++v) {
        rowptr_t[n0 + v] = running;
        running += std::exchange(cursor[v], running);
      }
      for (int64_t k = e0; k < e0 + e_count; ++k) {
        const int64_t pos = cursor[src[k] - n0]++;
        col_t[pos] = dst[k];
        perm_t[pos] = k;
      }
      fill_batch_and_ptr(batch, g, batch_vec, ptr);
    });
    ptr[b] = n_total;
    rowptr[n_total] = rowptr_t[n_total] = e_total;
  }
  return py::make_tuple(
      view_of(out, src, {2, e_total}), view_of(out, batch_vec, {n_total}),
      view_of(out, ptr, {b + 1}), view_of(out, rowptr, {n_total + 1}),
      view_of(out, col, {e_total}), view_of(out, perm, {e_total}),
      view_of(out, rowptr_t, {n_total + 1}), view_of(out, col_t, {e_total}),
      view_of(out, perm_t, {e_total}), attr_out);
}

// The hub-split work list of the triton spmm (kernels/spmm.py build_schedule, the reference):
// [4, K + S] int64. Columns [0, K): one chunk of at most `chunk` edges each, rows (output row,
// first edge, end edge, workspace slot: -1 written directly, -2 surplus); columns [K, K + S):
// one split row each, rows (row, first slot, end slot, degree). K and S are bounds from the
// sizes alone (N + E / chunk rounded up to chunks_per_program, E / (chunk + 1)); surplus
// entries repeat the last row with empty ranges, as the reference writes them.
py::array_t<int64_t> spmm_schedule(const py::array_t<int64_t, py::array::c_style>& rowptr,
                                   int64_t num_edges, int64_t chunk, int64_t chunks_per_program) {
  if (rowptr.ndim() != 1 || rowptr.shape(0) < 1) throw py::value_error("rowptr must be [N+1]");
  if (chunk < 1 || chunks_per_program < 1 || num_edges < 0) {
    throw py::value_error("chunk and chunks_per_program must be >= 1, num_edges >= 0");
  }
  const int64_t n = rowptr.shape(0) - 1;
  const int64_t* rp = rowptr.data();
  if (rp[0] != 0 || rp[n] != num_edges) {
    throw py::value_error("rowptr must start at 0 and end at num_edges");
  }
  const int64_t k_total =
      (n + num_edges / chunk + chunks_per_program - 1) / chunks_per_program * chunks_per_program;
  const int64_t s_total = num_edges / (chunk + 1);
  py::array_t<int64_t> out({int64_t{4}, k_total + s_total});
  int64_t* row = out.mutable_data();
  int64_t* start = row + (k_total + s_total);
  int64_t* end = start + (k_total + s_total);
  int64_t* slot = end + (k_total + s_total);
  const int64_t last_row = n - 1;
  const int64_t last_degree = n > 0 ? rp[n] - rp[n - 1] : 0;
  int64_t k = 0, s = k_total, next_slot = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t degree = rp[i + 1] - rp[i];
    if (degree < 0) throw py::value_error("rowptr must be non-decreasing");
    const int64_t pieces = std::max<int64_t>(1, (degree + chunk - 1) / chunk);
    const bool split = degree > chunk;
    if (split) {  // this row's pieces take consecutive slots
      row[s] = i, start[s] = next_slot, end[s] = next_slot + pieces, slot[s] = degree;
      ++s;
    }
    for (int64_t piece = 0; piece < pieces; ++piece, ++k) {
      row[k] = i;
      start[k] = rp[i] + piece * chunk;
      end[k] = std::min(start[k] + chunk, rp[i + 1]);
      slot[k] = split ? next_slot++ : -1;
    }
  }
  for (; k < k_total; ++k) row[k] = last_row, start[k] = 0, end[k] = 0, slot[k] = -2;
  for (; s < k_total + s_total; ++s) row[s] = last_row, start[s] = 0, end[s] = 0,
                                     slot[s] = last_degree;
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "AstroBio graph-structure ops on the CPU (C++17, OpenMP)";
  m.def("csr_from_edges", &csr_from_edges, py::arg("edge_index"), py::arg("num_nodes"),
        py::arg("num_threads") = 0,
        "(rowptr [N+1], col [E], perm [E]) int64 of a [2, E] int32/int64 edge array, edges "
        "sorted stably by destination (row 1); col = edge_index[0][perm].");
  m.def("batch_graphs", &batch_graphs, py::arg("edge_indices"), py::arg("num_nodes"),
        py::arg("num_threads") = 0,
        "(edge_index [2, E], batch [N], ptr [B+1]): graphs offset by ptr and concatenated.");
  m.def("collate_graphs", &collate_graphs, py::arg("edge_indices"), py::arg("num_nodes"),
        py::arg("edge_attrs") = py::none(), py::arg("num_threads") = 0,
        "(edge_index, batch, ptr, rowptr, col, perm, rowptr_t, col_t, perm_t, edge_attr): "
        "batch_graphs, then edges sorted stably by destination (perm maps into the "
        "concatenated input), the CSR by destination and the CSR by source of the sorted "
        "edges (perm_t indexes the sorted edges); edge_attr gathered to the sorted order, or "
        "None. All index arrays are int64 views of one allocation.");
  m.def("spmm_schedule", &spmm_schedule, py::arg("rowptr"), py::arg("num_edges"),
        py::arg("chunk"), py::arg("chunks_per_program"),
        "The triton spmm's hub-split work list [4, K + S] int64 of a CSR rowptr (int64, "
        "C-contiguous); equals kernels/spmm.py build_schedule.");
  m.def("num_threads", []() { return omp_get_max_threads(); },
        "OpenMP's default thread count (used where num_threads <= 0)");
}
