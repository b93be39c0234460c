#pragma once
// A minimal safetensors reader for the golden fixtures in tests/data (F32 and I64 tensors).
// Format: 8-byte little-endian header length, JSON header {name: {dtype, shape,
// data_offsets}}, then the raw little-endian data.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "star/core/shape.hpp"

namespace star::test {

/// One tensor of a fixture file, widened to double.
struct fixture_tensor {
  star::shape dims;
  std::vector<double> values;
};

/// Reads every F32 / I64 tensor of a safetensors file.
inline std::map<std::string, fixture_tensor> read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open fixture " + path);
  std::uint64_t header_size = 0;
  in.read(reinterpret_cast<char*>(&header_size), 8);
  std::string header(header_size, ' ');
  in.read(header.data(), static_cast<std::streamsize>(header_size));
  const std::vector<char> data((std::istreambuf_iterator<char>(in)), {});
  std::map<std::string, fixture_tensor> tensors;
  const auto parsed = nlohmann::json::parse(header);  // must outlive the loop over items()
  for (const auto& [name, entry] : parsed.items()) {
    if (name == "__metadata__") continue;
    fixture_tensor t{entry["shape"].get<star::shape>(), {}};
    const auto begin = entry["data_offsets"][0].get<std::size_t>();
    const std::string dtype = entry["dtype"];
    const std::size_t count = static_cast<std::size_t>(star::numel(t.dims));
    t.values.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
      if (dtype == "F32") {
        float v;
        std::memcpy(&v, data.data() + begin + 4 * i, 4);
        t.values[i] = v;
      } else if (dtype == "I64") {
        std::int64_t v;
        std::memcpy(&v, data.data() + begin + 8 * i, 8);
        t.values[i] = static_cast<double>(v);
      } else {
        throw std::runtime_error("fixture " + path + ": unsupported dtype " + dtype);
      }
    }
    tensors.emplace(name, std::move(t));
  }
  return tensors;
}

/// The path of a file in tests/data.
inline std::string data_path(const std::string& name) {
  return std::string(STAR_TEST_DATA_DIR) + "/" + name;
}

}  // namespace star::test
