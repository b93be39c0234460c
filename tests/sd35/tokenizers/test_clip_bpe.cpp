// CLIP's BPE tokenizer on a tiny vocabulary written by the test: merges by rank, framing,
// padding, the '!' pad token of CLIP-G, offsets into the prompt, and bad inputs.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "sd35/tokenizers/clip_bpe.hpp"
#include "tokenizer_fixtures.hpp"

namespace {

using star::sd35::clip_bpe_tokenizer;
using star::sd35::clip_tokenizer_options;

const star::test::tiny_clip_vocab& vocab() {
  static const auto v = star::test::write_tiny_clip_vocab(star::test::scratch_dir("clip_tiny"));
  return v;
}

std::vector<std::int64_t> content_ids(const star::sd35::clip_tokens& tokens) {
  return {tokens.input_ids.begin() + 1, tokens.input_ids.begin() + tokens.num_tokens - 1};
}

}  // namespace

TEST_CASE("BPE applies merges by rank and ends words with </w>", "[clip][bpe]") {
  const auto tokenizer = clip_bpe_tokenizer::from_folder(vocab().folder);
  const auto& v = vocab();
  // hello: l l (0), h e (1), ll o</w> (2), he llo</w> (3) -> one token
  CHECK(content_ids(tokenizer.encode("Hello")) == std::vector<std::int64_t>{v.id("hello</w>")});
  // hell: 'l l</w>' is no merge, so only 'h e' applies
  CHECK(content_ids(tokenizer.encode("hell")) ==
        std::vector<std::int64_t>{v.id("he"), v.id("l"), v.id("l</w>")});
  // yes: 'e s</w>' (rank 4) beats the earlier pair 'y e' (rank 5)
  CHECK(content_ids(tokenizer.encode("yes")) ==
        std::vector<std::int64_t>{v.id("y"), v.id("es</w>")});
  // a word without merges is its byte symbols; the cache gives the same result twice
  for (int repeat = 0; repeat < 2; ++repeat)
    CHECK(content_ids(tokenizer.encode("zq")) ==
          std::vector<std::int64_t>{v.id("z"), v.id("q</w>")});
  // a 2-byte character splits into its byte symbols
  CHECK(content_ids(tokenizer.encode("\u00E9")) ==
        std::vector<std::int64_t>{v.id("\u00C3"), v.id("\u00A9</w>")});
}

TEST_CASE("framing: BOS, ids, EOS, padding, attention mask and truncation", "[clip][framing]") {
  const auto tokenizer = clip_bpe_tokenizer::from_folder(vocab().folder);
  const auto bos = vocab().id("<|startoftext|>");
  const auto eos = vocab().id("<|endoftext|>");
  CHECK(tokenizer.bos_id() == bos);
  CHECK(tokenizer.eos_id() == eos);
  CHECK(tokenizer.pad_id() == eos);

  const auto tokens = tokenizer.encode("a red cat");
  REQUIRE(tokens.input_ids.size() == 77);
  REQUIRE(tokens.attention_mask.size() == 77);
  CHECK(tokens.num_tokens == 5);
  CHECK(std::vector<std::int64_t>(tokens.input_ids.begin(), tokens.input_ids.begin() + 6) ==
        std::vector<std::int64_t>{bos, vocab().id("a</w>"), vocab().id("red</w>"),
                                  vocab().id("cat</w>"), eos, eos});
  for (std::size_t i = 0; i < 77; ++i) CHECK(tokens.attention_mask[i] == (i < 5 ? 1 : 0));

  const auto empty = tokenizer.encode("   ");
  CHECK(empty.num_tokens == 2);
  CHECK(empty.input_ids[0] == bos);
  CHECK(empty.input_ids[1] == eos);

  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "dog ";
  const auto truncated = tokenizer.encode(long_prompt);
  CHECK(truncated.untruncated_content_tokens == 100);
  CHECK(truncated.num_tokens == 77);
  CHECK(truncated.input_ids[75] == vocab().id("dog</w>"));
  CHECK(truncated.input_ids[76] == eos);

  const auto short_frame =
      clip_bpe_tokenizer::from_folder(vocab().folder, {4, "<|endoftext|>", "clip"});
  CHECK(short_frame.encode("a red cat").input_ids ==
        std::vector<std::int64_t>{bos, vocab().id("a</w>"), vocab().id("red</w>"), eos});
}

TEST_CASE("CLIP-G pads with '!' (id 0) and splits every literal '!' out as id 0",
          "[clip][framing]") {
  const auto clip_l = clip_bpe_tokenizer::from_folder(vocab().folder);
  const auto clip_g =
      clip_bpe_tokenizer::from_folder(vocab().folder, clip_tokenizer_options::clip_g());
  REQUIRE(clip_g.pad_id() == 0);
  const auto& v = vocab();
  CHECK(content_ids(clip_l.encode("wow!!! dog")) ==
        std::vector<std::int64_t>{v.id("w"), v.id("o"), v.id("w</w>"), v.id("!!!</w>"),
                                  v.id("dog</w>")});
  const auto g = clip_g.encode("wow!!! dog");
  CHECK(content_ids(g) == std::vector<std::int64_t>{v.id("w"), v.id("o"), v.id("w</w>"), 0, 0,
                                                    0, v.id("dog</w>")});
  CHECK(g.input_ids[g.num_tokens] == 0);  // padding
  CHECK(g.input_ids.back() == 0);
  CHECK(g.attention_mask[static_cast<std::size_t>(g.num_tokens)] == 0);
}

TEST_CASE("tokens carry the prompt bytes they came from, framing tokens are special",
          "[clip][offsets]") {
  const auto tokenizer = clip_bpe_tokenizer::from_folder(vocab().folder);
  const std::string prompt = "  A   RED\tcat <|endoftext|>";
  const auto tokens = tokenizer.encode(prompt);
  const auto& t = tokens.tokenization;
  REQUIRE(t.segment == "clip");
  REQUIRE(t.tokens.size() == 77);
  const auto text = [&](std::size_t i) {
    return prompt.substr(static_cast<std::size_t>(t.tokens[i].char_begin),
                         static_cast<std::size_t>(t.tokens[i].char_end - t.tokens[i].char_begin));
  };
  for (std::size_t i = 0; i < 77; ++i) CHECK(t.tokens[i].position == static_cast<std::int64_t>(i));
  CHECK(t.tokens[0].special);
  CHECK(text(1) == "A");
  CHECK(text(2) == "RED");
  CHECK(text(3) == "cat");
  CHECK(text(4) == "<|endoftext|>");
  CHECK(tokens.input_ids[4] == tokenizer.eos_id());
  CHECK(t.tokens[4].special);  // a literal <|endoftext|> acts as EOS in CLIP
  for (std::size_t i = 1; i < 4; ++i) CHECK_FALSE(t.tokens[i].special);
  for (std::size_t i = 5; i < 77; ++i) {
    CHECK(t.tokens[i].special);
    CHECK(t.tokens[i].char_begin == t.tokens[i].char_end);
  }
  CHECK(tokens.normalized_text == "a red cat <|endoftext|>");
  REQUIRE(tokens.normalized_spans.size() == 4);
  CHECK(tokens.normalized_spans[1].begin == 2);
  CHECK(tokens.normalized_spans[1].end == 5);
  const star::token_layout layout{2, 2, {{"clip", 77}}, true};
  CHECK_NOTHROW(star::validate_tokenizations(prompt, {&t, 1}, layout));
}

TEST_CASE("a vocabulary folder without merges.txt or vocab.json is a clear error",
          "[clip][errors]") {
  const auto folder = star::test::scratch_dir("clip_no_merges");
  std::filesystem::copy_file(vocab().folder / "vocab.json", folder / "vocab.json",
                             std::filesystem::copy_options::overwrite_existing);
  REQUIRE_THROWS_AS(clip_bpe_tokenizer::from_folder(folder), star::value_error);
  REQUIRE_THROWS_WITH(clip_bpe_tokenizer::from_folder(folder), Catch::Contains("merges.txt"));

  const auto no_vocab = star::test::scratch_dir("clip_no_vocab");
  std::filesystem::copy_file(vocab().folder / "merges.txt", no_vocab / "merges.txt",
                             std::filesystem::copy_options::overwrite_existing);
  REQUIRE_THROWS_WITH(clip_bpe_tokenizer::from_folder(no_vocab), Catch::Contains("vocab.json"));
  REQUIRE_THROWS_WITH(clip_bpe_tokenizer::from_folder(folder / "missing"),
                      Catch::Contains("folder not found"));
}

TEST_CASE("malformed vocabulary files are rejected naming the file", "[clip][errors]") {
  const auto folder = star::test::scratch_dir("clip_malformed");
  std::ofstream(folder / "vocab.json") << "[1, 2";
  std::filesystem::copy_file(vocab().folder / "merges.txt", folder / "merges.txt",
                             std::filesystem::copy_options::overwrite_existing);
  REQUIRE_THROWS_AS(clip_bpe_tokenizer::from_folder(folder), star::value_error);
  REQUIRE_THROWS_WITH(clip_bpe_tokenizer::from_folder(folder), Catch::Contains("vocab.json"));

  std::filesystem::copy_file(vocab().folder / "vocab.json", folder / "vocab.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(folder / "merges.txt") << "#version: 0.2\nl l\nnospace\n";
  REQUIRE_THROWS_AS(clip_bpe_tokenizer::from_folder(folder), star::value_error);
  REQUIRE_THROWS_WITH(clip_bpe_tokenizer::from_folder(folder),
                      Catch::Contains("merges.txt line 3"));
}

TEST_CASE("bad options are rejected naming the field", "[clip][errors]") {
  REQUIRE_THROWS_AS(clip_bpe_tokenizer::from_folder(vocab().folder, {1, "<|endoftext|>", "clip"}),
                    star::option_error);
  REQUIRE_THROWS_WITH(clip_bpe_tokenizer::from_folder(vocab().folder, {1, "<|endoftext|>", "clip"}),
                      Catch::Contains("max_length"));
  REQUIRE_THROWS_WITH(clip_bpe_tokenizer::from_folder(vocab().folder, {77, "", "clip"}),
                      Catch::Contains("pad_token"));
  REQUIRE_THROWS_WITH(clip_bpe_tokenizer::from_folder(vocab().folder, {77, "!", ""}),
                      Catch::Contains("segment"));
  REQUIRE_THROWS_AS(clip_bpe_tokenizer::from_folder(vocab().folder, {77, "<pad>", "clip"}),
                    star::value_error);
  REQUIRE_THROWS_WITH(clip_bpe_tokenizer::from_folder(vocab().folder, {77, "<pad>", "clip"}),
                      Catch::Contains("<pad>"));
}
