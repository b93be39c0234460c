#pragma once
/// @file
/// @brief Loading a checkpoint into a torch::nn::Module by exact parameter/buffer name, with a
/// report of what did not fit; and writing tensors as a .safetensors file.

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sd35/safetensors/checkpoint.hpp"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace star::sd35 {

/// @brief How `load_into` matches and converts.
struct load_options {
  /// Throw checkpoint_error (with `load_report::describe()`) on any problem, before changing
  /// the module; otherwise load what fits and return the report.
  bool strict = true;
  /// The checkpoint names the module tensor `n` as `prefix + n` (e.g. "transformer.");
  /// checkpoint tensors without the prefix belong to something else and are ignored.
  std::string prefix;
  /// Floating parameters and buffers become this dtype; unset: each keeps its own dtype.
  std::optional<at::ScalarType> dtype;
};

/// @brief A tensor whose shape differs between module and checkpoint.
struct shape_mismatch {
  std::string name;  ///< the module's name
  std::vector<std::int64_t> expected;  ///< the module's shape
  std::vector<std::int64_t> actual;    ///< the checkpoint's shape
};

/// @brief A tensor whose checkpoint dtype is of another class (floating, integral, bool).
struct dtype_mismatch {
  std::string name;  ///< the module's name
  at::ScalarType expected;
  safetensors::dtype actual;
};

/// @brief What `load_into` found: the module's names (checkpoint names for `unexpected`).
struct load_report {
  std::filesystem::path source;  ///< the checkpoint's path
  std::string prefix;            ///< `load_options::prefix`
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     ///< in the module, not in the checkpoint
  std::vector<std::string> unexpected;  ///< in the checkpoint (under the prefix), not in the module
  std::vector<shape_mismatch> mis_shaped;
  std::vector<dtype_mismatch> wrong_dtype;

  /// @brief Whether nothing is missing, unexpected, mis-shaped or of the wrong dtype.
  bool ok() const;
  /// @brief A multi-line summary: counts, then each problem with its names and shapes.
  std::string describe() const;
};

/// @brief Copies every parameter and buffer of `module` (recursively, by exact name) from
/// `ckpt`, without recording gradients; the module's devices are kept.
/// @throws checkpoint_error listing every problem when `options.strict` (module unchanged);
///   star::option_error when `options.dtype` is not a floating type
load_report load_into(torch::nn::Module& module, const checkpoint& ckpt,
                      const load_options& options = {});

/// @brief Writes `tensors` (any device; F64, F32, F16, BF16, I64, I32, U8, BOOL) as a
/// .safetensors file, atomically: to `path` + ".partial", then renamed onto `path`; the
/// partial file is removed on any error.
/// @param tensors   name and tensor, in data order; names unique, not "__metadata__"
/// @param metadata  the `__metadata__` strings (omitted when empty)
/// @throws checkpoint_error naming the path (and tensor)
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace star::sd35
