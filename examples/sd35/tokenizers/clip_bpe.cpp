#include "sd35/tokenizers/clip_bpe.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <fstream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <utility>

#include "sd35/tokenizers/clip_text.hpp"
#include "sd35/tokenizers/unicode.hpp"

namespace star::sd35 {
namespace {

constexpr std::string_view start_of_text = "<|startoftext|>";
constexpr std::string_view end_of_text = "<|endoftext|>";
constexpr std::string_view end_of_word = "</w>";
constexpr std::size_t max_merges = 49152 - 256 - 2;  // transformers' CLIPTokenizer reads no more
constexpr std::size_t max_cached_words = 1 << 16;

/// GPT-2/CLIP's reversible map from bytes to printable code points, as UTF-8 strings.
const std::array<std::string, 256>& byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> out;
    char32_t next_unprintable = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      unicode::append_utf8(printable ? static_cast<char32_t>(b) : next_unprintable++,
                           out[static_cast<std::size_t>(b)]);
    }
    return out;
  }();
  return table;
}

std::ifstream open_file(const std::filesystem::path& path, std::string_view what) {
  if (!std::filesystem::is_regular_file(path))
    throw value_error("clip tokenizer: " + std::string(what) + " not found: " + path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw value_error("clip tokenizer: cannot read " + path.string());
  return in;
}

/// One BPE symbol of a word: its id and how many bytes of the word it covers.
struct bpe_unit {
  std::int64_t id;
  std::size_t bytes;
};

}  // namespace

struct clip_bpe_tokenizer::model {
  std::unordered_map<std::string, std::int64_t> vocab;  // byte-unicode token -> id
  std::unordered_map<std::string, int> ranks;           // "left right" -> merge rank
  std::int64_t unknown_id = 0;                          // `<|endoftext|>`, as transformers
  std::mutex cache_mutex;
  std::unordered_map<std::string, std::vector<bpe_unit>> cache;  // word bytes -> units

  int rank(const std::string& left, const std::string& right) const {
    const auto it = ranks.find(left + ' ' + right);
    return it == ranks.end() ? INT_MAX : it->second;
  }

  /// BPE of one pre-tokenised word (raw bytes), `</w>` on its last symbol.
  std::vector<bpe_unit> merge(std::string_view word) const {
    std::vector<std::string> symbols;
    std::vector<std::size_t> bytes;
    for (const char c : word) {
      symbols.push_back(byte_to_unicode()[static_cast<unsigned char>(c)]);
      bytes.push_back(1);
    }
    symbols.back() += end_of_word;
    while (symbols.size() > 1) {
      int best = INT_MAX;
      std::size_t at = 0;
      for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
        const int r = rank(symbols[i], symbols[i + 1]);
        if (r < best) {
          best = r;
          at = i;
        }
      }
      if (best == INT_MAX) break;
      const std::string left = symbols[at];
      const std::string right = symbols[at + 1];
      std::vector<std::string> merged;
      std::vector<std::size_t> merged_bytes;
      for (std::size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          merged.push_back(left + right);
          merged_bytes.push_back(bytes[i] + bytes[i + 1]);
          ++i;
        } else {
          merged.push_back(symbols[i]);
          merged_bytes.push_back(bytes[i]);
        }
      }
      symbols = std::move(merged);
      bytes = std::move(merged_bytes);
    }
    std::vector<bpe_unit> units;
    for (std::size_t i = 0; i < symbols.size(); ++i) {
      const auto it = vocab.find(symbols[i]);
      units.push_back({it == vocab.end() ? unknown_id : it->second, bytes[i]});
    }
    return units;
  }

  std::vector<bpe_unit> cached_merge(std::string_view word) {
    const std::string key(word);
    {
      const std::lock_guard lock(cache_mutex);
      if (const auto it = cache.find(key); it != cache.end()) return it->second;
    }
    auto units = merge(word);
    const std::lock_guard lock(cache_mutex);
    if (cache.size() >= max_cached_words) cache.clear();
    cache.emplace(key, units);
    return units;
  }
};

void clip_tokenizer_options::validate() const {
  if (max_length < 2)
    throw option_error("clip_tokenizer_options.max_length: " + std::to_string(max_length) +
                       " leaves no room for BOS and EOS (need >= 2; SD3 uses 77)");
  if (pad_token.empty())
    throw option_error("clip_tokenizer_options.pad_token: empty (SD3 uses '<|endoftext|>' for "
                       "CLIP-L and '!' for CLIP-G)");
  if (segment.empty())
    throw option_error("clip_tokenizer_options.segment: empty (SD3 uses 'clip')");
}

clip_bpe_tokenizer::clip_bpe_tokenizer(std::shared_ptr<model> shared,
                                       clip_tokenizer_options options)
    : model_(std::move(shared)), options_(std::move(options)) {
  options_.validate();
  for (const auto token : {start_of_text, end_of_text})
    added_tokens_.emplace_back(token);
  if (options_.pad_token != start_of_text && options_.pad_token != end_of_text)
    added_tokens_.push_back(options_.pad_token);
  bos_id_ = token_id(start_of_text);  // every added token must be in the vocab
  eos_id_ = token_id(end_of_text);
  pad_id_ = token_id(options_.pad_token);
}

clip_bpe_tokenizer clip_bpe_tokenizer::from_folder(const std::filesystem::path& folder,
                                                   const clip_tokenizer_options& options) {
  if (!std::filesystem::is_directory(folder))
    throw value_error("clip tokenizer: folder not found: " + folder.string() +
                      " (expected an SD3.5 tokenizer/ or tokenizer_2/ with vocab.json and "
                      "merges.txt)");
  return from_files(folder / "vocab.json", folder / "merges.txt", options);
}

clip_bpe_tokenizer clip_bpe_tokenizer::from_files(const std::filesystem::path& vocab_json,
                                                  const std::filesystem::path& merges_txt,
                                                  const clip_tokenizer_options& options) {
  options.validate();
  auto shared = std::make_shared<model>();
  auto vocab_in = open_file(vocab_json, "vocab.json");
  auto merges_in = open_file(merges_txt, "merges.txt");
  try {
    const auto vocab = nlohmann::json::parse(vocab_in);
    if (!vocab.is_object()) throw value_error("not a JSON object");
    for (const auto& [token, id] : vocab.items()) {
      if (!id.is_number_integer()) throw value_error("the id of '" + token + "' is not an integer");
      shared->vocab.emplace(token, id.get<std::int64_t>());
    }
  } catch (const std::exception& e) {
    throw value_error("clip tokenizer: malformed " + vocab_json.string() + ": " + e.what() +
                      " (expected an object token -> id)");
  }
  std::string line;
  std::size_t line_number = 0;
  while (std::getline(merges_in, line) && shared->ranks.size() < max_merges) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_number == 1 && line.starts_with("#version"))) continue;
    const auto space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos)
      throw value_error("clip tokenizer: malformed " + merges_txt.string() + " line " +
                        std::to_string(line_number) + ": '" + line +
                        "' (expected two symbols separated by one space)");
    shared->ranks.emplace(line, static_cast<int>(shared->ranks.size()));
  }
  const auto unknown = shared->vocab.find(std::string(end_of_text));
  if (unknown == shared->vocab.end())
    throw value_error("clip tokenizer: " + vocab_json.string() + " has no '<|endoftext|>'");
  shared->unknown_id = unknown->second;
  return clip_bpe_tokenizer(std::move(shared), options);
}

std::int64_t clip_bpe_tokenizer::token_id(std::string_view token) const {
  const auto it = model_->vocab.find(std::string(token));
  if (it == model_->vocab.end())
    throw value_error("clip tokenizer: token '" + std::string(token) + "' is not in vocab.json");
  return it->second;
}

clip_bpe_tokenizer clip_bpe_tokenizer::with_options(const clip_tokenizer_options& options) const {
  return clip_bpe_tokenizer(model_, options);
}

bool clip_bpe_tokenizer::shares_vocabulary_with(const clip_bpe_tokenizer& other) const {
  return model_ == other.model_;
}

std::int64_t clip_bpe_tokenizer::bos_id() const { return bos_id_; }
std::int64_t clip_bpe_tokenizer::eos_id() const { return eos_id_; }
std::int64_t clip_bpe_tokenizer::pad_id() const { return pad_id_; }
const clip_tokenizer_options& clip_bpe_tokenizer::options() const { return options_; }

clip_tokens clip_bpe_tokenizer::encode(std::string_view prompt) const {
  return encode(clip_normalize(prompt));
}

clip_tokens clip_bpe_tokenizer::encode(const clip_normalized_text& normalized) const {
  struct content_token {
    std::int64_t id;
    std::size_t begin, end;  // bytes of the normalised text
    bool special;
  };
  std::vector<content_token> content;
  for (const auto& piece : clip_pretokenize(normalized.text, added_tokens_)) {
    const auto text =
        std::string_view(normalized.text).substr(piece.begin, piece.end - piece.begin);
    if (piece.added_token) {
      content.push_back({token_id(text), piece.begin, piece.end,
                         text == start_of_text || text == end_of_text});
      continue;
    }
    std::size_t at = piece.begin;
    for (const auto& unit : model_->cached_merge(text)) {
      content.push_back({unit.id, at, at + unit.bytes, false});
      at += unit.bytes;
    }
  }

  clip_tokens out;
  out.untruncated_content_tokens = static_cast<std::int64_t>(content.size());
  const auto max_length = static_cast<std::size_t>(options_.max_length);
  content.resize(std::min(content.size(), max_length - 2));
  out.num_tokens = static_cast<std::int64_t>(content.size() + 2);
  out.tokenization.segment = options_.segment;
  const auto add = [&out](std::int64_t id, bool in_sequence, text_token token) {
    token.position = static_cast<std::int64_t>(out.input_ids.size());
    out.input_ids.push_back(id);
    out.attention_mask.push_back(in_sequence ? 1 : 0);
    out.tokenization.tokens.push_back(token);
  };
  add(bos_id_, true, {0, 0, 0, true});
  for (const auto& token : content) {
    const auto span = normalized.prompt_span(token.begin, token.end);
    out.normalized_spans.push_back(
        {static_cast<std::int64_t>(token.begin), static_cast<std::int64_t>(token.end)});
    add(token.id, true, {0, span.begin, span.end, token.special});
  }
  add(eos_id_, true, {0, 0, 0, true});
  while (out.input_ids.size() < max_length) add(pad_id_, false, {0, 0, 0, true});
  out.normalized_text = normalized.text;
  return out;
}

bool same_vocabulary_files(const std::filesystem::path& a, const std::filesystem::path& b) {
  const auto identical = [](const std::filesystem::path& x, const std::filesystem::path& y) {
    std::error_code error_x, error_y;
    const auto size_x = std::filesystem::file_size(x, error_x);
    const auto size_y = std::filesystem::file_size(y, error_y);
    if (error_x || error_y || size_x != size_y) return false;
    std::ifstream in_x(x, std::ios::binary), in_y(y, std::ios::binary);
    return in_x && in_y &&
           std::equal(std::istreambuf_iterator<char>(in_x), std::istreambuf_iterator<char>(),
                      std::istreambuf_iterator<char>(in_y), std::istreambuf_iterator<char>());
  };
  return identical(a / "vocab.json", b / "vocab.json") &&
         identical(a / "merges.txt", b / "merges.txt");
}

}  // namespace star::sd35
