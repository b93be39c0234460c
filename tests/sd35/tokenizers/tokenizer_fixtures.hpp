#pragma once
// Test inputs for the tokenizers: a tiny CLIP vocabulary written in the transformers format and
// a tiny T5-style SentencePiece model trained on the spot, in star::test::scratch_dir folders.

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/scratch_dir.hpp"

#if STAR_SD35_TEST_WITH_SENTENCEPIECE
#include <sentencepiece_trainer.h>
#endif

namespace star::test {

/// The real vocabulary folder CMake was configured with (STAR_CLIP_VOCAB_DIR). The tests that
/// use it are registered only when it held vocab.json and merges.txt at configure time
/// (tests/sd35/tokenizers/CMakeLists.txt); they must fail, not pass, when it no longer does.
inline std::filesystem::path clip_vocab_dir() { return STAR_CLIP_VOCAB_DIR; }

/// The files of CLIP's vocabulary that `folder` lacks, space-separated ("" when it has both).
inline std::string missing_clip_vocab_files(const std::filesystem::path& folder) {
  std::string missing;
  for (const char* file : {"vocab.json", "merges.txt"}) {
    if (!folder.empty() && std::filesystem::is_regular_file(folder / file)) continue;
    if (!missing.empty()) missing += ' ';
    missing += file;
  }
  return missing;
}

/// CLIP's bytes-to-unicode symbols, written out independently of the library, in CLIP's
/// vocabulary order: the printable bytes first, then the others (mapped from U+0100 on).
inline std::vector<std::string> byte_symbols() {
  std::vector<int> printable;
  for (int b = 33; b <= 126; ++b) printable.push_back(b);
  for (int b = 161; b <= 172; ++b) printable.push_back(b);
  for (int b = 174; b <= 255; ++b) printable.push_back(b);
  std::vector<int> code(256, -1);
  for (const int b : printable) code[static_cast<std::size_t>(b)] = b;
  int extra = 256;
  for (int b = 0; b < 256; ++b)
    if (code[static_cast<std::size_t>(b)] < 0) code[static_cast<std::size_t>(b)] = extra++;
  std::vector<int> order = printable;
  for (int b = 0; b < 256; ++b)
    if (code[static_cast<std::size_t>(b)] >= 256) order.push_back(b);
  std::vector<std::string> out;
  for (const int b : order) {
    const int c = code[static_cast<std::size_t>(b)];
    auto& s = out.emplace_back();
    if (c < 0x80) {
      s += static_cast<char>(c);
    } else {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

/// A tiny CLIP vocabulary: the byte symbols in CLIP's order (so '!' is id 0), the same with
/// `</w>`, one token per merge, then `<|startoftext|>` and `<|endoftext|>`.
struct tiny_clip_vocab {
  std::filesystem::path folder;
  std::map<std::string, std::int64_t> ids;
  std::int64_t id(const std::string& token) const { return ids.at(token); }
};

inline const std::vector<std::pair<std::string, std::string>>& tiny_merges() {
  static const std::vector<std::pair<std::string, std::string>> merges{
      {"l", "l"},      {"h", "e"},      {"ll", "o</w>"}, {"he", "llo</w>"}, {"e", "s</w>"},
      {"y", "e"},      {"c", "a"},      {"ca", "t</w>"}, {"d", "o"},        {"do", "g</w>"},
      {"a", "</w>"},   {"r", "e"},      {"re", "d</w>"}, {"!", "!"},        {"!!", "!</w>"}};
  return merges;
}

inline tiny_clip_vocab write_tiny_clip_vocab(const std::filesystem::path& folder) {
  tiny_clip_vocab vocab{folder, {}};
  std::filesystem::create_directories(folder);
  const auto symbols = byte_symbols();
  for (const auto& s : symbols) vocab.ids.emplace(s, static_cast<std::int64_t>(vocab.ids.size()));
  for (const auto& s : symbols)
    vocab.ids.emplace(s + "</w>", static_cast<std::int64_t>(vocab.ids.size()));
  std::ofstream merges(folder / "merges.txt");
  merges << "#version: 0.2\n";
  for (const auto& [left, right] : tiny_merges()) {
    merges << left << ' ' << right << '\n';
    vocab.ids.emplace(left + right, static_cast<std::int64_t>(vocab.ids.size()));
  }
  vocab.ids.emplace("<|startoftext|>", static_cast<std::int64_t>(vocab.ids.size()));
  vocab.ids.emplace("<|endoftext|>", static_cast<std::int64_t>(vocab.ids.size()));
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [token, id] : vocab.ids) json[token] = id;
  std::ofstream(folder / "vocab.json") << json.dump();
  return vocab;
}

#if STAR_SD35_TEST_WITH_SENTENCEPIECE
/// Trains (once per process) a unigram model with T5's special ids: <pad> 0, </s> 1, <unk> 2,
/// no BOS. Returns the folder holding spiece.model.
inline std::filesystem::path tiny_t5_model_folder() {
  static const std::filesystem::path folder = [] {
    const auto dir = scratch_dir("t5");
    const std::vector<std::string> words{
        "a", "photo", "of", "red", "apple", "and", "blue", "car", "two", "dogs", "cat",
        "left", "bicycle", "three", "bananas", "purple", "giraffe", "yellow", "toaster",
        "green", "traffic", "light", "above", "black", "skateboard", "the", "sign", "says",
        "open", "hours", "on", "table", "under", "sky", "with", "small", "large", "white"};
    std::ofstream corpus(dir / "corpus.txt");
    for (std::size_t line = 0; line < 120; ++line) {
      for (std::size_t k = 0; k < 6; ++k)
        corpus << (k ? " " : "") << words[(line * 7 + k * 5) % words.size()];
      corpus << '\n';
    }
    corpus.close();
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + (dir / "corpus.txt").string() +
        " --model_prefix=" + (dir / "spiece").string() +
        " --vocab_size=120 --model_type=unigram --hard_vocab_limit=false --pad_id=0 --eos_id=1"
        " --unk_id=2 --bos_id=-1 --character_coverage=1.0 --minloglevel=2");
    if (!status.ok()) throw std::runtime_error("training the tiny T5 model: " + status.ToString());
    return dir;
  }();
  return folder;
}
#endif

}  // namespace star::test
