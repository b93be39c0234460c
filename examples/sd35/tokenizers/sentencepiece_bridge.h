/* The C interface of star's SentencePiece bridge: a shared library that links libsentencepiece
   and is opened with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), so that the protobuf copy inside
   Debian's libsentencepiece never meets the one LibTorch loads (linking both into one program
   crashes it before main). Every function returns a negative number or NULL on failure. */
#ifndef STAR_SD35_SENTENCEPIECE_BRIDGE_H
#define STAR_SD35_SENTENCEPIECE_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Loads a .model file; on failure returns NULL and writes a message into error[capacity]. */
typedef void* (*star_spm_load_fn)(const char* path, char* error, size_t capacity);
/* Frees a loaded model. */
typedef void (*star_spm_free_fn)(void* model);
/* 0: EOS id, 1: pad id, 2: vocabulary size. */
typedef int64_t (*star_spm_info_fn)(const void* model, int what);
/* Encodes text[length]; writes (id, byte begin, byte end) triples into out[capacity] and returns
   the number of pieces (which may exceed capacity / 3: call again with more room). */
typedef int64_t (*star_spm_encode_fn)(const void* model, const char* text, size_t length,
                                      int64_t* out, int64_t capacity);
/* Decodes ids[count] into out[capacity]; returns the text's length (call again when larger). */
typedef int64_t (*star_spm_decode_fn)(const void* model, const int64_t* ids, size_t count,
                                      char* out, int64_t capacity);

#ifdef __cplusplus
}
#endif

#endif
