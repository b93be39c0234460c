#pragma once
/// @file
/// @brief Everything of the spatio-temporal allocation (docs/math.md §4).

#include "star/allocation/allocate.hpp"
#include "star/allocation/allocation_options.hpp"
#include "star/allocation/mixing_schedule.hpp"
#include "star/allocation/relevance_map.hpp"
#include "star/allocation/spatial_advantage.hpp"
#include "star/allocation/temporal_weights.hpp"
#include "star/allocation/upsample.hpp"
#include "star/allocation/water_filling.hpp"
