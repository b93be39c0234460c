#pragma once
/// @file
/// @brief Reading transformers `config.json` values with errors that name the file and key
/// (internal to the text component; only its .cpp files include it).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "star/core/error.hpp"

namespace star::sd35::text_detail {

/// @brief A parsed config and where it came from (a path, or a caller's label).
struct config_source {
  nlohmann::json values;
  std::string origin;

  /// @brief Parses `text`; a syntax error becomes `option_error` naming `origin`.
  static config_source parse(const std::string& text, const std::string& origin) {
    try {
      return {nlohmann::json::parse(text), origin};
    } catch (const nlohmann::json::exception& e) {
      throw star::option_error(origin + ": not valid JSON (" + e.what() + ")");
    }
  }

  /// @brief Reads `path`, or `path/config.json` when `path` is a folder (or names no .json).
  static config_source read(const std::filesystem::path& path) {
    const bool folder = std::filesystem::is_directory(path) || path.extension() != ".json";
    const auto file = folder ? path / "config.json" : path;
    std::ifstream in(file);
    if (!in) throw star::option_error(file.string() + ": cannot open the config file");
    std::stringstream text;
    text << in.rdbuf();
    return parse(text.str(), file.string());
  }

  bool has(const std::string& key) const { return values.is_object() && values.contains(key); }

  /// @brief The integer at `key`; `fallback` when absent, an error when absent and `required`.
  std::int64_t integer(const std::string& key, std::int64_t fallback, bool required) const {
    if (!has(key)) return missing(key, fallback, required);
    const auto& value = values.at(key);
    if (!value.is_number_integer())
      throw star::option_error(origin + ": key '" + key + "' must be an integer, got " +
                               value.dump());
    return value.get<std::int64_t>();
  }

  /// @brief The number at `key`, or `fallback` when absent.
  double number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const auto& value = values.at(key);
    if (!value.is_number())
      throw star::option_error(origin + ": key '" + key + "' must be a number, got " +
                               value.dump());
    return value.get<double>();
  }

  /// @brief The string at `key`; `fallback` when absent, an error when absent and `required`.
  std::string text(const std::string& key, const std::string& fallback, bool required) const {
    if (!has(key)) return missing(key, fallback, required);
    const auto& value = values.at(key);
    if (!value.is_string())
      throw star::option_error(origin + ": key '" + key + "' must be a string, got " +
                               value.dump());
    return value.get<std::string>();
  }

  /// @brief `config.validate()`, with `origin` prefixed to an error.
  template <class Config>
  void validate(const Config& config) const {
    try {
      config.validate();
    } catch (const star::option_error& e) {
      throw star::option_error(origin + ": " + e.what());
    }
  }

 private:
  template <class T>
  T missing(const std::string& key, T fallback, bool required) const {
    if (required) throw star::option_error(origin + ": missing required key '" + key + "'");
    return fallback;
  }
};

}  // namespace star::sd35::text_detail
