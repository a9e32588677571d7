// The AutoModel contract: model code that knows where its files live
// (load_default_package) and how to build itself from them (load_model).
#pragma once

#include <concepts>
#include <optional>
#include <string>
#include <utility>

#include "e2s/package.hpp"

namespace e2s {

template <class M>
concept AutoModel = requires(Package& package) {
  { M::load_default_package() } -> std::same_as<Package>;
  M::load_model(package);
};

// Builds M from its default package, or from `root` when given.
// Returns whatever M::load_model returns; throws what Package throws.
template <AutoModel M>
auto from_pretrained(std::optional<std::string> root = {}) {
  Package package = root ? Package(std::move(*root)) : M::load_default_package();
  return M::load_model(package);
}

}  // namespace e2s
