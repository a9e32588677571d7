#include "forecaster/forecaster.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace e2s::examples {
namespace {

// A tensor of the checkpoint as floats, checked against the expected shape
// so that a package of another model fails here and not as wrong numbers.
std::vector<float> read(const SafeTensors& weights, const std::string& name,
                        const std::vector<std::int64_t>& shape) {
  Tensor tensor = weights.get(name);
  if (tensor.shape() != shape) {
    throw Error(Errc::integrity, "weights tensor " + name + " has the wrong shape for this model");
  }
  return tensor.to_float32();
}

std::vector<float> read_vector(Package& package, const std::string& file, std::size_t size) {
  Tensor tensor = load_npy(package.resolve(file));
  if (tensor.shape() != std::vector<std::int64_t>{static_cast<std::int64_t>(size)}) {
    throw Error(Errc::integrity, file + " in " + package.root() + " does not hold " +
                                     std::to_string(size) + " values, one per variable");
  }
  return tensor.to_float32();
}

}  // namespace

Package Forecaster::load_default_package() {
  PackageOptions options;
  options.cache_options.cache_storage = Package::default_cache("forecaster");
  options.cache_options.same_names = true;
  return Package("hf://e2s-examples/forecaster", options);
}

Forecaster Forecaster::load_model(Package& package) {
  // Earth2Studio unzips fcn.zip on every load_model; this extracts it once.
  const std::filesystem::path folder = package.resolve_extracted("forecaster.zip") / "forecaster";

  std::ifstream config_file(folder / "config.json");
  const nlohmann::json config = nlohmann::json::parse(config_file, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object() || !config.contains("variables") || !config.contains("hidden")) {
    throw Error(Errc::integrity, "forecaster.zip in " + package.root() +
                                     " has no valid config.json (variables, hidden)");
  }

  Forecaster model;
  model.variables_ = config.at("variables").get<std::vector<std::string>>();
  model.hidden_ = config.at("hidden").get<std::size_t>();
  model.step_hours_ = config.value("dt_hours", 6);
  const auto n = static_cast<std::int64_t>(model.variables_.size());
  const auto h = static_cast<std::int64_t>(model.hidden_);

  const SafeTensors weights = SafeTensors::open(folder / "weights.safetensors");
  model.w1_ = read(weights, "w1", {h, n});
  model.b1_ = read(weights, "b1", {h});
  model.w2_ = read(weights, "w2", {n, h});
  model.b2_ = read(weights, "b2", {n});
  model.mean_ = read_vector(package, "global_means.npy", model.variables_.size());
  model.std_ = read_vector(package, "global_stds.npy", model.variables_.size());
  return model;
}

std::vector<float> Forecaster::step(const std::vector<float>& state) const {
  const std::size_t n = variables_.size();
  if (state.size() != n) {
    throw std::invalid_argument("the state has " + std::to_string(state.size()) + " values; the model takes " +
                                std::to_string(n));
  }
  std::vector<float> normalised(n), hidden(hidden_), next(n);
  for (std::size_t i = 0; i < n; ++i) normalised[i] = (state[i] - mean_[i]) / std_[i];
  for (std::size_t j = 0; j < hidden_; ++j) {
    float sum = b1_[j];
    for (std::size_t i = 0; i < n; ++i) sum += w1_[j * n + i] * normalised[i];
    hidden[j] = std::tanh(sum);
  }
  for (std::size_t i = 0; i < n; ++i) {
    float sum = b2_[i];
    for (std::size_t j = 0; j < hidden_; ++j) sum += w2_[i * hidden_ + j] * hidden[j];
    next[i] = state[i] + std_[i] * sum;
  }
  return next;
}

}  // namespace e2s::examples
