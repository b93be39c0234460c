#pragma once
/// @file
/// @brief One .safetensors file: the validated header (tensor names, dtypes, shapes, byte
/// ranges, `__metadata__`) over a read-only memory mapping. Parsing also works on bytes in
/// memory (`parse`), which is what the libFuzzer target drives.
///
/// Format: an 8-byte little-endian header length N, N bytes of JSON
/// `{name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
/// then the data section; offsets are relative to its start.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "star/core/error.hpp"

namespace star::sd35 {

/// @brief Reading, writing or loading weights failed: a malformed or missing file, a tensor
/// that is absent, mis-shaped or of the wrong dtype. The message names the file and the tensor.
class checkpoint_error : public star::error {
 public:
  using star::error::error;
};

namespace safetensors {

/// @brief The element types the format defines that this reader knows.
enum class dtype { f64, f32, f16, bf16, i64, i32, u8, boolean };

/// @brief The format's spelling of `type`: "F32", "BF16", "BOOL", ...
std::string_view dtype_name(dtype type);

/// @brief The dtype spelled `name` in a header, or nothing when it is not one this reader knows.
std::optional<dtype> parse_dtype(std::string_view name);

/// @brief Bytes per element of `type`.
std::size_t itemsize(dtype type);

/// @brief Whether `type` is a floating-point type (F64, F32, F16, BF16).
bool is_floating(dtype type);

/// @brief One tensor of the header, validated against the data section it points into.
struct tensor_entry {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;  ///< every extent >= 0; the element count fits int64
  std::uint64_t begin = 0;          ///< first byte, relative to the data section
  std::uint64_t end = 0;            ///< one past the last byte; end - begin = numel * itemsize
  /// @brief The number of elements (1 for rank 0).
  std::int64_t numel() const;
};

/// @brief A parsed header: every tensor by name, the metadata, where the data section starts.
struct layout {
  std::map<std::string, tensor_entry> tensors;
  std::map<std::string, std::string> metadata;  ///< `__metadata__`, string to string
  std::uint64_t data_offset = 0;                ///< 8 + header length
};

/// @brief Parses and validates a whole safetensors file held in memory.
/// @param bytes   the file's bytes
/// @param source  the file's name for error messages
/// @return the layout; every tensor's bytes lie in `bytes` at `data_offset + [begin, end)`
/// @throws checkpoint_error naming `source` (and the tensor) on any malformed input: shorter
///   than 8 bytes, header past the end, bad JSON, a non-object entry, unknown dtype, bad or
///   overflowing shape, offsets out of range, reversed or overlapping, byte count not matching
///   the shape.
layout parse(std::span<const std::byte> bytes, std::string_view source);

/// @brief A safetensors file mapped read-only into memory, with its validated layout.
class file {
 public:
  /// @brief Maps and parses `path`. @throws checkpoint_error naming the path.
  static file open(const std::filesystem::path& path);

  /// @brief The file's path.
  const std::filesystem::path& path() const { return path_; }
  /// @brief The validated header.
  const safetensors::layout& layout() const { return layout_; }
  /// @brief The entry of tensor `name`, or nullptr when the file has none.
  const tensor_entry* find(const std::string& name) const;
  /// @brief The raw little-endian bytes of `entry` (an entry of this file), inside the mapping.
  std::span<const std::byte> bytes(const tensor_entry& entry) const;

 private:
  struct mapping;
  file(std::filesystem::path path, std::shared_ptr<const mapping> map,
       safetensors::layout layout);

  std::filesystem::path path_;
  std::shared_ptr<const mapping> map_;  // shared: copies of a file share one mapping
  safetensors::layout layout_;
};

}  // namespace safetensors
}  // namespace star::sd35
