#include "sd35/lora/options.hpp"

#include <cmath>
#include <set>

#include "star/core/error.hpp"

namespace star::sd35 {

std::vector<std::string> flow_grpo_lora_targets() {
  return {"attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out",
          "attn.to_k",       "attn.to_out.0",   "attn.to_q",       "attn.to_v"};
}

bool matches_lora_target(std::string_view module_name, std::string_view suffix) {
  if (suffix.empty() || module_name.size() < suffix.size()) return false;
  if (!module_name.ends_with(suffix)) return false;
  const auto before = module_name.size() - suffix.size();
  return before == 0 || module_name[before - 1] == '.';
}

void lora_options::validate() const {
  if (rank < 1) throw option_error("lora_options.rank must be >= 1, got " + std::to_string(rank));
  if (!std::isfinite(alpha) || alpha <= 0.0)
    throw option_error("lora_options.alpha must be finite and > 0, got " + std::to_string(alpha));
  if (target_modules.empty())
    throw option_error("lora_options.target_modules must name at least one module suffix");
  std::set<std::string> seen;
  for (const auto& target : target_modules) {
    if (target.empty() || target.front() == '.' || target.back() == '.')
      throw option_error("lora_options.target_modules: '" + target +
                         "' must be a non-empty module-name suffix without a leading or "
                         "trailing '.'");
    if (!seen.insert(target).second)
      throw option_error("lora_options.target_modules: '" + target + "' is listed twice");
  }
  if (!at::isFloatingType(dtype))
    throw option_error(std::string("lora_options.dtype must be a floating type, got ") +
                       c10::toString(dtype));
}

}  // namespace star::sd35
