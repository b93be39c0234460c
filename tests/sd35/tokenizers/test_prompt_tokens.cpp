// One prompt tokenised for SD3: ids of the text encoders and the "clip" / "t5" segment
// tokenizations of token_layout::sd3, with and without T5; CLIP-L and CLIP-G sharing one
// vocabulary when their files are identical. Uses the tiny CLIP vocabulary, the real one in the
// [clip_vocab] case (registered only when the configured STAR_CLIP_VOCAB_DIR holds vocab.json and
// merges.txt, see tests/sd35/tokenizers/CMakeLists.txt), and a tiny T5 model when SentencePiece
// (and its trainer) is here.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "sd35/tokenizers/prompt_tokens.hpp"
#include "tokenizer_fixtures.hpp"

namespace {

namespace fs = std::filesystem;
using star::sd35::clip_bpe_tokenizer;
using star::sd35::clip_tokenizer_options;
using star::sd35::sd3_tokenizers;
using star::sd35::t5_tokenizer;
using ids_t = std::vector<std::int64_t>;

#if STAR_SD35_TEST_WITH_SENTENCEPIECE
constexpr bool with_t5 = true;
#else
constexpr bool with_t5 = false;
#endif

/// An SD3.5-like model folder: tokenizer/, tokenizer_2/ (identical tiny CLIP vocabularies)
/// and, with SentencePiece, tokenizer_3/.
fs::path model_folder() {
  static const fs::path folder = [] {
    const auto root = star::test::scratch_dir("sd3_model");
    star::test::write_tiny_clip_vocab(root / "tokenizer");
    star::test::write_tiny_clip_vocab(root / "tokenizer_2");
#if STAR_SD35_TEST_WITH_SENTENCEPIECE
    fs::create_directories(root / "tokenizer_3");
    fs::copy_file(star::test::tiny_t5_model_folder() / "spiece.model",
                  root / "tokenizer_3" / "spiece.model", fs::copy_options::overwrite_existing);
#endif
    return root;
  }();
  return folder;
}

/// `tokenizer/` and `tokenizer_2/` in `name`, copies of the files of `vocab_folder`.
fs::path clip_folders(const std::string& name, const fs::path& vocab_folder) {
  const auto root = star::test::scratch_dir(name);
  for (const char* dir : {"tokenizer", "tokenizer_2"}) {
    fs::create_directories(root / dir);
    for (const char* file : {"vocab.json", "merges.txt"})
      fs::copy_file(vocab_folder / file, root / dir / file, fs::copy_options::overwrite_existing);
  }
  return root;
}

const std::string prompt = "A red cat and two dogs!!!";

/// Requires `tokens` to hold the ids of CLIP-L and CLIP-G loaded apart from `folder`'s
/// `tokenizer/` and `tokenizer_2/`, and the "clip" tokenization of CLIP-L.
void require_separate_clip_ids(const fs::path& folder, const std::string& text,
                               const star::sd35::sd3_prompt_tokens& tokens) {
  INFO("prompt '" << text << "'");
  const auto clip_l =
      clip_bpe_tokenizer::from_folder(folder / "tokenizer", clip_tokenizer_options::clip_l());
  const auto clip_g =
      clip_bpe_tokenizer::from_folder(folder / "tokenizer_2", clip_tokenizer_options::clip_g());
  const auto l = clip_l.encode(text);
  REQUIRE(tokens.clip_l_ids == l.input_ids);
  REQUIRE(tokens.clip_g_ids == clip_g.encode(text).input_ids);
  const auto& clip = tokens.tokenizations.at(0).tokens;
  REQUIRE(clip.size() == l.tokenization.tokens.size());
  for (std::size_t i = 0; i < clip.size(); ++i) {
    REQUIRE(clip[i].char_begin == l.tokenization.tokens[i].char_begin);
    REQUIRE(clip[i].char_end == l.tokenization.tokens[i].char_end);
    REQUIRE(clip[i].special == l.tokenization.tokens[i].special);
  }
}

}  // namespace

TEST_CASE("SD3 prompt tokens without T5: CLIP ids and a 'clip' tokenization that fits the layout",
          "[prompt]") {
  for (const std::int64_t t5_length : {256, 128}) {
    INFO("Lt " << t5_length);
    const auto tokenizers =
        sd3_tokenizers::from_model_folder(model_folder(), t5_length, /*use_t5=*/false);
    REQUIRE_FALSE(tokenizers.t5.has_value());
    const auto tokens = tokenizers.tokenize(prompt);
    CHECK(tokens.clip_l_ids.size() == 77);
    CHECK(tokens.clip_g_ids.size() == 77);
    CHECK(tokens.t5_ids.empty());
    REQUIRE(tokens.tokenizations.size() == 1);
    CHECK(tokens.tokenizations[0].segment == "clip");
    CHECK(tokens.tokenizations[0].tokens.size() == 77);
    const auto layout = tokenizers.layout(32, 32);
    CHECK(layout.text_tokens() == 77 + t5_length);
    CHECK(star::validate_tokenizations(prompt, tokens.tokenizations, layout) ==
          std::vector<std::int64_t>{0});
    const auto& clip = tokens.tokenizations[0].tokens;
    CHECK(prompt.substr(static_cast<std::size_t>(clip[3].char_begin), 3) == "cat");
  }
}

TEST_CASE("SD3 prompt tokens: CLIP-L ids and offsets for 'clip', CLIP-G pads with 0",
          "[prompt]") {
  const auto tokenizers = sd3_tokenizers::from_model_folder(model_folder(), 256, with_t5);
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
}

TEST_CASE("SD3 CLIP tokenizers: identical vocab files are read once, ids as two separate loads",
          "[prompt][shared]") {
  const auto folder = model_folder();
  const auto tokenizers = sd3_tokenizers::from_model_folder(folder, 256, false);
  REQUIRE(star::sd35::same_vocabulary_files(folder / "tokenizer", folder / "tokenizer_2"));
  REQUIRE(tokenizers.clip_l.shares_vocabulary_with(tokenizers.clip_g));
  REQUIRE(tokenizers.clip_g.pad_id() == 0);
  REQUIRE(tokenizers.clip_l.pad_id() == tokenizers.clip_l.eos_id());
  for (const std::string& text : {prompt, std::string("hello yes, hello! a red dog"),
                                 std::string("  CAT!dog  <|endoftext|> red"), std::string()})
    require_separate_clip_ids(folder, text, tokenizers.tokenize(text));

  // The same vocabulary in files that differ by a byte: loaded twice, the same ids.
  const auto apart = clip_folders("clip_apart", folder / "tokenizer");
  std::ofstream(apart / "tokenizer_2" / "merges.txt", std::ios::app) << "\n";
  REQUIRE_FALSE(star::sd35::same_vocabulary_files(apart / "tokenizer", apart / "tokenizer_2"));
  const auto separate = sd3_tokenizers::from_model_folder(apart, 256, false);
  REQUIRE_FALSE(separate.clip_l.shares_vocabulary_with(separate.clip_g));
  require_separate_clip_ids(apart, prompt, separate.tokenize(prompt));
  REQUIRE_FALSE(star::sd35::same_vocabulary_files(apart / "tokenizer", apart / "absent"));
}

TEST_CASE("SD3 CLIP tokenizers sharing the real vocabulary give every fixture case's ids",
          "[prompt][shared][fixture][clip_vocab]") {
  const auto vocab = star::test::clip_vocab_dir();
  INFO("STAR_CLIP_VOCAB_DIR (configured): '" << vocab.string() << "'");
  REQUIRE(star::test::missing_clip_vocab_files(vocab) == "");
  const auto folder = clip_folders("clip_real", vocab);
  const auto tokenizers = sd3_tokenizers::from_model_folder(folder, 256, false);
  REQUIRE(tokenizers.clip_l.shares_vocabulary_with(tokenizers.clip_g));
  std::ifstream in(std::string(STAR_TEST_DATA_DIR) + "/sd35/clip_tokenizer.json");
  const auto cases = nlohmann::json::parse(in).at("cases");
  REQUIRE(cases.size() == 43);
  for (const auto& c : cases) {
    const auto text = c.at("prompt").get<std::string>();
    INFO("case " << c.at("id") << " '" << text << "'");
    const auto tokens = tokenizers.tokenize(text);
    CHECK(tokens.clip_l_ids == c.at("input_ids").get<ids_t>());
    CHECK(tokens.clip_g_ids == c.at("input_ids_pad0").get<ids_t>());
  }
}

TEST_CASE("SD3 prompt tokens reject tokenizers framed for another layout", "[prompt][errors]") {
  const auto folder = model_folder();
  const auto clip_g =
      clip_bpe_tokenizer::from_folder(folder / "tokenizer_2", clip_tokenizer_options::clip_g());
  const sd3_tokenizers short_clip{
      clip_bpe_tokenizer::from_folder(folder / "tokenizer", {10, "<|endoftext|>", "clip"}), clip_g,
      {}, 256};
  REQUIRE_THROWS_AS(short_clip.tokenize(prompt), star::option_error);
  REQUIRE_THROWS_WITH(short_clip.tokenize(prompt), Catch::Contains("clip_l"));
  const sd3_tokenizers no_t5_length{clip_g, clip_g, {}, 0};
  REQUIRE_THROWS_WITH(no_t5_length.tokenize(prompt), Catch::Contains("sd3_tokenizers.t5_length"));
  REQUIRE_THROWS_AS(sd3_tokenizers::from_model_folder(folder, 0, false), star::option_error);
  REQUIRE_THROWS_WITH(sd3_tokenizers::from_model_folder(folder, 0, false),
                      Catch::Contains("t5_length"));
  REQUIRE_THROWS_AS(sd3_tokenizers::from_model_folder(folder / "missing"), star::value_error);
  REQUIRE_THROWS_WITH(sd3_tokenizers::from_model_folder(folder / "missing"),
                      Catch::Contains("tokenizer"));
}

TEST_CASE("SD3 tokenizers name the sub-folder whose file is missing or malformed",
          "[prompt][errors]") {
  const auto apart = clip_folders("clip_broken", model_folder() / "tokenizer");
  std::ofstream(apart / "tokenizer_2" / "vocab.json") << "[1, 2]";
  REQUIRE_THROWS_AS(sd3_tokenizers::from_model_folder(apart, 256, false), star::value_error);
  REQUIRE_THROWS_WITH(sd3_tokenizers::from_model_folder(apart, 256, false),
                      Catch::StartsWith("sd3_tokenizers: tokenizer_2 (CLIP-G): ") &&
                          Catch::Contains("vocab.json"));
#if STAR_SD35_TEST_WITH_SENTENCEPIECE
  const auto no_t5 = clip_folders("no_t5", model_folder() / "tokenizer");  // no tokenizer_3/
  REQUIRE_THROWS_AS(sd3_tokenizers::from_model_folder(no_t5, 256, true), star::value_error);
  REQUIRE_THROWS_WITH(sd3_tokenizers::from_model_folder(no_t5, 256, true),
                      Catch::StartsWith("sd3_tokenizers: tokenizer_3 (T5): ") &&
                          Catch::Contains("spiece.model"));
#endif
  fs::remove(apart / "tokenizer" / "merges.txt");
  REQUIRE_THROWS_WITH(sd3_tokenizers::from_model_folder(apart, 256, false),
                      Catch::StartsWith("sd3_tokenizers: tokenizer (CLIP-L): ") &&
                          Catch::Contains("merges.txt"));
  REQUIRE_THROWS_WITH(sd3_tokenizers::from_model_folder(apart / "missing", 256, false),
                      Catch::StartsWith("sd3_tokenizers: tokenizer (CLIP-L): "));
}

#if STAR_SD35_TEST_WITH_SENTENCEPIECE

TEST_CASE("SD3 prompt tokens with T5 have the layout's lengths, names and specials", "[prompt]") {
  for (const std::int64_t t5_length : {256, 128}) {
    INFO("Lt " << t5_length);
    const auto tokenizers = sd3_tokenizers::from_model_folder(model_folder(), t5_length);
    REQUIRE(tokenizers.t5.has_value());
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
    CHECK(tokens.t5_ids == tokenizers.t5->encode(prompt).input_ids);
    const auto& t5 = tokens.tokenizations[1].tokens;
    const auto t5_count = tokenizers.t5->encode(prompt).num_tokens;
    for (std::size_t i = 0; i < t5.size(); ++i)
      CHECK(t5[i].special == (static_cast<std::int64_t>(i) >= t5_count - 1));
    // The CLIP part is the one without T5.
    const auto without =
        sd3_tokenizers::from_model_folder(model_folder(), t5_length, false).tokenize(prompt);
    CHECK(tokens.clip_l_ids == without.clip_l_ids);
    CHECK(tokens.clip_g_ids == without.clip_g_ids);
  }
}

TEST_CASE("SD3 prompt tokens reject a T5 tokenizer framed for another layout",
          "[prompt][errors]") {
  const auto folder = model_folder();
  const auto clip_g =
      clip_bpe_tokenizer::from_folder(folder / "tokenizer_2", clip_tokenizer_options::clip_g());
  const sd3_tokenizers renamed_t5{clip_g, clip_g,
                                  t5_tokenizer::from_folder(folder / "tokenizer_3", {256, "t5x"}),
                                  256};
  REQUIRE_THROWS_AS(renamed_t5.tokenize(prompt), star::option_error);
  REQUIRE_THROWS_WITH(renamed_t5.tokenize(prompt), Catch::Contains("sd3_tokenizers.t5"));
  const sd3_tokenizers other_length{clip_g, clip_g,
                                    t5_tokenizer::from_folder(folder / "tokenizer_3", {128, "t5"}),
                                    256};
  REQUIRE_THROWS_WITH(other_length.tokenize(prompt),
                      Catch::Contains("sd3_tokenizers.t5") && Catch::Contains("t5_length 256"));
}

#endif
