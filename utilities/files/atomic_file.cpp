#include "files/atomic_file.hpp"

#include <fstream>
#include <string>
#include <system_error>

namespace star::files {

namespace fs = std::filesystem;

fs::path partial_path(const fs::path& path) { return path.string() + ".partial"; }

void write_file_atomically(const fs::path& path,
                           const std::function<void(const fs::path& partial)>& write) {
  const auto partial = partial_path(path);
  try {
    write(partial);
    std::error_code error;
    fs::rename(partial, path, error);
    if (error)
      throw file_write_error("cannot rename " + partial.string() + " onto " + path.string() +
                             ": " + error.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(partial, ignored);
    throw;
  }
}

void write_stream_atomically(const fs::path& path,
                             const std::function<void(std::ostream& out)>& write) {
  write_file_atomically(path, [&write](const fs::path& partial) {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    if (!out) throw file_write_error("cannot create " + partial.string());
    write(out);
    out.close();
    if (!out) throw file_write_error("writing " + partial.string() + " failed");
  });
}

void write_text_atomically(const fs::path& path, std::string_view text) {
  write_stream_atomically(path, [text](std::ostream& out) { out << text; });
}

}  // namespace star::files
