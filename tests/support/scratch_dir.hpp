#pragma once
// A scratch folder per test process (no Torch): the tokenizers' vocabulary files, the
// pipeline's tiny model, the atomic writer's targets; the names a folder holds and what a file
// holds.

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

namespace star::test {

/// The folder `name` of this test process (ctest runs test cases as parallel processes),
/// created on first use; every folder of the process is removed at exit. One name per use.
inline std::filesystem::path scratch_dir(const std::string& name) {
  struct removed_at_exit {
    std::filesystem::path root = std::filesystem::temp_directory_path() /
                                 ("star_test_" + std::to_string(::getpid()));
    ~removed_at_exit() {
      std::error_code ignored;
      std::filesystem::remove_all(root, ignored);
    }
  };
  static const removed_at_exit scratch;
  const auto dir = scratch.root / name;
  std::filesystem::create_directories(dir);
  return dir;
}

/// The names of the entries of `dir`, sorted.
inline std::vector<std::string> file_names(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& item : std::filesystem::directory_iterator(dir))
    names.push_back(item.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// The bytes of the file at `path`; empty when it cannot be opened (a missing file then fails
/// the comparison that follows, and a log read for a message costs the message nothing).
inline std::string file_content(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace star::test
