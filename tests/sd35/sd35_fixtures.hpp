#pragma once
// The SD3.5 golden fixtures as ATen tensors, their JSON sidecars' configs, fixture weights
// loaded into a module through the safetensors component (the path real weights take), and the
// max-abs comparison of the fixture tests. Include after Catch2 (and after LibTorch's
// <torch/torch.h> with CHECK undefined, where a test needs it).

#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <fstream>
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

/// The `config` object of the sidecar tests/data/sd35/`sidecar_file` (e.g. "clip_l.json"), as
/// JSON text for the configs' `from_json`.
inline std::string sidecar_config(const std::string& sidecar_file) {
  const auto path = data_path("sd35/" + sidecar_file);
  std::ifstream in(path);
  INFO(path);
  REQUIRE(in);
  return nlohmann::json::parse(in).at("config").dump();
}

/// max |got - want| over all elements, in float64; requires equal shapes.
inline double max_abs_diff(const at::Tensor& got, const at::Tensor& want) {
  INFO("got " << got.sizes() << ", want " << want.sizes());
  REQUIRE(got.sizes() == want.sizes());
  return (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
}

/// Requires |got - want| <= atol everywhere, naming `what`.
inline void require_near(const at::Tensor& got, const at::Tensor& want, double atol,
                         const std::string& what) {
  INFO(what);
  const double diff = max_abs_diff(got, want);
  INFO("max abs diff " << diff << " (atol " << atol << ")");
  REQUIRE(diff <= atol);
}

}  // namespace star::test
