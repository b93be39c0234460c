// libFuzzer target: arbitrary bytes parsed as a whole safetensors file. The parser must either
// return a layout whose every tensor lies inside the input or throw star::error; anything else
// (a crash, a sanitizer report, another exception) is a finding.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sd35/safetensors/file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto layout = star::sd35::safetensors::parse(bytes, "fuzz input");
    for (const auto& [name, tensor] : layout.tensors) {
      const auto first = layout.data_offset + tensor.begin;
      const auto last = layout.data_offset + tensor.end;
      if (first > last || last > size) std::abort();  // a range the parser should have refused
      if (last > first) {
        volatile std::byte touch = bytes[first];   // ASan checks both ends of the range
        touch = bytes[last - 1];
        (void)touch;
      }
    }
  } catch (const star::error&) {
    // a refused input: the expected outcome for most of them
  }
  return 0;
}
