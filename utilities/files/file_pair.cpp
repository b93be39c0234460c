#include "files/file_pair.hpp"

#include <string>
#include <system_error>

namespace star::files {
namespace {

namespace fs = std::filesystem;

void remove_quietly(const fs::path& path) noexcept {
  std::error_code ignored;
  fs::remove(path, ignored);
}

/// `path` + `suffix`, e.g. `adapter_config.json.pending`.
fs::path suffixed(const fs::path& path, const char* suffix) { return path.string() + suffix; }

/// Moves `pending` onto `target`.
/// @throws file_write_error naming both paths when the rename fails
void move_onto(const fs::path& pending, const fs::path& target) {
  std::error_code error;
  fs::rename(pending, target, error);
  if (error)
    throw file_write_error("cannot rename " + pending.string() + " onto " + target.string() +
                           ": " + error.message());
}

/// A second name for the regular file `path`, `<path>.previous` (a hard link, else a copy), so
/// that it can be put back after being replaced; nothing when `path` is no regular file.
/// @throws file_write_error naming the file when `<path>.previous` exists already (it is
///   not ours to remove), or when neither a link nor a copy works
fs::path keep_aside(const fs::path& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) return {};
  const auto kept = suffixed(path, ".previous");
  if (fs::exists(fs::symlink_status(kept, error)))
    throw file_write_error("cannot keep " + path.string() + " while it is replaced: " +
                           kept.string() + " exists; move it away first");
  fs::create_hard_link(path, kept, error);
  if (error && !fs::copy_file(path, kept, error))
    throw file_write_error("cannot keep " + path.string() + " while it is replaced: " +
                           error.message());
  return kept;
}

}  // namespace

void write_file_pair(const fs::path& first,
                     const std::function<void(const fs::path&)>& write_first,
                     const fs::path& second,
                     const std::function<void(const fs::path&)>& write_second) {
  const auto pending_first = suffixed(first, ".pending");
  const auto pending_second = suffixed(second, ".pending");
  fs::path kept;
  bool first_moved = false;
  try {
    kept = keep_aside(first);  // first: it refuses an existing <first>.previous before any write
    write_first(pending_first);
    write_second(pending_second);
    move_onto(pending_first, first);
    first_moved = true;
    move_onto(pending_second, second);
  } catch (...) {
    if (first_moved) {  // put the first target back as it was
      std::error_code error;
      if (kept.empty())
        fs::remove(first, error);
      else if (fs::rename(kept, first, error); error)
        kept.clear();  // <first>.previous is now the only copy of the old file: it stays
    }
    remove_quietly(pending_first);
    remove_quietly(pending_second);
    if (!kept.empty()) remove_quietly(kept);
    throw;
  }
  if (!kept.empty()) remove_quietly(kept);
}

}  // namespace star::files
