#pragma once
/// @file
/// @brief Reading a diffusers `config.json`: the file (or the folder holding it) to JSON text,
/// the text to a JSON object, with `option_error`s that name the file or the config.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "star/core/error.hpp"

namespace star::sd35::config_detail {

/// @brief Parses `text` into a JSON object; a syntax error or another JSON type is an
/// `option_error` naming `what` (e.g. `"vae config"`).
inline nlohmann::json parse_object(std::string_view text, const std::string& what) {
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw option_error(what + ": not valid JSON: " + e.what());
  }
  if (!parsed.is_object())
    throw option_error(what + ": expected a JSON object, got " + parsed.dump());
  return parsed;
}

/// @brief Reads `path`, or `path / default_file` when `path` is a folder (or is missing and
/// names no `.json` file, so that a missing `text_encoder/` reports its `config.json`), and
/// returns `parse(text)`; an `option_error` from `parse` gets the file's path in front.
template <class Parse>
auto parse_file(const std::filesystem::path& path, const std::string& default_file,
                const std::string& what, Parse parse) {
  const bool folder = std::filesystem::is_directory(path) ||
                      (!std::filesystem::exists(path) && path.extension() != ".json");
  const auto file = folder ? path / default_file : path;
  std::ifstream in(file);
  if (!in) throw option_error(what + ": cannot open " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return parse(text.str());
  } catch (const option_error& e) {
    throw option_error(file.string() + ": " + e.what());
  }
}

}  // namespace star::sd35::config_detail
