#pragma once
// A call that must throw a given error with a given message, written once (REQUIRE_THROWS_AS
// and REQUIRE_THROWS_WITH would each need it).

#include <catch2/catch.hpp>

#include <string>

namespace star::test {

/// Requires `call()` to throw `Error` with a message that `message` matches.
template <class Error, class Call>
void require_throws(const Call& call,
                    const Catch::Matchers::Impl::MatcherBase<std::string>& message) {
  INFO("expected " << message.toString());
  REQUIRE_THROWS_AS(call(), Error);
  REQUIRE_THROWS_WITH(call(), message);
}

/// Requires `call()` to throw `Error` with a message that contains `text`.
template <class Error, class Call>
void require_throws(const Call& call, const std::string& text) {
  require_throws<Error>(call, Catch::Contains(text));
}

}  // namespace star::test
