#pragma once
/// @file
/// @brief A set of named tensors on disk: one .safetensors file, a sharded
/// `*.safetensors.index.json`, or a diffusers/transformers folder holding either. Tensors are
/// copied out of the memory mappings on request and converted to the dtype asked for.

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sd35/safetensors/file.hpp"

namespace star::sd35 {

/// @brief What a checkpoint says about one tensor without reading it.
struct tensor_info {
  safetensors::dtype type = safetensors::dtype::f32;
  std::vector<std::int64_t> shape;
  std::filesystem::path file;  ///< the .safetensors file that holds it
};

/// @brief The torch dtype matching a safetensors dtype (F32 -> kFloat, BF16 -> kBFloat16, ...).
at::ScalarType to_scalar_type(safetensors::dtype type);

/// @brief Read-only access to the tensors of a checkpoint; cheap to copy (mappings are shared).
class checkpoint {
 public:
  /// @brief Opens a checkpoint.
  /// @param path  a .safetensors file; a `*.index.json` whose `weight_map` maps each tensor to a
  ///   shard file beside it; or a folder holding `diffusion_pytorch_model.safetensors` or
  ///   `model.safetensors` (preferred), else their `.index.json`, else its only
  ///   `*.safetensors` or `*.safetensors.index.json`
  /// @throws checkpoint_error naming the file (and tensor) when something is missing or malformed
  static checkpoint open(const std::filesystem::path& path);

  /// @brief The path that was opened (the file or index actually read for a folder).
  const std::filesystem::path& path() const { return path_; }
  /// @brief Every tensor name, sorted.
  const std::vector<std::string>& names() const { return names_; }
  /// @brief Whether the checkpoint has a tensor `name`.
  bool contains(const std::string& name) const;
  /// @brief The dtype, shape and file of tensor `name`. @throws checkpoint_error when absent.
  tensor_info info(const std::string& name) const;
  /// @brief Tensor `name` copied out of its file (CPU, contiguous) and converted.
  /// @param name  the tensor's name
  /// @param to    the dtype of the result: F16/BF16 widen exactly to kFloat, or stay with
  ///   kHalf/kBFloat16
  /// @throws checkpoint_error when absent
  at::Tensor tensor(const std::string& name, at::ScalarType to = at::kFloat) const;
  /// @brief The `__metadata__` of every file, merged (the first shard wins on a clash).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct located {
    const safetensors::file* file;
    const safetensors::tensor_entry* entry;
  };
  checkpoint() = default;
  static checkpoint open_file(const std::filesystem::path& path);  // a file or an index
  void add_file(safetensors::file file);
  located locate(const std::string& name) const;

  std::filesystem::path path_;
  std::vector<safetensors::file> files_;
  std::map<std::string, std::size_t> file_of_;  // tensor name -> index into files_
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace star::sd35
