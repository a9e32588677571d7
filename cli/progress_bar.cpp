#include "progress_bar.hpp"

#include <algorithm>
#include <cmath>

namespace e2s::cli {

std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024.0 && unit < 4) {
    bytes /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);
  return text;
}

namespace {

std::string human_duration(double seconds) {
  char text[32];
  const long total = std::lround(seconds);
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%ldh%02ldm", total / 3600, (total % 3600) / 60);
  } else if (total >= 60) {
    std::snprintf(text, sizeof text, "%ldm%02lds", total / 60, total % 60);
  } else {
    std::snprintf(text, sizeof text, "%lds", total);
  }
  return text;
}

}  // namespace

ProgressBar::ProgressBar(std::FILE* out, bool enabled) : out_(out), enabled_(enabled) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::update(const Progress& progress) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  if (progress.file != file_) {
    if (drawn_) std::fputc('\n', out_);  // keep the finished file's last line
    file_ = progress.file;
    started_ = std::chrono::steady_clock::now();
    drawn_ = false;
  }
  draw(progress, progress.finished);
}

void ProgressBar::draw(const Progress& progress, bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;

  const double elapsed = std::max(1e-3, std::chrono::duration<double>(now - started_).count());
  const double rate = static_cast<double>(progress.bytes_done) / elapsed;
  constexpr int kWidth = 24;
  std::string bar;
  std::string amounts = human_bytes(static_cast<double>(progress.bytes_done));
  std::string eta;
  if (progress.bytes_total && *progress.bytes_total > 0) {
    const double fraction =
        std::min(1.0, static_cast<double>(progress.bytes_done) / static_cast<double>(*progress.bytes_total));
    const int filled = static_cast<int>(fraction * kWidth);
    bar = "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
    char percent[8];
    std::snprintf(percent, sizeof percent, "%3d%% ", static_cast<int>(fraction * 100));
    bar += percent;
    amounts += "/" + human_bytes(static_cast<double>(*progress.bytes_total));
    if (rate > 0 && !progress.finished) {
      eta = " ETA " + human_duration(static_cast<double>(*progress.bytes_total - std::min(
                                                              progress.bytes_done, *progress.bytes_total)) /
                                     rate);
    }
  }
  std::fprintf(out_, "\r\033[K%s %s%s  %s/s%s", progress.file.c_str(), bar.c_str(), amounts.c_str(),
               human_bytes(rate).c_str(), eta.c_str());
  std::fflush(out_);
}

void ProgressBar::clear() {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  if (drawn_) {
    std::fputc('\n', out_);
    std::fflush(out_);
    drawn_ = false;
  }
  file_.clear();
}

}  // namespace e2s::cli
