#include "progress_bar.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "util/text.hpp"

namespace e2s::cli {

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
  if (files_.empty()) started_ = std::chrono::steady_clock::now();
  FileState& state = files_[progress.file];
  state.done = progress.bytes_done;
  state.total = progress.bytes_total;
  state.finished = state.finished || progress.finished;
  draw(progress.finished);
}

void ProgressBar::draw(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;

  std::uint64_t done = 0, total = 0;
  bool all_sized = true;
  std::size_t finished = 0;
  for (const auto& [name, state] : files_) {
    done += state.done;
    if (state.total) total += *state.total;
    else all_sized = false;
    if (state.finished) ++finished;
  }
  const double elapsed = std::max(1e-3, std::chrono::duration<double>(now - started_).count());
  const double rate = static_cast<double>(done) / elapsed;

  std::string label = files_.size() == 1 ? files_.begin()->first
                                         : std::to_string(finished).append("/").append(
                                               std::to_string(files_.size())).append(" files");
  std::string bar, eta;
  std::string amounts = detail::human_bytes(done);
  if (all_sized && total > 0) {
    constexpr int kWidth = 24;
    const double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
    const int filled = static_cast<int>(fraction * kWidth);
    char percent[8];
    std::snprintf(percent, sizeof percent, "%3d%% ", static_cast<int>(fraction * 100));
    // Built with append: g++ 12 at -O3 warns falsely (-Wrestrict) about
    // "literal" + std::string.
    bar.append("[").append(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(kWidth - filled), '.').append("] ").append(percent);
    amounts.append("/").append(detail::human_bytes(total));
    if (rate > 0 && done < total) {
      eta.append(" ETA ").append(human_duration(static_cast<double>(total - done) / rate));
    }
  }
  std::fprintf(out_, "\r\033[K%s %s%s  %s/s%s", label.c_str(), bar.c_str(), amounts.c_str(),
               detail::human_bytes(static_cast<std::uint64_t>(rate)).c_str(), eta.c_str());
  std::fflush(out_);
}

void ProgressBar::clear() {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  if (drawn_) {
    draw(/*force=*/true);
    std::fputc('\n', out_);
    std::fflush(out_);
    drawn_ = false;
  }
  files_.clear();
}

}  // namespace e2s::cli
