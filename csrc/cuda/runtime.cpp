// Runtime queries of astrobio._cuda; safe on a machine with no GPU or driver.
#include <cuda_runtime.h>

#include "common.cuh"
#include "ops.h"

namespace astrobio_cuda {

int runtime_version() {
  int version = 0;
  check_cuda(cudaRuntimeGetVersion(&version), "cudaRuntimeGetVersion");
  return version;
}

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

}  // namespace astrobio_cuda
