#pragma once
// The tiny fixture MMDiT of tests/data/sd35/sd3_transformer*.{json,safetensors} (3 blocks, dual
// attention in 0 and 1) with its golden weights. Include after <torch/torch.h>, `#undef CHECK`
// and Catch2, as the MMDiT tests do.

#include <memory>
#include <string>

#include "sd35/mmdit/transformer.hpp"
#include "sd35/sd35_fixtures.hpp"

namespace star::test {

/// The golden weights file of the fixture MMDiT.
inline std::string fixture_transformer_weights() {
  return data_path("sd35/sd3_transformer_weights.safetensors");
}

/// The fixture sidecar's transformer config.
inline star::sd35::transformer_config fixture_transformer_config() {
  return star::sd35::transformer_config::from_json(sidecar_config("sd3_transformer.json"));
}

/// The fixture MMDiT with every golden weight loaded (strictly), in eval mode.
inline std::shared_ptr<star::sd35::sd3_transformer> fixture_transformer() {
  auto model = std::make_shared<star::sd35::sd3_transformer>(fixture_transformer_config());
  load_fixture_weights(*model, fixture_transformer_weights());
  model->eval();
  return model;
}

}  // namespace star::test
