// Environment variables changed for one scope and put back when it ends, so
// that one test's settings (and the runner's own) never reach another test.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace e2s::test {

// Any number of variables set or unset for one scope. Each change is undone
// at destruction, latest first, so a name changed twice ends with the value
// it had before the guard.
class EnvGuard {
 public:
  using NamePredicate = std::function<bool(const std::string& name)>;

  EnvGuard() = default;
  // Unsets, first, every variable of this process whose name `scrub` accepts:
  // the runner's own tokens, endpoints or proxies must not leak into a test.
  explicit EnvGuard(const NamePredicate& scrub);
  ~EnvGuard();
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

  void set(const std::string& name, const std::string& value);
  void unset(const std::string& name);

 private:
  struct Saved {
    std::string name;
    std::optional<std::string> value;  // nullopt: it was unset
  };
  void save(const std::string& name);

  std::vector<Saved> saved_;
};

// One variable set (or, with nullopt, unset) for one scope: an EnvGuard of a
// single change, for the many tests and fixtures that need no more than one
// declaration.
class ScopedEnv {
 public:
  ScopedEnv(const std::string& name, const std::optional<std::string>& value) {
    if (value) guard_.set(name, *value);
    else guard_.unset(name);
  }

 private:
  EnvGuard guard_;
};

}  // namespace e2s::test
