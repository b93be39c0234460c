#pragma once
/// @file
/// @brief Writing two files that only make sense together (e.g. peft's adapter weights and
/// its adapter_config.json) so that they change together: both new, or both as they were.

#include <filesystem>
#include <functional>

#include "files/atomic_file.hpp"

namespace star::files {

/// @brief Writes `first` and `second` as a pair. `write_first` and `write_second` each write a
/// complete file at the path they are given (`<target>.pending`); only when both succeeded are
/// the pending files moved onto the targets, `first` kept aside (as `<first>.previous`) until
/// `second` is in place. On any failure both targets are left as they were and no pending or
/// kept file remains (unless putting `first` back fails too: then `<first>.previous`, its only
/// old copy, stays); an existing `<first>.previous` is an error, never removed.
/// @param first         the first target (its folder must exist)
/// @param write_first   writes the first file at the given path; throws when it cannot
/// @param second        the second target, in the same folder
/// @param write_second  writes the second file at the given path; throws when it cannot
/// @throws file_write_error naming the path when a move fails; whatever the
///   writers throw, unchanged
void write_file_pair(const std::filesystem::path& first,
                     const std::function<void(const std::filesystem::path&)>& write_first,
                     const std::filesystem::path& second,
                     const std::function<void(const std::filesystem::path&)>& write_second);

}  // namespace star::files
