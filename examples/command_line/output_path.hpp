#pragma once
/// @file
/// @brief Checks, before a program starts its work, that the outputs its command line names can
/// be written, so that a bad path fails at once with an error naming the option rather than
/// after minutes of computing.

#include <filesystem>
#include <string_view>

namespace star::command_line {

/// @brief Requires that `file` can be written: its folder exists and is writable, and `file`
/// itself is not a folder (it may exist: it is then replaced).
/// @param option  named by the error, e.g. `OUT.json`
/// @param file    the file to be written
/// @throws usage_error naming `option`, the path and the problem
void require_writable_file(std::string_view option, const std::filesystem::path& file);

/// @brief Requires that files can be written into `folder`: it is a writable folder, or it can
/// be created (its nearest existing ancestor is a writable folder). Creates nothing.
/// @param option  named by the error, e.g. `--out`
/// @param folder  the folder to write into
/// @throws usage_error naming `option`, the path and the problem
void require_writable_folder(std::string_view option, const std::filesystem::path& folder);

}  // namespace star::command_line
