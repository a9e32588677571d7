// forecaster [ROOT] [--steps N]: loads the example model from its default
// package (or from ROOT: a folder, http(s)://, hf://, ...) and prints a
// forecast from the package's initial_state.npy.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "forecaster/forecaster.hpp"

int main(int argc, char** argv) {
  std::optional<std::string> root;
  int steps = 4;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--steps" && i + 1 < argc) {
      steps = std::atoi(argv[++i]);
    } else if (arg == "-h" || arg == "--help") {
      std::puts("usage: forecaster [ROOT] [--steps N]\n"
                "Loads the example model (default package: hf://e2s-examples/forecaster)\n"
                "and prints N steps of forecast from the package's initial_state.npy.");
      return 0;
    } else {
      root = arg;
    }
  }
  try {
    using e2s::examples::Forecaster;
    Forecaster model = e2s::from_pretrained<Forecaster>(root);
    e2s::Package package = root ? e2s::Package(*root) : Forecaster::load_default_package();
    std::vector<float> state = e2s::load_npy(package.resolve("initial_state.npy")).to_float32();

    std::printf("%-6s", "hour");
    for (const auto& name : model.variables()) std::printf(" %12s", name.c_str());
    std::printf("\n");
    for (int step = 0; step <= steps; ++step) {
      std::printf("%-6d", step * model.step_hours());
      for (float value : state) std::printf(" %12.3f", value);
      std::printf("\n");
      state = model.step(state);
    }
    return 0;
  } catch (const e2s::Error& error) {
    std::fprintf(stderr, "forecaster: error: %s\n", error.what());
    return e2s::exit_status(error.code());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "forecaster: error: %s\n", error.what());
    return 1;
  }
}
