#pragma once
/// @file
/// @brief Everything of attention-map extraction (docs/math.md §3).

#include "star/attention/full_softmax.hpp"
#include "star/attention/lse_relevance_accumulator.hpp"
#include "star/attention/options.hpp"
#include "star/attention/probabilities.hpp"
#include "star/attention/relevance.hpp"
#include "star/attention/relevance_accumulator.hpp"
#include "star/attention/row_lse.hpp"
#include "star/attention/smoothing.hpp"
#include "star/attention/text_selection.hpp"
