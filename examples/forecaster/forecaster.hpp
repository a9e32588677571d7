// An example AutoModel: a small residual MLP forecaster, loaded the way
// Earth2Studio's FourCastNet is (AutoModelMixin.load_default_package /
// load_model): its package holds an archive with the network and NumPy files
// with the normalisation statistics.
//
//   auto model = e2s::from_pretrained<e2s::examples::Forecaster>();
//   std::vector<float> next = model.step(state);
#pragma once

#include <e2s/e2s.hpp>

#include <string>
#include <vector>

namespace e2s::examples {

class Forecaster {
 public:
  // Where the model's files live by default: a Hugging Face repository,
  // cached under Package::default_cache("forecaster") with its own names.
  // (HF_ENDPOINT points it at another Hub, such as the demo's.)
  static Package load_default_package();

  // Builds the model from `package`: extracts forecaster.zip once, reads its
  // config and safetensors weights, and the NumPy statistics beside it.
  static Forecaster load_model(Package& package);

  // The variables of the state, in order ("t2m", "u10", ...).
  const std::vector<std::string>& variables() const { return variables_; }
  int step_hours() const { return step_hours_; }

  // One step ahead: x + std * (W2 tanh(W1 (x - mean) / std + b1) + b2).
  // Throws std::invalid_argument when `state` has the wrong size.
  std::vector<float> step(const std::vector<float>& state) const;

 private:
  std::vector<std::string> variables_;
  int step_hours_ = 6;
  std::size_t hidden_ = 0;
  std::vector<float> w1_, b1_, w2_, b2_;  // row-major [hidden x n], [hidden], [n x hidden], [n]
  std::vector<float> mean_, std_;
};

static_assert(AutoModel<Forecaster>);

}  // namespace e2s::examples
