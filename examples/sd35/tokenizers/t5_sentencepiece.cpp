#include "sd35/tokenizers/t5_sentencepiece.hpp"

#include <algorithm>
#include <cstdlib>

#if STAR_SD35_WITH_SENTENCEPIECE
#include <dlfcn.h>

#include "sd35/tokenizers/sentencepiece_bridge.h"
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

namespace {

/// The bridge's functions, from the module opened once per process. It is opened with
/// RTLD_LOCAL | RTLD_DEEPBIND so that libsentencepiece's own protobuf stays inside it: linked
/// directly next to LibTorch's protobuf, the two copies crash the program before main.
struct sentencepiece_bridge {
  star_spm_load_fn load;
  star_spm_free_fn free;
  star_spm_info_fn info;
  star_spm_encode_fn encode;
  star_spm_decode_fn decode;

  static const sentencepiece_bridge& get() {
    static const sentencepiece_bridge bridge = open();
    return bridge;
  }

 private:
  static sentencepiece_bridge open() {
    const char* override_path = std::getenv("STAR_SENTENCEPIECE_BRIDGE");
    const std::string path = override_path ? override_path : STAR_SD35_SENTENCEPIECE_BRIDGE_PATH;
    void* module = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!module)
      throw error("t5 tokenizer: cannot open the SentencePiece bridge " + path + ": " +
                  dlerror() + " (set STAR_SENTENCEPIECE_BRIDGE to its path)");
    const auto symbol = [&](const char* name) {
      void* address = dlsym(module, name);
      if (!address) throw error("t5 tokenizer: " + path + " lacks " + name);
      return address;
    };
    return {reinterpret_cast<star_spm_load_fn>(symbol("star_spm_load")),
            reinterpret_cast<star_spm_free_fn>(symbol("star_spm_free")),
            reinterpret_cast<star_spm_info_fn>(symbol("star_spm_info")),
            reinterpret_cast<star_spm_encode_fn>(symbol("star_spm_encode")),
            reinterpret_cast<star_spm_decode_fn>(symbol("star_spm_decode"))};
  }
};

}  // namespace

struct t5_tokenizer::model {
  void* processor = nullptr;
  std::int64_t eos_id = -1;  // read from the processor once, when it is loaded
  std::int64_t pad_id = -1;
  std::int64_t vocab_size = 0;

  model() = default;
  model(const model&) = delete;
  model& operator=(const model&) = delete;
  ~model() {
    if (processor) sentencepiece_bridge::get().free(processor);
  }

  std::vector<piece> pieces(std::string_view prompt) const {
    const auto& bridge = sentencepiece_bridge::get();
    std::vector<std::int64_t> triples(3 * (prompt.size() + 2));  // (id, begin, end) per piece
    std::int64_t count = 0;
    for (;;) {
      count = bridge.encode(processor, prompt.data(), prompt.size(), triples.data(),
                            static_cast<std::int64_t>(triples.size()));
      if (3 * count <= static_cast<std::int64_t>(triples.size())) break;
      triples.resize(static_cast<std::size_t>(3 * count));
    }
    std::vector<piece> out;
    out.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i)
      out.push_back({triples[3 * i], {triples[3 * i + 1], triples[3 * i + 2]}});
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
  char message[512] = {};
  shared->processor =
      sentencepiece_bridge::get().load(spiece_model.c_str(), message, sizeof message);
  if (!shared->processor)
    throw value_error("t5 tokenizer: cannot load " + spiece_model.string() + ": " + message);
  const auto& bridge = sentencepiece_bridge::get();
  shared->eos_id = bridge.info(shared->processor, 0);
  shared->pad_id = bridge.info(shared->processor, 1);
  shared->vocab_size = bridge.info(shared->processor, 2);
  if (shared->eos_id < 0 || shared->pad_id < 0)
    throw value_error("t5 tokenizer: " + spiece_model.string() + " has no " +
                      (shared->eos_id < 0 ? "EOS" : "pad") + " piece (T5 has <pad> 0 and </s> 1)");
  return t5_tokenizer(std::move(shared), options);
}

std::string t5_tokenizer::decode(std::span<const std::int64_t> ids) const {
  std::vector<std::int64_t> kept;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size())
      throw value_error("ids[" + std::to_string(i) + "]: " + std::to_string(ids[i]) +
                        " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
    if (ids[i] != pad_id() && ids[i] != eos_id()) kept.push_back(ids[i]);
  }
  const auto& bridge = sentencepiece_bridge::get();
  std::string text(64, '\0');
  for (;;) {
    const std::int64_t length = bridge.decode(model_->processor, kept.data(), kept.size(),
                                              text.data(), static_cast<std::int64_t>(text.size()));
    if (length <= static_cast<std::int64_t>(text.size())) {
      text.resize(static_cast<std::size_t>(length));
      return text;
    }
    text.resize(static_cast<std::size_t>(length));
  }
}

std::int64_t t5_tokenizer::eos_id() const { return model_->eos_id; }
std::int64_t t5_tokenizer::pad_id() const { return model_->pad_id; }
std::int64_t t5_tokenizer::vocab_size() const { return model_->vocab_size; }

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
