#pragma once
/// @file
/// @brief Typed reads of a config's keys, shared by the components: every error is an
/// `option_error` that names the config and the key, e.g.
/// `vae config: key 'layers_per_block' must be an integer, got 2.5`; and the positive-integer
/// check of the configs' `validate()`.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sd35/config/config_file.hpp"
#include "star/core/error.hpp"

namespace star::sd35::config_detail {

/// @brief Throws `option_error` `<name> must be >= 1, got <value>` unless `value` >= 1;
/// `name` names the config and the field, e.g. `"vae config: in_channels"`.
inline void require_positive(std::int64_t value, std::string_view name) {
  if (value < 1)
    throw option_error(std::string(name) + " must be >= 1, got " + std::to_string(value));
}

/// @brief A config's JSON object and the name its errors start with (`what`: a label such as
/// `"vae config"`, or a file path). One-argument reads require the key; two-argument reads
/// return the fallback when the key is absent. A present key of the wrong type is an error
/// either way (JSON null included).
class config_keys {
 public:
  /// @brief Wraps `object` (a JSON object); errors start with `what`.
  config_keys(nlohmann::json object, std::string what)
      : object_(std::move(object)), what_(std::move(what)) {}

  /// @brief `parse_object(text, what)` wrapped: a syntax error or a non-object names `what`.
  static config_keys parse(std::string_view text, std::string what) {
    auto object = parse_object(text, what);
    return {std::move(object), std::move(what)};
  }

  /// @brief The JSON object, e.g. to walk every key.
  const nlohmann::json& object() const { return object_; }
  /// @brief Whether `key` is present (with any value, null included).
  bool has(const std::string& key) const { return object_.contains(key); }
  /// @brief Whether `key` is present with the value JSON null.
  bool is_null(const std::string& key) const { return has(key) && object_.at(key).is_null(); }

  /// @brief The object at `key` as a config of its own, named `what (key)`.
  config_keys nested(const std::string& key) const {
    const auto& value = at(key);
    if (!value.is_object()) fail(key, "must be a JSON object, got " + value.dump());
    return {value, what_ + " (" + key + ")"};
  }

  /// @brief The integer at `key` (an int64; `8.0` and `"8"` are errors).
  std::int64_t integer(const std::string& key) const { return integer_value(at(key), key); }
  std::int64_t integer(const std::string& key, std::int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }

  /// @brief The number (integer or floating) at `key`.
  double number(const std::string& key) const {
    const auto& value = at(key);
    if (!value.is_number()) fail(key, "must be a number, got " + value.dump());
    return value.get<double>();
  }
  double number(const std::string& key, double fallback) const {
    return has(key) ? number(key) : fallback;
  }

  /// @brief The string at `key`.
  std::string string(const std::string& key) const {
    const auto& value = at(key);
    if (!value.is_string()) fail(key, "must be a string, got " + value.dump());
    return value.get<std::string>();
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    return has(key) ? string(key) : fallback;
  }

  /// @brief The `true` / `false` at `key`.
  bool boolean(const std::string& key) const {
    const auto& value = at(key);
    if (!value.is_boolean()) fail(key, "must be true or false, got " + value.dump());
    return value.get<bool>();
  }

  /// @brief The list of integers at `key` (`[]` is an empty list).
  std::vector<std::int64_t> integer_list(const std::string& key) const {
    const auto& value = at(key);
    if (!value.is_array()) fail(key, "must be a list of integers, got " + value.dump());
    std::vector<std::int64_t> out;
    for (const auto& item : value) out.push_back(integer_value(item, key));
    return out;
  }

  /// @brief Throws `option_error`: `<what>: key '<key>' <problem>`.
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw option_error(what_ + ": key '" + key + "' " + problem);
  }

  /// @brief Throws `option_error`: `<what>: unknown key '<key>'`.
  [[noreturn]] void unknown_key(const std::string& key) const {
    throw option_error(what_ + ": unknown key '" + key + "'");
  }

  /// @brief `config.validate()`, with `<what>: ` in front of its error.
  template <class Config>
  void validate(const Config& config) const {
    try {
      config.validate();
    } catch (const option_error& e) {
      throw option_error(what_ + ": " + e.what());
    }
  }

 private:
  const nlohmann::json& at(const std::string& key) const {
    const auto found = object_.find(key);
    if (found == object_.end()) throw option_error(what_ + ": missing required key '" + key + "'");
    return *found;
  }

  std::int64_t integer_value(const nlohmann::json& value, const std::string& key) const {
    if (!value.is_number_integer()) fail(key, "must be an integer, got " + value.dump());
    if (value.is_number_unsigned() &&
        value.get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(key, "must fit a signed 64-bit integer, got " + value.dump());
    return value.get<std::int64_t>();
  }

  nlohmann::json object_;
  std::string what_;
};

}  // namespace star::sd35::config_detail
