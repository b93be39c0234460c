#pragma once
/// @file
/// @brief Everything in star's framework-free core: the backend concepts, shapes and errors,
/// the composite operations, the token layout, the reference backend, and the four operator
/// families (advantages, core tokens, attention maps, allocation, objective). Standard library
/// only; the Eigen backend is `star/eigen.hpp`.

#include "star/backends/reference.hpp"
#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/nd_index.hpp"
#include "star/core/ops.hpp"
#include "star/core/shape.hpp"
#include "star/core/token_layout.hpp"
#include "star/objective/flow_schedule.hpp"

// The four operator families.
#include "star/advantage/group_advantage.hpp"
#include "star/allocation/all.hpp"
#include "star/attention/all.hpp"
#include "star/objective/all.hpp"
#include "star/tokens/attention_topk.hpp"
#include "star/tokens/select_core_tokens.hpp"

/// @brief STAR: spatiotemporal adaptive reward allocation for RL post-training of diffusion and
/// flow models, written once over the tensor-backend concepts.
namespace star {
/// @brief Composite tensor operations written once over the backend concepts.
namespace ops {}
}  // namespace star
