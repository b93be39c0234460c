#include "sd35/tokenizers/prompt_tokens.hpp"

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

}  // namespace

sd3_tokenizers sd3_tokenizers::from_model_folder(const std::filesystem::path& model_folder,
                                                 std::int64_t t5_length) {
  return {clip_bpe_tokenizer::from_folder(model_folder / "tokenizer",
                                          clip_tokenizer_options::clip_l()),
          clip_bpe_tokenizer::from_folder(model_folder / "tokenizer_2",
                                          clip_tokenizer_options::clip_g()),
          t5_tokenizer::from_folder(model_folder / "tokenizer_3", {t5_length, "t5"})};
}

sd3_prompt_tokens sd3_tokenizers::tokenize(std::string_view prompt) const {
  require_clip_framing(clip_l, "clip_l");
  require_clip_framing(clip_g, "clip_g");
  if (t5.options().segment != "t5")
    throw option_error("sd3_tokenizers.t5: segment '" + t5.options().segment +
                       "'; SD3 needs 't5'");
  auto l = clip_l.encode(prompt);
  auto g = clip_g.encode(prompt);
  auto t = t5.encode(prompt);
  sd3_prompt_tokens out;
  out.clip_l_ids = std::move(l.input_ids);
  out.clip_g_ids = std::move(g.input_ids);
  out.t5_ids = std::move(t.input_ids);
  out.tokenizations.push_back(std::move(l.tokenization));
  out.tokenizations.push_back(std::move(t.tokenization));
  return out;
}

token_layout sd3_tokenizers::layout(std::int64_t grid_h, std::int64_t grid_w) const {
  return token_layout::sd3(grid_h, grid_w, t5.options().max_length);
}

}  // namespace star::sd35
