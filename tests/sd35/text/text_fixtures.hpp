#pragma once
// Shared helpers of the text-encoder tests: fixture paths, loading fixture weights through the
// real checkpoint loader, fixture tensors as ATen tensors, and comparisons.

#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sd35/float16_kernels.hpp"
#include "sd35/sd35_fixtures.hpp"

namespace star::test::text {

/// The path of a file in tests/data/sd35.
inline std::string fixture_path(const std::string& name) { return data_path("sd35/" + name); }

/// Loads `weights_file` into `module` through the checkpoint loader; every name must match.
inline void load_fixture_weights(torch::nn::Module& module, const std::string& weights_file) {
  const auto report = star::test::load_fixture_weights(module, fixture_path(weights_file));
  INFO(report.describe());
  REQUIRE(report.ok());
}

/// Every tensor of an io fixture: floating ones as float32, ids and masks as int64.
inline std::map<std::string, at::Tensor> read_io(const std::string& io_file) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : read_safetensors(fixture_path(io_file))) {
    const bool integral = name == "input_ids" || name == "attention_mask" ||
                          name.rfind("relative_position", 0) == 0;
    out.emplace(name, to_aten(t, integral ? at::kLong : at::kFloat));
  }
  return out;
}

// The sd35 fixture helpers, visible to tests that use this namespace.
using star::test::max_abs_diff;
using star::test::require_near;
using star::test::sidecar_config;

/// The reduced-precision runs this machine can do: bfloat16 on the CPU, float16 on the CPU
/// where LibTorch has its kernels (2.x), and float16 and bfloat16 on CUDA when present.
inline std::vector<std::pair<at::ScalarType, at::Device>> low_precision_runs() {
  std::vector<std::pair<at::ScalarType, at::Device>> runs{{at::kBFloat16, at::kCPU}};
  if (has_float16_kernels(at::kCPU)) runs.emplace_back(at::kHalf, at::kCPU);
  if (at::hasCUDA()) {
    runs.emplace_back(at::kHalf, at::kCUDA);
    runs.emplace_back(at::kBFloat16, at::kCUDA);
  } else if (!has_float16_kernels(at::kCPU)) {
    WARN("no CUDA device: float16 runs skipped (this LibTorch's CPU kernels lack float16)");
  }
  return runs;
}

/// Requires the module's parameters to be exactly the weights file's tensors, by name and shape.
inline void require_state_dict_names(torch::nn::Module& module, const std::string& weights_file) {
  const auto fixture = read_safetensors(fixture_path(weights_file));
  const auto params = module.named_parameters(/*recurse=*/true);
  REQUIRE(params.size() == fixture.size());
  for (const auto& item : params) {
    INFO(item.key());
    REQUIRE(fixture.count(item.key()) == 1);
    REQUIRE(item.value().sizes().vec() == fixture.at(item.key()).dims);
  }
}

}  // namespace star::test::text
