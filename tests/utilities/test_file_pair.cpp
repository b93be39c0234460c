// write_file_pair: two files that change together. Both are new after a success; after any
// failure both targets are as they were, with no pending or kept file left in the folder.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "files/file_pair.hpp"
#include "support/scratch_dir.hpp"

namespace {

namespace fs = std::filesystem;
using star::files::file_write_error;
using star::files::write_file_pair;
using star::test::file_content;
using star::test::file_names;

/// A writer that puts `text` at the path it is given.
auto writes(std::string text) {
  return [text = std::move(text)](const fs::path& path) { std::ofstream(path) << text; };
}

/// A writer that starts the file, then fails.
void fails(const fs::path& path) {
  std::ofstream(path) << "half";
  throw std::runtime_error("writer failed");
}

}  // namespace

TEST_CASE("write_file_pair writes both files, new or over old ones, and leaves nothing else",
          "[files]") {
  const auto dir = star::test::scratch_dir("pair_writes");
  const auto weights = dir / "weights.bin", config = dir / "config.json";
  write_file_pair(weights, writes("w1"), config, writes("c1"));
  REQUIRE(file_content(weights) == "w1");
  REQUIRE(file_content(config) == "c1");
  write_file_pair(weights, writes("w2"), config, writes("c2"));
  REQUIRE(file_content(weights) == "w2");
  REQUIRE(file_content(config) == "c2");
  REQUIRE(file_names(dir) == std::vector<std::string>{"config.json", "weights.bin"});
}

TEST_CASE("write_file_pair: a failing writer leaves both targets as they were", "[files][errors]") {
  const auto dir = star::test::scratch_dir("pair_fails");
  const auto weights = dir / "weights.bin", config = dir / "config.json";
  // nothing there before: nothing there after
  REQUIRE_THROWS_WITH(write_file_pair(weights, fails, config, writes("c")), "writer failed");
  REQUIRE_THROWS_WITH(write_file_pair(weights, writes("w"), config, fails), "writer failed");
  REQUIRE(file_names(dir).empty());

  write_file_pair(weights, writes("old w"), config, writes("old c"));
  REQUIRE_THROWS_WITH(write_file_pair(weights, writes("new w"), config, fails), "writer failed");
  REQUIRE(file_content(weights) == "old w");
  REQUIRE(file_content(config) == "old c");
  REQUIRE(file_names(dir) == std::vector<std::string>{"config.json", "weights.bin"});
}

TEST_CASE("write_file_pair: a second target that cannot be replaced puts the first one back",
          "[files][errors]") {
  const auto dir = star::test::scratch_dir("pair_second_blocked");
  const auto weights = dir / "weights.bin", config = dir / "config.json";
  std::ofstream(weights) << "old w";
  fs::create_directories(config / "inside");  // a non-empty folder: no file renames onto it
  REQUIRE_THROWS_AS(write_file_pair(weights, writes("new w"), config, writes("c")),
                    file_write_error);
  REQUIRE(file_content(weights) == "old w");
  REQUIRE(fs::is_directory(config));
  REQUIRE(file_names(dir) == std::vector<std::string>{"config.json", "weights.bin"});

  // a first target that was not there before is removed again
  fs::remove(weights);
  REQUIRE_THROWS_AS(write_file_pair(weights, writes("new w"), config, writes("c")),
                    file_write_error);
  REQUIRE(file_names(dir) == std::vector<std::string>{"config.json"});
}

TEST_CASE("write_file_pair refuses to run over an existing <first>.previous, and keeps it",
          "[files][errors]") {
  const auto dir = star::test::scratch_dir("pair_previous");
  const auto weights = dir / "weights.bin", config = dir / "config.json";
  std::ofstream(weights) << "old w";
  std::ofstream(dir / "weights.bin.previous") << "the user's";
  try {
    write_file_pair(weights, writes("new w"), config, writes("c"));
    FAIL("expected a file_write_error");
  } catch (const file_write_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("weights.bin.previous exists"));
  }
  REQUIRE(file_content(weights) == "old w");
  REQUIRE(file_content(dir / "weights.bin.previous") == "the user's");
  REQUIRE(file_names(dir) == std::vector<std::string>{"weights.bin", "weights.bin.previous"});
}
