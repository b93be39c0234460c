#include "sd35/safetensors/checkpoint.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string_view>
#include <utility>

namespace star::sd35 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw checkpoint_error("checkpoint " + path.string() + ": " + what);
}

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(),
                                                      suffix) == 0;
}

/// The checkpoint file or index a diffusers/transformers component folder holds.
fs::path resolve_folder(const fs::path& folder) {
  constexpr std::array<const char*, 4> preferred{
      "diffusion_pytorch_model.safetensors", "model.safetensors",
      "diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json"};
  for (const auto* name : preferred)
    if (fs::is_regular_file(folder / name)) return folder / name;
  std::vector<fs::path> singles;
  std::vector<fs::path> indexes;
  for (const auto& item : fs::directory_iterator(folder)) {
    if (!item.is_regular_file()) continue;
    const auto name = item.path().filename().string();
    if (ends_with(name, ".safetensors")) singles.push_back(item.path());
    if (ends_with(name, ".safetensors.index.json")) indexes.push_back(item.path());
  }
  if (indexes.size() == 1) return indexes.front();
  if (indexes.empty() && singles.size() == 1) return singles.front();
  fail(folder, "folder has no diffusion_pytorch_model.safetensors, model.safetensors or their "
               ".index.json, and not exactly one other *.safetensors or *.safetensors.index.json "
               "(found " + std::to_string(singles.size()) + " and " +
               std::to_string(indexes.size()) + ")");
}

/// The `weight_map` of an index: tensor name -> shard file name.
std::map<std::string, std::string> read_weight_map(const fs::path& index) {
  std::ifstream in(index, std::ios::binary);
  if (!in) fail(index, "cannot open the index");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  json parsed;
  try {
    parsed = json::parse(text);
  } catch (const json::exception& e) {
    fail(index, std::string("index is not valid JSON: ") + e.what());
  }
  if (!parsed.is_object() || !parsed.contains("weight_map") || !parsed["weight_map"].is_object())
    fail(index, "index has no \"weight_map\" object");
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, shard] : parsed["weight_map"].items()) {
    if (!shard.is_string())
      fail(index, "weight_map entry of tensor '" + name + "' is not a file name");
    weight_map.emplace(name, shard.get<std::string>());
  }
  return weight_map;
}

}  // namespace

at::ScalarType to_scalar_type(safetensors::dtype type) {
  using safetensors::dtype;
  switch (type) {
    case dtype::f64: return at::kDouble;
    case dtype::f32: return at::kFloat;
    case dtype::f16: return at::kHalf;
    case dtype::bf16: return at::kBFloat16;
    case dtype::i64: return at::kLong;
    case dtype::i32: return at::kInt;
    case dtype::u8: return at::kByte;
    case dtype::boolean: return at::kBool;
  }
  throw checkpoint_error("to_scalar_type: invalid safetensors dtype");
}

void checkpoint::add_file(safetensors::file file) {
  for (const auto& [key, value] : file.layout().metadata) metadata_.emplace(key, value);
  files_.push_back(std::move(file));
}

checkpoint checkpoint::open(const fs::path& path) {
  try {
    if (!fs::exists(path)) fail(path, "no such file or folder");
    return fs::is_directory(path) ? open_file(resolve_folder(path)) : open_file(path);
  } catch (const fs::filesystem_error& e) {
    fail(path, e.what());
  }
}

checkpoint checkpoint::open_file(const fs::path& path) {
  checkpoint result;
  result.path_ = path;
  if (!ends_with(path.filename().string(), ".json")) {
    result.add_file(safetensors::file::open(path));
    for (const auto& [name, entry] : result.files_.front().layout().tensors)
      result.file_of_.emplace(name, 0);
  } else {
    const auto weight_map = read_weight_map(path);
    std::map<std::string, std::size_t> shard_index;
    for (const auto& [name, shard] : weight_map) {
      if (!shard_index.contains(shard)) {
        const auto shard_path = path.parent_path() / shard;
        if (!fs::is_regular_file(shard_path))
          fail(path, "shard '" + shard + "' of tensor '" + name + "' is missing (" +
                         shard_path.string() + ")");
        shard_index.emplace(shard, result.files_.size());
        result.add_file(safetensors::file::open(shard_path));
      }
      const auto index = shard_index.at(shard);
      if (result.files_[index].find(name) == nullptr)
        fail(path, "weight_map maps tensor '" + name + "' to shard '" + shard +
                       "', which has no such tensor");
      result.file_of_.emplace(name, index);
    }
  }
  for (const auto& [name, index] : result.file_of_) result.names_.push_back(name);
  return result;
}

bool checkpoint::contains(const std::string& name) const { return file_of_.contains(name); }

checkpoint::located checkpoint::locate(const std::string& name) const {
  const auto found = file_of_.find(name);
  if (found == file_of_.end()) fail(path_, "has no tensor '" + name + "'");
  const auto& file = files_[found->second];
  return {&file, file.find(name)};
}

tensor_info checkpoint::info(const std::string& name) const {
  const auto [file, entry] = locate(name);
  return {entry->type, entry->shape, file->path()};
}

at::Tensor checkpoint::tensor(const std::string& name, at::ScalarType to) const {
  const auto [file, entry] = locate(name);
  const auto stored = to_scalar_type(entry->type);
  // BOOL bytes other than 0 and 1 are invalid bools: read them as bytes, then compare.
  const auto raw_type = stored == at::kBool ? at::kByte : stored;
  auto copy = at::empty(entry->shape, at::TensorOptions().dtype(raw_type));  // the file's shape
  const auto bytes = file->bytes(*entry);
  if (!bytes.empty()) std::memcpy(copy.data_ptr(), bytes.data(), bytes.size());
  if (stored == at::kBool) copy = copy.ne(0);
  return copy.to(to);
}

}  // namespace star::sd35
