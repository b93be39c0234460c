// CLIP's BPE tokenizer against the 43 golden cases of tests/data/sd35/clip_tokenizer.json
// (transformers' slow CLIPTokenizer with ftfy). Needs the real vocabulary: built and registered
// only when the STAR_CLIP_VOCAB_DIR that CMake was configured with holds vocab.json and
// merges.txt (tests/sd35/tokenizers/CMakeLists.txt); every case fails when they cannot be read.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sd35/tokenizers/clip_bpe.hpp"
#include "tokenizer_fixtures.hpp"

namespace {

using star::sd35::clip_bpe_tokenizer;
using star::sd35::clip_tokenizer_options;
using ids_t = std::vector<std::int64_t>;
using ranges_t = std::vector<std::vector<std::int64_t>>;

const nlohmann::json& cases() {
  static const nlohmann::json all = [] {
    std::ifstream in(std::string(STAR_TEST_DATA_DIR) + "/sd35/clip_tokenizer.json");
    return nlohmann::json::parse(in);
  }();
  return all.at("cases");
}

struct real_tokenizers {
  clip_bpe_tokenizer clip_l;
  clip_bpe_tokenizer clip_g;
};

/// The two SD3 CLIP tokenizers on the real vocabulary; fails the test when its files are missing
/// or cannot be read.
const real_tokenizers& tokenizers() {
  const std::filesystem::path dir = star::test::clip_vocab_dir();
  INFO("STAR_CLIP_VOCAB_DIR (configured): '" << dir.string() << "'");
  REQUIRE(star::test::missing_clip_vocab_files(dir) == "");
  static const real_tokenizers loaded{
      clip_bpe_tokenizer::from_folder(dir, clip_tokenizer_options::clip_l()),
      clip_bpe_tokenizer::from_folder(dir, clip_tokenizer_options::clip_g())};
  return loaded;
}

/// Code point index of the character holding byte `at` of `text`.
std::int64_t char_index(const std::string& text, std::int64_t at) {
  std::int64_t chars = 0;
  for (std::int64_t i = 1; i <= at; ++i)
    if ((static_cast<unsigned char>(text[static_cast<std::size_t>(i)]) & 0xC0) != 0x80) ++chars;
  return chars;
}

/// Compares one framing of every case: ids, and for CLIP-L the mask and counts too.
void check_every_case(bool pad0) {
  const auto& tokenizer = pad0 ? tokenizers().clip_g : tokenizers().clip_l;
  const char* field = pad0 ? "input_ids_pad0" : "input_ids";
  REQUIRE(cases().size() == 43);
  for (const auto& c : cases()) {
    const auto prompt = c.at("prompt").get<std::string>();
    INFO("case " << c.at("id") << " '" << prompt << "' (" << field << ")");
    const auto ours = tokenizer.encode(prompt);
    CHECK(ours.normalized_text == c.at("normalized_text").get<std::string>());
    CHECK(ours.input_ids == c.at(field).get<ids_t>());
    if (pad0) continue;  // the fixture's mask and counts are CLIP-L's
    CHECK(ours.attention_mask == c.at("attention_mask").get<ids_t>());
    CHECK(ours.num_tokens == c.at("num_tokens").get<std::int64_t>());
    CHECK(ours.untruncated_content_tokens == c.at("untruncated_num_bpe_tokens").get<std::int64_t>());
  }
}

}  // namespace

TEST_CASE("CLIP-L input_ids, mask and counts match all 43 fixture cases (ftfy normalisation)",
          "[clip][fixture][clip_vocab]") {
  check_every_case(false);
}

TEST_CASE("CLIP-G input_ids_pad0 (pad '!' = 0, literal '!' split out) match the fixture",
          "[clip][fixture][clip_vocab]") {
  check_every_case(true);
}

TEST_CASE("byte offsets match the fixture, and prompt offsets where it gives them",
          "[clip][fixture][offsets][clip_vocab]") {
  const auto& tok = tokenizers();
  int with_prompt_offsets = 0;
  for (const auto& c : cases()) {
    const auto prompt = c.at("prompt").get<std::string>();
    INFO("case " << c.at("id") << " '" << prompt << "'");
    const auto ours = tok.clip_l.encode(prompt);
    REQUIRE(ours.input_ids == c.at("input_ids").get<ids_t>());
    const auto byte_offsets = c.at("byte_offsets").get<ranges_t>();
    REQUIRE(ours.normalized_spans.size() == byte_offsets.size());
    for (std::size_t k = 0; k < byte_offsets.size(); ++k) {
      INFO("content token " << k);
      CHECK(ids_t{ours.normalized_spans[k].begin, ours.normalized_spans[k].end} ==
            byte_offsets[k]);
      const auto& token = ours.tokenization.tokens[k + 1];
      CHECK_FALSE(token.special == (ours.input_ids[k + 1] != tok.clip_l.eos_id()));
      REQUIRE(token.char_begin < token.char_end);
      if (c.at("char_offsets_in_prompt").is_null()) continue;
      // prompt bytes -> the characters holding them (a split character is covered whole)
      const auto char_offsets = c.at("char_offsets_in_prompt").get<ranges_t>();
      const ids_t chars{char_index(prompt, token.char_begin),
                        char_index(prompt, token.char_end - 1) + 1};
      CHECK(chars == char_offsets[k]);
    }
    const star::token_layout layout{1, 1, {{"clip", 77}}, true};
    CHECK_NOTHROW(star::validate_tokenizations(prompt, {&ours.tokenization, 1}, layout));
    if (!c.at("char_offsets_in_prompt").is_null()) ++with_prompt_offsets;
  }
  CHECK(with_prompt_offsets == 35);
}
