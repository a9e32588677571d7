// Uses the installed e2s headers and library without touching the network.
#include <e2s/e2s.hpp>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

namespace {

// The smallest AutoModel: checks that the installed concept accepts it.
struct TinyModel {
  static e2s::Package load_default_package() {
    return e2s::Package(std::filesystem::temp_directory_path().string());
  }
  static int load_model(e2s::Package&) { return 42; }
};
static_assert(e2s::AutoModel<TinyModel>);

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "consumer: FAILED: " << what << '\n';
    ++failures;
  }
}

}  // namespace

int main() {
  std::cout << "e2s " << e2s::kVersion << ", default block size "
            << e2s::Package::default_blocksize() << '\n';
  check(std::string(e2s::kVersion) == E2S_VERSION, "kVersion matches E2S_VERSION");
  check(e2s::Package::default_blocksize() == 1024 * 1024, "default_blocksize() is 1 MiB");
  check(e2s::exit_status(e2s::Errc::not_found) == 3, "exit_status(not_found) is 3");

  try {
    const std::string root = "/tmp";
    e2s::Package local(root);  // a local root: parsed, nothing fetched
    check(local.root() == root, "Package::root() returns the root as given");
  } catch (const std::exception& e) {
    check(false, std::string("a local root was rejected: ") + e.what());
  }

  try {
    e2s::Package bad("hf://a");  // an HF root needs "namespace/name"
    check(false, "Package(\"hf://a\") did not throw");
  } catch (const e2s::Error& e) {
    check(e.code() == e2s::Errc::invalid_uri,
          std::string("Package(\"hf://a\") threw ") + std::string(e2s::to_string(e.code())) +
              ", expected invalid_uri");
  } catch (const std::exception& e) {
    check(false, std::string("Package(\"hf://a\") threw a non-e2s exception: ") + e.what());
  }

  if (failures != 0) return EXIT_FAILURE;
  std::cout << "consumer: find_package(e2s) works\n";
  return EXIT_SUCCESS;
}
