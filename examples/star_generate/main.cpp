// star-generate: text-to-image with an SD3 / SD3.5 diffusers folder, writing each image and,
// for chosen words (or the prompt's content words), the attention maps accumulated over every
// block and step through star's LSE read-out, as heat-map overlays.
//
//   star-generate --model DIR --prompt "..." [--prompt ...] [--steps N] [--size 512]
//                 [--seed S] [--guidance G] [--words "red,apple"]
//                 [--dtype float32|bfloat16|float16] [--device cpu|cuda|cuda:N] --out DIR
//
// Exit status 0 on success (and for --help, which prints the usage to stdout), 2 on a bad
// argument (checked before any weight is loaded: numbers, device, output folder, the image size
// against the model's config files), 1 on any other failure.

#include <c10/util/Exception.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "arguments.hpp"
#include "images.hpp"
#include "sd35/pipeline/generate.hpp"
#include "sd35/pipeline/image_geometry.hpp"
#include "sd35/pipeline/model_folder.hpp"
#include "sd35/pipeline/prompt_encoder.hpp"
#include "word_maps.hpp"

namespace {

namespace fs = std::filesystem;
using namespace star::generate_cli;

/// Throws usage_error naming --size unless the model at `folder` generates `size`-pixel sides
/// (read from its config files, before any weight).
void require_image_size(const fs::path& folder, std::int64_t size) {
  if (const auto error = star::sd35::image_geometry::from_folder(folder).side_error(size))
    throw usage_error("--size: " + *error);
}

int run(const arguments& args) {
  require_image_size(args.model, args.size);
  star::sd35::model_load_options load;
  load.dtype = args.dtype;
  load.device = args.device;
  const auto model = star::sd35::sd35_model::load(args.model, load);

  star::sd35::generate_options options;
  options.height = options.width = args.size;
  options.steps = args.steps;
  options.seed = args.seed;
  options.guidance = args.guidance;
  options.validate(model);
  const std::int64_t grid = args.size / star::sd35::image_geometry::of(model).token_pixels();
  const auto layout = model.tokenizers->layout(grid, grid);

  std::vector<std::vector<word_map>> maps;
  for (const auto& prompt : args.prompts)
    maps.push_back(select_words(prompt, star::sd35::tokenize_prompt(model, prompt), layout,
                                args.words));
  word_map_observer observer(maps, args.device);
  options.observer = &observer;

  const auto result = star::sd35::generate(model, args.prompts, options);
  fs::create_directories(args.out);
  for (std::size_t b = 0; b < args.prompts.size(); ++b) {
    const auto image = result.images[static_cast<std::int64_t>(b)];  // [3, H, W]
    const auto stem = "image_" + std::to_string(b);
    write_png(args.out / (stem + ".png"), image);
    std::cout << (args.out / (stem + ".png")).string() << '\n';
    for (std::size_t m = 0; m < maps[b].size(); ++m) {
      const auto sum = observer.map(b, m);  // [N]
      if (!sum.defined()) continue;
      const auto& word = maps[b][m].word;
      const auto path = args.out / (stem + "_" + file_safe(word) + ".png");
      write_png(path, overlay(image, sum, grid, grid));
      std::cout << path.string() << "  (attention of '" << word << "')\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto args = parse_arguments(argc, argv);
    if (args.help) {
      std::cout << usage;
      return 0;
    }
    return run(args);
  } catch (const usage_error& e) {
    std::cerr << "star-generate: " << e.what() << '\n' << usage;
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "star-generate: error: LibTorch: " << e.what_without_backtrace() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "star-generate: error: " << e.what() << '\n';
    return 1;
  }
}
