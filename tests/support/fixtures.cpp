#include "support/fixtures.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstdint>
#include <stdexcept>

#include "support/temp_dir.hpp"

namespace e2s::test {

namespace fs = std::filesystem;

std::string make_bytes(std::size_t size, unsigned seed) {
  std::string bytes(size, '\0');
  std::uint32_t state = seed * 2654435761u + 1;
  for (char& c : bytes) {
    state = state * 1664525u + 1013904223u;
    c = static_cast<char>(state >> 24);
  }
  return bytes;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string hex(const unsigned char* data, unsigned size) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < size; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

std::string md5_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_md5(), nullptr);
  return hex(digest, size);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    if (end == std::string::npos) {
      ADD_FAILURE() << "output does not end with a newline: " << text;
      out.push_back(text.substr(start));
      break;
    }
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

void expect_one_error_line(const CliRun& run) {
  EXPECT_EQ(run.err.rfind("e2s: error: ", 0), 0u) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
}

e2s::Error error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const e2s::Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an e2s::Error";
  return e2s::Error(e2s::Errc::other, "no error");
}

std::vector<fs::path> cached_files(const fs::path& cache) {
  std::vector<fs::path> files;
  if (!fs::exists(cache)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(cache)) {
    const std::string path = entry.path().string();
    if (entry.is_regular_file() && (!contains(path, "/.e2s/") || contains(path, "/.e2s/files/"))) {
      files.push_back(entry.path());
    }
  }
  return files;
}

fs::path data_file(const fs::path& storage, const std::string& file_path) {
  return storage / ".e2s" / "files" / file_path;
}

fs::path storage_of(const fs::path& data, const std::string& file_path) {
  fs::path storage = data;
  for (const auto& part : fs::path(file_path)) {
    (void)part;
    storage = storage.parent_path();
  }
  return storage.parent_path().parent_path();
}

nlohmann::json cached_meta(const fs::path& storage, const std::string& file_path) {
  const fs::path folder = storage / ".e2s" / "meta";
  if (!fs::is_directory(folder)) return nlohmann::json();
  for (const auto& entry : fs::directory_iterator(folder)) {
    nlohmann::json data = nlohmann::json::parse(TempDir::read_file(entry.path()));
    if (data.value("file_path", "") == file_path) return data;
  }
  return nlohmann::json();
}

std::vector<nlohmann::json> recorded_requests(const nlohmann::json& stats) {
  std::vector<nlohmann::json> out;
  for (const auto& request : stats.at("requests")) out.push_back(request);
  return out;
}

std::vector<nlohmann::json> recorded_requests(const TestServer& server) {
  return recorded_requests(server.stats());
}

std::vector<nlohmann::json> recorded_requests(const TestServer& server, const std::string& host) {
  std::vector<nlohmann::json> out;
  for (auto& request : recorded_requests(server)) {
    if (request.at("host") == host) out.push_back(std::move(request));
  }
  return out;
}

e2s::PackageOptions quick_retry_options(const fs::path& storage) {
  e2s::PackageOptions o;
  o.cache_options.cache_storage = storage;
  o.retry.initial_backoff = std::chrono::milliseconds(1);
  o.retry.max_backoff = std::chrono::milliseconds(20);
  return o;
}

namespace {

std::size_t append_to_string(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

}  // namespace

nlohmann::json get_json(const std::string& url) {
  std::string reply;
  CURL* h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &append_to_string);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
  const CURLcode code = curl_easy_perform(h);
  curl_easy_cleanup(h);
  if (code != CURLE_OK) throw std::runtime_error("GET " + url + ": " + curl_easy_strerror(code));
  return nlohmann::json::parse(reply);
}

}  // namespace e2s::test
