#pragma once
// Loads a golden fixture's weights into a module by exact parameter name, independently of the
// safetensors component (whose load_vae_decoder path the tests check against it).

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <set>
#include <string>
#include <vector>

#include "support/safetensors.hpp"

namespace star::test {

/// What a by-name load found.
struct fixture_load_report {
  std::size_t loaded = 0;                  ///< parameters copied
  std::vector<std::string> unexpected;     ///< file tensors the module lacks
  std::vector<std::string> missing;        ///< module parameters the file lacks
  std::vector<std::string> mis_shaped;     ///< present in both with different shapes
};

/// Copies every tensor of `file` into the parameter of the same name.
inline fixture_load_report load_fixture_weights(torch::nn::Module& module,
                                                const std::string& file) {
  const auto tensors = read_safetensors(file);
  auto parameters = module.named_parameters();
  fixture_load_report report;
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    auto* parameter = parameters.find(name);
    if (!parameter) {
      report.unexpected.push_back(name);
      continue;
    }
    seen.insert(name);
    if (std::vector<std::int64_t>(parameter->sizes().begin(), parameter->sizes().end()) !=
        tensor.dims) {
      report.mis_shaped.push_back(name);
      continue;
    }
    const auto values = at::tensor(at::ArrayRef<double>(tensor.values), at::kDouble)
                            .reshape(tensor.dims);  // the parameter's shape
    at::NoGradGuard no_grad;
    parameter->copy_(values);
    ++report.loaded;
  }
  for (const auto& item : parameters)
    if (!seen.count(item.key())) report.missing.push_back(item.key());
  return report;
}

}  // namespace star::test
