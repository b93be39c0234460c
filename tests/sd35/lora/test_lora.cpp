// LoRA on the tiny MMDiT of tests/data/sd35/sd3_transformer*.{json,safetensors}: which Linears
// are adapted, the forward against an explicitly merged model, gradients, the enabled /
// disabled scopes, merge, initialisation, and the peft / diffusers files (keys, config,
// round trips, errors).

// LibTorch first: its glog defines CHECK, which Catch must own.
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include "sd35/lora/adapter.hpp"
#include "sd35/lora/format.hpp"
#include "sd35/mmdit/transformer.hpp"
#include "sd35/safetensors/checkpoint.hpp"
#include "sd35/safetensors/load.hpp"
#undef CHECK

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sd35/sd35_mmdit_fixture.hpp"
#include "support/safetensors.hpp"
#include "support/scratch_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace star::sd35;
using star::test::data_path;
using star::test::max_abs_diff;
// the fixture MMDiT (3 blocks, dual attention in 0 and 1) with its golden weights
const auto tiny_model = star::test::fixture_transformer;
using json = nlohmann::json;

const std::vector<std::string> flow_grpo_suffixes = {
    "attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out",
    "attn.to_k",       "attn.to_out.0",   "attn.to_q",       "attn.to_v"};

struct forward_inputs {
  at::Tensor hidden, text, pooled, timestep;
};

forward_inputs random_inputs(std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return {at::randn({2, 16, 8, 8}, gen),   // [B, C, H, W]
          at::randn({2, 12, 32}, gen),     // [B, L, Dj]
          at::randn({2, 24}, gen),         // [B, Dp]
          at::tensor({1000.0F, 450.0F})};  // [B]
}

at::Tensor run(sd3_transformer& model, const forward_inputs& in) {
  return model.forward(in.hidden, in.text, in.pooled, in.timestep);  // [B, C, H, W]
}

lora_options small_options() {
  lora_options options;
  options.rank = 4;
  options.alpha = 12.0;
  options.seed = 7;
  return options;
}

/// Sets every lora_B to 0.1 N(0, 1) (seeded), so the adapter changes the model.
void randomize_b(lora_adapter& lora, std::uint64_t seed) {
  const at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : lora.named_parameters())
    if (item.key().ends_with("lora_B.weight"))
      item.value().copy_(at::randn(item.value().sizes(), gen).mul(0.1));  // [out, r]
}

/// A fresh fixture model whose weights are W0 + scale B A for each adapted Linear of `lora`,
/// computed here from the adapter's named parameters and the model's own names.
std::shared_ptr<sd3_transformer> explicitly_merged(const lora_adapter& lora) {
  auto reference = tiny_model();
  const at::NoGradGuard no_grad;
  auto weights = reference->named_parameters();
  const auto factors = lora.named_parameters();
  for (const auto& module : lora.adapted_modules()) {
    const auto& a = factors[module + ".lora_A.weight"];  // [r, in]
    const auto& b = factors[module + ".lora_B.weight"];  // [out, r]
    weights[module + ".weight"].add_(b.to(at::kDouble).mm(a.to(at::kDouble)).mul(lora.scale()));
  }
  return reference;
}

/// The Flow-GRPO target names of the tiny model, sorted.
std::vector<std::string> expected_adapted_modules(std::int64_t layers) {
  std::vector<std::string> names;
  for (std::int64_t i = 0; i < layers; ++i)
    for (const auto& suffix : flow_grpo_suffixes)
      if (!(i == layers - 1 && suffix == "attn.to_add_out"))
        names.push_back("transformer_blocks." + std::to_string(i) + "." + suffix);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

/// Requires every parameter of `model` to be trainable, as a fresh model's are: what a failed
/// adapter construction or load must leave.
void require_untouched(const torch::nn::Module& model) {
  for (const auto& p : model.parameters()) REQUIRE(p.requires_grad());
}

/// The tensors of a saved adapter under `prefix`, as save_safetensors takes them.
std::vector<std::pair<std::string, at::Tensor>> prefixed_tensors(const lora_adapter& lora,
                                                                 const std::string& prefix) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : lora.named_parameters())
    tensors.emplace_back(prefix + item.key(), item.value());  // [r, in] or [out, r]
  return tensors;
}

}  // namespace

TEST_CASE(
    "targets: Flow-GRPO's eight joint-attention projections of every block, minus the "
    "last block's to_add_out, none from attn2",
    "[sd35][lora]") {
  auto model = tiny_model();
  const auto names_before = model->named_parameters().keys();
  const lora_adapter lora(*model, lora_options{});

  const auto adapted = lora.adapted_modules();
  CHECK(adapted.size() == 3 * 8 - 1);
  CHECK(sorted(adapted) == expected_adapted_modules(3));
  for (const auto& name : adapted) CHECK(name.find("attn2") == std::string::npos);

  // peft's names, each target with A [r, in] and B [out, r]; the model itself is unchanged.
  const auto parameters = lora.named_parameters();
  CHECK(parameters.size() == 2 * adapted.size());
  const auto* a = parameters.find("transformer_blocks.0.attn.to_q.lora_A.weight");
  const auto* b = parameters.find("transformer_blocks.2.attn.to_out.0.lora_B.weight");
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(a->sizes() == at::IntArrayRef({32, 32}));
  CHECK(b->sizes() == at::IntArrayRef({32, 32}));
  CHECK(parameters.find("transformer_blocks.2.attn.to_add_out.lora_A.weight") == nullptr);
  CHECK(model->named_parameters().keys() == names_before);

  // Frozen base, trainable adapter.
  for (const auto& p : model->parameters()) CHECK_FALSE(p.requires_grad());
  const auto trainable = lora.trainable_parameters();
  CHECK(trainable.size() == 2 * adapted.size());
  for (const auto& p : trainable) CHECK(p.requires_grad());
}

TEST_CASE("targets: a custom suffix list, peft's dot-boundary rule", "[sd35][lora]") {
  CHECK(matches_lora_target("transformer_blocks.0.attn.to_q", "attn.to_q"));
  CHECK(matches_lora_target("attn.to_q", "attn.to_q"));
  CHECK_FALSE(matches_lora_target("transformer_blocks.0.attn2.to_q", "attn.to_q"));
  CHECK_FALSE(matches_lora_target("transformer_blocks.0.xattn.to_q", "attn.to_q"));
  CHECK_FALSE(matches_lora_target("to_q", "attn.to_q"));

  auto model = tiny_model();
  auto options = small_options();
  options.target_modules = {"to_q", "proj_out"};  // attn and attn2 queries, and the output layer
  const lora_adapter lora(*model, options);
  CHECK(sorted(lora.adapted_modules()) ==
        sorted({"proj_out", "transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn2.to_q",
                "transformer_blocks.1.attn.to_q", "transformer_blocks.1.attn2.to_q",
                "transformer_blocks.2.attn.to_q"}));
  const auto parameters = lora.named_parameters();
  const auto* a = parameters.find("proj_out.lora_A.weight");  // proj_out: 32 -> 64
  const auto* b = parameters.find("proj_out.lora_B.weight");
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(a->sizes() == at::IntArrayRef({4, 32}));
  CHECK(b->sizes() == at::IntArrayRef({64, 4}));
}

TEST_CASE("forward: with B = 0 the adapted model is exactly the base model", "[sd35][lora]") {
  auto model = tiny_model();
  const auto in = random_inputs(11);
  INFO("seed 11");
  const at::NoGradGuard no_grad;
  const auto base = run(*model, in);
  lora_adapter lora(*model, lora_options{});
  lora.apply();
  CHECK(lora.active());
  CHECK(max_abs_diff(run(*model, in), base) == 0.0);
}

TEST_CASE("forward: a random B changes the output, which equals an explicitly merged model",
          "[sd35][lora]") {
  auto model = tiny_model();
  const auto in = random_inputs(12);
  INFO("seed 12");
  const at::NoGradGuard no_grad;
  const auto base = run(*model, in);
  lora_adapter lora(*model, small_options());
  randomize_b(lora, 3);
  const auto adapted = [&] {
    const auto on = lora.enabled();
    return run(*model, in);
  }();
  CHECK(max_abs_diff(adapted, base) > 1e-2);
  const auto reference = explicitly_merged(lora);
  CHECK(max_abs_diff(adapted, run(*reference, in)) <= 1e-5);
}

TEST_CASE("gradients: reach every lora_A and lora_B, none reaches the base", "[sd35][lora]") {
  auto model = tiny_model();
  lora_adapter lora(*model, small_options());
  randomize_b(lora, 4);
  const auto in = random_inputs(13);
  INFO("seed 13");
  {
    const auto on = lora.enabled();
    run(*model, in).square().mean().backward();
  }
  for (const auto& p : model->parameters()) CHECK_FALSE(p.grad().defined());
  // Zero only where no output depends on the layer: the last (context-pre-only) block's text
  // queries feed only a text output that block does not produce.
  std::set<std::string> zero;
  for (const auto& item : lora.named_parameters()) {
    INFO(item.key());
    REQUIRE(item.value().grad().defined());
    REQUIRE(item.value().grad().isfinite().all().item<bool>());
    if (item.value().grad().abs().max().item<double>() == 0.0) zero.insert(item.key());
  }
  CHECK(zero == std::set<std::string>{"transformer_blocks.2.attn.add_q_proj.lora_A.weight",
                                      "transformer_blocks.2.attn.add_q_proj.lora_B.weight"});
}

TEST_CASE("gradients: equal central differences of a double-precision Linear stack",
          "[sd35][lora]") {
  // The MMDiT computes its norms and softmax in float32, so the exact check uses plain Linears.
  torch::nn::Sequential model(torch::nn::Linear(5, 7), torch::nn::Functional(torch::tanh),
                              torch::nn::Linear(7, 3));
  model->to(at::kDouble);
  lora_options options;
  options.rank = 2;
  options.alpha = 3.0;
  options.target_modules = {"0", "2"};
  options.dtype = at::kDouble;
  lora_adapter lora(*model, options);
  randomize_b(lora, 21);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(22);
  INFO("seed 22");
  const auto x = at::randn({4, 5}, gen).to(at::kDouble);  // [B, 5]
  const auto loss = [&] {
    const auto on = lora.enabled();
    return model->forward(x).sin().sum();  // []
  };
  loss().backward();
  const at::NoGradGuard no_grad;
  for (const auto& item : lora.named_parameters()) {
    auto flat = item.value().view({-1});               // [n]
    const auto grad = item.value().grad().view({-1});  // [n]
    for (std::int64_t i = 0; i < flat.size(0); ++i) {
      INFO(item.key() << " element " << i);
      const double original = flat[i].item<double>();
      const double step = 1e-6;
      flat[i].fill_(original + step);
      const double up = loss().item<double>();
      flat[i].fill_(original - step);
      const double down = loss().item<double>();
      flat[i].fill_(original);
      const double analytic = grad[i].item<double>();
      CHECK(std::abs((up - down) / (2 * step) - analytic) <= 1e-7 + 1e-6 * std::abs(analytic));
    }
  }
}

TEST_CASE("scopes: disabled() is the base model, and the previous weights come back after it",
          "[sd35][lora]") {
  auto model = tiny_model();
  const auto in = random_inputs(14);
  INFO("seed 14");
  const auto base = [&] {
    const at::NoGradGuard no_grad;
    return run(*model, in);
  }();
  lora_adapter lora(*model, small_options());
  randomize_b(lora, 5);

  lora.apply();  // with grad: the members carry the graph to A and B
  const auto adapted = [&] {
    const at::NoGradGuard no_grad;
    return run(*model, in);
  }();
  {
    // Flow-GRPO's reference policy for the KL term, computed without grad mid-step.
    const at::NoGradGuard no_grad;
    const auto off = lora.disabled();
    CHECK_FALSE(lora.active());
    CHECK(max_abs_diff(run(*model, in), base) == 0.0);
  }
  CHECK(lora.active());
  const auto again = run(*model, in);
  CHECK(max_abs_diff(again, adapted) == 0.0);
  again.sum().backward();  // the restored members still reach A and B
  for (const auto& p : lora.trainable_parameters()) CHECK(p.grad().defined());

  {
    const auto on = lora.enabled();
    CHECK(lora.active());
  }
  lora.restore();
  const at::NoGradGuard no_grad;
  CHECK_FALSE(lora.active());
  CHECK(max_abs_diff(run(*model, in), base) == 0.0);
}

TEST_CASE("merge: the merged base equals the enabled forward, and the adapter is then spent",
          "[sd35][lora]") {
  auto model = tiny_model();
  const auto in = random_inputs(15);
  INFO("seed 15");
  lora_adapter lora(*model, small_options());
  randomize_b(lora, 6);
  const at::NoGradGuard no_grad;
  const auto adapted = [&] {
    const auto on = lora.enabled();
    return run(*model, in);
  }();
  lora.merge();
  CHECK(lora.merged());
  CHECK_FALSE(lora.active());
  CHECK(max_abs_diff(run(*model, in), adapted) <= 1e-5);
  // The merged parameters themselves (what a checkpoint of the model now saves).
  const auto reference = explicitly_merged(lora);
  const auto merged_weights = model->named_parameters();
  for (const auto& item : reference->named_parameters())
    CHECK(max_abs_diff(merged_weights[item.key()], item.value()) <= 1e-6);

  REQUIRE_THROWS_AS(lora.apply(), star::value_error);
  REQUIRE_THROWS_WITH(lora.apply(), Catch::Contains("merge"));
  REQUIRE_THROWS_AS(lora.disabled(), star::value_error);
  REQUIRE_THROWS_AS(lora.merge(), star::value_error);
}

TEST_CASE("init: Gaussian A ~ N(0, 1/r^2) and B = 0, kaiming-uniform, zeros, all seeded",
          "[sd35][lora]") {
  auto model = tiny_model();
  const auto stacked = [](const lora_adapter& lora, const char* suffix) {
    std::vector<at::Tensor> parts;
    for (const auto& item : lora.named_parameters())
      if (item.key().ends_with(suffix)) parts.push_back(item.value().flatten());
    return at::cat(parts).to(at::kDouble);  // [n]
  };

  const lora_adapter gaussian(*model, lora_options{});  // r 32: 23 x 32 x 32 samples
  const auto a = stacked(gaussian, "lora_A.weight");
  CHECK(std::abs(a.mean().item<double>()) < 5e-4);
  CHECK(std::abs(a.std().item<double>() * 32.0 - 1.0) < 0.02);
  CHECK(stacked(gaussian, "lora_B.weight").abs().max().item<double>() == 0.0);

  const lora_adapter same_seed(*model, lora_options{});
  CHECK(max_abs_diff(stacked(same_seed, "lora_A.weight"), a) == 0.0);
  auto other = lora_options{};
  other.seed = 1;
  const lora_adapter other_seed(*model, other);
  CHECK(max_abs_diff(stacked(other_seed, "lora_A.weight"), a) > 0.0);

  auto kaiming = lora_options{};
  kaiming.init = lora_init::kaiming_uniform;
  const lora_adapter uniform(*model, kaiming);  // every adapted Linear has in = 32
  const auto u = stacked(uniform, "lora_A.weight");
  const double bound = 1.0 / std::sqrt(32.0);
  CHECK(u.abs().max().item<double>() <= bound);
  CHECK(std::abs(u.std().item<double>() / (bound / std::sqrt(3.0)) - 1.0) < 0.02);

  auto zeros = lora_options{};
  zeros.init = lora_init::zeros;
  const lora_adapter zero(*model, zeros);
  CHECK(stacked(zero, "lora_A.weight").abs().max().item<double>() == 0.0);
}

TEST_CASE("dtypes: a bfloat16 model with a float32 adapter runs forward and backward",
          "[sd35][lora]") {
  auto model = tiny_model();
  model->to(at::kBFloat16);
  lora_adapter lora(*model, small_options());
  randomize_b(lora, 8);
  const auto in = random_inputs(16);
  INFO("seed 16");
  const auto on = lora.enabled();
  const auto out = run(*model, in);
  CHECK(out.scalar_type() == at::kBFloat16);
  out.to(at::kFloat).square().mean().backward();
  for (const auto& p : lora.trainable_parameters()) {
    REQUIRE(p.grad().defined());
    CHECK(p.grad().scalar_type() == at::kFloat);
    CHECK(p.grad().isfinite().all().item<bool>());
  }
}

TEST_CASE("options: bad values and targets matching nothing are errors naming the field",
          "[sd35][lora]") {
  auto model = tiny_model();
  const auto rejects = [&](lora_options options, const std::string& field) {
    INFO(field);
    REQUIRE_THROWS_AS(lora_adapter(*model, options), star::option_error);
    REQUIRE_THROWS_WITH(lora_adapter(*model, options), Catch::Contains(field));
  };
  auto o = lora_options{};
  o.rank = 0;
  rejects(o, "rank");
  o = lora_options{};
  o.alpha = std::numeric_limits<double>::quiet_NaN();
  rejects(o, "alpha");
  o = lora_options{};
  o.alpha = -1.0;
  rejects(o, "alpha");
  o = lora_options{};
  o.target_modules = {};
  rejects(o, "target_modules");
  o.target_modules = {"attn.to_q."};
  rejects(o, "target_modules");
  o.target_modules = {"attn.to_q", "attn.to_q"};
  rejects(o, "target_modules");
  o.target_modules = {"attn.to_query"};
  rejects(o, "target_modules");
  o = lora_options{};
  o.dtype = at::kLong;
  rejects(o, "dtype");
  require_untouched(*model);  // a rejected adapter froze nothing, targets matching nothing too
}

TEST_CASE("peft: keys and adapter_config.json are peft's", "[sd35][lora][format]") {
  auto model = tiny_model();
  const lora_adapter lora(*model, lora_options{});
  const auto folder = star::test::scratch_dir("peft_keys");
  save_lora(lora, folder, lora_format::peft, "stabilityai/stable-diffusion-3.5-medium");

  const auto ckpt = checkpoint::open(folder / "adapter_model.safetensors");
  std::vector<std::string> expected;
  for (const auto& module : expected_adapted_modules(3)) {
    expected.push_back("base_model.model." + module + ".lora_A.weight");
    expected.push_back("base_model.model." + module + ".lora_B.weight");
  }
  CHECK(ckpt.names() == sorted(expected));
  CHECK(ckpt.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
  CHECK(ckpt.info("base_model.model.transformer_blocks.0.attn.to_q.lora_A.weight").type ==
        safetensors::dtype::f32);

  std::ifstream in(folder / "adapter_config.json");
  const auto config = json::parse(in);
  const json want = {{"peft_type", "LORA"},
                     {"r", 32},
                     {"lora_alpha", 64},
                     {"target_modules", flow_grpo_suffixes},
                     {"init_lora_weights", "gaussian"},
                     {"lora_dropout", 0.0},
                     {"bias", "none"},
                     {"task_type", nullptr},
                     {"base_model_name_or_path", "stabilityai/stable-diffusion-3.5-medium"}};
  CHECK(config == want);
  CHECK(config["lora_alpha"].is_number_integer());
  CHECK_FALSE(fs::exists(folder / "adapter_model.safetensors.partial"));
}

TEST_CASE("diffusers: keys and the lora_adapter_metadata are diffusers'", "[sd35][lora][format]") {
  auto model = tiny_model();
  auto options = small_options();
  options.init = lora_init::kaiming_uniform;
  options.alpha = 2.5;
  const lora_adapter lora(*model, options);
  const auto folder = star::test::scratch_dir("diffusers_keys");
  save_lora(lora, folder, lora_format::diffusers);
  CHECK(std::vector<fs::path>(fs::directory_iterator(folder), fs::directory_iterator()) ==
        std::vector<fs::path>{folder / "pytorch_lora_weights.safetensors"});

  const auto ckpt = checkpoint::open(folder / "pytorch_lora_weights.safetensors");
  std::vector<std::string> expected;
  for (const auto& module : expected_adapted_modules(3)) {
    expected.push_back("transformer." + module + ".lora_A.weight");
    expected.push_back("transformer." + module + ".lora_B.weight");
  }
  CHECK(ckpt.names() == sorted(expected));
  CHECK(ckpt.info("transformer.transformer_blocks.1.attn.add_q_proj.lora_A.weight").shape ==
        std::vector<std::int64_t>{4, 32});
  REQUIRE(ckpt.metadata().size() == 2);
  CHECK(ckpt.metadata().at("format") == "pt");
  const auto metadata = json::parse(ckpt.metadata().at("lora_adapter_metadata"));
  const json want = {{"transformer.peft_type", "LORA"},
                     {"transformer.r", 4},
                     {"transformer.lora_alpha", 2.5},
                     {"transformer.target_modules", flow_grpo_suffixes},
                     {"transformer.init_lora_weights", true},
                     {"transformer.lora_dropout", 0.0},
                     {"transformer.bias", "none"},
                     {"transformer.task_type", nullptr}};
  CHECK(metadata == want);
}

TEST_CASE("round trip: peft and diffusers files reload into a fresh model with identical outputs",
          "[sd35][lora][format]") {
  const auto in = random_inputs(17);
  INFO("seed 17");
  for (const auto format : {lora_format::peft, lora_format::diffusers}) {
    const bool peft = format == lora_format::peft;
    INFO((peft ? "peft" : "diffusers"));
    auto model = tiny_model();
    lora_adapter lora(*model, small_options());
    randomize_b(lora, 9);
    const at::NoGradGuard no_grad;
    const auto adapted = [&] {
      const auto on = lora.enabled();
      return run(*model, in);
    }();
    const auto folder = star::test::scratch_dir(peft ? "peft_round_trip" : "diffusers_round_trip");
    save_lora(lora, folder, format);

    // The folder, and the weights file itself.
    for (const auto& path :
         {folder, folder / (peft ? peft_weights_name : diffusers_weights_name)}) {
      INFO(path);
      auto fresh = tiny_model();
      const auto loaded = load_lora(*fresh, path);
      CHECK(loaded.format == format);
      CHECK(loaded.alpha_from_file);
      CHECK(loaded.adapter->options().rank == 4);
      CHECK(loaded.adapter->options().alpha == 12.0);
      CHECK(loaded.adapter->options().init == lora_init::gaussian);
      CHECK(loaded.adapter->options().target_modules == flow_grpo_suffixes);
      CHECK(sorted(loaded.adapter->adapted_modules()) == sorted(lora.adapted_modules()));
      const auto original = lora.named_parameters();
      for (const auto& item : loaded.adapter->named_parameters())
        CHECK(max_abs_diff(item.value(), original[item.key()]) == 0.0);
      for (const auto& p : fresh->parameters()) CHECK_FALSE(p.requires_grad());
      const auto on = loaded.adapter->enabled();
      CHECK(max_abs_diff(run(*fresh, in), adapted) == 0.0);
    }
  }
}

TEST_CASE("diffusers: a file without metadata loads with alpha = r and the file's modules",
          "[sd35][lora][format]") {
  auto model = tiny_model();
  auto options = small_options();
  options.target_modules = {"transformer_blocks.1.attn.to_k", "attn.to_add_out"};
  lora_adapter lora(*model, options);
  randomize_b(lora, 10);
  const auto folder = star::test::scratch_dir("diffusers_no_metadata");
  const auto file = folder / "pytorch_lora_weights.safetensors";
  save_safetensors(file, prefixed_tensors(lora, "transformer."));

  auto fresh = tiny_model();
  const auto loaded = load_lora(*fresh, folder);
  CHECK_FALSE(loaded.alpha_from_file);
  CHECK(loaded.adapter->options().rank == 4);
  CHECK(loaded.adapter->scale() == 1.0);
  CHECK(sorted(loaded.adapter->options().target_modules) ==
        sorted({"transformer_blocks.0.attn.to_add_out", "transformer_blocks.1.attn.to_add_out",
                "transformer_blocks.1.attn.to_k"}));

  const auto in = random_inputs(18);
  INFO("seed 18");
  const at::NoGradGuard no_grad;
  const auto on = loaded.adapter->enabled();
  CHECK(max_abs_diff(run(*fresh, in), run(*explicitly_merged(*loaded.adapter), in)) <= 1e-5);
}

TEST_CASE("errors: a mis-shaped, unknown, non-LoRA or missing key is named",
          "[sd35][lora][format]") {
  auto model = tiny_model();
  const lora_adapter lora(*model, small_options());
  const auto folder = star::test::scratch_dir("errors");
  const auto file = folder / "pytorch_lora_weights.safetensors";
  const auto rejects = [&](const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                           const std::vector<std::string>& named) {
    save_safetensors(file, tensors);
    auto fresh = tiny_model();
    REQUIRE_THROWS_AS(load_lora(*fresh, folder), checkpoint_error);
    for (const auto& text : named)
      REQUIRE_THROWS_WITH(load_lora(*fresh, folder), Catch::Contains(text));
    require_untouched(*fresh);
  };
  const auto good = prefixed_tensors(lora, "transformer.");

  SECTION("mis-shaped: the key, its shape and the expected one") {
    auto tensors = good;
    const std::string key = "transformer.transformer_blocks.1.attn.to_v.lora_A.weight";
    for (auto& [name, tensor] : tensors)
      if (name == key) tensor = at::zeros({4, 31});
    rejects(tensors, {key, "[4, 31]", "[4, 32]"});
  }
  SECTION("unknown module") {
    auto tensors = good;
    const std::string key = "transformer.transformer_blocks.7.attn.to_q.lora_A.weight";
    tensors.emplace_back(key, at::zeros({4, 32}));
    tensors.emplace_back("transformer.transformer_blocks.7.attn.to_q.lora_B.weight",
                         at::zeros({32, 4}));
    rejects(tensors, {key, "no module"});
  }
  SECTION("a Linear that is not a target (peft config lists the targets)") {
    save_lora(lora, folder / "peft", lora_format::peft);
    const auto weights = folder / "peft" / "adapter_model.safetensors";
    auto tensors = prefixed_tensors(lora, "base_model.model.");
    const std::string key = "base_model.model.transformer_blocks.0.attn2.to_q.lora_A.weight";
    tensors.emplace_back(key, at::zeros({4, 32}));
    save_safetensors(weights, tensors);
    auto fresh = tiny_model();
    REQUIRE_THROWS_AS(load_lora(*fresh, weights), checkpoint_error);
    REQUIRE_THROWS_WITH(load_lora(*fresh, weights), Catch::Contains(key));
    REQUIRE_THROWS_WITH(load_lora(*fresh, weights),
                        Catch::Contains("matches none of the targets"));
    require_untouched(*fresh);
  }
  SECTION("not a LoRA weight") {
    auto tensors = good;
    const std::string key = "transformer.transformer_blocks.0.attn.to_q.alpha";
    tensors.emplace_back(key, at::ones({}));
    rejects(tensors, {key, "not a LoRA weight"});
  }
  SECTION("another component's key") {
    auto tensors = good;
    const std::string key =
        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight";
    tensors.emplace_back(key, at::zeros({4, 32}));
    rejects(tensors, {key});
  }
  SECTION("missing lora_B") {
    auto tensors = good;
    const std::string key = "transformer.transformer_blocks.0.attn.add_k_proj.lora_B.weight";
    std::erase_if(tensors, [&](const auto& item) { return item.first == key; });
    rejects(tensors, {key});
  }
  SECTION("no LoRA file in the folder, or a peft file without its config") {
    const auto empty = star::test::scratch_dir("errors_empty");
    auto fresh = tiny_model();
    REQUIRE_THROWS_AS(load_lora(*fresh, empty), checkpoint_error);
    REQUIRE_THROWS_WITH(load_lora(*fresh, empty),
                        Catch::Contains("adapter_model.safetensors"));
    save_safetensors(empty / "adapter_model.safetensors",
                     prefixed_tensors(lora, "base_model.model."));
    REQUIRE_THROWS_WITH(load_lora(*fresh, empty), Catch::Contains("adapter_config.json"));
  }
  SECTION("a bad config value names the config key") {
    save_lora(lora, folder / "bad_config", lora_format::peft);
    const auto config_path = folder / "bad_config" / "adapter_config.json";
    std::ifstream in(config_path);
    auto config = json::parse(in);
    in.close();
    config["r"] = 0;
    std::ofstream(config_path) << config.dump();
    auto fresh = tiny_model();
    REQUIRE_THROWS_AS(load_lora(*fresh, folder / "bad_config"), checkpoint_error);
    REQUIRE_THROWS_WITH(load_lora(*fresh, folder / "bad_config"), Catch::Contains("'r'"));
  }
}

TEST_CASE("peft: when one file of the pair cannot be written, neither changes",
          "[sd35][lora][format]") {
  auto model = tiny_model();
  const lora_adapter first(*model, small_options());
  auto other = small_options();
  other.seed = 8;
  const lora_adapter second(*model, other);
  const auto folder = star::test::scratch_dir("peft_pair");
  const auto weights = folder / peft_weights_name;
  const auto listing = [&folder] { return star::test::file_names(folder); };  // sorted
  // adapter_config.json is a folder: it cannot be replaced by a file.
  fs::create_directories(folder / peft_config_name);
  REQUIRE_THROWS_AS(save_lora(first, folder, lora_format::peft), checkpoint_error);
  REQUIRE_THROWS_WITH(save_lora(first, folder, lora_format::peft),
                      Catch::Contains("save_lora") && Catch::Contains(peft_config_name));
  CHECK(listing() == std::vector<std::string>{peft_config_name});  // no weights, nothing partial

  // An earlier adapter's weights stay as they were, byte for byte.
  save_safetensors(weights, prefixed_tensors(first, "base_model.model."));
  const auto before = star::test::file_content(weights);
  REQUIRE_THROWS_AS(save_lora(second, folder, lora_format::peft), checkpoint_error);
  CHECK(star::test::file_content(weights) == before);
  CHECK(listing() == std::vector<std::string>{peft_config_name, peft_weights_name});

  // A file of the user's at the name the weights are kept under while replaced is not
  // removed: the save refuses, naming it, and changes nothing.
  fs::remove(folder / peft_config_name);
  const auto previous = fs::path(weights.string() + ".previous");
  std::ofstream(previous) << "a backup of the user's";
  REQUIRE_THROWS_WITH(save_lora(second, folder, lora_format::peft),
                      Catch::Contains(previous.string()));
  CHECK(star::test::file_content(previous) == "a backup of the user's");
  CHECK(star::test::file_content(weights) == before);
  fs::remove(previous);

  // Once the config can be written, the pair is replaced.
  save_lora(second, folder, lora_format::peft);
  CHECK(star::test::file_content(weights) != before);
  CHECK(listing() == std::vector<std::string>{peft_config_name, peft_weights_name});
  auto fresh = tiny_model();
  const auto loaded = load_lora(*fresh, folder);
  const auto expected = second.named_parameters();
  for (const auto& item : loaded.adapter->named_parameters())
    CHECK(max_abs_diff(item.value(), expected[item.key()]) == 0.0);
}
