// The libFuzzer entry point of every parser target: E2S_FUZZ_TARGET, a name
// from e2s::fuzz::kTargets, picks the check at build time, so a target and
// the replay test always apply the same rules.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "parser_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const e2s::fuzz::Check check = e2s::fuzz::find_check(E2S_FUZZ_TARGET);
  if (check == nullptr) {
    std::fprintf(stderr, "e2s fuzz: no check named \"%s\"\n", E2S_FUZZ_TARGET);
    std::abort();
  }
  const std::string problem = check(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!problem.empty()) {
    // abort() makes libFuzzer save the input as a crash artifact.
    std::fprintf(stderr, "e2s fuzz %s: rule broken: %s\n", E2S_FUZZ_TARGET, problem.c_str());
    std::abort();
  }
  return 0;
}
