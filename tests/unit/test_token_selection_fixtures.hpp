#pragma once
// Hand-built SD3-like tokenizations for the token selection tests: a CLIP block of 77
// positions (BOS at 0, EOS after the text, EOS-padding to 77) and a T5 block of 256
// (text, EOS, padding), with the two encoders splitting words into different sub-tokens.

#include <algorithm>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "star/core/token_layout.hpp"
#include "star/tokens/tokenization.hpp"

namespace star::test {

/// Tokens for `pieces`, found left to right in `prompt` (a piece "" is a non-special token
/// covering no byte, like T5's lone "▁"), after an optional BOS and before EOS and padding up
/// to `length`. Pieces past `length - 1` positions are cut, as a tokenizer truncates.
inline segment_tokenization tokenize(std::string_view prompt, std::string segment,
                                     std::int64_t length, bool with_bos,
                                     const std::vector<std::string>& pieces) {
  segment_tokenization out{std::move(segment), {}};
  std::int64_t position = 0;
  if (with_bos) out.tokens.push_back({position++, 0, 0, true});
  std::size_t cursor = 0;
  for (const auto& piece : pieces) {
    if (position == length - 1) break;
    const std::size_t at = prompt.find(piece, cursor);
    if (at == std::string_view::npos) throw std::logic_error("piece not in prompt: " + piece);
    cursor = at + piece.size();
    out.tokens.push_back({position++, static_cast<std::int64_t>(at),
                          static_cast<std::int64_t>(cursor), false});
  }
  const auto end = static_cast<std::int64_t>(prompt.size());
  while (position < length) out.tokens.push_back({position++, end, end, true});  // EOS, pad
  return out;
}

/// The SD3 layout of a `grid x grid` image and the 77 + 256 text block.
inline token_layout sd3_layout(std::int64_t grid = 2) { return token_layout::sd3(grid, grid); }

inline constexpr std::int64_t t5_offset = 77;

/// A prompt and its CLIP and T5 tokenizations.
struct tokenized_prompt {
  std::string prompt;
  std::vector<segment_tokenization> tokenizations;
};

inline tokenized_prompt make_tokenized(std::string prompt, const std::vector<std::string>& clip,
                                       const std::vector<std::string>& t5) {
  tokenized_prompt out{std::move(prompt), {}};
  out.tokenizations.push_back(tokenize(out.prompt, "clip", 77, true, clip));
  out.tokenizations.push_back(tokenize(out.prompt, "t5", 256, false, t5));
  return out;
}

/// OCR: CLIP positions BOS 0, A 1, sign 2, that 3, says 4, " 5, Hello 6, World 7, " 8, EOS 9;
/// T5 positions A 0, sign 1, that 2, says 3, " 4, H 5, ello 6, World 7, " 8, EOS 9.
inline tokenized_prompt ocr_prompt() {
  return make_tokenized("A sign that says \"Hello World\"",
                        {"A", "sign", "that", "says", "\"", "Hello", "World", "\""},
                        {"A", "sign", "that", "says", "\"", "H", "ello", "World", "\""});
}

/// GenEval: CLIP BOS 0, a 1, photo 2, of 3, a 4, red 5, cat 6, and 7, two 8, blue 9, boxes 10;
/// T5 a 0, photo 1, of 2, a 3, red 4, c 5, at 6, and 7, "" 8, two 9, blue 10, box 11, es 12.
inline tokenized_prompt geneval_prompt() {
  return make_tokenized(
      "a photo of a red cat and two blue boxes",
      {"a", "photo", "of", "a", "red", "cat", "and", "two", "blue", "boxes"},
      {"a", "photo", "of", "a", "red", "c", "at", "and", "", "two", "blue", "box", "es"});
}

/// Open prompt: CLIP BOS 0, an 1, astronaut 2, riding 3, a 4, horse 5, on 6, the 7, moon 8,
/// , 9, digital 10, art 11; T5 An 0, astro 1, naut 2, riding 3, a 4, horse 5, on 6, the 7,
/// moon 8, , 9, digital 10, art 11.
inline tokenized_prompt open_prompt() {
  return make_tokenized(
      "An astronaut riding a horse on the moon, digital art",
      {"An", "astronaut", "riding", "a", "horse", "on", "the", "moon", ",", "digital", "art"},
      {"An", "astro", "naut", "riding", "a", "horse", "on", "the", "moon", ",", "digital",
       "art"});
}

/// A random prompt of `word_count` words from a small vocabulary (stop words, nouns,
/// colours, numbers, a quoted phrase sometimes, commas), each word split into sub-tokens of
/// 1-4 bytes independently per encoder, T5 with some lone "▁" tokens; long prompts
/// truncate CLIP.
inline tokenized_prompt random_tokenized(std::size_t word_count, std::uint64_t seed) {
  static const std::vector<std::string> vocabulary{
      "a",     "the",     "of",      "and",   "with",   "cat",    "dogs",  "red",
      "blue",  "two",     "three",   "photo", "horse",  "moon",   "bench", "umbrella",
      "sign",  "Welcome", "glasses", "on",    "under",  "bright", "neon",  "cafe"};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, vocabulary.size() - 1);
  std::uniform_int_distribution<int> coin(0, 9);
  std::string prompt;
  std::vector<std::string> words;
  const bool quoted = coin(rng) < 5;
  for (std::size_t i = 0; i < word_count; ++i) {
    std::string word = vocabulary[pick(rng)];
    if (quoted && i == word_count / 2) word = "\"" + word;
    if (quoted && i == word_count / 2 + 1) word += "\"";
    if (!prompt.empty()) prompt += coin(rng) < 2 ? ", " : " ";
    prompt += word;
    words.push_back(word);
  }
  const auto split = [&](bool lone_markers) {
    std::vector<std::string> pieces;
    for (std::size_t i = 0; i < words.size(); ++i) {
      const std::string& w = words[i];
      std::size_t start = 0;
      while (start < w.size()) {
        const std::size_t len = std::min<std::size_t>(w.size() - start, 1 + coin(rng) % 4);
        pieces.push_back(w.substr(start, len));
        start += len;
      }
      if (lone_markers && coin(rng) < 1) pieces.push_back("");  // a lone "▁"
    }
    return pieces;
  };
  const std::vector<std::string> clip = split(false);
  const std::vector<std::string> t5 = split(true);
  return make_tokenized(prompt, clip, t5);
}

}  // namespace star::test
