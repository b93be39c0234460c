#pragma once
// The one record writer of star-torch-bench: run facts, timed records (with their fraction of
// the bandwidth measured in the same run, and of a copy of the same bytes), ratio records
// (with the limit they are held to) and the errors of measurements that failed, written as
// one JSON document (non-finite numbers as null).

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace star::bench {

/// One result: a time, a ratio of times, or the error that stopped a measurement.
struct record {
  std::string name;
  double value = 0.0;   ///< seconds, or the ratio
  double bytes = 0.0;   ///< time records: the least traffic of the operation (0: not memory-bound)
  double copy_seconds = 0.0;  ///< time records: a device copy of `bytes`, timed alike (0: none)
  /// time records of several launches: one copy of each launch's bytes, in as many launches
  /// (0: one launch)
  double launch_copies_seconds = 0.0;
  double limit = -1.0;  ///< ratio records: the requirement `value < limit`; < 0 for time records
  std::string error = {};  ///< set: the measurement threw this, `value` is meaningless
};

/// Collects the run facts and the records; `json()` writes them.
class report {
 public:
  /// A run fact; `value` is already JSON (use `quoted` for strings).
  void fact(std::string key, std::string value) {
    facts_.emplace_back(std::move(key), std::move(value));
  }

  /// The copy bandwidth every `fraction_of_bandwidth` is relative to, bytes per second.
  void set_bandwidth(double bytes_per_second) {
    bandwidth_ = bytes_per_second;
    fact("bandwidth_bytes_per_s", number(bytes_per_second));
  }

  /// A time; with `bytes`, also its fraction of the bandwidth, and with `copy_seconds`, its
  /// fraction of the speed of a copy of the same bytes (for calls too small to reach the
  /// bandwidth, whose floor is the launch and the memory latency).
  /// `launch_copies_seconds`: for a call of several launches, copies of each launch's bytes.
  void add_time(std::string name, double seconds, double bytes = 0.0, double copy_seconds = 0.0,
                double launch_copies_seconds = 0.0) {
    records_.push_back({std::move(name), seconds, bytes, copy_seconds, launch_copies_seconds});
  }
  void add_ratio(std::string name, double ratio, double limit) {
    records_.push_back({std::move(name), ratio, 0.0, 0.0, 0.0, limit});
  }
  /// A measurement that threw `what`: recorded, so that the others still appear.
  void add_error(std::string name, std::string what) {
    if (what.empty()) what = "(no message)";
    records_.push_back({std::move(name), 0.0, 0.0, 0.0, 0.0, -1.0, std::move(what)});
  }
  /// Whether a measurement failed.
  bool has_errors() const {
    for (const record& r : records_)
      if (!r.error.empty()) return true;
    return false;
  }

  std::string json() const {
    std::string out = "{\n";
    for (const auto& [key, value] : facts_) out += "  " + quoted(key) + ": " + value + ",\n";
    out += "  \"results\": [\n";
    for (std::size_t i = 0; i < records_.size(); ++i)
      out += "    " + entry(records_[i]) + (i + 1 < records_.size() ? ",\n" : "\n");
    return out + "  ]\n}\n";
  }

  /// `text` as a JSON string: quotes, backslashes and control characters escaped.
  static std::string quoted(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
      if (c == '"' || c == '\\') {
        out += {'\\', c};
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
        out += escaped;
      } else {
        out += c;
      }
    }
    return out + "\"";
  }
  /// `value` as a JSON number; `null` when it is not finite (JSON has no NaN or infinity).
  static std::string number(double value) {
    if (!std::isfinite(value)) return "null";
    std::ostringstream out;
    out.precision(6);
    out << value;
    return out.str();
  }

 private:
  std::vector<std::pair<std::string, std::string>> facts_;
  std::vector<record> records_;
  double bandwidth_ = 0.0;

  std::string entry(const record& r) const {
    std::string out = "{\"name\": " + quoted(r.name);
    if (!r.error.empty()) return out + ", \"error\": " + quoted(r.error) + "}";
    if (r.limit >= 0.0)
      return out + ", \"ratio\": " + number(r.value) + ", \"limit\": " + number(r.limit) +
             ", \"within_limit\": " + (r.value < r.limit ? "true" : "false") + "}";
    out += ", \"seconds\": " + number(r.value);
    if (r.bytes > 0.0 && bandwidth_ > 0.0)
      out += ", \"fraction_of_bandwidth\": " + number(r.bytes / r.value / bandwidth_);
    if (r.copy_seconds > 0.0)
      out += ", \"fraction_of_same_size_copy\": " + number(r.copy_seconds / r.value);
    if (r.launch_copies_seconds > 0.0)
      out += ", \"fraction_of_copies_per_launch\": " + number(r.launch_copies_seconds / r.value);
    return out + "}";
  }
};

}  // namespace star::bench
