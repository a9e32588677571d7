// Reading the environment: the one place that knows e2s's variables.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace e2s::detail {

// Value of environment variable `name`, or nullopt when unset or empty.
std::optional<std::string> env_value(const char* name);

// True for "1", "on", "yes", "true" (any case), as huggingface_hub reads booleans.
bool env_flag(const char* name);

// CURL_CA_BUNDLE, else SSL_CERT_FILE (the variables curl and OpenSSL read),
// else empty: the system store.
std::filesystem::path default_ca_bundle();

}  // namespace e2s::detail
