// star-sd35-step-bench: one LoRA training step of the SD3.5 MMDiT with random weights (forward,
// mean-square loss, backward into lora_A / lora_B), timed and memory-profiled with the
// attention observer off and on. "On" does what a STAR trainer does in every block: the
// relevance map of a few selected text columns from the reported LSE, averaged over the blocks
// into [B, N] by star::lse_relevance_accumulator (star::libtorch::add_selected_block), with no
// host read-back per block.
//
//   star-sd35-step-bench [--config medium|tiny] [--resolution 512] [--batch 1]
//                        [--dtype bf16|f32|f16] [--device cuda|cuda:N|cpu] [--repeats 5]
//                        [--warmup 1] [OUT.json]
//
// Writes one JSON document to stdout and, when given, to OUT.json: its folder is checked
// writable before the run, and the file is written atomically (a failed write leaves an
// existing OUT.json as it was and no partial file). Time: median seconds per step after the
// warm-up (the device synchronised around every step); the two variants alternate step by
// step. Peak memory: the CUDA caching allocator's peak allocated bytes of each variant's steps
// (null on the CPU). Exit status 2 on a bad argument, 1 on a failure.

#include <torch/torch.h>
#include <torch/version.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "arguments.hpp"
#include "device_probe.hpp"
#include "files/atomic_file.hpp"
#include "relevance_observer.hpp"
#include "training_step.hpp"

using namespace star::step_bench;

namespace {

using json = nlohmann::ordered_json;

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

/// The observer's part of the report: the blocks of the last observed forward, the shape of
/// their mean relevance map and whether it is finite (`result()` rejects NaN and Inf).
json observer_report(const relevance_observer& observer, const json& lse_source) {
  json report = {{"selected_text_columns", observer.selection().indices},
                 {"lse_source", lse_source},
                 {"blocks_per_forward", observer.relevance().blocks_added()}};
  try {
    report["relevance_mean_shape"] = observer.relevance().result().sizes().vec();
    report["relevance_mean_finite"] = true;
  } catch (const star::value_error&) {  // no block, or NaN / Inf in the mean
    report["relevance_mean_shape"] = nullptr;
    report["relevance_mean_finite"] = false;
  }
  return report;
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

/// Warm-up, then the two variants alternating step by step; the report as JSON.
json run(const arguments& args) {
  const auto config = config_for(args);
  const auto model = make_model(config, args);
  const auto in = make_inputs(args, config);
  const device_probe probe(args.device);
  probe.synchronize();
  const auto resident = probe.current_bytes();

  relevance_observer observer(args.device, trainer_selection());
  star::sd35::forward_options plain;
  plain.text_segments = {{"clip", clip_tokens}, {"t5", t5_tokens}};
  auto observed = plain;
  observed.observer = &observer;
  const std::function<at::Tensor()> step_off = [&] { return train_step(model, in, plain); };
  const std::function<at::Tensor()> step_on = [&] {
    observer.reset();
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
                      {"latent", in.latent.sizes().vec()},
                      {"encoder_hidden_states", in.text.sizes().vec()},
                      {"pooled_projections", in.pooled.sizes().vec()},
                      {"timestep", in.timestep.sizes().vec()},
                      {"image_tokens", grid * grid},
                      {"text_tokens", clip_tokens + t5_tokens}};
  report["observer"] =
      observer_report(observer, lse_source(args, config, grid * grid + clip_tokens + t5_tokens));
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

/// Prints `error` and the usage line; the exit status of a bad argument.
int usage_failure(const usage_error& error) {
  std::cerr << "star-sd35-step-bench: " << error.what() << "\n" << usage << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  arguments args;
  try {
    args = parse_arguments(argc, argv);
  } catch (const usage_error& e) {
    return usage_failure(e);
  }
  try {
    const auto text = run(args).dump(2) + "\n";
    std::cout << text;
    if (args.out) star::files::write_text_atomically(*args.out, text);
  } catch (const usage_error& e) {
    return usage_failure(e);
  } catch (const c10::Error& e) {  // e.g. a dtype this LibTorch lacks on the device
    std::cerr << "star-sd35-step-bench: LibTorch: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "star-sd35-step-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
