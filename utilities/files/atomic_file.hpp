#pragma once
/// @file
/// @brief Writing a file atomically: the content goes to `<path>.partial`, which is renamed
/// over `<path>` only once it is complete. A reader never sees a half-written `<path>`, an
/// existing `<path>` stays as it was when writing fails, and no `.partial` file is left behind.

#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

#include "star/core/error.hpp"

namespace star::files {

/// @brief Creating, writing or renaming a file failed; the message names the path.
class file_write_error : public star::error {
 public:
  using star::error::error;
};

/// @brief The partial file `write_file_atomically` writes first: `<path>.partial`.
std::filesystem::path partial_path(const std::filesystem::path& path);

/// @brief Writes `path` atomically: `write(partial)` creates and fills `partial_path(path)`,
/// which is then renamed over `path`. On any exception (from `write` or the rename) the partial
/// file is removed and `path` is left untouched.
/// @param path   the file to write; its folder must exist
/// @param write  called once with the partial file's path; throws when it cannot write it
/// @throws file_write_error naming both paths when the rename fails; whatever `write` throws,
///   unchanged
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path& partial)>& write);

/// @brief `write_file_atomically` through a binary output stream on the partial file:
/// `write(out)` writes the content; the stream is opened, closed and checked here.
/// @throws file_write_error naming the partial file when it cannot be created or written,
///   both paths when the rename fails; whatever `write` throws, unchanged
void write_stream_atomically(const std::filesystem::path& path,
                             const std::function<void(std::ostream& out)>& write);

/// @brief `write_stream_atomically` of `text`, whole.
/// @throws file_write_error as `write_stream_atomically`
void write_text_atomically(const std::filesystem::path& path, std::string_view text);

}  // namespace star::files
