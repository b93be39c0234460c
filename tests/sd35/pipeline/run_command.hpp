#pragma once
// Runs an example program through the shell, as a user would, and returns what it printed.

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/scratch_dir.hpp"

namespace star::test {

/// The exit status of a command and everything it printed (stdout, then stderr appended as it
/// came).
struct command_result {
  int status = -1;
  std::string output;
};

/// Runs `command` (a shell command line) with its stdout and stderr captured in a scratch file;
/// requires it to exit normally (no signal).
inline command_result run_command(const std::string& command) {
  static int runs = 0;
  const auto log = scratch_dir("command_output") / ("run_" + std::to_string(++runs) + ".txt");
  const std::string line = command + " > '" + log.string() + "' 2>&1";
  INFO(line);
  const int status = std::system(line.c_str());
  REQUIRE(WIFEXITED(status));
  return {WEXITSTATUS(status), file_content(log)};
}

#ifdef STAR_GENERATE_BINARY
/// star-generate run with `arguments`: its exit status and output.
inline command_result star_generate(const std::string& arguments) {
  return run_command(std::string(STAR_GENERATE_BINARY) + " " + arguments);
}
#endif

}  // namespace star::test
