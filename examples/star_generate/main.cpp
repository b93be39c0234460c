// star-generate: text-to-image with an SD3 / SD3.5 diffusers folder, writing each image and,
// for chosen words (or the prompt's content words), the attention maps accumulated over every
// block and step through star's LSE read-out, as heat-map overlays.
//
//   star-generate --model DIR --prompt "..." [--prompt ...] [--steps N] [--size 512]
//                 [--seed S] [--guidance G] [--words "red,apple"] [--dtype float32|bfloat16|float16]
//                 [--device cpu|cuda] --out DIR

#include <ATen/ATen.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "files/atomic_file.hpp"
#include "sd35/pipeline/generate.hpp"
#include "sd35/pipeline/model_folder.hpp"
#include "sd35/pipeline/prompt_encoder.hpp"
#include "star/torch.hpp"

namespace {

namespace fs = std::filesystem;
using star::sd35::attention_observer;

struct cli_options {
  fs::path model;
  fs::path out;
  std::vector<std::string> prompts;
  std::vector<std::string> words;  // empty: the content words of each prompt
  std::int64_t size = 512;
  int steps = 28;
  std::uint64_t seed = 0;
  double guidance = 4.5;
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
};

constexpr const char* usage =
    "usage: star-generate --model DIR --prompt TEXT [--prompt TEXT ...] [--steps N] [--size PX]\n"
    "                     [--seed S] [--guidance G] [--words w1,w2] [--dtype float32|bfloat16|"
    "float16]\n"
    "                     [--device cpu|cuda] --out DIR\n";

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::vector<std::string> split_words(const std::string& list) {
  std::vector<std::string> words;
  std::stringstream in(list);
  for (std::string word; std::getline(in, word, ',');) {
    const auto first = word.find_first_not_of(" \t");
    const auto last = word.find_last_not_of(" \t");
    if (first != std::string::npos) words.push_back(word.substr(first, last - first + 1));
  }
  return words;
}

at::ScalarType parse_dtype(const std::string& name) {
  static const std::map<std::string, at::ScalarType> dtypes{
      {"float32", at::kFloat}, {"bfloat16", at::kBFloat16}, {"float16", at::kHalf}};
  const auto it = dtypes.find(name);
  if (it == dtypes.end()) throw usage_error("--dtype: expected float32, bfloat16 or float16, got " + name);
  return it->second;
}

cli_options parse(int argc, char** argv) {
  cli_options cli;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw usage_error(flag + ": missing value");
    const std::string value = argv[++i];
    const auto number = [&]() -> long long {
      try {
        std::size_t used = 0;
        const long long n = std::stoll(value, &used);
        if (used != value.size()) throw std::invalid_argument(value);
        return n;
      } catch (const std::exception&) {
        throw usage_error(flag + ": expected an integer, got '" + value + "'");
      }
    };
    if (flag == "--model") cli.model = value;
    else if (flag == "--out") cli.out = value;
    else if (flag == "--prompt") cli.prompts.push_back(value);
    else if (flag == "--words") cli.words = split_words(value);
    else if (flag == "--size") cli.size = number();
    else if (flag == "--steps") cli.steps = static_cast<int>(number());
    else if (flag == "--seed") cli.seed = static_cast<std::uint64_t>(number());
    else if (flag == "--guidance") cli.guidance = std::stod(value);
    else if (flag == "--dtype") cli.dtype = parse_dtype(value);
    else if (flag == "--device") cli.device = at::Device(value);
    else throw usage_error("unknown option " + flag);
  }
  if (cli.model.empty()) throw usage_error("--model is required");
  if (cli.out.empty()) throw usage_error("--out is required");
  if (cli.prompts.empty()) throw usage_error("at least one --prompt is required");
  return cli;
}

/// One word of one prompt: the text columns it weights.
struct word_map {
  std::string word;
  star::text_selection selection;
};

/// The words to map in `prompt`: `words` when given, else its content words; each mapped to
/// its own columns through star's explicit-word selection.
std::vector<word_map> select_words(const std::string& prompt,
                                   const std::vector<star::segment_tokenization>& tokenizations,
                                   const star::token_layout& layout,
                                   const std::vector<std::string>& words) {
  auto chosen = words;
  if (chosen.empty())
    chosen = star::select_core_tokens(prompt, tokenizations, layout).selected_words;
  std::vector<word_map> maps;
  for (const auto& word : chosen) {
    star::token_selection_options options;
    options.rule = star::selection_rule::explicit_spans;
    options.explicit_words = {word};
    const auto picked = star::select_core_tokens(prompt, tokenizations, layout, options);
    if (picked.rule_used != star::selection_rule::explicit_spans) {
      std::cerr << "star-generate: '" << word << "' is not a word of \"" << prompt
                << "\"; no map\n";
      continue;
    }
    maps.push_back({word, star::select_text_columns(picked.weights, layout)});
  }
  return maps;
}

/// Sums each word's relevance map (star::relevance_map: the head mean of the attention
/// probabilities, weighted over the word's columns) over every block and step of the
/// conditional batch. Each block is read out once: the probabilities of every column that any
/// word of any prompt selects, for the whole batch
/// (star::libtorch::selected_attention_probabilities), then one batched product with the word
/// weights, uploaded once.
class word_map_observer final : public attention_observer {
 public:
  /// @param maps    per prompt, its words
  /// @param device  where the blocks' q and k live
  word_map_observer(const std::vector<std::vector<word_map>>& maps, at::Device device)
      : backend_(device, at::kFloat) {
    std::set<std::int64_t> all;
    std::size_t most_words = 0;
    for (const auto& prompt_maps : maps) {
      most_words = std::max(most_words, prompt_maps.size());
      for (const auto& map : prompt_maps)
        all.insert(map.selection.indices.begin(), map.selection.indices.end());
    }
    columns_.assign(all.begin(), all.end());
    // Word m of prompt b: its weights at its columns' positions in columns_, zeros elsewhere.
    auto weights = at::zeros({static_cast<std::int64_t>(maps.size()),
                              static_cast<std::int64_t>(columns_.size()),
                              static_cast<std::int64_t>(most_words)},
                             at::kDouble);  // [B, S, W]
    auto entries = weights.accessor<double, 3>();
    for (std::size_t b = 0; b < maps.size(); ++b)
      for (std::size_t m = 0; m < maps[b].size(); ++m) {
        const auto& selection = maps[b][m].selection;
        for (std::size_t j = 0; j < selection.indices.size(); ++j)
          entries[static_cast<std::int64_t>(b)][position_in_columns(selection.indices[j])]
                 [static_cast<std::int64_t>(m)] += selection.weights[j];
      }
    weights_ = weights.to(device, at::kFloat);  // [B, S, W]
  }

  void on_joint_attention(int /*block*/, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& lse, const star::token_layout& layout) override {
    if (columns_.empty()) return;
    const auto probabilities = star::libtorch::selected_attention_probabilities(
        backend_, q, k, layout, columns_, lse);                         // [B, H, N, S]
    const auto maps = at::matmul(probabilities.mean(1), weights_);      // [B, N, W]
    sums_ = sums_.defined() ? sums_ + maps : maps;                      // [B, N, W]
  }

  /// Word `m` of prompt `b` summed over every block and step: [N] float32; undefined when no
  /// block was observed.
  at::Tensor map(std::size_t b, std::size_t m) const {
    if (!sums_.defined()) return {};
    return sums_[static_cast<std::int64_t>(b)].select(1, static_cast<std::int64_t>(m));  // [N]
  }

 private:
  /// Where `column` (a selected one) sits in `columns_`.
  std::int64_t position_in_columns(std::int64_t column) const {
    return std::lower_bound(columns_.begin(), columns_.end(), column) - columns_.begin();
  }

  star::libtorch::backend backend_;
  std::vector<std::int64_t> columns_;  // [S] every selected column, ascending
  at::Tensor weights_;                 // [B, S, W] float32, each word's weights in its column
  at::Tensor sums_;                    // [B, N, W] the maps summed so far
};

/// Writes `image` [3, H, W] in [0, 1] as an RGB PNG, atomically (`<path>.partial`, renamed).
void write_png(const fs::path& path, const at::Tensor& image) {
  const auto pixels = (image.clamp(0, 1) * 255.0)
                          .round()
                          .to(at::kByte)
                          .permute({1, 2, 0})
                          .contiguous()
                          .cpu();  // [H, W, 3]
  const auto height = static_cast<int>(pixels.size(0));
  const auto width = static_cast<int>(pixels.size(1));
  star::files::write_file_atomically(path, [&](const fs::path& partial) {
    if (!stbi_write_png(partial.c_str(), width, height, 3, pixels.data_ptr<std::uint8_t>(),
                        width * 3))
      throw star::files::file_write_error("cannot write the PNG " + partial.string());
  });
}

/// A blue-to-red heat colouring of `map` [H, W] in [0, 1]: [3, H, W].
at::Tensor heat_colours(const at::Tensor& map) {
  const auto red = (1.5 - (4.0 * map - 3.0).abs()).clamp(0, 1);    // [H, W]
  const auto green = (1.5 - (4.0 * map - 2.0).abs()).clamp(0, 1);  // [H, W]
  const auto blue = (1.5 - (4.0 * map - 1.0).abs()).clamp(0, 1);   // [H, W]
  return at::stack({red, green, blue}, 0);                         // [3, H, W]
}

/// `image` [3, H, W] blended with the heat colours of `map` [N] (the h x w token grid),
/// min-max normalised and bilinearly upsampled to H x W.
at::Tensor overlay(const at::Tensor& image, const at::Tensor& map, std::int64_t grid_h,
                   std::int64_t grid_w) {
  const auto grid = map.to(image.device()).reshape({1, 1, grid_h, grid_w});  // [1, 1, h, w]
  const auto range = (grid.max() - grid.min()).clamp_min(1e-12);
  const auto unit = (grid - grid.min()) / range;  // [1, 1, h, w]
  const std::vector<std::int64_t> size{image.size(1), image.size(2)};
  const auto upsampled = at::upsample_bilinear2d(unit, at::IntArrayRef(size),
                                                 /*align_corners=*/false, c10::nullopt,
                                                 c10::nullopt)[0][0];  // [H, W]
  return 0.5 * image + 0.5 * heat_colours(upsampled);  // [3, H, W]
}

std::string file_safe(const std::string& word) {
  std::string out;
  for (const char c : word)
    out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

int run(const cli_options& cli) {
  star::sd35::model_load_options load;
  load.dtype = cli.dtype;
  load.device = cli.device;
  const auto model = star::sd35::sd35_model::load(cli.model, load);

  star::sd35::generate_options options;
  options.height = options.width = cli.size;
  options.steps = cli.steps;
  options.seed = cli.seed;
  options.guidance = cli.guidance;
  options.validate(model);
  const std::int64_t cells = model.vae_scale_factor() * model.transformer->config().patch_size;
  const std::int64_t grid = cli.size / cells;
  const auto layout = model.tokenizers->layout(grid, grid);

  std::vector<std::vector<word_map>> maps;
  for (const auto& prompt : cli.prompts)
    maps.push_back(select_words(prompt, star::sd35::tokenize_prompt(model, prompt), layout,
                                cli.words));
  word_map_observer observer(maps, cli.device);
  options.observer = &observer;

  const auto result = star::sd35::generate(model, cli.prompts, options);
  fs::create_directories(cli.out);
  for (std::size_t b = 0; b < cli.prompts.size(); ++b) {
    const auto image = result.images[static_cast<std::int64_t>(b)];  // [3, H, W]
    const auto stem = "image_" + std::to_string(b);
    write_png(cli.out / (stem + ".png"), image);
    std::cout << (cli.out / (stem + ".png")).string() << '\n';
    for (std::size_t m = 0; m < maps[b].size(); ++m) {
      const auto sum = observer.map(b, m);  // [N]
      if (!sum.defined()) continue;
      const auto& word = maps[b][m].word;
      const auto path = cli.out / (stem + "_" + file_safe(word) + ".png");
      write_png(path, overlay(image, sum, grid, grid));
      std::cout << path.string() << "  (attention of '" << word << "')\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const usage_error& e) {
    std::cerr << "star-generate: " << e.what() << '\n' << usage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "star-generate: error: " << e.what() << '\n';
    return 1;
  }
}
