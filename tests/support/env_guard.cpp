#include "support/env_guard.hpp"

#include <stdlib.h>

#include <ranges>

extern char** environ;

namespace e2s::test {

EnvGuard::EnvGuard(const NamePredicate& scrub) {
  // Names first: unsetting while walking `environ` would change it underfoot.
  std::vector<std::string> names;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    std::string name = text.substr(0, text.find('='));
    if (scrub(name)) names.push_back(std::move(name));
  }
  for (const auto& name : names) unset(name);
}

EnvGuard::~EnvGuard() {
  for (const Saved& saved : std::views::reverse(saved_)) {
    if (saved.value) ::setenv(saved.name.c_str(), saved.value->c_str(), 1);
    else ::unsetenv(saved.name.c_str());
  }
}

void EnvGuard::set(const std::string& name, const std::string& value) {
  save(name);
  ::setenv(name.c_str(), value.c_str(), 1);
}

void EnvGuard::unset(const std::string& name) {
  save(name);
  ::unsetenv(name.c_str());
}

void EnvGuard::save(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  saved_.push_back({name, value ? std::optional<std::string>(value) : std::nullopt});
}

}  // namespace e2s::test
