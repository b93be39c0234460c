#include "sd35/mmdit/blocks.hpp"

#include <optional>
#include <string>

#include "sd35/common/attention.hpp"
#include "sd35/common/rms_norm.hpp"
#include "star/torch/attention_lse.hpp"

namespace star::sd35 {

namespace {

constexpr double norm_eps = 1e-6;

/// An empty module registered as `name` under `parent`: the positions of diffusers'
/// `nn.ModuleList` / `nn.Sequential` (`to_out.0`, `ff.net.0.proj`).
std::shared_ptr<torch::nn::Module> container(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

}  // namespace

rms_norm::rms_norm(std::int64_t dim) : weight(register_parameter("weight", torch::ones({dim}))) {}

at::Tensor rms_norm::forward(const at::Tensor& x) {
  return rms_normalize(x, weight, norm_eps);  // [..., dim]
}

feed_forward::feed_forward(std::int64_t dim) {
  const auto net = container(*this, "net");
  proj = container(*net, "0")->register_module("proj", torch::nn::Linear(dim, 4 * dim));
  output = net->register_module("2", torch::nn::Linear(4 * dim, dim));
}

at::Tensor feed_forward::forward(const at::Tensor& x) {
  return output->forward(at::gelu(proj->forward(x), "tanh"));  // [B, T, C]
}

attention::attention(const transformer_config& config, kind what)
    : heads_(config.num_attention_heads), head_dim_(config.attention_head_dim) {
  const std::int64_t dim = config.inner_dim();
  const bool normed = config.qk_norm == qk_norm_kind::rms_norm;
  if (normed) {
    norm_q = register_module("norm_q", std::make_shared<rms_norm>(head_dim_));
    norm_k = register_module("norm_k", std::make_shared<rms_norm>(head_dim_));
  }
  to_q = register_module("to_q", torch::nn::Linear(dim, dim));
  to_k = register_module("to_k", torch::nn::Linear(dim, dim));
  to_v = register_module("to_v", torch::nn::Linear(dim, dim));
  if (what.joint) {
    add_q_proj = register_module("add_q_proj", torch::nn::Linear(dim, dim));
    add_k_proj = register_module("add_k_proj", torch::nn::Linear(dim, dim));
    add_v_proj = register_module("add_v_proj", torch::nn::Linear(dim, dim));
    if (normed) {
      norm_added_q = register_module("norm_added_q", std::make_shared<rms_norm>(head_dim_));
      norm_added_k = register_module("norm_added_k", std::make_shared<rms_norm>(head_dim_));
    }
  }
  to_out = container(*this, "to_out")->register_module("0", torch::nn::Linear(dim, dim));
  if (what.joint && what.context_output)
    to_add_out = register_module("to_add_out", torch::nn::Linear(dim, dim));
}

at::Tensor attention::heads(const at::Tensor& x, const std::shared_ptr<rms_norm>& norm) const {
  const auto split =
      x.view({x.size(0), x.size(1), heads_, head_dim_}).transpose(1, 2);  // [B, H, T, D]
  return norm ? norm->forward(split) : split;                             // [B, H, T, D]
}

at::Tensor attention::merge_heads(const at::Tensor& x) const {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), heads_ * head_dim_});  // [B, T, C]
}

at::Tensor attention::self_attention(const at::Tensor& x) {
  const auto q = heads(to_q->forward(x), norm_q);                 // [B, H, N, D]
  const auto k = heads(to_k->forward(x), norm_k);                 // [B, H, N, D]
  const auto v = heads(to_v->forward(x), nullptr);                // [B, H, N, D]
  return to_out->forward(merge_heads(dot_product_attention(q, k, v)));  // [B, N, C]
}

std::pair<at::Tensor, at::Tensor> attention::joint_attention(const at::Tensor& x,
                                                             const at::Tensor& c, int block,
                                                             const attention_report& report) {
  const std::int64_t image_tokens = x.size(1);
  const auto joint_heads = [&](torch::nn::Linear& image, torch::nn::Linear& text,
                               const std::shared_ptr<rms_norm>& image_norm,
                               const std::shared_ptr<rms_norm>& text_norm) {
    return at::cat({heads(image->forward(x), image_norm), heads(text->forward(c), text_norm)},
                   2);  // [B, H, T, D]: image tokens first
  };
  const auto q = joint_heads(to_q, add_q_proj, norm_q, norm_added_q);  // [B, H, T, D]
  const auto k = joint_heads(to_k, add_k_proj, norm_k, norm_added_k);  // [B, H, T, D]
  const auto v = joint_heads(to_v, add_v_proj, nullptr, nullptr);      // [B, H, T, D]
  at::Tensor joint;  // [B, H, T, D], or [B, H, N, D] when the text rows are unused
  if (report.observer) {
    const auto attended = libtorch::attention_with_lse(q, k, v);  // output [B, H, T, D]
    report.observer->on_joint_attention(block, q.detach(), k.detach(), attended.lse.detach(),
                                        report.layout);
    joint = attended.output;
  } else {
    // Without a text output only the image query rows are needed (exactly equivalent).
    joint = dot_product_attention(to_add_out ? q : q.slice(2, 0, image_tokens), k, v);
  }
  const auto merged = merge_heads(joint);                                // [B, T, C] or [B, N, C]
  const auto image = to_out->forward(merged.slice(1, 0, image_tokens));  // [B, N, C]
  if (!to_add_out) return {image, at::Tensor()};
  return {image, to_add_out->forward(merged.slice(1, image_tokens))};  // [B, N, C], [B, L, C]
}

at::Tensor modulated_layer_norm(const at::Tensor& x, const at::Tensor& scale,
                                const at::Tensor& shift) {
  const auto normed = at::layer_norm(x, {x.size(-1)}, {}, {}, norm_eps);  // [B, T, C]
  return normed * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);  // [B, T, C]
}

ada_layer_norm_zero::ada_layer_norm_zero(std::int64_t dim, bool dual)
    : linear(register_module("linear", torch::nn::Linear(dim, (dual ? 9 : 6) * dim))),
      dual_(dual) {}

stream_modulation ada_layer_norm_zero::forward(const at::Tensor& x, const at::Tensor& temb) {
  const auto chunks = linear->forward(at::silu(temb)).chunk(dual_ ? 9 : 6, 1);  // [B, C] each
  stream_modulation out;
  out.attention_input = modulated_layer_norm(x, chunks[1], chunks[0]);  // [B, T, C]
  out.gate_msa = chunks[2];
  out.shift_mlp = chunks[3];
  out.scale_mlp = chunks[4];
  out.gate_mlp = chunks[5];
  if (dual_) {
    out.attention2_input = modulated_layer_norm(x, chunks[7], chunks[6]);  // [B, T, C]
    out.gate_msa2 = chunks[8];
  }
  return out;
}

ada_layer_norm_continuous::ada_layer_norm_continuous(std::int64_t dim)
    : linear(register_module("linear", torch::nn::Linear(dim, 2 * dim))) {}

at::Tensor ada_layer_norm_continuous::forward(const at::Tensor& x, const at::Tensor& temb) {
  const auto chunks = linear->forward(at::silu(temb)).to(x.scalar_type()).chunk(2, 1);  // [B, C]
  return modulated_layer_norm(x, chunks[0], chunks[1]);                                 // [B, T, C]
}

joint_transformer_block::joint_transformer_block(const transformer_config& config,
                                                 std::int64_t index)
    : index_(static_cast<int>(index)) {
  const std::int64_t dim = config.inner_dim();
  const bool dual = config.is_dual_attention(index);
  const bool last = index == config.num_layers - 1;
  norm1 = register_module("norm1", std::make_shared<ada_layer_norm_zero>(dim, dual));
  if (last)
    norm1_context_continuous =
        register_module("norm1_context", std::make_shared<ada_layer_norm_continuous>(dim));
  else
    norm1_context =
        register_module("norm1_context", std::make_shared<ada_layer_norm_zero>(dim, false));
  attn = register_module("attn", std::make_shared<attention>(config, attention::kind{true, !last}));
  if (dual)
    attn2 = register_module("attn2",
                            std::make_shared<attention>(config, attention::kind{false, false}));
  ff = register_module("ff", std::make_shared<feed_forward>(dim));
  if (!last) ff_context = register_module("ff_context", std::make_shared<feed_forward>(dim));
}

std::pair<at::Tensor, at::Tensor> joint_transformer_block::forward(
    const at::Tensor& hidden_states, const at::Tensor& encoder_hidden_states,
    const at::Tensor& temb, const attention_report& report) {
  const auto image = norm1->forward(hidden_states, temb);
  std::optional<stream_modulation> text;  // absent in the context-pre-only block
  at::Tensor text_input;                  // [B, L, C]
  if (norm1_context) {
    text = norm1_context->forward(encoder_hidden_states, temb);
    text_input = text->attention_input;
  } else {
    text_input = norm1_context_continuous->forward(encoder_hidden_states, temb);
  }
  const auto [image_attention, text_attention] = attn->joint_attention(
      image.attention_input, text_input, index_, report);  // [B, N, C], [B, L, C] or undefined
  auto x = hidden_states + image.gate_msa.unsqueeze(1) * image_attention;  // [B, N, C]
  if (attn2)
    x = x +
        image.gate_msa2.unsqueeze(1) * attn2->self_attention(image.attention2_input);  // [B, N, C]
  x = x + image.gate_mlp.unsqueeze(1) *
              ff->forward(modulated_layer_norm(x, image.scale_mlp, image.shift_mlp));  // [B, N, C]
  if (!text) return {x, at::Tensor()};
  auto c = encoder_hidden_states + text->gate_msa.unsqueeze(1) * text_attention;  // [B, L, C]
  c = c + text->gate_mlp.unsqueeze(1) *
              ff_context->forward(modulated_layer_norm(c, text->scale_mlp,
                                                       text->shift_mlp));  // [B, L, C]
  return {x, c};
}

}  // namespace star::sd35
