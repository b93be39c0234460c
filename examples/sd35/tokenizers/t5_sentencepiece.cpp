#include "sd35/tokenizers/t5_sentencepiece.hpp"

#include <algorithm>

#if STAR_SD35_WITH_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace star::sd35 {
namespace {

/// One SentencePiece piece: its id and the prompt bytes it was aligned to.
struct piece {
  std::int64_t id;
  char_span bytes;
};

}  // namespace

#if STAR_SD35_WITH_SENTENCEPIECE

struct t5_tokenizer::model {
  sentencepiece::SentencePieceProcessor processor;

  std::vector<piece> pieces(std::string_view prompt) const {
    const auto text = processor.EncodeAsImmutableProto(prompt);
    std::vector<piece> out;
    out.reserve(text.pieces_size());
    for (const auto& p : text.pieces())
      out.push_back({static_cast<std::int64_t>(p.id()),
                     {static_cast<std::int64_t>(p.begin()), static_cast<std::int64_t>(p.end())}});
    return out;
  }
};

bool t5_tokenizer::available() { return true; }

t5_tokenizer t5_tokenizer::from_file(const std::filesystem::path& spiece_model,
                                     const t5_tokenizer_options& options) {
  options.validate();
  if (!std::filesystem::is_regular_file(spiece_model))
    throw value_error("t5 tokenizer: spiece.model not found: " + spiece_model.string());
  auto shared = std::make_shared<model>();
  const auto status = shared->processor.Load(spiece_model.string());
  if (!status.ok())
    throw value_error("t5 tokenizer: cannot load " + spiece_model.string() + ": " +
                      status.ToString());
  if (shared->processor.eos_id() < 0 || shared->processor.pad_id() < 0)
    throw value_error("t5 tokenizer: " + spiece_model.string() + " has no " +
                      (shared->processor.eos_id() < 0 ? "EOS" : "pad") +
                      " piece (T5 has <pad> 0 and </s> 1)");
  return t5_tokenizer(std::move(shared), options);
}

std::string t5_tokenizer::decode(std::span<const std::int64_t> ids) const {
  std::vector<int> kept;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size())
      throw value_error("ids[" + std::to_string(i) + "]: " + std::to_string(ids[i]) +
                        " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
    if (ids[i] != pad_id() && ids[i] != eos_id()) kept.push_back(static_cast<int>(ids[i]));
  }
  return model_->processor.DecodeIds(kept);
}

std::int64_t t5_tokenizer::eos_id() const { return model_->processor.eos_id(); }
std::int64_t t5_tokenizer::pad_id() const { return model_->processor.pad_id(); }
std::int64_t t5_tokenizer::vocab_size() const { return model_->processor.GetPieceSize(); }

#else  // built without SentencePiece: the class exists, and every use says why it cannot work

namespace {
[[noreturn]] void no_sentencepiece(const std::string& what) {
  throw error("t5 tokenizer: star_sd35_tokenizers was built without SentencePiece, cannot " +
              what + " (install libsentencepiece-dev and reconfigure)");
}
}  // namespace

struct t5_tokenizer::model {
  std::vector<piece> pieces(std::string_view) const { no_sentencepiece("encode"); }
};

bool t5_tokenizer::available() { return false; }

t5_tokenizer t5_tokenizer::from_file(const std::filesystem::path& spiece_model,
                                     const t5_tokenizer_options&) {
  no_sentencepiece("load " + spiece_model.string());
}

std::string t5_tokenizer::decode(std::span<const std::int64_t>) const {
  no_sentencepiece("decode");
}
std::int64_t t5_tokenizer::eos_id() const { no_sentencepiece("read the EOS id"); }
std::int64_t t5_tokenizer::pad_id() const { no_sentencepiece("read the pad id"); }
std::int64_t t5_tokenizer::vocab_size() const { no_sentencepiece("read the vocabulary size"); }

#endif

void t5_tokenizer_options::validate() const {
  if (max_length < 1)
    throw option_error("t5_tokenizer_options.max_length: " + std::to_string(max_length) +
                       " leaves no room for EOS (need >= 1; diffusers uses 256, Flow-GRPO 128)");
  if (segment.empty()) throw option_error("t5_tokenizer_options.segment: empty (SD3 uses 't5')");
}

t5_tokenizer::t5_tokenizer(std::shared_ptr<const model> shared, t5_tokenizer_options options)
    : model_(std::move(shared)), options_(std::move(options)) {}

t5_tokenizer t5_tokenizer::from_folder(const std::filesystem::path& folder,
                                       const t5_tokenizer_options& options) {
  return from_file(folder / "spiece.model", options);
}

const t5_tokenizer_options& t5_tokenizer::options() const { return options_; }

t5_tokens t5_tokenizer::encode(std::string_view prompt) const {
  auto pieces = model_->pieces(prompt);
  t5_tokens out;
  out.untruncated_content_tokens = static_cast<std::int64_t>(pieces.size());
  const auto max_length = static_cast<std::size_t>(options_.max_length);
  pieces.resize(std::min(pieces.size(), max_length - 1));
  out.num_tokens = static_cast<std::int64_t>(pieces.size() + 1);
  out.tokenization.segment = options_.segment;
  const auto add = [&out](std::int64_t id, bool in_sequence, char_span bytes, bool special) {
    const auto position = static_cast<std::int64_t>(out.input_ids.size());
    out.input_ids.push_back(id);
    out.attention_mask.push_back(in_sequence ? 1 : 0);
    out.tokenization.tokens.push_back({position, bytes.begin, bytes.end, special});
  };
  for (const auto& p : pieces) add(p.id, true, p.bytes, false);
  add(eos_id(), true, {}, true);
  while (out.input_ids.size() < max_length) add(pad_id(), false, {}, true);
  return out;
}

}  // namespace star::sd35
