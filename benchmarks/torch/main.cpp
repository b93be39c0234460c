// star-torch-bench: STAR's operators on LibTorch at SD3.5-Medium shapes, on the CPU or a CUDA
// device, against the bandwidth measured in the same run and an SD3.5-M joint attention block
// forward (see readout.hpp, update.hpp, sd35_block.hpp for the variants).
//
// Usage: star-torch-bench [--device cpu|cuda] [--quick] [--batches 8,32] [OUT.json]
// Writes one JSON document to stdout and, when given, to OUT.json (rewritten whole after each
// batch, so a run cut short keeps what it measured; a measurement that throws is recorded as an
// error and the others go on, and the exit status is then 1). Default device: cuda when
// available, else cpu. Default batches: 8 and 32 on CUDA, 8 on the CPU (a batch-32 block
// forward takes tens of seconds there).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "readout.hpp"
#include "files/atomic_file.hpp"
#include "report.hpp"
#include "sd35_block.hpp"
#include "timing.hpp"
#include "update.hpp"
#ifdef STAR_BENCH_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace {

using namespace star::bench;

constexpr double readout_limit = 0.02;  // read-out of one block < 2% of its forward
constexpr double update_limit = 0.01;   // allocation + objective < 1% of 24 block forwards

struct arguments {
  at::Device device = at::kCPU;
  bool quick = false;
  std::vector<std::int64_t> batches;
  std::optional<std::string> out;
};

std::vector<std::int64_t> parse_batches(const std::string& list) {
  std::vector<std::int64_t> batches;
  std::stringstream items(list);
  for (std::string item; std::getline(items, item, ',');) {
    std::int64_t batch = 0;
    const auto [end, status] = std::from_chars(item.data(), item.data() + item.size(), batch);
    if (status != std::errc() || end != item.data() + item.size() || batch < 1)
      throw std::invalid_argument("--batches: expected comma-separated sizes >= 1, got '" +
                                  list + "'");
    batches.push_back(batch);
  }
  if (batches.empty()) throw std::invalid_argument("--batches: no batch size given");
  return batches;
}

arguments parse(int argc, char** argv) {
  arguments args;
  args.device = torch::cuda::is_available() ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--device" && i + 1 < argc)
      args.device = at::Device(argv[++i]);
    else if (arg == "--quick")
      args.quick = true;
    else if (arg == "--batches" && i + 1 < argc)
      args.batches = parse_batches(argv[++i]);
    else if (!arg.starts_with("--") && !args.out)
      args.out = arg;
    else
      throw std::invalid_argument(
          "usage: star-torch-bench [--device cpu|cuda] [--quick] "
          "[--batches 8,32] [OUT.json]");
  }
  if (args.device.is_cuda() && !torch::cuda::is_available())
    throw std::invalid_argument("--device cuda: no CUDA device (or LibTorch without CUDA)");
  if (args.batches.empty())
    args.batches =
        args.device.is_cuda() ? std::vector<std::int64_t>{8, 32} : std::vector<std::int64_t>{8};
  return args;
}

timing_plan plan_for(const arguments& args) {
  if (args.device.is_cuda())  // 10 queued calls per sample: the cost on a busy stream
    return args.quick ? timing_plan{1, 3, 5, 0.5, 10} : timing_plan{3, 5, 15, 2.0, 10};
  return args.quick ? timing_plan{1, 1, 1, 0.0, 1} : timing_plan{1, 3, 10, 3.0, 1};
}

std::string device_name(at::Device device) {
#ifdef STAR_BENCH_TORCH_CUDA
  if (device.is_cuda())
    return at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index())->name;
#endif
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.starts_with("model name")) return line.substr(line.find(':') + 2);
  return device.str();
}

/// Seconds per call of a device copy that moves `bytes` (half read, half written), timed like
/// every other call; measured once per size. For a large copy this is the bandwidth limit; for
/// a small one, what any call moving that many bytes takes here, launch and latency included.
/// On CUDA a bare `cudaMemcpyAsync` on the current stream, so that the floor carries no
/// LibTorch dispatch overhead; on the CPU `Tensor::copy_`.
class copy_reference {
 public:
  copy_reference(const timer& t, at::Device device) : timer_(t), device_(device) {}

  double seconds(double bytes) {
    const auto floats = std::max<std::int64_t>(1, std::llround(bytes / (2.0 * sizeof(float))));
    if (const auto known = seconds_.find(floats); known != seconds_.end()) return known->second;
    const auto options = at::TensorOptions().device(device_).dtype(at::kFloat);
    const at::Tensor source = at::ones({floats}, options);   // [floats]
    const at::Tensor target = at::empty({floats}, options);  // [floats]
#ifdef STAR_BENCH_TORCH_CUDA
    if (device_.is_cuda()) {
      const cudaStream_t stream = at::cuda::getCurrentCUDAStream(device_.index());
      const std::size_t count = static_cast<std::size_t>(floats) * sizeof(float);
      return seconds_[floats] = timer_.median_seconds([&] {
        if (cudaMemcpyAsync(target.data_ptr(), source.data_ptr(), count,
                            cudaMemcpyDeviceToDevice, stream) != cudaSuccess)
          throw std::runtime_error("cudaMemcpyAsync of the copy reference failed");
      });
    }
#endif
    return seconds_[floats] = timer_.median_seconds([&] { target.copy_(source); });
  }

 private:
  const timer& timer_;
  at::Device device_;
  std::map<std::int64_t, double> seconds_;  // floats copied -> seconds per call
};

/// Bytes per second of a large device copy (read + write): 1 GiB on CUDA, 512 MiB on the CPU.
void measure_bandwidth(copy_reference& copies, report& r, at::Device device) {
  const double floats = device.is_cuda() ? (1 << 28) : (1 << 27);
  const double bytes = 2.0 * sizeof(float) * floats;
  const double seconds = copies.seconds(bytes);
  r.set_bandwidth(bytes / seconds);
  const auto mebibytes = static_cast<std::int64_t>(floats * sizeof(float)) >> 20;
  r.add_time("bandwidth_copy/" + std::to_string(mebibytes) + "MiB", seconds, bytes);
}

/// Runs `measure`; an exception it throws (e.g. out of memory) becomes an error record `name`,
/// so that it costs no other record.
template <class Measure>
void recorded(report& r, const std::string& name, const Measure& measure) {
  try {
    measure();
  } catch (const std::exception& e) {
    r.add_error(name, e.what());
  }
}

/// The block forward, the read-outs and the update variants at one batch size.
void bench_batch(const timer& t, copy_reference& copies, report& r, at::Device device,
                 std::int64_t batch) {
  const std::string b = "/B" + std::to_string(batch);
  const star::libtorch::backend be(device);
  const auto block_dtype = device.is_cuda() ? at::kBFloat16 : at::kFloat;
  const sd35m::joint_block block(batch, at::TensorOptions().device(device).dtype(block_dtype));
  const double block_seconds = t.median_seconds([&] { block.forward(sd35m::plain_attention); });
  r.add_time("block_forward" + b, block_seconds);
  const double keeping_lse_seconds =
      t.median_seconds([&] { block.forward(sd35m::attention_keeping_lse); });
  r.add_time("block_forward_keeping_lse" + b, keeping_lse_seconds);
  // what STAR adds to a block: the read-out, and keeping the LSE where that costs anything
  const double lse_cost = std::max(0.0, keeping_lse_seconds - block_seconds);

  const sd35m::projected qkv = block.project();  // q, k, v [B, H, T, D]
  // output [B, H, T, D], lse [B, H, T]
  const auto attention = star::libtorch::attention_with_lse(qkv.q, qkv.k, qkv.v, sd35m::scale);
  r.fact("lse_source" + b, report::quoted(star::libtorch::source_name(attention.source)));
  const at::Tensor lse = attention.lse.to(at::kFloat);  // [B, H, T]
  for (const std::int64_t selected : {1, 16}) {
    const readout_inputs in = make_readout_inputs(qkv, lse, selected);
    const std::string s = b + "/S" + std::to_string(selected);
    for (const auto& variant : readout_variants(in, be))
      recorded(r, "readout/" + variant.name + s, [&] {
        const double seconds = t.median_seconds(variant.run);
        r.add_time("readout/" + variant.name + s, seconds, readout_bytes(in),
                   copies.seconds(readout_bytes(in)));
        if (selected != 16) return;
        r.add_ratio("readout_over_block_forward/" + variant.name + s, seconds / block_seconds,
                    readout_limit);
        r.add_ratio("readout_and_kept_lse_over_block_forward/" + variant.name + s,
                    (seconds + lse_cost) / block_seconds, readout_limit);
      });
  }

  const update_inputs in = make_update_inputs(batch, device);
  // a forward and a backward launch against a copy of each one's bytes, in two launches
  const double objective_launch_copies =
      copies.seconds(objective_forward_bytes(in)) + copies.seconds(objective_backward_bytes(in));
  for (const auto& variant : update_variants(in, be))
    recorded(r, "update/" + variant.name + b, [&] {
      const double allocation = t.median_seconds(variant.allocate);
      const double objective = t.median_seconds(variant.objective);
      r.add_time("allocation/" + variant.name + b, allocation, allocation_bytes(in),
                 copies.seconds(allocation_bytes(in)));
      r.add_time("token_objective_fwd_bwd/" + variant.name + b, objective, objective_bytes(in),
                 copies.seconds(objective_bytes(in)), objective_launch_copies);
      if (variant.objective_one_pass)
        r.add_time("token_objective_one_pass/" + variant.name + b,
                   t.median_seconds(variant.objective_one_pass), one_pass_objective_bytes(in),
                   copies.seconds(one_pass_objective_bytes(in)));
      r.add_ratio("allocation_objective_over_24_block_forwards/" + variant.name + b,
                  (allocation + objective) / (sd35m::blocks * block_seconds), update_limit);
    });
  // what any objective behind autograd pays at least: `sum(ell)` and its gradient through the
  // autograd engine
  r.add_time("autograd_round_trip" + b,
             t.median_seconds([&] { log_prob_gradient(in.log_prob.sum() /* [] */, in); }));
}

std::string json_list(const std::vector<std::int64_t>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i)
    out += (i ? ", " : "") + std::to_string(values[i]);
  return out + "]";
}

bool fused_built() {
#ifdef STAR_BENCH_FUSED
  return true;
#else
  return false;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  arguments args;
  try {
    args = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::printf("{\"error\": %s}\n", report::quoted(e.what()).c_str());
    return 2;
  }
  const timer t(args.device, plan_for(args));
  report r;
  r.fact("device", report::quoted(device_name(args.device)));
  r.fact("device_type", report::quoted(args.device.is_cuda() ? "cuda" : "cpu"));
  r.fact("torch_version", report::quoted(TORCH_VERSION));
  r.fact("threads", std::to_string(at::get_num_threads()));
  r.fact("fused_cuda_kernels", args.device.is_cuda() && fused_built() ? "true" : "false");
  r.fact("quick", args.quick ? "true" : "false");
  const timing_plan& plan = t.plan();
  r.fact("repeats", "{\"warmup\": " + std::to_string(plan.warmup) +
                        ", \"min\": " + std::to_string(plan.min_repeats) +
                        ", \"max\": " + std::to_string(plan.max_repeats) +
                        ", \"calls_per_sample\": " + std::to_string(plan.calls_per_sample) + "}");
  r.fact("batches", json_list(args.batches));
  try {
    copy_reference copies(t, args.device);
    measure_bandwidth(copies, r, args.device);
    // written whole (atomically) after each batch: an unwritable file fails at once, and
    // what is measured survives a kill
    if (args.out) star::files::write_text_atomically(*args.out, r.json());
    for (const std::int64_t batch : args.batches) {
      recorded(r, "batch/B" + std::to_string(batch),
               [&] { bench_batch(t, copies, r, args.device, batch); });
      if (args.out) star::files::write_text_atomically(*args.out, r.json());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "star-torch-bench: %s\n", e.what());
    return 1;
  }
  std::fputs(r.json().c_str(), stdout);
  return r.has_errors() ? 1 : 0;  // every record is written, the failed ones as errors
}
