// The SentencePiece bridge (see sentencepiece_bridge.h): thin C functions over
// sentencepiece::SentencePieceProcessor, built as a module that star's T5 tokenizer dlopens.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "sentencepiece_bridge.h"

namespace {

const sentencepiece::SentencePieceProcessor& processor(const void* model) {
  return *static_cast<const sentencepiece::SentencePieceProcessor*>(model);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* star_spm_load(const char* path, char* error,
                                                           size_t capacity) {
  auto* model = new sentencepiece::SentencePieceProcessor;
  const auto status = model->Load(path);
  if (status.ok()) return model;
  if (capacity > 0) {
    std::strncpy(error, status.ToString().c_str(), capacity - 1);
    error[capacity - 1] = '\0';
  }
  delete model;
  return nullptr;
}

__attribute__((visibility("default"))) void star_spm_free(void* model) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(model);
}

__attribute__((visibility("default"))) int64_t star_spm_info(const void* model, int what) {
  switch (what) {
    case 0: return processor(model).eos_id();
    case 1: return processor(model).pad_id();
    case 2: return processor(model).GetPieceSize();
    default: return -1;
  }
}

__attribute__((visibility("default"))) int64_t star_spm_encode(const void* model,
                                                               const char* text, size_t length,
                                                               int64_t* out, int64_t capacity) {
  const auto encoded = processor(model).EncodeAsImmutableProto(std::string_view(text, length));
  int64_t count = 0;
  for (const auto& piece : encoded.pieces()) {
    if (3 * count + 2 < capacity) {
      out[3 * count] = piece.id();
      out[3 * count + 1] = piece.begin();
      out[3 * count + 2] = piece.end();
    }
    ++count;
  }
  return count;
}

__attribute__((visibility("default"))) int64_t star_spm_decode(const void* model,
                                                               const int64_t* ids, size_t count,
                                                               char* out, int64_t capacity) {
  const std::vector<int> pieces(ids, ids + count);
  const std::string text = processor(model).DecodeIds(pieces);
  const auto length = static_cast<int64_t>(text.size());
  if (length <= capacity) std::memcpy(out, text.data(), text.size());
  return length;
}

}  // extern "C"
