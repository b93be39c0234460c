#pragma once
/// @file
/// @brief Building blocks shared by the text encoders: which hidden states a forward returns,
/// parameters that can live on the meta device (so a 4.7B-parameter config constructs without
/// memory), linear / layer-norm / embedding leaves with transformers' parameter names, and
/// argument checks.

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "star/core/error.hpp"

namespace star::sd35 {

/// @brief Which of transformers' `hidden_states` a text encoder's forward returns besides the
/// features the SD3 pipeline uses (always returned).
struct text_encoder_options {
  /// Indices into transformers' `hidden_states` tuple, in the order wanted: 0 the embeddings,
  /// `i` the output of layer `i` (T5's last one after `final_layer_norm`), each in
  /// [0, layers]. Empty (the default): none.
  std::vector<std::int64_t> hidden_states;

  /// @brief Every index `0 .. layers`, in order.
  static text_encoder_options all_hidden_states(std::int64_t layers) {
    text_encoder_options options;
    for (std::int64_t i = 0; i <= layers; ++i) options.hidden_states.push_back(i);
    return options;
  }
};

}  // namespace star::sd35

namespace star::sd35::text_detail {

/// @brief Throws `shape_error` naming `name` unless `t` is defined (a tensor `layout`).
inline void require_defined(const at::Tensor& t, const std::string& name,
                            const std::string& layout) {
  if (!t.defined())
    throw star::shape_error(name + ": expected a tensor " + layout + ", got an undefined one");
}

/// @brief Throws `value_error` naming `name` unless `ids` holds integers in [0, vocab_size).
inline void require_token_ids(const at::Tensor& ids, std::int64_t vocab_size,
                              const std::string& name) {
  if (!at::isIntegralType(ids.scalar_type(), /*includeBool=*/false))
    throw star::value_error(name + ": expected integer token ids, got dtype " +
                            std::string(c10::toString(ids.scalar_type())));
  if (ids.numel() == 0) return;
  const auto low = ids.min().item<std::int64_t>();
  const auto high = ids.max().item<std::int64_t>();
  if (low < 0 || high >= vocab_size)
    throw star::value_error(name + ": token ids must lie in [0, " + std::to_string(vocab_size) +
                            "), got values in [" + std::to_string(low) + ", " +
                            std::to_string(high) + "]");
}

/// @brief Keeps, during a forward, the hidden states `text_encoder_options::hidden_states` asks
/// for, in its order.
class hidden_state_picker {
 public:
  /// @brief Throws `option_error` naming `hidden_states` unless every index lies in
  /// [0, layers].
  hidden_state_picker(std::vector<std::int64_t> wanted, std::int64_t layers)
      : wanted_(std::move(wanted)), picked_(wanted_.size()) {
    for (const auto index : wanted_)
      if (index < 0 || index > layers)
        throw star::option_error("hidden_states: index " + std::to_string(index) +
                                 " is outside [0, " + std::to_string(layers) + "]");
  }
  /// @brief Keeps `x` [B, S, C] for every request of `index`.
  void offer(std::int64_t index, const at::Tensor& x) {
    for (std::size_t j = 0; j < wanted_.size(); ++j)
      if (wanted_[j] == index) picked_[j] = x;
  }
  /// @brief The kept tensors, one per requested index.
  std::vector<at::Tensor> take() { return std::move(picked_); }

 private:
  std::vector<std::int64_t> wanted_;
  std::vector<at::Tensor> picked_;
};

/// @brief How a fresh parameter is filled before weights are loaded.
enum class initial_value { normal, zeros, ones };

/// @brief Registers `name` on `owner` with `sizes` and `options`. On the meta device nothing
/// is allocated; elsewhere weights start as N(0, 0.02), biases at 0 and norm scales at 1.
inline at::Tensor add_parameter(torch::nn::Module& owner, const std::string& name,
                                std::vector<std::int64_t> sizes, const at::TensorOptions& options,
                                initial_value init) {
  auto value = at::empty(sizes, options);  // the parameter's shape
  if (!value.is_meta()) {
    at::NoGradGuard no_grad;
    if (init == initial_value::normal) value.normal_(0.0, 0.02);
    if (init == initial_value::zeros) value.zero_();
    if (init == initial_value::ones) value.fill_(1.0);
  }
  return owner.register_parameter(name, value);
}

/// @brief `y = x Wᵀ (+ b)` with parameters `weight` [out, in] and optional `bias` [out].
class linear : public torch::nn::Module {
 public:
  /// @param in         input features
  /// @param out        output features
  /// @param with_bias  whether `bias` exists
  /// @param options    dtype and device of the parameters (meta: nothing allocated)
  linear(std::int64_t in, std::int64_t out, bool with_bias, const at::TensorOptions& options)
      : weight_(add_parameter(*this, "weight", {out, in}, options, initial_value::normal)),
        bias_(with_bias ? add_parameter(*this, "bias", {out}, options, initial_value::zeros)
                        : at::Tensor{}) {}
  /// @brief `x` [..., in] → [..., out]; the input is cast to the weight's dtype.
  at::Tensor operator()(const at::Tensor& x) const {
    return at::linear(x.to(weight_.scalar_type()), weight_, bias_);  // [..., out]
  }
  /// @brief The `weight` parameter [out, in].
  const at::Tensor& weight() const { return weight_; }

 private:
  at::Tensor weight_;
  at::Tensor bias_;
};

/// @brief LayerNorm over the last dimension with `weight` and `bias` [C], in the module's dtype
/// like transformers' `nn.LayerNorm` (at::layer_norm accumulates half inputs in float32).
class layer_norm : public torch::nn::Module {
 public:
  /// @param width    `C`, the normalised last dimension
  /// @param eps      added to the variance
  /// @param options  dtype and device of the parameters (meta: nothing allocated)
  layer_norm(std::int64_t width, double eps, const at::TensorOptions& options)
      : width_(width),
        eps_(eps),
        weight_(add_parameter(*this, "weight", {width}, options, initial_value::ones)),
        bias_(add_parameter(*this, "bias", {width}, options, initial_value::zeros)) {}
  /// @brief `x` [..., C] normalised over C, scaled and shifted → [..., C].
  at::Tensor operator()(const at::Tensor& x) const {
    return at::layer_norm(x, {width_}, weight_, bias_, eps_);  // [..., C]
  }

 private:
  std::int64_t width_;
  double eps_;
  at::Tensor weight_;
  at::Tensor bias_;
};

/// @brief A lookup table `weight` [rows, C].
class embedding : public torch::nn::Module {
 public:
  /// @param rows     the table's rows (vocabulary or positions)
  /// @param width    `C`, each row's width
  /// @param options  dtype and device of the table (meta: nothing allocated)
  embedding(std::int64_t rows, std::int64_t width, const at::TensorOptions& options)
      : weight_(add_parameter(*this, "weight", {rows, width}, options, initial_value::normal)) {}
  /// @brief `ids` [...] (integers) → [..., C].
  at::Tensor operator()(const at::Tensor& ids) const {
    return at::embedding(weight_, ids.to(at::kLong));  // [..., C]
  }
  /// @brief The `weight` table [rows, C].
  const at::Tensor& weight() const { return weight_; }

 private:
  at::Tensor weight_;
};

/// @brief A plain container module, for transformers' intermediate name levels
/// (`text_model`, `encoder`, `layer.0`, ...).
inline std::shared_ptr<torch::nn::Module> add_container(torch::nn::Module& owner,
                                                         const std::string& name) {
  return owner.register_module(name, std::make_shared<torch::nn::Module>());
}

/// @brief Registers leaf `module` under `name` on `owner` and returns it.
template <class M, class... Args>
std::shared_ptr<M> add_leaf(torch::nn::Module& owner, const std::string& name, Args&&... args) {
  return owner.register_module(name, std::make_shared<M>(std::forward<Args>(args)...));
}

}  // namespace star::sd35::text_detail
