#pragma once
/// @file
/// @brief Everything of the Flow-GRPO SDE step and the spatially resolved policy objective
/// (docs/math.md §5).

#include "star/objective/flow_schedule.hpp"
#include "star/objective/policy_gradient.hpp"
#include "star/objective/policy_objective.hpp"
#include "star/objective/reference_kl.hpp"
#include "star/objective/sde_step.hpp"
#include "star/objective/token_log_prob.hpp"
#include "star/objective/token_reduction.hpp"
