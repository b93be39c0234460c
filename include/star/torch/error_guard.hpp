#pragma once
/// @file
/// @brief Turns the exceptions of ATen (`c10::Error`) into `star::error`, so that code using
/// the LibTorch adapters sees one exception hierarchy.

#include <c10/util/Exception.h>

#include <string>
#include <string_view>
#include <utility>

#include "star/core/error.hpp"

namespace star::libtorch {

/// @brief Runs `f()`; a `c10::Error` it throws is rethrown as `star::error` whose message
/// starts with `op: ` and keeps ATen's first line (the rest lists e.g. every dispatch key).
template <class F>
decltype(auto) guarded(std::string_view op, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const c10::Error& e) {
    const std::string_view message = e.what_without_backtrace();
    throw error(std::string(op) + ": " + std::string(message.substr(0, message.find('\n'))));
  }
}

}  // namespace star::libtorch
