#include "sd35/lora/adapter.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <sstream>
#include <utility>
#include <vector>

#include "star/core/error.hpp"

namespace star::sd35 {
namespace {

/// The registered (frozen) weight parameter of `linear`, whatever its member holds.
at::Tensor base_weight(const torch::nn::LinearImpl& linear) {
  const auto parameters = linear.named_parameters(/*recurse=*/false);
  const auto* weight = parameters.find("weight");
  return weight != nullptr ? *weight : at::Tensor();  // [out, in]
}

/// The child `name` of `parent`, created as an empty container module when absent.
torch::nn::Module& child_module(torch::nn::Module& parent, const std::string& name) {
  const auto children = parent.named_children();
  if (const auto* found = children.find(name)) return **found;
  return *parent.register_module(name, std::make_shared<torch::nn::Module>());
}

/// The module at dotted `path` below `root` (every level created on demand), so the adapter's
/// parameter names repeat the model's module names.
torch::nn::Module& module_at(torch::nn::Module& root, const std::string& path) {
  torch::nn::Module* node = &root;
  std::istringstream parts(path);
  for (std::string part; std::getline(parts, part, '.');) node = &child_module(*node, part);
  return *node;
}

/// `lora_A`'s initial values, drawn in float32 on the CPU so a seed gives the same adapter on
/// every device.
at::Tensor initial_lora_a(const lora_options& options, std::int64_t in_features,
                          at::Generator& generator) {
  auto a = at::zeros({options.rank, in_features}, at::kFloat);  // [r, in]
  switch (options.init) {
    case lora_init::gaussian:
      a.normal_(0.0, 1.0 / static_cast<double>(options.rank), generator);
      break;
    case lora_init::kaiming_uniform: {
      const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
      a.uniform_(-bound, bound, generator);
      break;
    }
    case lora_init::zeros:
      break;
  }
  return a;
}

std::string device_name(const at::Device& device) {
  std::ostringstream out;
  out << device;
  return out.str();
}

using named_linear = std::pair<std::string, std::shared_ptr<torch::nn::LinearImpl>>;

/// The Linears of `model` that `options` adapts, in the model's module order, after validating
/// `options`; reads `model` only.
/// @throws option_error on invalid options or when no Linear matches any target
std::vector<named_linear> adapted_linears(const torch::nn::Module& model,
                                          const lora_options& options) {
  options.validate();
  std::vector<named_linear> linears;
  for (const auto& item : model.named_modules(std::string(), /*include_self=*/false)) {
    auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(item.value());
    if (!linear) continue;
    for (const auto& suffix : options.target_modules)
      if (matches_lora_target(item.key(), suffix)) {
        linears.emplace_back(item.key(), linear);
        break;
      }
  }
  if (linears.empty()) {
    std::string list;
    for (const auto& suffix : options.target_modules)
      list += (list.empty() ? "" : ", ") + suffix;
    throw option_error("lora_options.target_modules: no torch::nn::Linear of the model matches "
                       "any of [" + list + "]");
  }
  return linears;
}

}  // namespace

lora_adapter::lora_adapter(torch::nn::Module& model, lora_options options)
    : options_(std::move(options)) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options_.seed);
  for (const auto& [name, linear] : adapted_linears(model, options_)) {
    const auto base = base_weight(*linear);  // [out, in]
    const auto tensor_options = base.options().dtype(options_.dtype);
    const auto a =
        initial_lora_a(options_, base.size(1), generator).to(tensor_options);  // [r, in]
    const auto b = at::zeros({base.size(0), options_.rank}, tensor_options);  // [out, r]

    auto& node = module_at(*this, name);
    target entry{name, linear, {}, {}};
    entry.lora_a = child_module(node, "lora_A").register_parameter("weight", a);  // [r, in]
    entry.lora_b = child_module(node, "lora_B").register_parameter("weight", b);  // [out, r]
    targets_.push_back(std::move(entry));
  }
  // Last, once nothing can fail: a throwing constructor leaves the model as it was.
  for (auto& parameter : model.parameters()) parameter.set_requires_grad(false);
}

std::vector<std::pair<std::string, std::vector<std::int64_t>>> lora_adapter::parameter_shapes(
    const torch::nn::Module& model, const lora_options& options) {
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> shapes;
  for (const auto& [name, linear] : adapted_linears(model, options)) {
    const auto base = base_weight(*linear);  // [out, in]
    shapes.emplace_back(name + ".lora_A.weight", std::vector{options.rank, base.size(1)});
    shapes.emplace_back(name + ".lora_B.weight", std::vector{base.size(0), options.rank});
  }
  return shapes;
}

lora_adapter::~lora_adapter() { restore(); }

void lora_adapter::require_unmerged(const char* what) const {
  if (merged_)
    throw value_error(std::string("lora_adapter::") + what +
                      ": the adapter was merged into the base weights (merge() is one-way)");
}

void lora_adapter::apply() {
  require_unmerged("apply");
  const double scale = options_.scale();
  // Every adapted weight first, then the members: a device mismatch changes none of them.
  std::vector<at::Tensor> adapted;
  adapted.reserve(targets_.size());
  for (const auto& t : targets_) {
    const auto base = base_weight(*t.linear);  // [out, in]
    if (t.lora_a.device() != base.device())
      throw value_error("lora_adapter::apply: " + t.name + ".lora_A is on " +
                        device_name(t.lora_a.device()) + " but the base weight is on " +
                        device_name(base.device()) + " (move the adapter with ->to(device))");
    const auto delta = t.lora_b.mm(t.lora_a).mul(scale);       // [out, in]
    adapted.push_back(base.add(delta.to(base.scalar_type())));  // [out, in]
  }
  set_weight_members(adapted, true);
}

void lora_adapter::restore() {
  for (auto& t : targets_) t.linear->weight = base_weight(*t.linear);  // [out, in]
  active_ = false;
}

std::vector<at::Tensor> lora_adapter::weight_members() const {
  std::vector<at::Tensor> members;
  members.reserve(targets_.size());
  for (const auto& t : targets_) members.push_back(t.linear->weight);  // [out, in]
  return members;
}

void lora_adapter::set_weight_members(const std::vector<at::Tensor>& members,
                                      bool active) noexcept {
  for (std::size_t i = 0; i < targets_.size(); ++i) targets_[i].linear->weight = members[i];
  active_ = active;
}

lora_adapter::scope::scope(lora_adapter& adapter, bool enable)
    : adapter_(adapter), previous_(adapter.weight_members()), previous_active_(adapter.active_) {
  if (enable) {
    adapter_.apply();
  } else {
    adapter_.require_unmerged("disabled");
    adapter_.restore();
  }
}

lora_adapter::scope::~scope() { adapter_.set_weight_members(previous_, previous_active_); }

lora_adapter::scope lora_adapter::enabled() { return scope(*this, true); }

lora_adapter::scope lora_adapter::disabled() { return scope(*this, false); }

void lora_adapter::merge() {
  require_unmerged("merge");
  const at::NoGradGuard no_grad;
  const double scale = options_.scale();
  for (auto& t : targets_) {
    auto base = base_weight(*t.linear);                   // [out, in]
    const auto delta = t.lora_b.mm(t.lora_a).mul(scale);  // [out, in]
    base.add_(delta.to(base.device(), base.scalar_type()));
  }
  merged_ = true;
  restore();
}

std::vector<at::Tensor> lora_adapter::trainable_parameters() const {
  std::vector<at::Tensor> parameters;
  parameters.reserve(2 * targets_.size());
  for (const auto& t : targets_) {
    parameters.push_back(t.lora_a);  // [r, in]
    parameters.push_back(t.lora_b);  // [out, r]
  }
  return parameters;
}

std::vector<std::string> lora_adapter::adapted_modules() const {
  std::vector<std::string> names;
  names.reserve(targets_.size());
  for (const auto& t : targets_) names.push_back(t.name);
  return names;
}

}  // namespace star::sd35
