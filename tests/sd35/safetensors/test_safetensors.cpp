// star_sd35_safetensors: the parser (fixtures, every malformed case), checkpoints (single,
// sharded, folder), load_into and its report, save_safetensors (round trips, atomic writes).

// LibTorch first: its glog defines CHECK, which Catch must own.
#include <torch/torch.h>
#undef CHECK
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "sd35/safetensors/checkpoint.hpp"
#include "sd35/safetensors/file.hpp"
#include "sd35/safetensors/load.hpp"
#include "support/random.hpp"
#include "support/safetensors.hpp"
#include "support/scratch_dir.hpp"

namespace {

namespace fs = std::filesystem;
using star::sd35::checkpoint;
using star::sd35::checkpoint_error;
using star::sd35::safetensors::dtype;

/// A float32 tensor of `shape` with seeded standard normal values.
torch::Tensor random_tensor(const std::vector<std::int64_t>& shape, std::uint64_t seed) {
  const auto values = star::test::normal(static_cast<std::size_t>(star::numel(shape)), seed);
  return torch::tensor(std::vector<double>(values), torch::kDouble)
      .reshape(shape)
      .to(torch::kFloat);  // shape
}

/// The bytes of a file: the 8-byte little-endian length of `header`, `header`, `data_bytes` zeros.
std::vector<std::byte> file_bytes(const std::string& header, std::size_t data_bytes,
                                  std::uint64_t stated_length) {
  std::vector<std::byte> bytes(8 + header.size() + data_bytes, std::byte{0});
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<std::byte>((stated_length >> (8 * i)) & 0xff);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  return bytes;
}

std::vector<std::byte> file_bytes(const std::string& header, std::size_t data_bytes) {
  return file_bytes(header, data_bytes, header.size());
}

void write_bytes(const fs::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

/// A Linear, a float buffer and an integer buffer, nested one level.
struct tiny_module : torch::nn::Module {
  tiny_module() {
    proj = register_module("proj", torch::nn::Linear(3, 4));
    scale = register_buffer("scale", torch::ones({4}));
    steps = register_buffer("steps", torch::zeros({2}, torch::kLong));
  }
  torch::nn::Linear proj{nullptr};
  torch::Tensor scale;
  torch::Tensor steps;
};

/// Tensors named as tiny_module names them, with seeded values.
std::vector<std::pair<std::string, at::Tensor>> tiny_module_tensors(std::uint64_t seed) {
  return {{"proj.weight", random_tensor({4, 3}, seed)},
          {"proj.bias", random_tensor({4}, seed + 1)},
          {"scale", random_tensor({4}, seed + 2)},
          {"steps", torch::tensor({int64_t{3}, int64_t{9}}, torch::kLong)}};
}

}  // namespace

TEST_CASE("fixtures: every tensor of the golden files reads as the reference reader reads it",
          "[safetensors]") {
  for (const auto* name : {"sd35/sd3_transformer_weights.safetensors",
                           "sd35/sd3_vae_decoder_weights.safetensors",
                           "sd35/clip_l_weights.safetensors", "sd35/t5_encoder_io.safetensors",
                           "sd3_transformer_io.safetensors"}) {
    INFO("fixture " << name);
    const auto expected = star::test::read_safetensors(star::test::data_path(name));
    const auto ckpt = checkpoint::open(star::test::data_path(name));
    REQUIRE(ckpt.names().size() == expected.size());
    for (const auto& [tensor_name, reference] : expected) {
      INFO("tensor " << tensor_name);
      REQUIRE(ckpt.contains(tensor_name));
      REQUIRE(ckpt.info(tensor_name).shape == reference.dims);
      const auto values = ckpt.tensor(tensor_name, at::kDouble);  // reference.dims
      const auto expected_values = torch::tensor(reference.values, torch::kDouble)
                                       .reshape(reference.dims);  // reference.dims
      REQUIRE(torch::equal(values, expected_values));
    }
  }
  const auto ckpt =
      checkpoint::open(star::test::data_path("sd35/sd3_transformer_weights.safetensors"));
  CHECK(ckpt.metadata().at("model") == "SD3Transformer2DModel");
}

TEST_CASE("round trip: F32, F16 and BF16 write and read back bit-exactly", "[safetensors]") {
  const std::uint64_t seed = 41;
  INFO("seed " << seed);
  const auto dir = star::test::scratch_dir("round_trip_float");
  const auto f32 = random_tensor({3, 5}, seed);                               // [3, 5]
  const auto f16 = random_tensor({2, 2, 3}, seed + 1).to(torch::kHalf);      // [2, 2, 3]
  const auto bf16 = random_tensor({7}, seed + 2).to(torch::kBFloat16) * 1e3;  // [7]
  const auto strided = random_tensor({4, 6}, seed + 3).t();                   // [6, 4], transposed
  star::sd35::save_safetensors(dir / "model.safetensors",
                               {{"a.f32", f32}, {"b.f16", f16}, {"c.bf16", bf16}, {"d.t", strided}},
                               {{"format", "pt"}, {"note", "round trip"}});

  std::ifstream in(dir / "model.safetensors", std::ios::binary);
  std::uint64_t header_length = 0;
  in.read(reinterpret_cast<char*>(&header_length), 8);
  CHECK(header_length % 8 == 0);

  const auto ckpt = checkpoint::open(dir / "model.safetensors");
  CHECK(ckpt.names() == std::vector<std::string>{"a.f32", "b.f16", "c.bf16", "d.t"});
  CHECK(ckpt.metadata() ==
        std::map<std::string, std::string>{{"format", "pt"}, {"note", "round trip"}});
  CHECK(ckpt.info("b.f16").type == dtype::f16);
  CHECK(ckpt.info("c.bf16").type == dtype::bf16);
  CHECK(ckpt.info("b.f16").shape == std::vector<std::int64_t>{2, 2, 3});
  CHECK(ckpt.info("a.f32").file == dir / "model.safetensors");
  CHECK(torch::equal(ckpt.tensor("a.f32"), f32));
  CHECK(torch::equal(ckpt.tensor("d.t"), strided));
  // Kept in their own dtype, and widened exactly to float32.
  CHECK(ckpt.tensor("b.f16", at::kHalf).scalar_type() == at::kHalf);
  CHECK(torch::equal(ckpt.tensor("b.f16", at::kHalf), f16));
  CHECK(torch::equal(ckpt.tensor("c.bf16", at::kBFloat16), bf16));
  CHECK(ckpt.tensor("c.bf16").scalar_type() == at::kFloat);
  CHECK(torch::equal(ckpt.tensor("b.f16"), f16.to(torch::kFloat)));
  CHECK(torch::equal(ckpt.tensor("c.bf16"), bf16.to(torch::kFloat)));
  CHECK_FALSE(fs::exists(dir / "model.safetensors.partial"));
}

TEST_CASE("round trip: F64, I64, I32, U8, BOOL, scalars and empty tensors", "[safetensors]") {
  const auto dir = star::test::scratch_dir("round_trip_other");
  const auto f64 = random_tensor({2, 3}, 5).to(torch::kDouble);               // [2, 3]
  const auto i64 = torch::tensor({int64_t{-5}, int64_t{1} << 40}, torch::kLong);  // [2]
  const auto i32 = torch::arange(6, torch::kInt).reshape({3, 2});             // [3, 2]
  const auto u8 = torch::tensor({0, 200, 255}, torch::kByte);                // [3]
  const auto mask = torch::tensor({true, false, true});                      // [3]
  const auto scalar = torch::tensor(2.5f);                                   // []
  const auto empty = torch::zeros({0, 4});                                   // [0, 4]
  star::sd35::save_safetensors(dir / "x.safetensors", {{"f64", f64}, {"i64", i64}, {"i32", i32},
                                                       {"u8", u8}, {"mask", mask},
                                                       {"scalar", scalar}, {"empty", empty}});
  const auto ckpt = checkpoint::open(dir / "x.safetensors");
  CHECK(torch::equal(ckpt.tensor("f64", at::kDouble), f64));
  CHECK(torch::equal(ckpt.tensor("i64", at::kLong), i64));
  CHECK(torch::equal(ckpt.tensor("i32", at::kInt), i32));
  CHECK(torch::equal(ckpt.tensor("u8", at::kByte), u8));
  CHECK(torch::equal(ckpt.tensor("mask", at::kBool), mask));
  CHECK(ckpt.info("scalar").shape.empty());
  CHECK(ckpt.tensor("scalar").item<float>() == 2.5f);
  CHECK(ckpt.tensor("empty").sizes().vec() == std::vector<std::int64_t>{0, 4});
  CHECK(ckpt.info("mask").type == dtype::boolean);
}

TEST_CASE("save_safetensors: unsupported dtypes and bad names are refused before writing",
          "[safetensors]") {
  const auto dir = star::test::scratch_dir("save_refused");
  const auto path = dir / "bad.safetensors";
  const auto complex = torch::zeros({2}, torch::kComplexFloat);  // [2]
  REQUIRE_THROWS_AS(star::sd35::save_safetensors(path, {{"z", complex}}), checkpoint_error);
  REQUIRE_THROWS_WITH(star::sd35::save_safetensors(path, {{"z", complex}}), Catch::Contains("'z'"));
  const auto one = torch::ones({1});  // [1]
  REQUIRE_THROWS_WITH(star::sd35::save_safetensors(path, {{"w", one}, {"w", one}}),
                      Catch::Contains("'w' appears twice"));
  REQUIRE_THROWS_WITH(star::sd35::save_safetensors(path, {{"__metadata__", one}}),
                      Catch::Contains("__metadata__"));
  REQUIRE_THROWS_WITH(star::sd35::save_safetensors(path, {{"u", torch::Tensor()}}),
                      Catch::Contains("'u' is undefined"));
  CHECK(star::test::file_names(dir).empty());
}

TEST_CASE("save_safetensors: a failed write leaves no file behind", "[safetensors]") {
  const auto dir = star::test::scratch_dir("save_failed");
  const std::vector<std::pair<std::string, at::Tensor>> tensors{{"w", torch::ones({2, 2})}};
  // Into a folder that does not exist: nothing can be created.
  REQUIRE_THROWS_AS(star::sd35::save_safetensors(dir / "absent/model.safetensors", tensors),
                    checkpoint_error);
  REQUIRE_THROWS_WITH(star::sd35::save_safetensors(dir / "absent/model.safetensors", tensors),
                      Catch::Contains("absent/model.safetensors"));
  CHECK(star::test::file_names(dir).empty());
  // Onto a folder: the partial file is written, the rename fails, the partial file goes.
  fs::create_directory(dir / "taken");
  REQUIRE_THROWS_WITH(star::sd35::save_safetensors(dir / "taken", tensors),
                      Catch::Contains("cannot rename"));
  CHECK(star::test::file_names(dir) == std::vector<std::string>{"taken"});
  CHECK(fs::is_empty(dir / "taken"));
}

TEST_CASE("sharded index: two shards and an index read as one checkpoint", "[safetensors]") {
  const auto dir = star::test::scratch_dir("sharded");
  const auto a = random_tensor({2, 3}, 7);  // [2, 3]
  const auto b = random_tensor({4}, 8).to(torch::kBFloat16);  // [4]
  const auto c = random_tensor({1, 1}, 9);  // [1, 1]
  star::sd35::save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", a}, {"b", b}});
  star::sd35::save_safetensors(dir / "model-00002-of-00002.safetensors", {{"c", c}});
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"metadata": {"total_size": 40}, "weight_map": {"a": "model-00001-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})";
  for (const auto& path : {dir / "model.safetensors.index.json", dir}) {
    INFO("opened as " << path);
    const auto ckpt = checkpoint::open(path);
    CHECK(ckpt.path() == dir / "model.safetensors.index.json");
    CHECK(ckpt.names() == std::vector<std::string>{"a", "b", "c"});
    CHECK(torch::equal(ckpt.tensor("a"), a));
    CHECK(torch::equal(ckpt.tensor("b", at::kBFloat16), b));
    CHECK(torch::equal(ckpt.tensor("c"), c));
    CHECK(ckpt.info("c").file == dir / "model-00002-of-00002.safetensors");
  }
}

TEST_CASE("sharded index: a missing shard or a tensor absent from its shard names both",
          "[safetensors]") {
  const auto dir = star::test::scratch_dir("sharded_errors");
  star::sd35::save_safetensors(dir / "one.safetensors", {{"a", torch::ones({1})}});
  std::ofstream(dir / "missing.index.json")
      << R"({"weight_map": {"a": "one.safetensors", "b": "two.safetensors"}})";
  REQUIRE_THROWS_AS(checkpoint::open(dir / "missing.index.json"), checkpoint_error);
  REQUIRE_THROWS_WITH(checkpoint::open(dir / "missing.index.json"),
                      Catch::Contains("shard 'two.safetensors' of tensor 'b' is missing"));
  std::ofstream(dir / "absent.index.json")
      << R"({"weight_map": {"a": "one.safetensors", "z": "one.safetensors"}})";
  REQUIRE_THROWS_WITH(checkpoint::open(dir / "absent.index.json"),
                      Catch::Contains("tensor 'z'") && Catch::Contains("shard 'one.safetensors'") &&
                          Catch::Contains("no such tensor"));
  std::ofstream(dir / "bad.index.json") << R"({"weight_map": ["a"]})";
  REQUIRE_THROWS_WITH(checkpoint::open(dir / "bad.index.json"), Catch::Contains("weight_map"));
  std::ofstream(dir / "broken.index.json") << R"({"weight_map": )";
  REQUIRE_THROWS_WITH(checkpoint::open(dir / "broken.index.json"),
                      Catch::Contains("broken.index.json") && Catch::Contains("not valid JSON"));
}

TEST_CASE("folder: the diffusers file is preferred, then the only file, else an error",
          "[safetensors]") {
  const auto dir = star::test::scratch_dir("folder");
  star::sd35::save_safetensors(dir / "other.safetensors", {{"x", torch::ones({1})}});
  CHECK(checkpoint::open(dir).path() == dir / "other.safetensors");
  star::sd35::save_safetensors(dir / "diffusion_pytorch_model.safetensors",
                               {{"y", torch::ones({1})}});
  const auto ckpt = checkpoint::open(dir);
  CHECK(ckpt.path() == dir / "diffusion_pytorch_model.safetensors");
  CHECK(ckpt.names() == std::vector<std::string>{"y"});

  const auto ambiguous = star::test::scratch_dir("folder_ambiguous");
  star::sd35::save_safetensors(ambiguous / "a.safetensors", {{"x", torch::ones({1})}});
  star::sd35::save_safetensors(ambiguous / "b.safetensors", {{"x", torch::ones({1})}});
  REQUIRE_THROWS_AS(checkpoint::open(ambiguous), checkpoint_error);
  REQUIRE_THROWS_WITH(checkpoint::open(ambiguous),
                      Catch::Contains("diffusion_pytorch_model.safetensors"));
  REQUIRE_THROWS_WITH(checkpoint::open(ambiguous / "nothing_here"),
                      Catch::Contains("nothing_here") && Catch::Contains("no such file"));
}

TEST_CASE("checkpoint: an absent tensor is an error naming it and the file", "[safetensors]") {
  const auto dir = star::test::scratch_dir("absent_tensor");
  star::sd35::save_safetensors(dir / "m.safetensors", {{"x", torch::ones({1})}});
  const auto ckpt = checkpoint::open(dir / "m.safetensors");
  CHECK_FALSE(ckpt.contains("y"));
  REQUIRE_THROWS_AS(ckpt.tensor("y"), checkpoint_error);
  REQUIRE_THROWS_WITH(ckpt.tensor("y"), Catch::Contains("'y'") && Catch::Contains("m.safetensors"));
  REQUIRE_THROWS_WITH(ckpt.info("y"), Catch::Contains("'y'"));
}

TEST_CASE("malformed files: each gives checkpoint_error naming the file and the problem",
          "[safetensors]") {
  struct malformed {
    const char* what;
    std::vector<std::byte> bytes;
    std::vector<std::string> words;
  };
  const std::string f32_2x2 = R"("dtype": "F32", "shape": [2, 2])";
  // The header {"w": {fields}}: one tensor named w.
  const auto w = [](const std::string& fields) { return R"({"w": {)" + fields + "}}"; };
  const std::vector<malformed> cases{
      {"3 bytes", std::vector<std::byte>(3), {"3 bytes", "shorter than"}},
      {"header length past the end", file_bytes("{}", 4, 1000), {"1000", "past the end"}},
      {"header length 2^64 - 1", file_bytes("{}", 0, ~std::uint64_t{0}), {"past the end"}},
      {"bad JSON", file_bytes(R"({"w": )", 0), {"not valid JSON"}},
      {"top level not an object", file_bytes("[1, 2]", 0), {"header is not a JSON object"}},
      {"entry not an object", file_bytes(R"({"w": 5})", 0), {"'w'", "not a JSON object"}},
      {"no dtype", file_bytes(w(R"("shape": [], "data_offsets": [0, 4])"), 4),
       {"'w'", "no \"dtype\""}},
      {"dtype not a string", file_bytes(w(R"("dtype": 4)"), 0), {"'w'", "dtype is not a string"}},
      {"unknown dtype",
       file_bytes(w(R"("dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1])"), 1),
       {"'w'", "unknown dtype", "F8_E4M3"}},
      {"shape not an array",
       file_bytes(w(R"("dtype": "F32", "shape": 4, "data_offsets": [0, 16])"), 16),
       {"'w'", "shape is not an array"}},
      {"negative extent",
       file_bytes(w(R"("dtype": "F32", "shape": [2, -1], "data_offsets": [0, 0])"), 0),
       {"'w'", "shape[1] = -1 is negative"}},
      {"fractional extent",
       file_bytes(w(R"("dtype": "F32", "shape": [2.5], "data_offsets": [0, 0])"), 0),
       {"'w'", "not an integer"}},
      {"extent past int64",
       file_bytes(w(R"("dtype": "U8", "shape": [18446744073709551615], "data_offsets": [0, 0])"),
                  0),
       {"'w'", "overflows int64"}},
      {"element count past int64",
       file_bytes(w(R"("dtype": "U8", "shape": [4294967296, 4294967296],)"
                    R"( "data_offsets": [0, 0])"),
                  0),
       {"'w'", "more elements than int64 holds"}},
      {"byte count past uint64",
       file_bytes(w(R"("dtype": "F64", "shape": [2305843009213693952, 1],)"
                    R"( "data_offsets": [0, 0])"),
                  0),
       {"'w'", "overflows the byte count"}},
      {"byte count not matching the shape",
       file_bytes(w(f32_2x2 + R"(, "data_offsets": [0, 12])"), 16),
       {"'w'", "[0, 12]", "12 bytes", "does not match", "[2, 2]", "16 bytes"}},
      {"offsets out of range", file_bytes(w(f32_2x2 + R"(, "data_offsets": [8, 24])"), 16),
       {"'w'", "[8, 24]", "out of range", "16 bytes"}},
      {"begin after end", file_bytes(w(f32_2x2 + R"(, "data_offsets": [16, 0])"), 16),
       {"'w'", "reversed"}},
      {"offsets not a pair", file_bytes(w(f32_2x2 + R"(, "data_offsets": [0])"), 16),
       {"'w'", "data_offsets is not an array"}},
      {"negative offset", file_bytes(w(f32_2x2 + R"(, "data_offsets": [-4, 12])"), 16),
       {"'w'", "not non-negative integers"}},
      {"overlapping tensors",
       file_bytes(R"({"a": {)" + f32_2x2 + R"(, "data_offsets": [0, 16]}, "b": {)" + f32_2x2 +
                      R"(, "data_offsets": [8, 24]}})", 24),
       {"'a' [0, 16]", "'b' [8, 24]", "overlap"}},
      {"entry nested 100000 deep (printed without recursion)",
       file_bytes(R"({"w": )" + std::string(100000, '[') + std::string(100000, ']') + "}", 0),
       {"'w'", "not a JSON object: [[...]]"}},
      {"metadata not strings", file_bytes(R"({"__metadata__": {"epoch": 3}})", 0),
       {"__metadata__", "'epoch'", "not a string"}},
  };
  for (const auto& bad : cases) {
    INFO("case: " << bad.what);
    REQUIRE_THROWS_AS(star::sd35::safetensors::parse(bad.bytes, "bad.safetensors"),
                      checkpoint_error);
    try {
      star::sd35::safetensors::parse(bad.bytes, "bad.safetensors");
    } catch (const checkpoint_error& e) {
      const std::string message = e.what();
      INFO("message: " << message);
      CHECK(message.find("bad.safetensors") != std::string::npos);
      for (const auto& word : bad.words) CHECK(message.find(word) != std::string::npos);
    }
  }
}

TEST_CASE(
    "malformed files: opening reports the path, also for empty files, folders and absent files",
    "[safetensors]") {
  const auto dir = star::test::scratch_dir("malformed_open");
  write_bytes(dir / "truncated.safetensors", file_bytes("{}", 0, 64));
  REQUIRE_THROWS_AS(star::sd35::safetensors::file::open(dir / "truncated.safetensors"),
                    checkpoint_error);
  REQUIRE_THROWS_WITH(checkpoint::open(dir / "truncated.safetensors"),
                      Catch::Contains("truncated.safetensors") && Catch::Contains("past the end"));
  write_bytes(dir / "empty.safetensors", {});
  REQUIRE_THROWS_WITH(checkpoint::open(dir / "empty.safetensors"),
                      Catch::Contains("empty.safetensors") && Catch::Contains("0 bytes"));
  REQUIRE_THROWS_WITH(star::sd35::safetensors::file::open(dir),
                      Catch::Contains("not a regular file"));
  REQUIRE_THROWS_WITH(star::sd35::safetensors::file::open(dir / "absent.safetensors"),
                      Catch::Contains("absent.safetensors") && Catch::Contains("cannot open"));
}

TEST_CASE("parse: valid headers with padding, metadata and zero-size tensors are accepted",
          "[safetensors]") {
  const auto bytes = file_bytes(
      R"({"__metadata__": {"k": "v"},)"
      R"( "e": {"dtype": "BF16", "shape": [0, 3], "data_offsets": [4, 4]},)"
      R"( "w": {"dtype": "I32", "shape": [], "data_offsets": [0, 4]}}   )",
      4);
  const auto layout = star::sd35::safetensors::parse(bytes, "ok.safetensors");
  CHECK(layout.metadata.at("k") == "v");
  REQUIRE(layout.tensors.size() == 2);
  CHECK(layout.tensors.at("e").numel() == 0);
  CHECK(layout.tensors.at("w").type == dtype::i32);
  CHECK(layout.tensors.at("w").numel() == 1);
  CHECK(layout.data_offset == bytes.size() - 4);
}

TEST_CASE("load_into: a Linear and registered buffers load by exact name", "[safetensors]") {
  const auto dir = star::test::scratch_dir("load_into");
  const auto tensors = tiny_module_tensors(11);
  star::sd35::save_safetensors(dir / "model.safetensors", tensors);
  tiny_module module;
  const auto report = star::sd35::load_into(module, checkpoint::open(dir));
  CHECK(report.ok());
  CHECK(report.loaded.size() == 4);
  CHECK(torch::equal(module.proj->weight, tensors[0].second));
  CHECK(torch::equal(module.proj->bias, tensors[1].second));
  CHECK(torch::equal(module.scale, tensors[2].second));
  CHECK(torch::equal(module.steps, tensors[3].second));
  CHECK(module.proj->weight.requires_grad());
  CHECK(report.describe().find("4 of 4 module tensors match") != std::string::npos);
}

TEST_CASE("load_into: options.dtype converts floating tensors only and options.prefix selects",
          "[safetensors]") {
  const auto dir = star::test::scratch_dir("load_into_dtype");
  auto tensors = tiny_module_tensors(12);
  for (auto& [name, tensor] : tensors) name = "transformer." + name;
  tensors.emplace_back("vae.decoder.weight", torch::ones({2}));
  star::sd35::save_safetensors(dir / "all.safetensors", tensors);
  tiny_module module;
  const auto report = star::sd35::load_into(
      module, checkpoint::open(dir / "all.safetensors"),
      {.strict = true, .prefix = "transformer.", .dtype = at::kBFloat16});
  CHECK(report.ok());
  CHECK(module.proj->weight.scalar_type() == at::kBFloat16);
  CHECK(module.scale.scalar_type() == at::kBFloat16);
  CHECK(module.steps.scalar_type() == at::kLong);
  CHECK(torch::equal(module.proj->weight, tensors[0].second.to(torch::kBFloat16)));
  CHECK(torch::equal(module.steps, tensors[3].second));
  // The buffer registry sees the converted tensor too.
  CHECK(module.named_buffers()["scale"].scalar_type() == at::kBFloat16);
  REQUIRE_THROWS_AS(star::sd35::load_into(module, checkpoint::open(dir / "all.safetensors"),
                                          {.strict = true, .prefix = {}, .dtype = at::kInt}),
                    star::option_error);
  REQUIRE_THROWS_WITH(star::sd35::load_into(module, checkpoint::open(dir / "all.safetensors"),
                                            {.strict = true, .prefix = {}, .dtype = at::kInt}),
                      Catch::Contains("load_options.dtype"));
}

TEST_CASE("load_into: missing, unexpected, mis-shaped and wrong-dtype tensors are reported",
          "[safetensors]") {
  const auto dir = star::test::scratch_dir("load_into_report");
  star::sd35::save_safetensors(dir / "bad.safetensors",
                               {{"proj.weight", random_tensor({3, 4}, 13)},  // transposed shape
                                {"proj.bias", random_tensor({4}, 14)},
                                {"scale", torch::tensor({1, 2, 3, 4}, torch::kInt)},
                                {"extra.weight", torch::ones({1})}});
  tiny_module module;
  const auto weight_before = module.proj->weight.clone();  // [4, 3]
  const auto report = star::sd35::load_into(module, checkpoint::open(dir / "bad.safetensors"),
                                            {.strict = false, .prefix = {}, .dtype = {}});
  CHECK_FALSE(report.ok());
  CHECK(report.loaded == std::vector<std::string>{"proj.bias"});
  CHECK(report.missing == std::vector<std::string>{"steps"});
  CHECK(report.unexpected == std::vector<std::string>{"extra.weight"});
  REQUIRE(report.mis_shaped.size() == 1);
  CHECK(report.mis_shaped[0].name == "proj.weight");
  CHECK(report.mis_shaped[0].expected == std::vector<std::int64_t>{4, 3});
  CHECK(report.mis_shaped[0].actual == std::vector<std::int64_t>{3, 4});
  REQUIRE(report.wrong_dtype.size() == 1);
  CHECK(report.wrong_dtype[0].name == "scale");
  CHECK(report.wrong_dtype[0].expected == at::kFloat);
  CHECK(report.wrong_dtype[0].actual == dtype::i32);
  CHECK(torch::equal(module.proj->weight, weight_before));
  CHECK(torch::equal(module.scale, torch::ones({4})));
  CHECK(torch::equal(module.proj->bias,
                     checkpoint::open(dir / "bad.safetensors").tensor("proj.bias")));
}

TEST_CASE("load_into: strict by default, the error lists every problem and the module is unchanged",
          "[safetensors]") {
  const auto dir = star::test::scratch_dir("load_into_strict");
  star::sd35::save_safetensors(dir / "bad.safetensors",
                               {{"proj.weight", random_tensor({3, 4}, 15)},
                                {"proj.bias", random_tensor({4}, 16)},
                                {"scale", torch::tensor({1, 2, 3, 4}, torch::kInt)},
                                {"extra.weight", torch::ones({1})}});
  tiny_module module;
  const auto bias_before = module.proj->bias.clone();  // [4]
  const auto ckpt = checkpoint::open(dir / "bad.safetensors");
  REQUIRE_THROWS_AS(star::sd35::load_into(module, ckpt), checkpoint_error);
  REQUIRE_THROWS_WITH(star::sd35::load_into(module, ckpt),
                      Catch::Contains("bad.safetensors") && Catch::Contains("1 of 4") &&
                          Catch::Contains("missing") && Catch::Contains("steps") &&
                          Catch::Contains("unexpected") && Catch::Contains("extra.weight") &&
                          Catch::Contains("proj.weight: module [4, 3], checkpoint [3, 4]") &&
                          Catch::Contains("scale: module Float, checkpoint I32"));
  CHECK(torch::equal(module.proj->bias, bias_before));
}
