// CLIP's BPE tokenizer against the 43 golden cases of tests/data/sd35/clip_tokenizer.json
// (transformers' slow CLIPTokenizer with ftfy). Needs the real vocabulary: STAR_CLIP_VOCAB_DIR
// (CMake cache variable or environment); skipped with a warning when unset.
#include <catch2/catch.hpp>

#include <fstream>
#include <optional>
#include <sstream>
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

/// The two SD3 CLIP tokenizers on the real vocabulary, or nothing (with a warning).
const std::optional<real_tokenizers>& tokenizers() {
  static const std::optional<real_tokenizers> loaded = []() -> std::optional<real_tokenizers> {
    const auto dir = star::test::clip_vocab_dir();
    if (dir.empty()) return std::nullopt;
    return real_tokenizers{clip_bpe_tokenizer::from_folder(dir, clip_tokenizer_options::clip_l()),
                           clip_bpe_tokenizer::from_folder(dir, clip_tokenizer_options::clip_g())};
  }();
  if (!loaded)
    WARN("SKIPPED: STAR_CLIP_VOCAB_DIR is not set (configure with -DSTAR_CLIP_VOCAB_DIR=<folder "
         "with vocab.json and merges.txt>, e.g. shared/fixtures/clip_tokenizer/hf_vocab)");
  return loaded;
}

/// Code point index of the character holding byte `at` of `text`.
std::int64_t char_index(const std::string& text, std::int64_t at) {
  std::int64_t chars = 0;
  for (std::int64_t i = 1; i <= at; ++i)
    if ((static_cast<unsigned char>(text[static_cast<std::size_t>(i)]) & 0xC0) != 0x80) ++chars;
  return chars;
}

std::string list(const std::vector<int>& ids) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < ids.size(); ++i) out << (i ? ", " : "") << ids[i];
  out << ']';
  return out.str();
}

/// Compares one framing of every case; a case may differ only where the fixture says minimal
/// normalisation is not enough, and then because the normalised text differs.
void check_every_case(bool pad0) {
  const auto& tok = tokenizers();
  if (!tok) return;
  const auto& tokenizer = pad0 ? tok->clip_g : tok->clip_l;
  const char* field = pad0 ? "input_ids_pad0" : "input_ids";
  std::vector<int> passed, expected_different;
  for (const auto& c : cases()) {
    const auto prompt = c.at("prompt").get<std::string>();
    INFO("case " << c.at("id") << " '" << prompt << "' (" << field << ")");
    const auto ours = tokenizer.encode(prompt);
    if (ours.input_ids == c.at(field).get<ids_t>()) {
      passed.push_back(c.at("id").get<int>());
      if (!pad0) {  // the fixture's mask and counts are CLIP-L's
        CHECK(ours.attention_mask == c.at("attention_mask").get<ids_t>());
        CHECK(ours.num_tokens == c.at("num_tokens").get<std::int64_t>());
        CHECK(ours.untruncated_content_tokens ==
              c.at("untruncated_num_bpe_tokens").get<std::int64_t>());
      }
      continue;
    }
    expected_different.push_back(c.at("id").get<int>());
    CHECK_FALSE(c.at("minimal_normalization_matches").get<bool>());
    CHECK(ours.normalized_text != c.at("normalized_text").get<std::string>());
  }
  WARN(field << ": " << passed.size() << " of " << cases().size() << " cases match " << list(passed)
             << "; expected-different (ftfy / NFC normalisation not implemented): "
             << list(expected_different));
  CHECK(passed.size() + expected_different.size() == cases().size());
}

}  // namespace

TEST_CASE("CLIP-L input_ids match every fixture case that needs only minimal normalisation",
          "[clip][fixture]") {
  check_every_case(false);
}

TEST_CASE("CLIP-G input_ids_pad0 (pad '!' = 0, literal '!' split out) match the fixture",
          "[clip][fixture]") {
  check_every_case(true);
}

TEST_CASE("byte offsets match the fixture where normalisation only cleaned whitespace and case",
          "[clip][fixture][offsets]") {
  const auto& tok = tokenizers();
  if (!tok) return;
  int checked = 0;
  for (const auto& c : cases()) {
    if (c.at("char_offsets_in_prompt").is_null()) continue;
    const auto prompt = c.at("prompt").get<std::string>();
    INFO("case " << c.at("id") << " '" << prompt << "'");
    const auto ours = tok->clip_l.encode(prompt);
    REQUIRE(ours.input_ids == c.at("input_ids").get<ids_t>());
    CHECK(ours.normalized_text == c.at("normalized_text").get<std::string>());
    const auto byte_offsets = c.at("byte_offsets").get<ranges_t>();
    const auto char_offsets = c.at("char_offsets_in_prompt").get<ranges_t>();
    REQUIRE(ours.normalized_spans.size() == byte_offsets.size());
    for (std::size_t k = 0; k < byte_offsets.size(); ++k) {
      INFO("content token " << k);
      CHECK(ids_t{ours.normalized_spans[k].begin, ours.normalized_spans[k].end} ==
            byte_offsets[k]);
      const auto& token = ours.tokenization.tokens[k + 1];
      CHECK_FALSE(token.special == (ours.input_ids[k + 1] != tok->clip_l.eos_id()));
      REQUIRE(token.char_begin < token.char_end);
      // prompt bytes -> the characters holding them (a split character is covered whole)
      const ids_t chars{char_index(prompt, token.char_begin),
                        char_index(prompt, token.char_end - 1) + 1};
      CHECK(chars == char_offsets[k]);
    }
    const star::token_layout layout{1, 1, {{"clip", 77}}, true};
    CHECK_NOTHROW(star::validate_tokenizations(prompt, {&ours.tokenization, 1}, layout));
    ++checked;
  }
  CHECK(checked == 35);
}
