// write_file_atomically / write_stream_atomically: the content lands at the path through
// `<path>.partial`; a failure anywhere leaves no partial file and the old target untouched.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "files/atomic_file.hpp"
#include "support/scratch_dir.hpp"

namespace {

namespace fs = std::filesystem;
using star::files::file_write_error;
using star::files::write_file_atomically;
using star::files::write_stream_atomically;

}  // namespace

TEST_CASE("write_stream_atomically writes the content and replaces an existing file",
          "[files]") {
  const auto dir = star::test::scratch_dir("write");
  const auto path = dir / "out.bin";
  write_stream_atomically(path, [](std::ostream& out) { out << "first"; });
  REQUIRE(star::test::file_content(path) == "first");
  const std::string binary("a\0b\n", 4);
  write_stream_atomically(path, [&](std::ostream& out) { out << binary; });
  REQUIRE(star::test::file_content(path) == binary);
  REQUIRE(star::test::file_names(dir) == std::vector<std::string>{"out.bin"});
}

TEST_CASE("write_file_atomically hands the callback <path>.partial and renames it onto path",
          "[files]") {
  const auto dir = star::test::scratch_dir("partial");
  const auto path = dir / "image.png";
  fs::path seen;
  write_file_atomically(path, [&](const fs::path& partial) {
    seen = partial;
    std::ofstream(partial) << "pixels";
    REQUIRE_FALSE(fs::exists(path));  // nothing at the target until the rename
  });
  REQUIRE(seen == dir / "image.png.partial");
  REQUIRE(seen == star::files::partial_path(path));
  REQUIRE(star::test::file_content(path) == "pixels");
  REQUIRE(star::test::file_names(dir) == std::vector<std::string>{"image.png"});
}

TEST_CASE("an exception inside the callback leaves no file, no .partial, the old target as it was",
          "[files][errors]") {
  const auto dir = star::test::scratch_dir("throw");
  const auto fresh = dir / "fresh.bin";
  const auto failing_stream = [](std::ostream& out) {
    out << "half of it";
    throw std::runtime_error("callback failed");
  };
  REQUIRE_THROWS_WITH(write_stream_atomically(fresh, failing_stream), "callback failed");
  REQUIRE(star::test::file_names(dir).empty());

  const auto existing = dir / "existing.bin";
  std::ofstream(existing) << "old content";
  REQUIRE_THROWS_AS(write_stream_atomically(existing, failing_stream), std::runtime_error);
  REQUIRE_THROWS_AS(write_file_atomically(existing,
                                          [](const fs::path& partial) {
                                            std::ofstream(partial) << "new";
                                            throw file_write_error("cannot encode");
                                          }),
                    file_write_error);
  REQUIRE(star::test::file_content(existing) == "old content");
  REQUIRE(star::test::file_names(dir) == std::vector<std::string>{"existing.bin"});
}

TEST_CASE("failures of the helper itself name the path and leave nothing behind",
          "[files][errors]") {
  const auto dir = star::test::scratch_dir("fail");
  const auto write = [](std::ostream& out) { out << "data"; };
  // A folder that does not exist: the partial file cannot be created.
  const auto absent = dir / "absent" / "out.bin";
  REQUIRE_THROWS_AS(write_stream_atomically(absent, write), file_write_error);
  REQUIRE_THROWS_WITH(write_stream_atomically(absent, write),
                      Catch::Contains("cannot create") &&
                          Catch::Contains("absent/out.bin.partial"));
  // A folder at the target: the partial file is written, the rename fails, the partial goes.
  const auto taken = dir / "taken";
  fs::create_directory(taken);
  REQUIRE_THROWS_WITH(write_stream_atomically(taken, write),
                      Catch::Contains("cannot rename") && Catch::Contains(taken.string()));
  REQUIRE(star::test::file_names(dir) == std::vector<std::string>{"taken"});
  REQUIRE(fs::is_empty(taken));
}
