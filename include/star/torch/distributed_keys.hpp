#pragma once
/// @file
/// @brief How group keys cross ranks: a key becomes one int64 code and, for strings, bytes.
/// Integer ids are their own code; a string's code is its length and its bytes follow in one
/// concatenated payload, so any bytes (embedded NULs, UTF-8) round-trip exactly.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "star/core/error.hpp"

namespace star::libtorch {

/// @brief A rank's keys as exchanged: one code per key and a byte payload.
struct encoded_keys {
  std::vector<std::int64_t> codes;  ///< [B] integer ids, or string lengths
  std::vector<std::uint8_t> bytes;  ///< the strings' bytes, concatenated (empty for ids)
};

/// @brief Encodes and decodes one key type; specialised for integral keys and std::string.
template <class Key>
struct key_codec;

/// @brief What a rank's header says of its key type, so that ranks gathering different key
/// types fail together instead of reading ids as string lengths.
enum class key_kind : std::int64_t {
  integral = 1,  ///< ids of an integral type, sent as int64
  string = 2     ///< `std::string` keys, sent as lengths and bytes
};

/// @brief Integral ids of up to 64 bits travel as int64 (an unsigned 64-bit id round-trips by
/// two's complement; wider ids would be cut, so they are not exchangeable).
template <std::integral Key>
  requires(sizeof(Key) <= sizeof(std::int64_t))
struct key_codec<Key> {
  static constexpr key_kind kind = key_kind::integral;  ///< announced in the header

  /// @brief One int64 code per key, no payload.
  static encoded_keys encode(std::span<const Key> keys) {
    encoded_keys out;
    out.codes.reserve(keys.size());
    for (const Key key : keys) out.codes.push_back(static_cast<std::int64_t>(key));
    return out;
  }
  /// @brief The keys back from their codes.
  static std::vector<Key> decode(std::span<const std::int64_t> codes,
                                 std::span<const std::uint8_t> /*bytes*/) {
    std::vector<Key> keys;
    keys.reserve(codes.size());
    for (const std::int64_t code : codes) keys.push_back(static_cast<Key>(code));
    return keys;
  }
};

/// @brief Strings travel as their lengths and their concatenated bytes.
template <>
struct key_codec<std::string> {
  static constexpr key_kind kind = key_kind::string;  ///< announced in the header

  /// @brief Each key's byte length as its code, the bytes concatenated as the payload.
  static encoded_keys encode(std::span<const std::string> keys) {
    encoded_keys out;
    out.codes.reserve(keys.size());
    for (const std::string& key : keys) {
      out.codes.push_back(static_cast<std::int64_t>(key.size()));
      out.bytes.insert(out.bytes.end(), key.begin(), key.end());
    }
    return out;
  }
  /// @brief The strings back from their lengths and the payload.
  /// @throws star::error when the lengths do not add up to the payload (a corrupt exchange)
  static std::vector<std::string> decode(std::span<const std::int64_t> codes,
                                         std::span<const std::uint8_t> bytes) {
    std::vector<std::string> keys;
    keys.reserve(codes.size());
    std::size_t position = 0;
    for (const std::int64_t length : codes) {
      if (length < 0 || static_cast<std::size_t>(length) > bytes.size() - position)
        throw error("process_group_gather: a gathered string key has length " +
                    std::to_string(length) + " but only " +
                    std::to_string(bytes.size() - position) + " payload bytes remain");
      const auto* first = reinterpret_cast<const char*>(bytes.data() + position);
      keys.emplace_back(first, static_cast<std::size_t>(length));
      position += static_cast<std::size_t>(length);
    }
    if (position != bytes.size())
      throw error("process_group_gather: gathered string keys use " + std::to_string(position) +
                  " of " + std::to_string(bytes.size()) + " payload bytes");
    return keys;
  }
};

/// @brief A key type the process-group gather can exchange.
template <class Key>
concept exchangeable_key = requires(std::span<const Key> keys, std::span<const std::int64_t> codes,
                                    std::span<const std::uint8_t> bytes) {
  { key_codec<Key>::encode(keys) } -> std::same_as<encoded_keys>;
  { key_codec<Key>::decode(codes, bytes) } -> std::same_as<std::vector<Key>>;
  { key_codec<Key>::kind } -> std::convertible_to<key_kind>;
};

}  // namespace star::libtorch
