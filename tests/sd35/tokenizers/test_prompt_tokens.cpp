// One prompt tokenised for SD3: ids of the three encoders and the "clip" / "t5" segment
// tokenizations of token_layout::sd3. Uses the tiny CLIP vocabulary and a tiny T5 model.
#include <catch2/catch.hpp>

#include <string>

#include "sd35/tokenizers/prompt_tokens.hpp"
#include "tokenizer_fixtures.hpp"

#if STAR_SD35_TEST_WITH_SENTENCEPIECE

namespace {

using star::sd35::clip_bpe_tokenizer;
using star::sd35::clip_tokenizer_options;
using star::sd35::sd3_tokenizers;
using star::sd35::t5_tokenizer;

/// An SD3.5-like model folder: tokenizer/, tokenizer_2/ (tiny CLIP vocab), tokenizer_3/.
std::filesystem::path model_folder() {
  static const std::filesystem::path folder = [] {
    const auto root = star::test::scratch_dir("sd3_model");
    star::test::write_tiny_clip_vocab(root / "tokenizer");
    star::test::write_tiny_clip_vocab(root / "tokenizer_2");
    std::filesystem::create_directories(root / "tokenizer_3");
    std::filesystem::copy_file(star::test::tiny_t5_model_folder() / "spiece.model",
                               root / "tokenizer_3" / "spiece.model",
                               std::filesystem::copy_options::overwrite_existing);
    return root;
  }();
  return folder;
}

const std::string prompt = "A red cat and two dogs!!!";

}  // namespace

TEST_CASE("SD3 prompt tokens have the layout's lengths, names and specials", "[prompt]") {
  for (const std::int64_t t5_length : {256, 128}) {
    INFO("Lt " << t5_length);
    const auto tokenizers = sd3_tokenizers::from_model_folder(model_folder(), t5_length);
    const auto tokens = tokenizers.tokenize(prompt);
    CHECK(tokens.clip_l_ids.size() == 77);
    CHECK(tokens.clip_g_ids.size() == 77);
    CHECK(tokens.t5_ids.size() == static_cast<std::size_t>(t5_length));
    REQUIRE(tokens.tokenizations.size() == 2);
    CHECK(tokens.tokenizations[0].segment == "clip");
    CHECK(tokens.tokenizations[0].tokens.size() == 77);
    CHECK(tokens.tokenizations[1].segment == "t5");
    CHECK(tokens.tokenizations[1].tokens.size() == static_cast<std::size_t>(t5_length));

    const auto layout = tokenizers.layout(32, 32);
    CHECK(layout.text_tokens() == 77 + t5_length);
    CHECK(star::validate_tokenizations(prompt, tokens.tokenizations, layout) ==
          std::vector<std::int64_t>{0, 77});
    CHECK(tokens.t5_ids == tokenizers.t5.encode(prompt).input_ids);
  }
}

TEST_CASE("SD3 prompt tokens: CLIP-L ids and offsets for 'clip', CLIP-G pads with 0",
          "[prompt]") {
  const auto tokenizers = sd3_tokenizers::from_model_folder(model_folder());
  const auto tokens = tokenizers.tokenize(prompt);
  const auto clip_l = tokenizers.clip_l.encode(prompt);
  CHECK(tokens.clip_l_ids == clip_l.input_ids);
  CHECK(tokens.clip_g_ids == tokenizers.clip_g.encode(prompt).input_ids);
  CHECK(tokens.clip_l_ids.back() == tokenizers.clip_l.eos_id());  // CLIP-L pads with EOS
  CHECK(tokens.clip_g_ids.back() == 0);                           // CLIP-G pads with '!' = 0
  const auto& clip = tokens.tokenizations[0].tokens;
  for (std::size_t i = 0; i < 77; ++i) {
    CHECK(clip[i].char_begin == clip_l.tokenization.tokens[i].char_begin);
    CHECK(clip[i].char_end == clip_l.tokenization.tokens[i].char_end);
    const bool framing = i == 0 || static_cast<std::int64_t>(i) >= clip_l.num_tokens - 1;
    CHECK(clip[i].special == framing);
  }
  CHECK(prompt.substr(static_cast<std::size_t>(clip[3].char_begin), 3) == "cat");
  const auto& t5 = tokens.tokenizations[1].tokens;
  const auto t5_count = tokenizers.t5.encode(prompt).num_tokens;
  for (std::size_t i = 0; i < t5.size(); ++i)
    CHECK(t5[i].special == (static_cast<std::int64_t>(i) >= t5_count - 1));
}

TEST_CASE("SD3 prompt tokens reject tokenizers framed for another layout", "[prompt][errors]") {
  const auto folder = model_folder();
  const auto t5 = t5_tokenizer::from_folder(folder / "tokenizer_3");
  const auto clip_g =
      clip_bpe_tokenizer::from_folder(folder / "tokenizer_2", clip_tokenizer_options::clip_g());
  const sd3_tokenizers short_clip{
      clip_bpe_tokenizer::from_folder(folder / "tokenizer", {10, "<|endoftext|>", "clip"}), clip_g,
      t5};
  REQUIRE_THROWS_AS(short_clip.tokenize(prompt), star::option_error);
  REQUIRE_THROWS_WITH(short_clip.tokenize(prompt), Catch::Contains("clip_l"));
  const sd3_tokenizers renamed_t5{clip_g, clip_g,
                                  t5_tokenizer::from_folder(folder / "tokenizer_3", {256, "t5x"})};
  REQUIRE_THROWS_WITH(renamed_t5.tokenize(prompt), Catch::Contains("sd3_tokenizers.t5"));
  REQUIRE_THROWS_AS(sd3_tokenizers::from_model_folder(folder / "missing"), star::value_error);
  REQUIRE_THROWS_WITH(sd3_tokenizers::from_model_folder(folder / "missing"),
                      Catch::Contains("tokenizer"));
}

#else

TEST_CASE("SD3 prompt tokens: SentencePiece is not available in this build", "[prompt]") {
  WARN("SKIPPED: libsentencepiece (with its trainer) not found; the SD3 prompt tests need T5");
  CHECK_FALSE(star::sd35::t5_tokenizer::available());
}

#endif
