// The example programs' command lines: the shared parsers (star_command_line) in process, and
// star-generate and star-sd35-step-bench run as a user runs them. A bad argument ends the
// program with exit status 2 and a message naming the option and what it accepts, before any
// model is loaded; --help prints the usage and succeeds.

#include <torch/cuda.h>
#undef CHECK
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "command_line/output_path.hpp"
#include "command_line/parse.hpp"
#include "run_command.hpp"
#include "support/scratch_dir.hpp"

namespace {

namespace fs = std::filesystem;
using star::command_line::usage_error;
using star::test::command_result;
using star::test::star_generate;

command_result step_bench(const std::string& arguments) {
  return star::test::run_command(std::string(STAR_STEP_BENCH_BINARY) + " " + arguments);
}

/// Requires `result` to be a usage error (exit status 2) whose message holds every one of
/// `words`, without a LibTorch backtrace.
void require_usage_error(const command_result& result, const std::vector<std::string>& words) {
  INFO(result.output);
  CHECK(result.status == 2);
  for (const auto& word : words) CHECK_THAT(result.output, Catch::Contains(word));
  CHECK_THAT(result.output, !Catch::Contains("Exception raised from"));
}

/// An empty folder as star-generate's --model: a run that gets past the command line fails
/// loading it (exit status 1).
const fs::path& empty_model() {
  static const auto folder = star::test::scratch_dir("empty_model");
  return folder;
}

/// star-generate's required arguments (an empty model folder), then `more`.
command_result star_generate_with(const std::string& more) {
  const auto out = star::test::scratch_dir("generate_cli") / "images";
  return star_generate("--model " + empty_model().string() + " --prompt apple --out " +
                       out.string() + " " + more);
}

}  // namespace

TEST_CASE("parse_integer and parse_real read the whole text within the range",
          "[sd35][command_line]") {
  using star::command_line::parse_integer;
  using star::command_line::parse_real;
  CHECK(parse_integer("--steps", "28", 1, 1000) == 28);
  CHECK(parse_integer("--seed", "-3", -5) == -3);
  CHECK(parse_real("--guidance", "4.5", 0.0) == 4.5);
  CHECK(parse_real("--guidance", "1e-3", 0.0) == 1e-3);
  for (const auto* text : {"", "abc", "28x", " 28", "4.5", "1001", "0", "99999999999999999999"}) {
    INFO("'" << text << "'");
    REQUIRE_THROWS_AS(parse_integer("--steps", text, 1, 1000), usage_error);
    REQUIRE_THROWS_WITH(parse_integer("--steps", text, 1, 1000),
                        "--steps: expected an integer in [1, 1000], got '" + std::string(text) +
                            "'");
  }
  for (const auto* text : {"", "abc", "4.5x", "-1", "inf", "nan", "1e400", "+4.5"}) {
    INFO("'" << text << "'");
    REQUIRE_THROWS_WITH(parse_real("--guidance", text, 0.0),
                        "--guidance: expected a finite number >= 0, got '" + std::string(text) +
                            "'");
  }
  REQUIRE_THROWS_WITH(parse_real("--noise", "2", 0.0, 1.5),
                      "--noise: expected a number in [0, 1.5], got '2'");
}

TEST_CASE("parse_device takes cpu, cuda and cuda:N, and names the option otherwise",
          "[sd35][command_line]") {
  using star::command_line::parse_device;
  CHECK(parse_device("--device", "cpu") == c10::Device(c10::kCPU));
  for (const auto* text : {"gpu", "CPU", "cudax", "cuda0", ""}) {
    INFO("'" << text << "'");
    REQUIRE_THROWS_WITH(parse_device("--device", text),
                        "--device: expected cpu, cuda or cuda:N, got '" + std::string(text) + "'");
  }
  if (torch::cuda::is_available()) {
    CHECK(parse_device("--device", "cuda") == c10::Device(c10::kCUDA, 0));
    REQUIRE_THROWS_WITH(parse_device("--device", "cuda:99"), Catch::Contains("cuda:N with N"));
  } else {
    REQUIRE_THROWS_WITH(parse_device("--device", "cuda"),
                        Catch::Contains("--device cuda") && Catch::Contains("no CUDA device"));
  }
}

TEST_CASE("output paths: a missing folder, a file in the way or a folder as file are named",
          "[sd35][command_line]") {
  using star::command_line::require_writable_file;
  using star::command_line::require_writable_folder;
  const auto dir = star::test::scratch_dir("output_paths");
  std::ofstream(dir / "plain.txt") << "x";
  REQUIRE_NOTHROW(require_writable_file("OUT.json", dir / "report.json"));
  REQUIRE_NOTHROW(require_writable_folder("--out", dir / "new" / "deeper"));
  REQUIRE_THROWS_AS(require_writable_file("OUT.json", dir / "absent" / "report.json"),
                    usage_error);
  REQUIRE_THROWS_WITH(require_writable_file("OUT.json", dir / "absent" / "report.json"),
                      Catch::StartsWith("OUT.json: cannot write") &&
                          Catch::Contains("absent' does not exist"));
  REQUIRE_THROWS_WITH(require_writable_file("OUT.json", dir),
                      Catch::StartsWith("OUT.json: cannot write") && Catch::Contains("a folder"));
  REQUIRE_THROWS_WITH(require_writable_folder("--out", dir / "plain.txt" / "images"),
                      Catch::StartsWith("--out: cannot write") &&
                          Catch::Contains("plain.txt' is not a folder"));
  CHECK_FALSE(fs::exists(dir / "new"));  // checked, not created
}

TEST_CASE("star-generate --help prints the usage to stdout and succeeds",
          "[sd35][command_line][star-generate]") {
  for (const auto* flag : {"--help", "-h"}) {
    INFO(flag);
    const auto result = star_generate(flag);
    CHECK(result.status == 0);
    CHECK_THAT(result.output, Catch::StartsWith("usage: star-generate --model DIR"));
  }
}

TEST_CASE("star-generate: bad numbers are usage errors naming the option and the range",
          "[sd35][command_line][star-generate]") {
  require_usage_error(star_generate_with("--guidance abc"),
                      {"--guidance: expected a finite number >= 0, got 'abc'", "usage:"});
  require_usage_error(star_generate_with("--guidance 4.5x"),
                      {"--guidance: expected a finite number >= 0, got '4.5x'"});
  require_usage_error(star_generate_with("--guidance -1"), {"--guidance"});
  // 2^32 + 1 would wrap to 1 step as an int.
  require_usage_error(star_generate_with("--steps 4294967297"),
                      {"--steps: expected an integer in [1, 1000], got '4294967297'"});
  require_usage_error(star_generate_with("--size 0"),
                      {"--size: expected an integer in [1, 2147483647], got '0'"});
  require_usage_error(star_generate_with("--seed -1"),
                      {"--seed: expected an integer >= 0, got '-1'"});
  require_usage_error(star_generate_with("--dtype double"), {"--dtype", "'double'"});
  require_usage_error(star_generate_with("--steps"), {"--steps: missing value"});
  require_usage_error(star_generate_with("--colour red"), {"'--colour'"});
}

TEST_CASE("star-generate: a bad device is a one-line usage error",
          "[sd35][command_line][star-generate]") {
  require_usage_error(star_generate_with("--device gpu"),
                      {"star-generate: --device: expected cpu, cuda or cuda:N, got 'gpu'\n"
                       "usage: star-generate"});
  if (!torch::cuda::is_available())
    require_usage_error(star_generate_with("--device cuda"),
                        {"--device cuda: no CUDA device"});
}

TEST_CASE("star-generate: an --out that cannot be created is named before the model loads",
          "[sd35][command_line][star-generate]") {
  const auto dir = star::test::scratch_dir("generate_cli_out");
  std::ofstream(dir / "plain.txt") << "x";
  require_usage_error(star_generate("--model " + empty_model().string() +
                                    " --prompt apple --out " +
                                    (dir / "plain.txt" / "images").string()),
                      {"--out: cannot write", "plain.txt' is not a folder"});
}

TEST_CASE("star-generate: a --model that is no folder is named before anything is read",
          "[sd35][command_line][star-generate]") {
  const auto out = star::test::scratch_dir("generate_cli_model") / "images";
  require_usage_error(star_generate("--model /nonexistent/sd35 --prompt apple --out " +
                                    out.string()),
                      {"--model: '/nonexistent/sd35' is not a folder"});
}

TEST_CASE("star-generate: past the command line, a folder without a model is exit status 1",
          "[sd35][command_line][star-generate]") {
  const auto result = star_generate_with("--guidance 7 --steps 3 --device cpu");
  CHECK(result.status == 1);
  CHECK_THAT(result.output, Catch::Contains(empty_model().string()) &&
                                Catch::Contains("transformer") && Catch::Contains("config.json"));
}

TEST_CASE("star-sd35-step-bench: an OUT.json that cannot be written stops it before the run",
          "[sd35][command_line][step-bench]") {
  const auto dir = star::test::scratch_dir("step_bench_cli");
  const auto out = dir / "absent" / "report.json";
  const auto result = step_bench("--config tiny --device cpu " + out.string());
  require_usage_error(result, {"OUT.json: cannot write '" + out.string() + "'",
                               "absent' does not exist", "usage: star-sd35-step-bench"});
  CHECK_THAT(result.output, !Catch::Contains("seconds_per_step"));  // nothing was measured
  require_usage_error(step_bench("--config tiny --device gpu"),
                      {"--device: expected cpu, cuda or cuda:N, got 'gpu'"});
  require_usage_error(step_bench("--config tiny --repeats 0"),
                      {"--repeats: expected an integer >= 1, got '0'"});
}

TEST_CASE("star-sd35-step-bench writes OUT.json whole: what it prints, and no partial file",
          "[sd35][command_line][step-bench]") {
  const auto dir = star::test::scratch_dir("step_bench_out");
  const auto out = dir / "report.json";
  std::ofstream(out) << "old";
  const auto result = step_bench(
      "--config tiny --resolution 64 --dtype f32 --device cpu --repeats 1 --warmup 0 " +
      out.string());
  REQUIRE(result.status == 0);
  const std::string written = star::test::file_content(out);
  CHECK_THAT(result.output, Catch::Contains(written));  // stdout, stderr would come after
  CHECK(nlohmann::json::parse(written).at("config") == "tiny");
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
}
