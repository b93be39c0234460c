#pragma once
// The golden fixtures of the MMDiT tests as ATen tensors, and a strict by-name load of a
// fixture's weights into a module's parameters AND buffers (a test stand-in for the
// safetensors component's load_into until its target builds).

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "support/safetensors.hpp"

namespace star::test {

/// Every tensor of a fixture file, float32 on the CPU.
inline std::map<std::string, at::Tensor> fixture_tensors(const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : read_safetensors(path))
    out.emplace(name, at::tensor(at::ArrayRef<double>(t.values), at::kDouble)
                          .reshape(t.dims)
                          .to(at::kFloat));  // t.dims
  return out;
}

/// Copies every tensor of `path` into the parameter or buffer of the same name; throws
/// std::runtime_error naming the tensor when a name is missing on either side or the shapes
/// differ.
inline void load_fixture_weights(torch::nn::Module& module, const std::string& path) {
  const auto tensors = fixture_tensors(path);
  std::set<std::string> module_names;
  at::NoGradGuard no_grad;
  const auto copy = [&](const std::string& name, at::Tensor& target) {
    module_names.insert(name);
    const auto found = tensors.find(name);
    if (found == tensors.end()) throw std::runtime_error(path + ": no tensor " + name);
    if (found->second.sizes() != target.sizes())
      throw std::runtime_error(path + ": " + name + " has another shape than the module's");
    target.copy_(found->second);
  };
  for (auto& item : module.named_parameters()) copy(item.key(), item.value());
  for (auto& item : module.named_buffers()) copy(item.key(), item.value());
  for (const auto& [name, tensor] : tensors)
    if (!module_names.count(name)) throw std::runtime_error(path + ": unexpected tensor " + name);
}

}  // namespace star::test
