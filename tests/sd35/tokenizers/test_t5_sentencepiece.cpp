// T5's SentencePiece tokenizer on a tiny unigram model trained in the test (T5's special ids:
// <pad> 0, </s> 1, <unk> 2): framing, truncation, offsets, decoding and errors.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "sd35/tokenizers/t5_sentencepiece.hpp"
#include "tokenizer_fixtures.hpp"

using star::sd35::t5_tokenizer;

#if STAR_SD35_TEST_WITH_SENTENCEPIECE

namespace {

const std::string prompt = "a photo of two dogs and a yellow toaster";

std::string bytes_of(const std::string& text, const star::text_token& token) {
  return text.substr(static_cast<std::size_t>(token.char_begin),
                     static_cast<std::size_t>(token.char_end - token.char_begin));
}

}  // namespace

TEST_CASE("T5 framing: pieces, EOS, padding to max_length, attention mask", "[t5][framing]") {
  const auto tokenizer = t5_tokenizer::from_folder(star::test::tiny_t5_model_folder());
  REQUIRE(tokenizer.eos_id() == 1);
  REQUIRE(tokenizer.pad_id() == 0);
  const auto tokens = tokenizer.encode(prompt);
  REQUIRE(tokens.input_ids.size() == 256);
  REQUIRE(tokens.attention_mask.size() == 256);
  const auto n = static_cast<std::size_t>(tokens.num_tokens);
  REQUIRE(n >= 2);
  CHECK(tokens.untruncated_content_tokens == tokens.num_tokens - 1);
  for (std::size_t i = 0; i + 1 < n; ++i) {
    CHECK(tokens.input_ids[i] > 1);  // content pieces, never pad / EOS
    CHECK_FALSE(tokens.tokenization.tokens[i].special);
  }
  CHECK(tokens.input_ids[n - 1] == 1);
  for (std::size_t i = n; i < 256; ++i) CHECK(tokens.input_ids[i] == 0);
  for (std::size_t i = 0; i < 256; ++i) {
    CHECK(tokens.attention_mask[i] == (i < n ? 1 : 0));
    CHECK(tokens.tokenization.tokens[i].position == static_cast<std::int64_t>(i));
    if (i + 1 >= n) CHECK(tokens.tokenization.tokens[i].special);
  }
  CHECK(tokens.tokenization.segment == "t5");
  const auto empty = tokenizer.encode("");
  CHECK(empty.num_tokens == 1);
  CHECK(empty.input_ids[0] == 1);
}

TEST_CASE("T5 truncation keeps max_length-1 pieces, then EOS", "[t5][framing]") {
  const auto folder = star::test::tiny_t5_model_folder();
  const auto full = t5_tokenizer::from_folder(folder).encode(prompt);
  REQUIRE(full.num_tokens > 5);
  const auto short_tokens = t5_tokenizer::from_folder(folder, {5, "t5"}).encode(prompt);
  CHECK(short_tokens.untruncated_content_tokens == full.num_tokens - 1);
  CHECK(short_tokens.num_tokens == 5);
  CHECK(short_tokens.input_ids ==
        std::vector<std::int64_t>{full.input_ids[0], full.input_ids[1], full.input_ids[2],
                                  full.input_ids[3], 1});
  CHECK(t5_tokenizer::from_folder(folder, {128, "t5"}).encode(prompt).input_ids.size() == 128);
  CHECK(t5_tokenizer::from_folder(folder, {1, "t5"}).encode(prompt).input_ids ==
        std::vector<std::int64_t>{1});
}

TEST_CASE("T5 piece offsets cover the prompt bytes of each piece", "[t5][offsets]") {
  const auto tokenizer = t5_tokenizer::from_folder(star::test::tiny_t5_model_folder());
  const std::string text = "Two  DOGS, a zebra!";  // unseen characters become <unk>
  const auto tokens = tokenizer.encode(text);
  const auto n = static_cast<std::size_t>(tokens.num_tokens) - 1;
  std::int64_t previous_end = 0;
  std::string covered;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& token = tokens.tokenization.tokens[i];
    INFO("piece " << i << " id " << tokens.input_ids[i]);
    CHECK(token.char_begin >= previous_end);  // in order, no overlap
    CHECK(token.char_begin <= token.char_end);
    previous_end = token.char_end;
    const auto bytes = bytes_of(text, token);
    covered += bytes;
    if (tokens.input_ids[i] != 2) {  // a known piece decodes to its own bytes (minus the space)
      auto decoded = tokenizer.decode(std::vector<std::int64_t>{tokens.input_ids[i]});
      auto trimmed = bytes;
      trimmed.erase(0, trimmed.find_first_not_of(' '));
      CHECK(decoded == trimmed);
    }
  }
  std::string without_spaces;
  for (const char c : text)
    if (c != ' ') without_spaces += c;
  std::string covered_without_spaces;
  for (const char c : covered)
    if (c != ' ') covered_without_spaces += c;
  CHECK(covered_without_spaces == without_spaces);  // every non-space byte, exactly once
  const star::token_layout layout{1, 1, {{"t5", 256}}, true};
  CHECK_NOTHROW(star::validate_tokenizations(text, {&tokens.tokenization, 1}, layout));
}

TEST_CASE("T5 ids decode back to the prompt", "[t5][decode]") {
  const auto tokenizer = t5_tokenizer::from_folder(star::test::tiny_t5_model_folder());
  CHECK(tokenizer.decode(tokenizer.encode(prompt).input_ids) == prompt);
  CHECK(tokenizer.decode(std::vector<std::int64_t>{1, 0, 0}).empty());
  REQUIRE_THROWS_AS(tokenizer.decode(std::vector<std::int64_t>{5, tokenizer.vocab_size()}),
                    star::value_error);
  REQUIRE_THROWS_WITH(tokenizer.decode(std::vector<std::int64_t>{5, -1}),
                      Catch::Contains("ids[1]"));
}

TEST_CASE("T5 rejects a missing model file and bad options", "[t5][errors]") {
  const auto missing = star::test::scratch_dir("t5_missing");
  REQUIRE_THROWS_AS(t5_tokenizer::from_folder(missing), star::value_error);
  REQUIRE_THROWS_WITH(t5_tokenizer::from_folder(missing), Catch::Contains("spiece.model"));
  std::ofstream(missing / "spiece.model") << "not a model";
  REQUIRE_THROWS_AS(t5_tokenizer::from_folder(missing), star::value_error);
  REQUIRE_THROWS_WITH(t5_tokenizer::from_folder(missing), Catch::Contains("cannot load"));
  const auto folder = star::test::tiny_t5_model_folder();
  REQUIRE_THROWS_AS(t5_tokenizer::from_folder(folder, {0, "t5"}), star::option_error);
  REQUIRE_THROWS_WITH(t5_tokenizer::from_folder(folder, {0, "t5"}), Catch::Contains("max_length"));
  REQUIRE_THROWS_WITH(t5_tokenizer::from_folder(folder, {256, ""}), Catch::Contains("segment"));
}

#else

// Without libsentencepiece_train the cases above, which train a tiny model, are not built (see
// tests/sd35/tokenizers/CMakeLists.txt); what needs no model is still checked.
TEST_CASE("T5 tokenizer without SentencePiece's trainer: a missing model throws star::error",
          "[t5]") {
  const auto missing = star::test::scratch_dir("t5_missing") / "spiece.model";
  REQUIRE_THROWS_AS(t5_tokenizer::from_file(missing), star::error);
  REQUIRE_THROWS_WITH(t5_tokenizer::from_file(missing),
                      t5_tokenizer::available() ? Catch::Contains("spiece.model not found")
                                                : Catch::Contains("without SentencePiece"));
}

#endif
