#include "sd35/safetensors/file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "star/core/shape.hpp"

namespace star::sd35::safetensors {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies it as is");

namespace {

using json = nlohmann::json;

struct dtype_row {
  dtype type;
  std::string_view name;
  std::size_t itemsize;
  bool floating;
};

constexpr std::array<dtype_row, 8> dtype_table{{{dtype::f64, "F64", 8, true},
                                                {dtype::f32, "F32", 4, true},
                                                {dtype::f16, "F16", 2, true},
                                                {dtype::bf16, "BF16", 2, true},
                                                {dtype::i64, "I64", 8, false},
                                                {dtype::i32, "I32", 4, false},
                                                {dtype::u8, "U8", 1, false},
                                                {dtype::boolean, "BOOL", 1, false}}};

const dtype_row& row_of(dtype type) {
  return *std::find_if(dtype_table.begin(), dtype_table.end(),
                       [type](const dtype_row& row) { return row.type == type; });
}

/// The safetensors specification caps the header at 100 MB.
constexpr std::uint64_t max_header_bytes = 100'000'000;
constexpr auto max_int64 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

/// Throws the error of one file (and, when given, one tensor).
[[noreturn]] void fail(std::string_view source, std::string_view tensor, const std::string& what) {
  std::string message = "safetensors file " + std::string(source) + ": ";
  if (!tensor.empty()) message += "tensor '" + std::string(tensor) + "': ";
  throw checkpoint_error(message + what);
}

/// A JSON value printed for an error message: scalars as they are, arrays one level deep
/// (nested values elided: printing them recursively could exhaust the stack), objects elided.
std::string show(const json& value) {
  constexpr std::size_t max_chars = 60;
  const auto shallow = [](const json& item) -> std::string {
    if (item.is_array()) return "[...]";
    if (item.is_object()) return "{...}";
    return item.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  std::string text = shallow(value);
  if (value.is_array()) {
    text = "[";
    for (std::size_t i = 0; i < value.size() && text.size() < max_chars; ++i)
      text += (i ? ", " : "") + shallow(value[i]);
    text += "]";
  }
  if (text.size() > max_chars) text = text.substr(0, max_chars - 3) + "...";
  return text;
}

std::string range_text(std::uint64_t begin, std::uint64_t end) {
  std::string text = "[";  // appended piece by piece: GCC 12 misreads "[" + std::string
  text += std::to_string(begin);
  text += ", ";
  text += std::to_string(end);
  return text + "]";
}

std::vector<std::int64_t> parse_shape(const json& value, std::string_view source,
                                      std::string_view name) {
  if (!value.is_array()) fail(source, name, "shape is not an array: " + show(value));
  std::vector<std::int64_t> shape;
  shape.reserve(value.size());
  for (const auto& extent : value) {
    const auto axis = "shape[" + std::to_string(shape.size()) + "] = " + show(extent);
    if (!extent.is_number_integer()) fail(source, name, axis + " is not an integer");
    if (!extent.is_number_unsigned()) fail(source, name, axis + " is negative");
    const auto size = extent.get<std::uint64_t>();
    if (size > max_int64) fail(source, name, axis + " overflows int64");
    shape.push_back(static_cast<std::int64_t>(size));
  }
  return shape;
}

/// The byte count of `shape` elements of `type`; throws when it overflows.
std::uint64_t byte_count(const std::vector<std::int64_t>& shape, dtype type,
                         std::string_view source, std::string_view name) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  std::uint64_t count = 1;
  for (const auto extent : shape) {
    const auto size = static_cast<std::uint64_t>(extent);
    if (count > max_int64 / size)
      fail(source, name,
           "shape " + star::to_string(shape) + " has more elements than int64 holds");
    count *= size;
  }
  const std::uint64_t width = itemsize(type);
  if (count > std::numeric_limits<std::uint64_t>::max() / width)
    fail(source, name, "shape " + star::to_string(shape) + " overflows the byte count");
  return count * width;
}

std::pair<std::uint64_t, std::uint64_t> parse_offsets(const json& value, std::string_view source,
                                                      std::string_view name) {
  if (!value.is_array() || value.size() != 2)
    fail(source, name, "data_offsets is not an array [begin, end]: " + show(value));
  for (const auto& offset : value)
    if (!offset.is_number_unsigned())
      fail(source, name, "data_offsets " + show(value) + " are not non-negative integers");
  return {value[0].get<std::uint64_t>(), value[1].get<std::uint64_t>()};
}

const json& member(const json& entry, const char* key, std::string_view source,
                   std::string_view name) {
  const auto found = entry.find(key);
  if (found == entry.end()) fail(source, name, std::string("has no \"") + key + "\"");
  return *found;
}

tensor_entry parse_entry(const std::string& name, const json& entry, std::uint64_t data_size,
                         std::string_view source) {
  if (!entry.is_object()) fail(source, name, "entry is not a JSON object: " + show(entry));
  const auto& type_value = member(entry, "dtype", source, name);
  if (!type_value.is_string()) fail(source, name, "dtype is not a string: " + show(type_value));
  const auto type = parse_dtype(type_value.get_ref<const std::string&>());
  if (!type)
    fail(source, name,
         "unknown dtype " + show(type_value) + " (known: F64, F32, F16, BF16, I64, I32, U8, BOOL)");
  tensor_entry tensor{name, *type, parse_shape(member(entry, "shape", source, name), source, name),
                      0, 0};
  const auto [begin, end] =
      parse_offsets(member(entry, "data_offsets", source, name), source, name);
  const auto offsets = "data_offsets " + range_text(begin, end);
  if (begin > end) fail(source, name, offsets + " are reversed (begin > end)");
  if (end > data_size)
    fail(source, name,
         offsets + " are out of range: the data section has " + std::to_string(data_size) +
             " bytes");
  const auto needed = byte_count(tensor.shape, tensor.type, source, name);
  if (end - begin != needed)
    fail(source, name,
         offsets + " hold " + std::to_string(end - begin) + " bytes, which does not match shape " +
             star::to_string(tensor.shape) + " of " + std::string(dtype_name(tensor.type)) + " (" +
             std::to_string(needed) + " bytes)");
  tensor.begin = begin;
  tensor.end = end;
  return tensor;
}

std::map<std::string, std::string> parse_metadata(const json& value, std::string_view source) {
  if (!value.is_object()) fail(source, {}, "__metadata__ is not a JSON object: " + show(value));
  std::map<std::string, std::string> metadata;
  for (const auto& [key, text] : value.items()) {
    if (!text.is_string())
      fail(source, {}, "__metadata__ value of '" + key + "' is not a string: " + show(text));
    metadata.emplace(key, text.get<std::string>());
  }
  return metadata;
}

/// Throws when two non-empty byte ranges share a byte.
void require_disjoint(const std::map<std::string, tensor_entry>& tensors, std::string_view source) {
  std::vector<const tensor_entry*> by_offset;
  for (const auto& [name, tensor] : tensors)
    if (tensor.end > tensor.begin) by_offset.push_back(&tensor);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const tensor_entry* a, const tensor_entry* b) { return a->begin < b->begin; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto& before = *by_offset[i - 1];
    const auto& after = *by_offset[i];
    if (after.begin < before.end)
      fail(source, {},
           "the data_offsets of tensors '" + before.name + "' " +
               range_text(before.begin, before.end) + " and '" + after.name + "' " +
               range_text(after.begin, after.end) + " overlap");
  }
}

}  // namespace

std::string_view dtype_name(dtype type) { return row_of(type).name; }

std::optional<dtype> parse_dtype(std::string_view name) {
  for (const auto& row : dtype_table)
    if (row.name == name) return row.type;
  return std::nullopt;
}

std::size_t itemsize(dtype type) { return row_of(type).itemsize; }

bool is_floating(dtype type) { return row_of(type).floating; }

std::int64_t tensor_entry::numel() const {
  std::int64_t count = 1;
  for (const auto extent : shape) count *= extent;  // validated by parse: no overflow
  return count;
}

layout parse(std::span<const std::byte> bytes, std::string_view source) {
  constexpr std::size_t length_bytes = 8;
  if (bytes.size() < length_bytes)
    fail(source, {},
         std::to_string(bytes.size()) + " bytes, shorter than the 8-byte header length");
  std::uint64_t header_size = 0;
  for (std::size_t i = 0; i < length_bytes; ++i)
    header_size |= std::to_integer<std::uint64_t>(bytes[i]) << (8 * i);
  const std::uint64_t available = bytes.size() - length_bytes;
  if (header_size > available)
    fail(source, {},
         "header length " + std::to_string(header_size) + " runs past the end of the file (" +
             std::to_string(bytes.size()) + " bytes)");
  if (header_size > max_header_bytes)
    fail(source, {}, "header length " + std::to_string(header_size) + " exceeds 100 MB");

  const auto* text = reinterpret_cast<const char*>(bytes.data() + length_bytes);
  json header;
  try {
    header = json::parse(text, text + header_size);
  } catch (const json::exception& e) {
    fail(source, {}, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(source, {}, "header is not a JSON object: " + show(header));

  layout result;
  result.data_offset = length_bytes + header_size;
  const std::uint64_t data_size = available - header_size;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__")
      result.metadata = parse_metadata(entry, source);
    else
      result.tensors.emplace(name, parse_entry(name, entry, data_size, source));
  }
  require_disjoint(result.tensors, source);
  return result;
}

/// A read-only private mapping of a whole file; unmapped when the last file copy goes.
struct file::mapping {
  const std::byte* data = nullptr;
  std::size_t size = 0;

  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;
  mapping(const std::byte* data_, std::size_t size_) : data(data_), size(size_) {}
  ~mapping() {
    if (size > 0) ::munmap(const_cast<std::byte*>(data), size);
  }
};

file::file(std::filesystem::path path, std::shared_ptr<const mapping> map,
           safetensors::layout layout)
    : path_(std::move(path)), map_(std::move(map)), layout_(std::move(layout)) {}

file file::open(const std::filesystem::path& path) {
  const auto name = path.string();
  // `error`: the errno of the failed call, read before ::close can overwrite it.
  const auto system_error = [&name](const char* what, int error) {
    fail(name, {}, std::string(what) + ": " + std::strerror(error));
  };
  const int descriptor = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) system_error("cannot open", errno);
  struct ::stat status {};
  if (::fstat(descriptor, &status) != 0) {
    const int error = errno;
    ::close(descriptor);
    system_error("cannot stat", error);
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(descriptor);
    fail(name, {}, "not a regular file");
  }
  const auto size = static_cast<std::size_t>(status.st_size);
  void* address = nullptr;
  if (size > 0) {
    address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, descriptor, 0);
    if (address == MAP_FAILED) {
      const int error = errno;
      ::close(descriptor);
      system_error("cannot map", error);
    }
  }
  ::close(descriptor);  // the mapping keeps the file open
  auto map = std::make_shared<const mapping>(static_cast<const std::byte*>(address), size);
  auto parsed = parse({map->data, map->size}, name);
  return file(path, std::move(map), std::move(parsed));
}

const tensor_entry* file::find(const std::string& name) const {
  const auto found = layout_.tensors.find(name);
  return found == layout_.tensors.end() ? nullptr : &found->second;
}

std::span<const std::byte> file::bytes(const tensor_entry& entry) const {
  return {map_->data + layout_.data_offset + entry.begin, entry.end - entry.begin};
}

}  // namespace star::sd35::safetensors
