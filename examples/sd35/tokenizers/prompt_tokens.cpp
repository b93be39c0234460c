#include "sd35/tokenizers/prompt_tokens.hpp"

#include <string>
#include <utility>

#include "sd35/tokenizers/clip_text.hpp"
#include "star/core/error.hpp"

namespace star::sd35 {
namespace {

constexpr std::int64_t clip_length = 77;  // the "clip" segment of token_layout::sd3

void require_clip_framing(const clip_bpe_tokenizer& tokenizer, const char* name) {
  const auto& options = tokenizer.options();
  if (options.max_length != clip_length || options.segment != "clip")
    throw option_error(std::string("sd3_tokenizers.") + name + ": max_length " +
                       std::to_string(options.max_length) + ", segment '" + options.segment +
                       "'; SD3 needs 77 and 'clip'");
}

void require_t5_length(std::int64_t t5_length) {
  if (t5_length < 1)
    throw option_error("sd3_tokenizers.t5_length: expected >= 1, got " +
                       std::to_string(t5_length));
}

// Runs `load`, naming the sub-folder it reads (e.g. "tokenizer_2 (CLIP-G)") in a value_error.
template <class Load>
auto loading(const char* sub_folder, Load&& load) {
  try {
    return load();
  } catch (const value_error& e) {
    throw value_error(std::string("sd3_tokenizers: ") + sub_folder + ": " + e.what());
  }
}

}  // namespace

sd3_tokenizers sd3_tokenizers::from_model_folder(const std::filesystem::path& model_folder,
                                                 std::int64_t t5_length, bool use_t5) {
  require_t5_length(t5_length);
  const auto folder_l = model_folder / "tokenizer";
  const auto folder_g = model_folder / "tokenizer_2";
  auto clip_l = loading("tokenizer (CLIP-L)", [&] {
    return clip_bpe_tokenizer::from_folder(folder_l, clip_tokenizer_options::clip_l());
  });
  auto clip_g = same_vocabulary_files(folder_l, folder_g)
                    ? clip_l.with_options(clip_tokenizer_options::clip_g())
                    : loading("tokenizer_2 (CLIP-G)", [&] {
                        return clip_bpe_tokenizer::from_folder(folder_g,
                                                               clip_tokenizer_options::clip_g());
                      });
  std::optional<t5_tokenizer> t5;
  if (use_t5)
    t5 = loading("tokenizer_3 (T5)", [&] {
      return t5_tokenizer::from_folder(model_folder / "tokenizer_3", {t5_length, "t5"});
    });
  return {std::move(clip_l), std::move(clip_g), std::move(t5), t5_length};
}

void sd3_tokenizers::validate() const {
  require_clip_framing(clip_l, "clip_l");
  require_clip_framing(clip_g, "clip_g");
  require_t5_length(t5_length);
  if (!t5) return;
  if (t5->options().segment != "t5")
    throw option_error("sd3_tokenizers.t5: segment '" + t5->options().segment +
                       "'; SD3 needs 't5'");
  if (t5->options().max_length != t5_length)
    throw option_error("sd3_tokenizers.t5: max_length " +
                       std::to_string(t5->options().max_length) + " differs from t5_length " +
                       std::to_string(t5_length));
}

sd3_prompt_tokens sd3_tokenizers::tokenize(std::string_view prompt) const {
  validate();
  const auto normalized = clip_normalize(prompt);  // the same for both CLIP tokenizers
  auto l = clip_l.encode(normalized);
  sd3_prompt_tokens out;
  out.clip_l_ids = std::move(l.input_ids);
  out.clip_g_ids = clip_g.encode(normalized).input_ids;
  out.tokenizations.push_back(std::move(l.tokenization));
  if (t5) {
    auto t = t5->encode(prompt);
    out.t5_ids = std::move(t.input_ids);
    out.tokenizations.push_back(std::move(t.tokenization));
  }
  return out;
}

token_layout sd3_tokenizers::layout(std::int64_t grid_h, std::int64_t grid_w) const {
  return token_layout::sd3(grid_h, grid_w, t5_length);
}

}  // namespace star::sd35
