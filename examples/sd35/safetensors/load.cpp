#include "sd35/safetensors/load.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <ostream>
#include <set>
#include <sstream>

#include "files/atomic_file.hpp"
#include "star/core/shape.hpp"

namespace star::sd35 {
namespace {

namespace fs = std::filesystem;

enum class dtype_class { floating, integral, boolean, other };

dtype_class class_of(at::ScalarType type) {
  if (type == at::kBool) return dtype_class::boolean;
  if (at::isFloatingType(type)) return dtype_class::floating;
  if (at::isIntegralType(type, /*includeBool=*/false)) return dtype_class::integral;
  return dtype_class::other;
}

/// The safetensors dtype of a torch dtype; throws naming the file and the tensor otherwise.
safetensors::dtype file_dtype(at::ScalarType type, const fs::path& path, const std::string& name) {
  using safetensors::dtype;
  for (const auto candidate : {dtype::f64, dtype::f32, dtype::f16, dtype::bf16, dtype::i64,
                               dtype::i32, dtype::u8, dtype::boolean})
    if (to_scalar_type(candidate) == type) return candidate;
  throw checkpoint_error("save_safetensors " + path.string() + ": tensor '" + name +
                         "' has dtype " + std::string(c10::toString(type)) +
                         ", which safetensors files here do not hold");
}

/// Prints at most `limit` lines of a list, then how many more there are.
template <typename Item, typename Print>
void print_list(std::ostream& out, const char* title, const std::vector<Item>& items,
                Print print) {
  constexpr std::size_t limit = 20;
  if (items.empty()) return;
  out << "\n  " << title << ": " << items.size();
  for (std::size_t i = 0; i < items.size() && i < limit; ++i) {
    out << "\n    ";
    print(out, items[i]);
  }
  if (items.size() > limit) out << "\n    ... and " << items.size() - limit << " more";
}

/// One parameter or buffer of the module and the checkpoint name it reads.
struct target {
  std::string name;
  at::Tensor tensor;
};

std::vector<target> module_tensors(const torch::nn::Module& module) {
  std::vector<target> targets;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    if (item.value().defined()) targets.push_back({item.key(), item.value()});
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    if (item.value().defined()) targets.push_back({item.key(), item.value()});
  return targets;
}

}  // namespace

bool load_report::ok() const {
  return missing.empty() && unexpected.empty() && mis_shaped.empty() && wrong_dtype.empty();
}

std::string load_report::describe() const {
  std::ostringstream out;
  const auto total = loaded.size() + missing.size() + mis_shaped.size() + wrong_dtype.size();
  out << "checkpoint " << source.string();
  if (!prefix.empty()) out << " (prefix \"" << prefix << "\")";
  out << ": " << loaded.size() << " of " << total << " module tensors match"
      << (ok() ? "" : "; problems:");
  const auto print_name = [](std::ostream& line, const std::string& name) { line << name; };
  print_list(out, "missing (in the module, not in the checkpoint)", missing, print_name);
  print_list(out, "unexpected (in the checkpoint, not in the module)", unexpected, print_name);
  print_list(out, "mis-shaped", mis_shaped, [](std::ostream& line, const shape_mismatch& item) {
    line << item.name << ": module " << to_string(item.expected) << ", checkpoint "
         << to_string(item.actual);
  });
  print_list(out, "wrong dtype", wrong_dtype, [](std::ostream& line, const dtype_mismatch& item) {
    line << item.name << ": module " << c10::toString(item.expected) << ", checkpoint "
         << safetensors::dtype_name(item.actual);
  });
  return out.str();
}

load_report load_into(torch::nn::Module& module, const checkpoint& ckpt,
                      const load_options& options) {
  if (options.dtype && !at::isFloatingType(*options.dtype))
    throw star::option_error("load_options.dtype must be a floating type, got " +
                             std::string(c10::toString(*options.dtype)));
  load_report report{ckpt.path(), options.prefix, {}, {}, {}, {}, {}};
  const auto targets = module_tensors(module);
  std::set<std::string> known;
  std::vector<const target*> matching;
  for (const auto& item : targets) {
    const auto file_name = options.prefix + item.name;
    known.insert(file_name);
    if (!ckpt.contains(file_name)) {
      report.missing.push_back(item.name);
      continue;
    }
    const auto info = ckpt.info(file_name);
    const auto module_shape = item.tensor.sizes().vec();
    if (module_shape != info.shape) {
      report.mis_shaped.push_back({item.name, module_shape, info.shape});
    } else if (class_of(item.tensor.scalar_type()) != class_of(to_scalar_type(info.type))) {
      report.wrong_dtype.push_back({item.name, item.tensor.scalar_type(), info.type});
    } else {
      report.loaded.push_back(item.name);
      matching.push_back(&item);
    }
  }
  for (const auto& name : ckpt.names())
    if (name.starts_with(options.prefix) && !known.contains(name))
      report.unexpected.push_back(name);
  if (options.strict && !report.ok()) throw checkpoint_error(report.describe());

  const at::NoGradGuard no_grad;
  for (const auto* item : matching) {
    auto tensor = item->tensor;  // shares the module's storage
    const auto own_type = tensor.scalar_type();
    const auto type = options.dtype && at::isFloatingType(own_type) ? *options.dtype : own_type;
    const auto value = ckpt.tensor(options.prefix + item->name, type);  // module's shape
    if (type == own_type)
      tensor.copy_(value);
    else
      tensor.set_data(value.to(tensor.device()));
  }
  return report;
}

void save_safetensors(const fs::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const auto fail = [&path](const std::string& what) {
    throw checkpoint_error("save_safetensors " + path.string() + ": " + what);
  };
  nlohmann::json header = nlohmann::json::object();
  std::vector<at::Tensor> contiguous;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") fail("a tensor cannot be named __metadata__");
    if (header.contains(name)) fail("tensor '" + name + "' appears twice");
    if (!tensor.defined()) fail("tensor '" + name + "' is undefined");
    const auto type = file_dtype(tensor.scalar_type(), path, name);
    contiguous.push_back(tensor.detach().to(at::kCPU).contiguous());  // the tensor's shape
    const auto size = static_cast<std::uint64_t>(contiguous.back().nbytes());
    header[name] = {{"dtype", safetensors::dtype_name(type)},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  auto text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  try {
    files::write_stream_atomically(path, [&](std::ostream& out) {
      const std::uint64_t length = text.size();
      char length_bytes[8];
      for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
      out.write(length_bytes, 8);
      out.write(text.data(), static_cast<std::streamsize>(text.size()));
      for (const auto& tensor : contiguous)
        if (tensor.nbytes() > 0)
          out.write(static_cast<const char*>(tensor.data_ptr()),
                    static_cast<std::streamsize>(tensor.nbytes()));
    });
  } catch (const files::file_write_error& e) {
    fail(e.what());
  }
}

}  // namespace star::sd35
