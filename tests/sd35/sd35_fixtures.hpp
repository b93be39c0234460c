#pragma once
// The SD3.5 golden fixtures as ATen tensors, and fixture weights loaded into a module through
// the safetensors component (the path real weights take).

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <map>
#include <string>

#include "sd35/safetensors/checkpoint.hpp"
#include "sd35/safetensors/load.hpp"
#include "support/safetensors.hpp"

namespace star::test {

/// A fixture tensor as an ATen tensor of `dtype` on the CPU.
inline at::Tensor to_aten(const fixture_tensor& t, at::ScalarType dtype = at::kFloat) {
  return at::tensor(at::ArrayRef<double>(t.values), at::kDouble).reshape(t.dims).to(dtype);  // t.dims
}

/// Every tensor of a fixture file, as float32 ATen tensors.
inline std::map<std::string, at::Tensor> fixture_tensors(const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : read_safetensors(path)) out.emplace(name, to_aten(t));
  return out;
}

/// Loads the weights file `path` into `module` by exact name; strict loads throw
/// `star::sd35::checkpoint_error` listing every missing, unexpected or mis-shaped tensor.
inline star::sd35::load_report load_fixture_weights(torch::nn::Module& module,
                                                    const std::string& path, bool strict = true) {
  star::sd35::load_options options;
  options.strict = strict;
  return star::sd35::load_into(module, star::sd35::checkpoint::open(path), options);
}

}  // namespace star::test
