#pragma once
/// @file
/// @brief star's core plus the LibTorch adapters (link `star::torch`): the backend
/// `star::libtorch::backend` over `at::Tensor`, zero-copy strided views, and the attention
/// read-out with the fused-kernel log-sum-exp.

#include "star/star.hpp"
#include "star/torch/attention_lse.hpp"
#include "star/torch/backend.hpp"
#include "star/torch/tensor_views.hpp"
