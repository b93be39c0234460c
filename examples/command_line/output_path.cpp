#include "command_line/output_path.hpp"

#include <unistd.h>

#include <string>
#include <system_error>

#include "command_line/parse.hpp"

namespace star::command_line {
namespace {

namespace fs = std::filesystem;

/// "OPTION: cannot write 'PATH': PROBLEM".
usage_error unwritable(std::string_view option, const fs::path& path, const std::string& problem) {
  return usage_error(std::string(option) + ": cannot write '" + path.string() + "': " + problem);
}

/// Requires `folder` (which exists) to be a folder this process may create files in.
void require_writable_existing_folder(std::string_view option, const fs::path& path,
                                      const fs::path& folder) {
  std::error_code error;
  if (!fs::is_directory(folder, error))
    throw unwritable(option, path, "'" + folder.string() + "' is not a folder");
  if (::access(folder.c_str(), W_OK | X_OK) != 0)
    throw unwritable(option, path, "the folder '" + folder.string() + "' is not writable");
}

/// `path`'s folder: `.` for a bare file name.
fs::path folder_of(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

}  // namespace

void require_writable_file(std::string_view option, const fs::path& file) {
  std::error_code error;
  if (file.empty()) throw usage_error(std::string(option) + ": expected a file path, got ''");
  if (fs::is_directory(file, error)) throw unwritable(option, file, "it is a folder");
  const auto folder = folder_of(file);
  if (!fs::exists(folder, error))
    throw unwritable(option, file, "the folder '" + folder.string() + "' does not exist");
  require_writable_existing_folder(option, file, folder);
}

void require_writable_folder(std::string_view option, const fs::path& folder) {
  if (folder.empty()) throw usage_error(std::string(option) + ": expected a folder, got ''");
  std::error_code error;
  auto existing = fs::absolute(folder, error);
  if (error) throw unwritable(option, folder, error.message());
  while (!fs::exists(existing, error) && existing.has_relative_path())
    existing = existing.parent_path();
  require_writable_existing_folder(option, folder, existing);
}

}  // namespace star::command_line
