#pragma once
/// @file
/// @brief Saving and loading a `lora_adapter` as safetensors with the key names of the Python
/// ecosystem, so an adapter trained here loads in peft / diffusers and back:
///
/// - **peft** (`PeftModel.save_pretrained`): a folder with `adapter_model.safetensors`, keys
///   `base_model.model.<module>.lora_A.weight` / `.lora_B.weight`, and `adapter_config.json`
///   (`peft_type` "LORA", `r`, `lora_alpha`, `target_modules`, `init_lora_weights`,
///   `lora_dropout` 0, `bias` "none", `task_type` null, `base_model_name_or_path`).
/// - **diffusers** (`StableDiffusion3Pipeline.save_lora_weights` / `load_lora_weights`): one
///   file `pytorch_lora_weights.safetensors`, keys `transformer.<module>.lora_A.weight` /
///   `.lora_B.weight`; `__metadata__` holds `"format": "pt"` and `"lora_adapter_metadata"`,
///   the LoraConfig as JSON with every key prefixed `transformer.` (as diffusers >= 0.34
///   writes it). A diffusers file WITHOUT that metadata (older diffusers, most files on the
///   Hub) has no alpha: loading assumes alpha = r (scale 1), as diffusers itself does.
///
/// Loading supports one rank for all modules (no peft `rank_pattern` / `alpha_pattern`), LoRA
/// on the transformer only (a diffusers file with `text_encoder.*` keys is rejected), and
/// peft's key names (not kohya's `lora_unet_*` / `lora_down` / `.alpha`).

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <memory>
#include <string>

#include "sd35/lora/adapter.hpp"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace star::sd35 {

/// @brief The two on-disk layouts.
enum class lora_format {
  peft,       ///< `adapter_model.safetensors` + `adapter_config.json`
  diffusers,  ///< `pytorch_lora_weights.safetensors` with the config in `__metadata__`
};

/// @brief peft's weights file name, `adapter_model.safetensors`.
inline constexpr const char* peft_weights_name = "adapter_model.safetensors";
/// @brief peft's config file name, `adapter_config.json`.
inline constexpr const char* peft_config_name = "adapter_config.json";
/// @brief diffusers' LoRA file name, `pytorch_lora_weights.safetensors`.
inline constexpr const char* diffusers_weights_name = "pytorch_lora_weights.safetensors";

/// @brief Writes `adapter` in `format` into `folder` (created if needed), tensors in the
/// adapter's dtype. Files are written atomically, and peft's weights and config together: when
/// saving fails, the files already in `folder` are left as they were and no partial file
/// remains.
/// @param adapter                  the adapter (its options give r, alpha, targets, init)
/// @param folder                   the output folder
/// @param format                   peft or diffusers
/// @param base_model_name_or_path  peft's `base_model_name_or_path` (null in the JSON when
///                                 empty)
/// @throws checkpoint_error naming the file on an I/O failure
void save_lora(const lora_adapter& adapter, const std::filesystem::path& folder,
               lora_format format, const std::string& base_model_name_or_path = {});

/// @brief What `load_lora` read.
struct loaded_lora {
  std::shared_ptr<lora_adapter> adapter;   ///< attached to the model, weights from the file
  lora_format format = lora_format::peft;  ///< the layout found
  std::filesystem::path file;              ///< the .safetensors file read
  bool alpha_from_file = true;  ///< false: a diffusers file without metadata, alpha = r assumed
};

/// @brief Reads a LoRA saved by `save_lora`, peft or diffusers and attaches it to `model`.
/// The format follows from the file names and the key prefixes; rank, alpha, targets and init
/// come from the config (targets: the file's module names when there is none). Every key must
/// be `<prefix><module>.lora_A.weight` / `.lora_B.weight` of an adapted Linear of `model`
/// with shape [r, in] / [out, r], and every adapted Linear must have both.
/// @param model  the module to adapt (its parameters are frozen, see `lora_adapter`; only once
///   every check passed: when loading throws, `model` is unchanged)
/// @param path   a folder holding `adapter_model.safetensors` (+ `adapter_config.json`) or
///   `pytorch_lora_weights.safetensors`, or either .safetensors file itself
/// @param dtype  the adapter's dtype (the file's tensors are converted)
/// @throws checkpoint_error naming the file and the key (shapes printed: expected vs actual)
///   on a missing file or config, an unknown, missing or mis-shaped key, a bad config value
loaded_lora load_lora(torch::nn::Module& model, const std::filesystem::path& path,
                      at::ScalarType dtype = at::kFloat);

}  // namespace star::sd35
