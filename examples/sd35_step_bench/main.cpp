// star-sd35-step-bench: one LoRA training step of the SD3.5 MMDiT with random weights (forward,
// mean-square loss, backward into lora_A / lora_B), timed and memory-profiled with the
// attention observer off and on. "On" does what a STAR trainer does in every block: the
// relevance map of a few selected text columns from the reported LSE
// (star::libtorch::selected_block_relevance), summed over the blocks into [B, N].
//
//   star-sd35-step-bench [--config medium|tiny] [--resolution 512] [--batch 1]
//                        [--dtype bf16|f32|f16] [--device cuda|cpu] [--repeats 5]
//                        [--warmup 1] [OUT.json]
//
// Writes one JSON document to stdout and, when given, to OUT.json. Time: median seconds per
// step after the warm-up (the device synchronised around every step); the two variants
// alternate step by step. Peak memory: the CUDA caching allocator's peak allocated bytes of
// each variant's steps (null on the CPU). Exit status 2 on a bad argument, 1 on a failure.

#include <torch/torch.h>
#include <torch/version.h>

#include <nlohmann/json.hpp>

#ifdef STAR_STEP_BENCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sd35/lora/adapter.hpp"
#include "sd35/mmdit/attention_observer.hpp"
#include "sd35/mmdit/transformer.hpp"
#include "star/torch/attention_lse.hpp"

namespace {

using json = nlohmann::ordered_json;
using star::sd35::attention_observer;
using star::sd35::transformer_config;

constexpr std::int64_t clip_tokens = 77;  // the CLIP-L/G segment of an SD3 prompt
constexpr std::int64_t t5_tokens = 256;   // the T5 segment
constexpr std::int64_t vae_factor = 8;    // pixels per latent cell
constexpr std::uint64_t seed = 0;         // weights, LoRA and inputs
constexpr const char* usage =
    "usage: star-sd35-step-bench [--config medium|tiny] [--resolution 512] [--batch 1] "
    "[--dtype bf16|f32|f16] [--device cuda|cpu] [--repeats 5] [--warmup 1] [OUT.json]";

/// A missing, unknown or out-of-range command-line argument (exit status 2).
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct arguments {
  std::string config = "medium";
  std::int64_t resolution = 512;
  std::int64_t batch = 1;
  std::string dtype_name = "bf16";
  at::ScalarType dtype = at::kBFloat16;
  at::Device device = at::kCPU;
  std::int64_t repeats = 5;
  std::int64_t warmup = 1;
  std::optional<std::string> out;
};

std::int64_t parse_integer(const std::string& name, const std::string& text, std::int64_t min) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc{} || stop != end || value < min)
    throw usage_error(name + ": expected an integer >= " + std::to_string(min) + ", got '" +
                      text + "'");
  return value;
}

at::ScalarType parse_dtype(const std::string& text) {
  if (text == "bf16") return at::kBFloat16;
  if (text == "f32") return at::kFloat;
  if (text == "f16") return at::kHalf;
  throw usage_error("--dtype: expected bf16, f32 or f16, got '" + text + "'");
}

at::Device parse_device(const std::string& text) {
  if (text == "cpu") return at::kCPU;
  if (text != "cuda") throw usage_error("--device: expected cuda or cpu, got '" + text + "'");
  if (!torch::cuda::is_available())
    throw usage_error("--device cuda: no CUDA device (or LibTorch without CUDA)");
  return {at::kCUDA, 0};
}

arguments parse(int argc, char** argv) {
  arguments args;
  if (torch::cuda::is_available()) args.device = at::Device(at::kCUDA, 0);
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw usage_error(name + ": missing value");
      return argv[++i];
    };
    if (name == "--config") {
      args.config = value();
      if (args.config != "medium" && args.config != "tiny")
        throw usage_error("--config: expected medium or tiny, got '" + args.config + "'");
    } else if (name == "--resolution") {
      args.resolution = parse_integer(name, value(), 1);
    } else if (name == "--batch") {
      args.batch = parse_integer(name, value(), 1);
    } else if (name == "--dtype") {
      args.dtype_name = value();
      args.dtype = parse_dtype(args.dtype_name);
    } else if (name == "--device") {
      args.device = parse_device(value());
    } else if (name == "--repeats") {
      args.repeats = parse_integer(name, value(), 1);
    } else if (name == "--warmup") {
      args.warmup = parse_integer(name, value(), 0);
    } else if (!name.starts_with("-") && !args.out) {
      args.out = name;
    } else {
      throw usage_error(name + ": unknown argument");
    }
  }
  return args;
}

/// The test fixture's MMDiT-X shape (tests/sd35/mmdit: 3 blocks, 2 heads of 16, dual attention
/// in blocks 0-1, RMS q/k norm) with a positional table for up to 1024 px.
transformer_config tiny_config() {
  transformer_config config;
  config.sample_size = 32;
  config.num_layers = 3;
  config.attention_head_dim = 16;
  config.num_attention_heads = 2;
  config.joint_attention_dim = 32;
  config.caption_projection_dim = 32;
  config.pooled_projection_dim = 24;
  config.pos_embed_max_size = 64;
  config.dual_attention_layers = {0, 1};
  config.qk_norm = star::sd35::qk_norm_kind::rms_norm;
  config.validate();
  return config;
}

/// The config named by --config, with --resolution checked against its patch and table size.
transformer_config config_for(const arguments& args) {
  const auto config = args.config == "tiny" ? tiny_config() : star::sd35::sd35_medium();
  const std::int64_t cell = vae_factor * config.patch_size;  // pixels per token side
  if (args.resolution % cell != 0)
    throw usage_error("--resolution: expected a multiple of " + std::to_string(cell) +
                      " pixels, got " + std::to_string(args.resolution));
  if (args.resolution / cell > config.pos_embed_max_size)
    throw usage_error("--resolution: at most " + std::to_string(cell * config.pos_embed_max_size) +
                      " pixels for --config " + args.config + ", got " +
                      std::to_string(args.resolution));
  return config;
}

/// Synchronisation and the CUDA caching allocator's counters of one device; no counters on
/// the CPU or without CUDA support compiled in.
class device_probe {
 public:
  explicit device_probe(at::Device device) : device_(device) {}

  void synchronize() const {
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  }
  void reset_peak() const {
#ifdef STAR_STEP_BENCH_CUDA
    if (device_.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index());
#endif
  }
  /// Peak allocated bytes since `reset_peak`.
  std::optional<std::int64_t> peak_bytes() const { return allocated(true); }
  /// Allocated bytes now.
  std::optional<std::int64_t> current_bytes() const { return allocated(false); }

  std::string name() const {
#ifdef STAR_STEP_BENCH_CUDA
    if (device_.is_cuda()) return at::cuda::getDeviceProperties(device_.index())->name;
#endif
    return device_.str();
  }

 private:
  std::optional<std::int64_t> allocated([[maybe_unused]] bool peak) const {
#ifdef STAR_STEP_BENCH_CUDA
    if (device_.is_cuda()) {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
      const auto& all_pools = stats.allocated_bytes[0];  // index 0: StatType::AGGREGATE
      return peak ? all_pools.peak : all_pools.current;
    }
#endif
    return std::nullopt;
  }

  at::Device device_;
};

/// What a STAR trainer does with each block's joint attention: the relevance map of the
/// selected text columns from the reported LSE, summed over the blocks of one forward.
class relevance_accumulator final : public attention_observer {
 public:
  relevance_accumulator(at::Device device, star::text_selection selection)
      : backend_(device, at::kFloat), selection_(std::move(selection)) {}

  void on_joint_attention(int /*block*/, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& lse, const star::token_layout& layout) override {
    const auto relevance = star::libtorch::selected_block_relevance(backend_, q, k, layout,
                                                                    selection_, lse);  // [B, N]
    sum_ = sum_.defined() ? sum_ + relevance : relevance;  // [B, N]
    ++blocks_;
  }

  /// Starts a new forward.
  void reset() {
    sum_ = at::Tensor();
    blocks_ = 0;
  }
  /// [B, N] the sum over the blocks of the last forward.
  const at::Tensor& sum() const { return sum_; }
  /// Blocks reported in the last forward.
  int blocks() const { return blocks_; }
  const star::text_selection& selection() const { return selection_; }

 private:
  star::libtorch::backend backend_;
  star::text_selection selection_;
  at::Tensor sum_;  // [B, N]
  int blocks_ = 0;
};

/// 4 CLIP positions after the start token and the first 4 T5 positions, equally weighted.
star::text_selection trainer_selection() {
  star::text_selection selection;
  selection.indices = {1, 2, 3, 4, clip_tokens, clip_tokens + 1, clip_tokens + 2, clip_tokens + 3};
  selection.weights.assign(selection.indices.size(), 1.0 / 8.0);
  return selection;
}

struct step_inputs {
  at::Tensor latent;    // [B, C, H, W]
  at::Tensor text;      // [B, L, Dj]
  at::Tensor pooled;    // [B, Dp]
  at::Tensor timestep;  // [B] 1000 * sigma
};

step_inputs make_inputs(const arguments& args, const transformer_config& config) {
  const auto side = args.resolution / vae_factor;
  const auto to_model = [&](const at::Tensor& t) { return t.to(args.device, args.dtype); };
  step_inputs in;
  in.latent = to_model(at::randn({args.batch, config.in_channels, side, side}));  // [B, C, H, W]
  in.text = to_model(at::randn({args.batch, clip_tokens + t5_tokens,
                                config.joint_attention_dim}));                     // [B, L, Dj]
  in.pooled = to_model(at::randn({args.batch, config.pooled_projection_dim}));    // [B, Dp]
  in.timestep = at::full({args.batch}, 500.0, at::TensorOptions().device(args.device));  // [B]
  return in;
}

struct bench_model {
  std::shared_ptr<star::sd35::sd3_transformer> transformer;
  std::shared_ptr<star::sd35::lora_adapter> lora;  // Flow-GRPO defaults, float32 A and B
};

bench_model make_model(const transformer_config& config, const arguments& args) {
  at::manual_seed(seed);
  auto transformer = std::make_shared<star::sd35::sd3_transformer>(config);
  transformer->to(args.device, args.dtype);
  star::sd35::lora_options options;  // r 32, alpha 64, Gaussian A, B = 0, the 8 attn targets
  options.seed = seed;
  auto lora = std::make_shared<star::sd35::lora_adapter>(*transformer, options);  // freezes W0
  return {transformer, lora};
}

/// One training step: adapter grads cleared, the adapted forward, `mean(v^2)`, backward into
/// lora_A / lora_B. Returns the loss, detached.
at::Tensor train_step(const bench_model& model, const step_inputs& in,
                      const star::sd35::forward_options& options) {
  model.lora->zero_grad(/*set_to_none=*/true);
  const auto adapted = model.lora->enabled();
  const auto velocity = model.transformer->forward(in.latent, in.text, in.pooled, in.timestep,
                                                   options);  // [B, C, H, W]
  const auto loss = velocity.to(at::kFloat).square().mean();  // []
  loss.backward();
  return loss.detach();
}

/// The timings, peak memory and last loss of one variant.
struct variant_record {
  std::vector<double> seconds;
  std::optional<std::int64_t> peak_bytes;
  at::Tensor loss;  // []
};

/// One step of a variant, synchronised and timed, its peak folded into `record`.
void measure_step(const device_probe& probe, const std::function<at::Tensor()>& step,
                  variant_record& record) {
  probe.synchronize();
  probe.reset_peak();
  const auto start = std::chrono::steady_clock::now();
  record.loss = step();  // []
  probe.synchronize();
  record.seconds.push_back(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (const auto peak = probe.peak_bytes())
    record.peak_bytes = std::max(record.peak_bytes.value_or(0), *peak);
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const auto middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : 0.5 * (values[middle - 1] + values[middle]);
}

json optional_bytes(const std::optional<std::int64_t>& bytes) {
  return bytes ? json(*bytes) : json(nullptr);
}

json overhead_percent(double off, double on) { return 100.0 * (on / off - 1.0); }

std::vector<std::int64_t> sizes(const at::Tensor& t) {
  return {t.sizes().begin(), t.sizes().end()};
}

std::int64_t parameter_count(const std::vector<at::Tensor>& parameters) {
  std::int64_t count = 0;
  for (const auto& p : parameters) count += p.numel();
  return count;
}

std::int64_t tensors_with_grad(const std::vector<at::Tensor>& parameters) {
  return std::count_if(parameters.begin(), parameters.end(),
                       [](const at::Tensor& p) { return p.grad().defined(); });
}

/// Which kernel gives the observer's LSE for this device and dtype (a small probe call).
std::string lse_source(const arguments& args, const transformer_config& config) {
  const auto probe = at::randn({1, config.num_attention_heads, 8, config.attention_head_dim})
                         .to(args.device, args.dtype);  // [1, H, 8, D]
  switch (star::libtorch::attention_with_lse(probe, probe, probe).source) {
    case star::libtorch::attention_lse_source::fused_cpu_flash:
      return "fused_cpu_flash";
    case star::libtorch::attention_lse_source::fused_cuda_efficient:
      return "fused_cuda_efficient";
    case star::libtorch::attention_lse_source::chunked:
      return "chunked";
  }
  return "unknown";
}

json run(const arguments& args) {
  const auto config = config_for(args);
  const auto model = make_model(config, args);
  const auto in = make_inputs(args, config);
  const device_probe probe(args.device);
  probe.synchronize();
  const auto resident = probe.current_bytes();

  relevance_accumulator accumulator(args.device, trainer_selection());
  star::sd35::forward_options plain;
  plain.text_segments = {{"clip", clip_tokens}, {"t5", t5_tokens}};
  auto observed = plain;
  observed.observer = &accumulator;
  const std::function<at::Tensor()> step_off = [&] { return train_step(model, in, plain); };
  const std::function<at::Tensor()> step_on = [&] {
    accumulator.reset();
    return train_step(model, in, observed);
  };

  for (std::int64_t i = 0; i < args.warmup; ++i) {
    step_off();
    step_on();
  }
  variant_record off, on;
  for (std::int64_t i = 0; i < args.repeats; ++i) {
    measure_step(probe, step_off, off);
    measure_step(probe, step_on, on);
  }

  const auto lora_parameters = model.lora->trainable_parameters();
  const double seconds_off = median(off.seconds), seconds_on = median(on.seconds);
  const std::int64_t grid = args.resolution / (vae_factor * config.patch_size);
  json report;
  report["benchmark"] = "sd35 LoRA training step: attention observer off vs on";
  report["device"] = args.device.str();
  report["device_name"] = probe.name();
  report["torch_version"] = TORCH_VERSION;
  report["dtype"] = args.dtype_name;
  report["config"] = args.config;
  report["layers"] = config.num_layers;
  report["heads"] = config.num_attention_heads;
  report["head_dim"] = config.attention_head_dim;
  report["parameters"] = {{"base", parameter_count(model.transformer->parameters())},
                          {"lora", parameter_count(lora_parameters)},
                          {"lora_tensors", lora_parameters.size()},
                          {"lora_tensors_with_grad", tensors_with_grad(lora_parameters)}};
  report["lora"] = {{"rank", model.lora->options().rank},
                    {"alpha", model.lora->options().alpha},
                    {"adapted_modules", model.lora->adapted_modules().size()}};
  report["shapes"] = {{"resolution", args.resolution},
                      {"latent", sizes(in.latent)},
                      {"encoder_hidden_states", sizes(in.text)},
                      {"pooled_projections", sizes(in.pooled)},
                      {"timestep", sizes(in.timestep)},
                      {"image_tokens", grid * grid},
                      {"text_tokens", clip_tokens + t5_tokens}};
  report["observer"] = {{"selected_text_columns", accumulator.selection().indices},
                        {"lse_source", lse_source(args, config)},
                        {"blocks_per_forward", accumulator.blocks()},
                        {"relevance_sum_shape", sizes(accumulator.sum())},
                        {"relevance_sum_finite", at::isfinite(accumulator.sum()).all().item<bool>()}};
  report["warmup"] = args.warmup;
  report["repeats"] = args.repeats;
  report["seconds_per_step"] = {{"off", seconds_off}, {"on", seconds_on}};
  report["seconds_all"] = {{"off", off.seconds}, {"on", on.seconds}};
  report["resident_bytes_before_steps"] = optional_bytes(resident);
  report["peak_bytes"] = {{"off", optional_bytes(off.peak_bytes)},
                          {"on", optional_bytes(on.peak_bytes)}};
  report["overhead_percent"] = {
      {"time", overhead_percent(seconds_off, seconds_on)},
      {"memory", off.peak_bytes && on.peak_bytes
                     ? overhead_percent(static_cast<double>(*off.peak_bytes),
                                        static_cast<double>(*on.peak_bytes))
                     : json(nullptr)}};
  report["loss"] = {{"off", off.loss.item<double>()}, {"on", on.loss.item<double>()}};
  return report;
}

}  // namespace

int main(int argc, char** argv) {
  arguments args;
  try {
    args = parse(argc, argv);
  } catch (const usage_error& e) {
    std::cerr << "star-sd35-step-bench: " << e.what() << "\n" << usage << "\n";
    return 2;
  }
  try {
    const auto text = run(args).dump(2) + "\n";
    std::cout << text;
    if (args.out) {
      std::ofstream file(*args.out);
      file << text;
      if (!file) throw std::runtime_error("cannot write " + *args.out);
    }
  } catch (const usage_error& e) {
    std::cerr << "star-sd35-step-bench: " << e.what() << "\n" << usage << "\n";
    return 2;
  } catch (const c10::Error& e) {  // e.g. a dtype this LibTorch lacks on the device
    std::cerr << "star-sd35-step-bench: LibTorch: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "star-sd35-step-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
