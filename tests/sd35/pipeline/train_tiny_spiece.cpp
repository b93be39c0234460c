// Writes the tokenizer tests' tiny T5 SentencePiece model to argv[1]. A separate process: a
// program that links both LibTorch (its system libprotobuf) and libsentencepiece_train (its
// bundled protobuf-lite) crashes while loading, so the pipeline test cannot train in-process.

#include <exception>
#include <filesystem>
#include <iostream>

#include "tokenizer_fixtures.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: train_tiny_spiece OUT/spiece.model\n";
    return 2;
  }
  try {
    std::filesystem::copy_file(star::test::tiny_t5_model_folder() / "spiece.model", argv[1],
                               std::filesystem::copy_options::overwrite_existing);
  } catch (const std::exception& e) {
    std::cerr << "train_tiny_spiece: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
