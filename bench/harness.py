#!/usr/bin/env python3
"""The e2s benchmark driver (bench/run.sh runs it; see bench/README.md).

    harness.py --workdir DIR --e2s BIN --hit-bench BIN [--quick] [--runs N]
               [--only W1,W2,W3,W4] [--results FILE] [--python BIN] [--no-drop]

Generates the data in DIR, serves it with nginx on loopback (plain, and capped
at 50 MB/s per connection), puts a 20 ms delaying relay in front for W3, runs
e2s and its peers several times in alternation with a cold cache each run, and
prints (and writes as Markdown to --results) median wall time, peak RSS, the
bytes nginx sent per byte of the files fetched and the ratio of e2s to each
peer against the targets of issues #6 and #14.

Each run is one process, launched through GNU time (for its peak RSS) with
posix_spawn and reaped with wait4; the wall time is measured around it here.
Standard library only.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1024 * 1024
GiB = 1024 * MiB
RATE_LIMIT = 50_000_000  # W2: bytes/s per connection (nginx "50m" would be 50 MiB/s)
DELAY_MS = 20.0  # W3: added before each response
W3_FILES = 200
RUN_TIMEOUT = 900  # seconds; a run that takes longer is killed and fails
SENT_LIMIT = 1.02  # W1, W2: body bytes nginx sent / bytes of the file (issue #14)
# nginx logs an aborted request when it next touches the dead socket, which
# can be a little after the client has exited: the access log is read once it
# has stopped growing for LOG_QUIET s, or after LOG_MAX_WAIT s whatever it does.
LOG_QUIET = 0.15
LOG_MAX_WAIT = 2.0


def log(message):
    print(message, flush=True)


# --- measuring -----------------------------------------------------------------


class Sample:
    def __init__(self, wall, rss_kib, cpu, code, stdout, stderr):
        self.wall = wall
        self.rss_kib = rss_kib
        self.cpu = cpu
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        self.server_bytes = None  # body bytes nginx sent during the run (None: not served)


RUNNING = {"pid": None}  # the measured process, killed when the harness is stopped


def on_stop(signum, _frame):
    pid = RUNNING["pid"]
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the servers


def which(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not path:
        raise SystemExit(f"bench: {name} not found (bench/run.sh installs it)")
    return path


def run_measured(argv, scratch, env, timeout=RUN_TIMEOUT, rss=True):
    """Runs argv once; returns its wall time, peak RSS, CPU time and output.

    The peak RSS comes from GNU time (`/usr/bin/time -f %M`) as the launcher:
    Linux starts a new program's ru_maxrss at the peak RSS of the process that
    exec'd it, so a program spawned straight from this (large) Python process
    would report at least Python's own peak. time is small. With rss=False the
    program is spawned directly (no launcher in the wall time; RSS reported as 0).
    """
    exe = argv[0] if os.path.isabs(argv[0]) else which(argv[0])
    out_path = os.path.join(scratch, "stdout")
    err_path = os.path.join(scratch, "stderr")
    rss_path = os.path.join(scratch, "rss")
    command = [exe, *argv[1:]]
    if rss:
        command = [which("time"), "-f", "%M", "-o", rss_path, "--", *command]
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, out_path, flags, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, err_path, flags, 0o644),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(command[0], command, env, file_actions=actions)
    RUNNING["pid"] = pid
    timer = threading.Timer(timeout, lambda: os.kill(pid, signal.SIGKILL))
    timer.start()
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    RUNNING["pid"] = None
    timer.cancel()
    with open(out_path, errors="replace") as f:
        stdout = f.read()
    with open(err_path, errors="replace") as f:
        stderr = f.read()
    rss_kib = 0
    if rss:
        try:
            with open(rss_path) as f:
                rss_kib = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
    # wait4's CPU times cover the process and the children it reaped (time's
    # own share is negligible).
    return Sample(wall, rss_kib, usage.ru_utime + usage.ru_stime,
                  os.waitstatus_to_exitcode(status), stdout, stderr)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(8 * MiB)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def read_through(path):
    """Pulls a file into the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 * MiB):
            pass


class PageCache:
    """sync before every run; drops the page cache too when the kernel lets us."""

    def __init__(self, enabled):
        self.can_drop = False
        self.why = "disabled with --no-drop"
        if not enabled:
            return
        try:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            self.can_drop = True
            self.why = "dropped before each run (sync; echo 3 > /proc/sys/vm/drop_caches)"
        except OSError as e:
            self.why = f"not dropped: /proc/sys/vm/drop_caches is not writable here ({e.strerror})"

    def cool(self, warm_files):
        os.sync()
        if self.can_drop:
            try:
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
            except OSError:
                pass
        # The served files (and the local copy dd reads) are pulled back in,
        # so that the server side is never the disk: what is cold is the
        # client's cache and the written pages of earlier runs.
        for path in warm_files:
            read_through(path)


# --- data ----------------------------------------------------------------------


def write_random(path, size):
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            block = os.urandom(min(16 * MiB, left))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def w3_sizes(max_size):
    """W3_FILES sizes spread log-uniformly from 4 KiB to max_size."""
    low = 4096
    return [round(low * (max_size / low) ** (i / (W3_FILES - 1))) for i in range(W3_FILES)]


class Data:
    def __init__(self, root, w1_size, w2_size, w3_max, workloads):
        self.root = root
        os.makedirs(os.path.join(root, "pkg"), exist_ok=True)
        self.files = {}  # relative path -> (size, sha256)
        wanted = []
        if "W1" in workloads:
            wanted.append(("big.bin", w1_size))
        if "W2" in workloads:
            wanted.append(("w2.bin", w2_size))
        if "W3" in workloads or "W4" in workloads:
            wanted += [(f"pkg/f{i:03d}", size) for i, size in enumerate(w3_sizes(w3_max))]
        total = sum(size for _, size in wanted)
        log(f"bench: generating {len(wanted)} files, {total / MiB:.0f} MiB of random bytes")
        for name, size in wanted:
            self.files[name] = (size, write_random(os.path.join(root, name), size))
        self.w3_names = [f"f{i:03d}" for i in range(W3_FILES)]

    def path(self, name):
        return os.path.join(self.root, name)

    def check(self, name, path, full=True):
        size, digest = self.files[name]
        if not os.path.isfile(path):
            raise RuntimeError(f"missing output {path}")
        if os.path.getsize(path) != size:
            raise RuntimeError(f"{path}: {os.path.getsize(path)} bytes, expected {size}")
        if full and sha256_file(path) != digest:
            raise RuntimeError(f"{path}: sha256 differs from the served file")


# --- servers -------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {what} exited at start (status {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: {what} does not listen on port {port}")


def wait_settled(path, quiet=LOG_QUIET, max_wait=LOG_MAX_WAIT):
    """Waits until the file's size has not changed for `quiet` s (at most `max_wait` s)."""
    def size():
        try:
            return os.path.getsize(path)
        except OSError:
            return -1
    start = changed = time.monotonic()
    last = size()
    while True:
        time.sleep(0.025)
        now = time.monotonic()
        current = size()
        if current != last:
            last, changed = current, now
        if now - changed >= quiet or now - start >= max_wait:
            return


def sum_sent(chunk):
    """Sums an access log chunk of one number per line; returns (sum, bytes consumed).

    Only whole lines count: a line nginx has not finished writing is left for
    the next read (the consumed length says where to start it).
    """
    end = chunk.rfind(b"\n") + 1
    # Every line is $body_bytes_sent, a number even for a request that sent nothing.
    return sum(int(line) for line in chunk[:end].split() if line.isdigit()), end


class Servers:
    def __init__(self, workdir, data_root, python):
        self.procs = []
        self.nginx = None
        try:
            self.start(workdir, data_root, python)
        except BaseException:
            self.stop()
            raise

    def start(self, workdir, data_root, python):
        self.prefix = os.path.join(workdir, "nginx")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.prefix, "tmp", sub), exist_ok=True)
        self.plain_port = free_port()
        self.limited_port = free_port()
        self.access_log = os.path.join(self.prefix, "sent.log")  # see log_offset
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.nginx_conf(data_root))
        nginx = which("nginx")
        error_log = os.path.join(self.prefix, "error.log")
        self.nginx = subprocess.Popen([nginx, "-p", self.prefix, "-c", conf, "-e", error_log],
                                      stdin=subprocess.DEVNULL)
        self.procs.append(self.nginx)
        wait_port(self.plain_port, self.nginx, "nginx")
        wait_port(self.limited_port, self.nginx, "nginx")
        self.proxy_port = self.start_proxy(python, DELAY_MS)
        self.zero_proxy_port = self.start_proxy(python, 0.0)  # for the harness check

    def nginx_conf(self, data_root):
        tmp = os.path.join(self.prefix, "tmp")
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the temp dir
        return f"""{user}worker_processes 2;
daemon off;
master_process on;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  # One line per request, written when it ends (aborted ones too): the body
  # bytes nginx wrote to the socket. Both servers log here; the relay of W3
  # reaches the plain one.
  log_format sent '$body_bytes_sent';
  access_log {self.access_log} sent;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 100000;
  default_type application/octet-stream;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{self.plain_port};
    root {data_root};
  }}
  server {{
    listen 127.0.0.1:{self.limited_port};
    root {data_root};
    limit_rate {RATE_LIMIT};
  }}
}}
"""

    def log_offset(self):
        """Where the access log ends now: what a run's sent_since starts from."""
        try:
            return os.path.getsize(self.access_log)
        except OSError:
            return 0

    def sent_since(self, offset):
        """Body bytes nginx sent in the requests logged after `offset`, and the new offset."""
        wait_settled(self.access_log)
        try:
            with open(self.access_log, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except OSError:
            return None, offset
        total, used = sum_sent(chunk)
        return total, offset + used

    def start_proxy(self, python, delay_ms):
        proc = subprocess.Popen(
            [python, os.path.join(HERE, "delay_proxy.py"), "--upstream",
             f"127.0.0.1:{self.plain_port}", "--delay-ms", str(delay_ms)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        line = proc.stdout.readline()
        match = re.match(r"PORT (\d+)", line)
        if not match:
            raise SystemExit("bench: the delay proxy did not start")
        return int(match.group(1))

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if proc is not self.nginx else signal.SIGQUIT)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- tools ---------------------------------------------------------------------


class Tool:
    """One row of a workload: how to run it and how to check what it wrote."""

    def __init__(self, name, display, argv, outputs, is_e2s=False, primary=False, served=True):
        self.name = name
        self.display = display  # command with placeholders, for the report
        self.argv = argv        # out_dir -> argv
        self.outputs = outputs  # (out_dir, stdout) -> [(data name, path)]
        self.is_e2s = is_e2s
        self.primary = primary  # the e2s row ratios are computed from
        self.served = served    # fetches from nginx (dd copies a local file)
        self.file_bytes = None  # bytes of the files a run fetches (set by run_workload)
        self.samples = []


def stdout_paths(names):
    def outputs(_out, stdout):
        paths = stdout.split("\n")[:-1]
        if len(paths) != len(names):
            raise RuntimeError(f"printed {len(paths)} paths for {len(names)} files")
        return list(zip(names, paths))
    return outputs


def in_dir(names, local_names=None):
    local_names = local_names or [os.path.basename(n) for n in names]
    return lambda out, _stdout: [(n, os.path.join(out, l)) for n, l in zip(names, local_names)]


def e2s_tool(name, e2s, root, files, data_names, extra=()):
    shown = " ".join(["e2s --cache-dir D -q", *extra, "resolve", "ROOT",
                      " ".join(files) if len(files) < 3 else f"{files[0]} ... {files[-1]}"])
    return Tool(name, shown,
                lambda out: [e2s, "--cache-dir", out, "-q", *extra, "resolve", root, *files],
                stdout_paths(data_names), is_e2s=True, primary=not extra)


def fsspec_tool(python, root, files, data_names):
    shown = ("python3 bench/fsspec_path.py --cache-dir D ROOT " +
             (" ".join(files) if len(files) < 3 else f"{files[0]} ... {files[-1]}"))
    return Tool("fsspec (Earth2Studio)", shown,
                lambda out: [python, os.path.join(HERE, "fsspec_path.py"), "--cache-dir", out,
                             root, *files],
                stdout_paths(data_names))


ARIA2_QUIET = ["--no-conf", "-q", "--allow-overwrite=true", "--auto-file-renaming=false",
               "--summary-interval=0"]


def e2s_default_connections(e2s):
    """The default of `e2s --connections`, read from its --help (None if not found)."""
    text = subprocess.run([e2s, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True).stdout
    match = re.search(r"--connections.*?default (\d+)", text, re.S)
    return int(match.group(1)) if match else None


def single_file_tools(name, url_root, e2s, python, data, with_dd, variants):
    url = url_root + name
    tools = [e2s_tool("e2s", e2s, url_root, [name], [name])]
    for connections in variants:
        tools.append(e2s_tool(f"e2s --connections {connections}", e2s, url_root, [name], [name],
                              extra=("--connections", str(connections))))
    tools += [
        Tool("curl", "curl -s -o D/f URL",
             lambda out: ["curl", "-q", "-s", "-S", "-f", "-o", os.path.join(out, name), url],
             in_dir([name])),
        Tool("aria2c -x16", "aria2c -x16 -s16 -k1M --file-allocation=none -d D -o f URL",
             lambda out: ["aria2c", "-x16", "-s16", "-k1M", "--file-allocation=none",
                          *ARIA2_QUIET, "-d", out, "-o", name, url],
             in_dir([name])),
        fsspec_tool(python, url_root, [name], [name]),
    ]
    if with_dd:
        # curl made as durable as e2s (and dd): the file fsynced before it counts.
        tools.insert(len(tools) - 2, Tool(
            "curl + fsync", "sh -c 'curl -s -o D/f URL && sync D/f'",
            lambda out: ["sh", "-c", 'curl -q -s -S -f -o "$1" "$2" && sync "$1"', "sh",
                         os.path.join(out, name), url],
            in_dir([name])))
        src = data.path(name)
        # The disk's limit: a local copy written and fsynced. bs=4M as the
        # issue asks, and bs=1M because on some kernels 4 MiB writes cost far
        # more system time than the disk needs; the target uses the faster.
        for bs in ("4M", "1M"):
            tools.append(Tool(f"dd bs={bs} (disk limit)",
                              f"dd if=LOCAL_COPY of=D/f bs={bs} conv=fsync",
                              lambda out, bs=bs: ["dd", f"if={src}",
                                                  f"of={os.path.join(out, name)}", f"bs={bs}",
                                                  "conv=fsync", "status=none"],
                              in_dir([name]), served=False))
    return tools


def w3_tools(proxy_root, e2s, python, data, scratch, variants):
    names = data.w3_names
    data_names = [f"pkg/{n}" for n in names]
    url_list = os.path.join(scratch, "w3-urls.txt")
    with open(url_list, "w") as f:
        f.write("".join(proxy_root + n + "\n" for n in names))
    tools = [e2s_tool("e2s", e2s, proxy_root, names, data_names)]
    for connections in variants:
        tools.append(e2s_tool(f"e2s --connections {connections}", e2s, proxy_root, names,
                              data_names, extra=("--connections", str(connections))))
    return tools + [
        Tool("aria2c -j16", "aria2c -j16 -i LIST -d D",
             lambda out: ["aria2c", "-j16", *ARIA2_QUIET, "-i", url_list, "-d", out],
             in_dir(data_names, names)),
        fsspec_tool(python, proxy_root, names, data_names),
    ]


# --- running a workload ----------------------------------------------------------


def system_counters():
    """What tells whether the machine was quiet: CPU pressure, TCP drops, load."""
    counters = {"time": time.monotonic()}
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline()  # "some avg10=.. avg60=.. avg300=.. total=<us>"
        counters["cpu_wait_us"] = int(some.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        pass
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            for name, value in zip(names.split()[1:], values.split()[1:]):
                if name in ("ListenOverflows", "TCPSynRetrans"):
                    counters[name] = int(value)
    except (OSError, ValueError):
        pass
    with open("/proc/loadavg") as f:
        counters["load"] = float(f.read().split()[0])
    return counters


def describe_quiet(label, before, after):
    """One note line: how busy the machine was while `label` ran."""
    parts = []
    elapsed = after["time"] - before["time"]
    if "cpu_wait_us" in before and "cpu_wait_us" in after and elapsed > 0:
        share = (after["cpu_wait_us"] - before["cpu_wait_us"]) / 1e6 / elapsed
        parts.append(f"some task was waiting for a CPU {share * 100:.0f} % of the time "
                     "(/proc/pressure/cpu; the benchmark's own server and client share the "
                     "cores too)")
    parts.append(f"1-minute load {before['load']:.2f} before, {after['load']:.2f} after")
    for name, what in (("ListenOverflows", "listen-queue overflows"),
                       ("TCPSynRetrans", "SYN retransmits")):
        if name in before and name in after:
            parts.append(f"{after[name] - before[name]} {what} (machine-wide)")
    return f"{label} ran {elapsed:.0f} s: " + "; ".join(parts) + "."




QUIET_NOTES = []
BUSY_THRESHOLD = 0.15  # share of all CPUs used by others before a run counts as busy


def cpu_busy(interval):
    """Share of all CPUs busy (not idle, not waiting for I/O) over `interval` seconds."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        idle = fields[3] + fields[4]
        return sum(fields), idle
    total0, idle0 = sample()
    time.sleep(interval)
    total1, idle1 = sample()
    total = total1 - total0
    return (total - (idle1 - idle0)) / total if total > 0 else 0.0


class Quiet:
    """Before each run, waits (up to max_wait s) for the machine to be idle.

    The harness's servers are idle between runs, so CPU use then is someone
    else's (a build on the same shared cores). Runs that had to start anyway
    are counted and reported.
    """

    def __init__(self, max_wait):
        self.max_wait = max_wait
        self.runs = 0
        self.busy_runs = 0
        self.waited = 0.0

    def wait(self):
        self.runs += 1
        if self.max_wait <= 0:
            return
        start = time.monotonic()
        told = False
        while cpu_busy(0.25) > BUSY_THRESHOLD:
            if time.monotonic() - start >= self.max_wait:
                self.busy_runs += 1
                break
            if not told:
                log("  (waiting for other work on the machine to finish)")
                told = True
        self.waited += time.monotonic() - start

    def note(self):
        if self.max_wait <= 0:
            return "Runs were started without checking that the machine was idle (--max-wait 0)."
        return (f"Before each run the harness waited until the CPUs were idle (under "
                f"{BUSY_THRESHOLD * 100:.0f} % busy over 0.25 s, the servers being idle between "
                f"runs), for at most {self.max_wait:.0f} s: {self.waited:.0f} s of waiting in "
                f"all; {self.busy_runs} of {self.runs} runs had to start on a busy machine.")


QUIET = Quiet(30)


def run_workload(label, tools, runs, data, warm_files, cache, scratch, env, full_check,
                 servers, file_bytes):
    """Runs every tool `runs` times; file_bytes: the bytes of the files one run fetches."""
    log(f"bench: {label}: {runs} runs of {len(tools)} tools, in alternation")
    before = system_counters()
    for tool in tools:
        tool.file_bytes = file_bytes
    for run in range(runs):
        # Rotate who goes first, so no tool always runs right after another.
        order = tools[run % len(tools):] + tools[:run % len(tools)]
        for tool in order:
            out = os.path.join(scratch, "out")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            cache.cool(warm_files)
            QUIET.wait()
            offset = servers.log_offset()
            sample = run_measured(tool.argv(out), scratch, env)
            if sample.code != 0:
                raise SystemExit(f"bench: {label} {tool.name} failed (status {sample.code}):\n"
                                 f"{sample.stderr.strip()[-2000:]}")
            try:
                for data_name, path in tool.outputs(out, sample.stdout):
                    data.check(data_name, path, full=full_check)
            except RuntimeError as e:
                raise SystemExit(f"bench: {label} {tool.name} wrote a wrong result: {e}")
            if tool.served:
                # Read after the checks, and only once the log has settled, so
                # that the requests this run aborted are in it.
                sample.server_bytes, _ = servers.sent_since(offset)
            tool.samples.append(sample)
            sent = (f"  sent/file {sample.server_bytes / file_bytes:.3f}"
                    if sample.server_bytes is not None else "")
            log(f"  run {run + 1}/{runs} {tool.name:<22} {sample.wall:8.3f} s"
                f"  {sample.rss_kib / 1024:7.1f} MiB  cpu {sample.cpu:6.2f} s{sent}")
            shutil.rmtree(out, ignore_errors=True)
    QUIET_NOTES.append(describe_quiet(label.split()[0], before, system_counters()))
    return tools


def median_wall(tool):
    return statistics.median(s.wall for s in tool.samples)


def peak_rss_mib(tool):
    return max(s.rss_kib for s in tool.samples) / 1024


def sent_ratio(tool):
    """Median over runs of nginx's body bytes sent / the bytes of the files (None: unknown)."""
    ratios = [s.server_bytes / tool.file_bytes for s in tool.samples
              if s.server_bytes is not None and tool.file_bytes]
    return statistics.median(ratios) if ratios else None


def fmt_sent(ratio):
    return "" if ratio is None else f"{ratio:.3f}"


# --- W4 and the hash estimate -----------------------------------------------------


def w4(e2s, hit_bench, python, plain_root, scratch, env, process_runs):
    rows = {}
    log("bench: W4: in-process cache hit (Google Benchmark)")
    QUIET.wait()
    out = subprocess.run([hit_bench, f"--python={python}", "--benchmark_format=json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"bench: {hit_bench} failed:\n{out.stderr}")
    report = json.loads(out.stdout)
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    for entry in report["benchmarks"]:
        if entry.get("aggregate_name") == "median":
            name = entry["run_name"].split("/")[0]
            rows[name] = entry["real_time"] * scale[entry["time_unit"]]
            log(f"  {name:<28} median {rows[name] * 1e6:8.3f} us")
    rows["library_build_type"] = report.get("context", {}).get("library_build_type", "")

    log(f"bench: W4: whole e2s resolve process on a cache hit, {process_runs} runs")
    cache_dir = os.path.join(scratch, "w4-cache")
    warm = run_measured([e2s, "--cache-dir", cache_dir, "-q", "resolve", plain_root, "f000"],
                        scratch, env)
    if warm.code != 0:
        raise SystemExit(f"bench: W4 warm-up resolve failed:\n{warm.stderr}")
    # Spawned directly (no `time` launcher): the wall time is that of the
    # e2s process alone. The RSS is taken from the warm-up run.
    samples = []
    floor = []
    QUIET.wait()
    for _ in range(process_runs):
        s = run_measured([e2s, "--cache-dir", cache_dir, "-q", "resolve", plain_root, "f000"],
                         scratch, env, rss=False)
        if s.code != 0 or s.stdout != warm.stdout:
            raise SystemExit(f"bench: W4 hit failed:\n{s.stderr}")
        samples.append(s)
        floor.append(run_measured(["true"], scratch, env, rss=False).wall)
    rows["process"] = statistics.median(s.wall for s in samples)
    rows["process_rss"] = warm.rss_kib / 1024
    rows["floor"] = statistics.median(floor)
    log(f"  e2s resolve process          median {rows['process'] * 1e3:8.3f} ms"
        f" (starting /bin/true: {rows['floor'] * 1e3:.3f} ms)")
    shutil.rmtree(cache_dir, ignore_errors=True)
    return rows


def hash_throughput(path, scratch, env):
    """Seconds to SHA-256 the file from the page cache: sha256sum and openssl."""
    read_through(path)
    QUIET.wait()
    result = {}
    for label, argv in (("sha256sum", ["sha256sum", path]),
                        ("openssl dgst -sha256", ["openssl", "dgst", "-sha256", path])):
        walls = []
        for _ in range(3):
            s = run_measured(argv, scratch, env)
            if s.code != 0:
                raise SystemExit(f"bench: {label} failed: {s.stderr}")
            walls.append(s.wall)
        result[label] = min(walls)
    return result


def proxy_check(data, servers, scratch, env, e2s):
    """Is the delaying relay fast enough? Same W3 fetches direct and through a 0 ms relay."""
    direct = f"http://127.0.0.1:{servers.plain_port}/pkg/"
    relayed = f"http://127.0.0.1:{servers.zero_proxy_port}/pkg/"
    result = {}
    for label, root in (("direct", direct), ("relay 0 ms", relayed)):
        walls = []
        for _ in range(3):
            out = os.path.join(scratch, "out")
            shutil.rmtree(out, ignore_errors=True)
            s = run_measured([e2s, "--cache-dir", out, "-q", "--connections", "16", "resolve",
                              root, *data.w3_names], scratch, env)
            if s.code != 0:
                raise SystemExit(f"bench: proxy check failed: {s.stderr}")
            walls.append(s.wall)
        result[label] = statistics.median(walls)
    shutil.rmtree(os.path.join(scratch, "out"), ignore_errors=True)
    # One big stream through the relay: its throughput ceiling.
    big = "w2.bin" if "w2.bin" in data.files else ("big.bin" if "big.bin" in data.files else None)
    if big:
        target = os.path.join(scratch, "relay.bin")
        s = run_measured(["curl", "-q", "-s", "-f", "-o", target,
                          f"http://127.0.0.1:{servers.zero_proxy_port}/{big}"], scratch, env)
        if s.code == 0:
            result["stream MB/s"] = data.files[big][0] / s.wall / 1e6
        try:
            os.remove(target)
        except OSError:
            pass
    return result


# --- the report ------------------------------------------------------------------


def first_line(argv, stderr=False):
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=30)
        text = (out.stderr if stderr else out.stdout).strip()
        return text.splitlines()[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_info(e2s, python):
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    py = first_line([python, "-c", "import sys, fsspec, aiohttp; print("
                     "f'Python {sys.version.split()[0]}, fsspec {fsspec.__version__}, "
                     "aiohttp {aiohttp.__version__}')"])
    return [
        ("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("cores (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU", cpu),
        ("memory", mem),
        ("kernel", platform.release()),
        ("e2s", first_line([e2s, "--version"])),
        ("curl", first_line(["curl", "--version"])),
        ("aria2c", first_line(["aria2c", "--version"])),
        ("nginx", first_line([which("nginx"), "-v"], stderr=True)),
        ("fsspec path", py),
        ("dd", first_line(["dd", "--version"])),
        ("openssl", first_line(["openssl", "version"])),
    ]


def fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def verdict(ok):
    return "PASS" if ok else "MISS"


def build_rows(results):
    """Table rows: workload, tool, median, range, peak RSS, CPU, sent/file, e2s/peer,
    target, result."""
    rows = []
    targets = []
    ratio_targets = {
        "W1": {"curl": 1.0, "dd": 1.25},
        "W2": {"aria2c -x16": 1.0, "fsspec (Earth2Studio)": 0.2},
        "W3": {"aria2c -j16": 1.0, "fsspec (Earth2Studio)": 0.2},
    }
    for label in ("W1", "W2", "W3"):
        if label not in results:
            continue
        tools = results[label]
        e2s = next(t for t in tools if t.primary)
        e2s_median = median_wall(e2s)
        dds = [t for t in tools if t.name.startswith("dd ")]
        fastest_dd = min(dds, key=median_wall) if dds else None
        for tool in tools:
            walls = [s.wall for s in tool.samples]
            row = [label, tool.name, fmt_time(median_wall(tool)),
                   f"{fmt_time(min(walls))} - {fmt_time(max(walls))}",
                   f"{peak_rss_mib(tool):.1f} MiB",
                   f"{statistics.median(s.cpu for s in tool.samples):.2f} s",
                   fmt_sent(sent_ratio(tool)), "", "", ""]
            if not tool.is_e2s:
                ratio = e2s_median / median_wall(tool)
                row[7] = f"{ratio:.2f}"
                limit = ratio_targets[label].get(tool.name)
                if tool is fastest_dd:
                    limit = ratio_targets[label]["dd"]
                if limit is not None:
                    row[8] = (f"e2s/{tool.name.split()[0]} <= {limit:.2f}" if limit >= 1
                              else f"e2s >= {1 / limit:.0f}x faster")
                    if tool is fastest_dd:
                        row[8] = f"e2s/disk limit (faster dd) <= {limit:.2f}"
                    row[9] = verdict(ratio <= limit)
                    targets.append((f"{label}: {row[8]}", f"{ratio:.2f}", row[9]))
            elif tool.primary:
                # (target, measured, met) of the e2s row; one row can carry two.
                checks = []
                if label == "W1":
                    checks.append(("peak RSS <= 64 MiB", row[4], peak_rss_mib(tool) <= 64))
                if label in ("W1", "W2"):
                    sent = sent_ratio(tool)
                    checks.append((f"sent/file <= {SENT_LIMIT:.2f}", row[6] or "not measured",
                                   sent is not None and sent <= SENT_LIMIT))
                row[8] = "; ".join(name for name, _, _ in checks)
                row[9] = "; ".join(verdict(ok) for _, _, ok in checks)
                targets += [(f"{label}: e2s {name}", measured, verdict(ok))
                            for name, measured, ok in checks]
            rows.append(row)
        if label == "W1" and "hash" in results:
            share = results["hash"]["share"]
            rows.append(["W1", "hashing, estimated share of e2s wall (notes)",
                         f"{share * 100:.1f} %", "", "", "", "", "", "<= 10 % of wall",
                         verdict(share <= 0.10)])
            targets.append(("W1: hashing adds <= 10 % wall (estimate)", f"{share * 100:.1f} %",
                            verdict(share <= 0.10)))
    if "W4" in results:
        w = results["W4"]
        hit = w.get("BM_ResolveHit")
        if hit is not None:
            rows.append(["W4", "e2s Package::resolve hit, in process", fmt_time(hit), "", "",
                         "", "", "", "median <= 2 us", verdict(hit <= 2e-6)])
            targets.append(("W4: in-process hit median <= 2 us", fmt_time(hit),
                            verdict(hit <= 2e-6)))
        for name, shown in (("BM_ResolveHitNested", "e2s resolve hit, nested path, in process"),
                            ("BM_NewPackageAndResolveHit", "new Package + resolve hit, in process")):
            if name in w:
                rows.append(["W4", shown, fmt_time(w[name]), "", "", "", "", "", "", ""])
        rows.append(["W4", "e2s resolve process, cache hit", fmt_time(w["process"]), "",
                     f"{w['process_rss']:.1f} MiB", "", "", "", "median <= 5 ms",
                     verdict(w["process"] <= 5e-3)])
        targets.append(("W4: whole-process hit median <= 5 ms", fmt_time(w["process"]),
                        verdict(w["process"] <= 5e-3)))
        rows.append(["W4", "for scale: starting `true`", fmt_time(w["floor"]), "", "", "", "",
                     "", "", ""])
    return rows, targets


HEADER = ["workload", "tool", "median wall", "min - max", "peak RSS", "CPU (median)",
          "sent/file", "e2s/peer", "target", "result"]


def text_table(rows):
    widths = [max(len(str(r[i])) for r in [HEADER] + rows) for i in range(len(HEADER))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(HEADER, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def shown_args(argv):
    """run.sh's arguments, less --results FILE (a path of the machine it ran on)."""
    shown = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--results":
            skip = True
        elif not arg.startswith("--results="):
            shown.append(arg)
    return "".join(" " + a for a in shown)


CLUSTER_HEADING = "## Cluster start-up through a site mirror"


def write_markdown(path, args, info, rows, targets, results, notes, commands):
    parts = ["# e2s benchmark results", "",
             "Written by `./bench/run.sh" + shown_args(args.argv) +
             "` (see [README.md](README.md)): numbers measured on the machine below, "
             "not edited by hand. Ratios are e2s median wall / peer median wall "
             "(below 1 means e2s is faster); sent/file is the body bytes nginx sent per "
             "byte of the files fetched (median over runs).", "",
             md_table(["", ""], info), "",
             "## Results", "", md_table(HEADER, rows), "",
             "## Targets (issues #6 and #14)", "",
             md_table(["target", "measured", "result"], targets), "",
             "## How it was measured", ""]
    parts += [f"- {n}" for n in notes]
    parts += ["", "## Commands", "",
              "`D` is a fresh empty folder each run, `ROOT`/`URL` the loopback server of the "
              "workload.", ""]
    parts += [md_table(["workload", "tool", "command"], commands), ""]
    # bench/cluster.py's section is its own: kept as it was.
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        at = old.find(CLUSTER_HEADING)
        kept = old[at:] if at >= 0 else ""
    with open(path, "w") as f:
        f.write("\n".join(parts) + ("\n" + kept if kept else ""))


# --- main ------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description="e2s benchmark driver (use bench/run.sh)")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--e2s", required=True)
    parser.add_argument("--hit-bench", required=True)
    parser.add_argument("--python", default="/usr/bin/python3")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--only", default="W1,W2,W3,W4")
    parser.add_argument("--results", required=True)
    parser.add_argument("--no-drop", action="store_true")
    parser.add_argument("--max-wait", type=float, default=30.0,
                        help="seconds to wait before a run for the machine to be idle")
    parser.add_argument("argv", nargs="*", help=argparse.SUPPRESS)  # as given to run.sh
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    QUIET.max_wait = args.max_wait

    workloads = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = set(workloads) - {"W1", "W2", "W3", "W4"}
    if unknown:
        raise SystemExit(f"bench: unknown workload(s): {', '.join(sorted(unknown))}")
    runs = args.runs or (2 if args.quick else 5)
    w1_size = 256 * MiB if args.quick else 1 * GiB
    w2_size = 64 * MiB if args.quick else 256 * MiB
    w3_max = 256 * 1024 if args.quick else 1 * MiB
    process_runs = 50

    workdir = os.path.abspath(args.workdir)
    data_size = (w1_size if "W1" in workloads else 0) + (w2_size if "W2" in workloads else 0)
    need = 2 * data_size + 512 * MiB  # the data, one output at a time, slack
    free = shutil.disk_usage(workdir).free
    if free < need:
        raise SystemExit(f"bench: {free / GiB:.1f} GiB free under the work folder, "
                         f"{need / GiB:.1f} GiB needed; set TMPDIR to a roomier disk")

    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"

    cache = PageCache(not args.no_drop)
    log(f"bench: page cache: {cache.why}")
    scratch = os.path.join(workdir, "scratch")
    os.makedirs(scratch, exist_ok=True)
    data = Data(os.path.join(workdir, "data"), w1_size, w2_size, w3_max, workloads)
    servers = Servers(workdir, data.root, args.python)
    results = {}
    notes = []
    commands = []
    try:
        plain = f"http://127.0.0.1:{servers.plain_port}/"
        limited = f"http://127.0.0.1:{servers.limited_port}/"
        proxied = f"http://127.0.0.1:{servers.proxy_port}/pkg/"
        info = machine_info(args.e2s, args.python)
        load = system_counters()["load"]
        if load > 0.5:
            log(f"bench: warning: the 1-minute load is {load:.2f}; other work on the machine "
                "makes the numbers noisy (the report says how busy it was)")
        # Load every program once, so no run pays for reading it from disk.
        for argv in (["curl", "--version"], ["aria2c", "--version"], ["dd", "--version"],
                     [args.e2s, "--version"], [args.python, "-c", "import fsspec, aiohttp"]):
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

        # Beside e2s's defaults (the rows the targets use): W1 with one stream,
        # W2 and W3 with 8 and 16 connections (aria2c uses 16), less the default.
        default_connections = e2s_default_connections(args.e2s)
        variants = [n for n in (8, 16) if n != default_connections]
        notes.append(f"e2s runs with its defaults (`--connections` default: "
                     f"{default_connections or 'unknown'}); the extra e2s rows set "
                     "`--connections` explicitly.")
        if "W1" in workloads:
            tools = single_file_tools("big.bin", plain, args.e2s, args.python, data, True, [1])
            results["W1"] = run_workload(
                f"W1 ({w1_size // MiB} MiB, unthrottled loopback)", tools, runs, data,
                [data.path("big.bin")], cache, scratch, env, full_check=True,
                servers=servers, file_bytes=data.files["big.bin"][0])
            commands += [["W1", t.name, f"`{t.display}`"] for t in tools]
            log("bench: W1: SHA-256 throughput on the file in page cache")
            hashes = hash_throughput(data.path("big.bin"), scratch, env)
            e2s_wall = median_wall(next(t for t in tools if t.primary))
            openssl_s = hashes["openssl dgst -sha256"]
            results["hash"] = {"share": min(1.0, openssl_s / e2s_wall), **hashes}
            notes.append(
                "Hash cost (W1): e2s has no switch to turn hashing off, so it is estimated: "
                f"the time to SHA-256 the {w1_size // MiB} MiB file from the page cache with "
                f"OpenSSL (the library e2s hashes with), {openssl_s:.2f} s "
                f"({w1_size / openssl_s / 1e6:.0f} MB/s; `sha256sum` takes "
                f"{hashes['sha256sum']:.2f} s), divided by e2s's median W1 wall "
                f"({e2s_wall:.2f} s), capped at 100 %. That is the cost if hashing runs in "
                "series with the transfer; hashing that overlaps the transfer costs less.")

        if "W2" in workloads:
            tools = single_file_tools("w2.bin", limited, args.e2s, args.python, data, False,
                                      variants)
            results["W2"] = run_workload(
                f"W2 ({w2_size // MiB} MiB, 50 MB/s per connection)", tools, runs, data,
                [data.path("w2.bin")], cache, scratch, env, full_check=True,
                servers=servers, file_bytes=data.files["w2.bin"][0])
            commands += [["W2", t.name, f"`{t.display}`"] for t in tools]

        if "W3" in workloads:
            tools = w3_tools(proxied, args.e2s, args.python, data, scratch, variants)
            w3_bytes = sum(data.files[f"pkg/{n}"][0] for n in data.w3_names)
            results["W3"] = run_workload(
                f"W3 ({W3_FILES} files, {w3_bytes / MiB:.0f} MiB, {DELAY_MS:.0f} ms per response)",
                tools, runs, data, [data.path(f"pkg/{n}") for n in data.w3_names], cache,
                scratch, env, full_check=True, servers=servers, file_bytes=w3_bytes)
            commands += [["W3", t.name, f"`{t.display}`"] for t in tools]
            log("bench: W3 harness check: the relay with 0 ms delay against nginx direct")
            check = proxy_check(data, servers, scratch, env, args.e2s)
            results["proxy"] = check
            stream = (f"; one curl stream through it runs at {check['stream MB/s']:.0f} MB/s"
                      if "stream MB/s" in check else "")
            notes.append(
                f"Harness check (W3 relay): `e2s --connections 16` fetching the {W3_FILES} files "
                f"direct from nginx takes {fmt_time(check['direct'])}, through the relay set to "
                f"0 ms {fmt_time(check['relay 0 ms'])} (median of 3){stream}. The difference is "
                "the relay's own cost per request, which every W3 tool pays alike.")

        if "W4" in workloads:
            before = system_counters()
            results["W4"] = w4(args.e2s, args.hit_bench, args.python, plain + "pkg/", scratch, env,
                               process_runs)
            QUIET_NOTES.append(describe_quiet("W4", before, system_counters()))
            commands += [["W4", "in process", "`build-bench/bench/e2s_cache_hit_bench`"],
                         ["W4", "process", "`e2s --cache-dir D -q resolve ROOT f000` "
                          f"({process_runs} times, after one warming run)"]]
    finally:
        servers.stop()

    rows, targets = build_rows(results)
    if "W1" in workloads:
        w1 = results["W1"]
        dds = [t for t in w1 if t.name.startswith("dd ")]
        if dds:
            speeds = ", ".join(f"`{t.display.replace('LOCAL_COPY', 'F')}` at "
                               f"{w1_size / median_wall(t) / 1e6:.0f} MB/s" for t in dds)
            notes.insert(0, f"Disk: the W1 file is written and fsynced by {speeds} (medians). "
                            "The W1 target compares e2s with the faster of the two: the disk's "
                            "limit is what the disk can do, and when the two differ much, the "
                            "slower one is spending system time on something other than the "
                            "disk (page-cache handling of 4 MiB writes on some kernels).")
    notes[0:0] = [
        f"Runs: {runs} per tool, in alternation (run k starts with the k-th tool, the others "
        "follow in order); the table shows the median wall time, the fastest and slowest run, "
        "the peak RSS over all runs and the median CPU time (user + system).",
        "Each run is one process, launched as `/usr/bin/time -f %M -- COMMAND` with "
        "posix_spawn and reaped with wait4; the wall time is taken around it (so it includes "
        "about a millisecond for starting `time`, alike for every tool), the peak RSS is "
        "`time`'s `%M` (the command's `ru_maxrss`; a launcher is needed because Linux starts a "
        "new program's `ru_maxrss` at the peak RSS of the process that exec'd it) and CPU is "
        "`ru_utime + ru_stime`. For the fsspec path all of it includes starting Python and "
        "importing fsspec, aiohttp and requests.",
        "Cold cache: every run writes into a fresh empty folder (e2s `--cache-dir`, the "
        f"fsspec `cache_storage`, the output folder of the others). Page cache: {cache.why}; "
        "then the served files are read back into it, so the server never waits on the disk.",
        "Every run's output is checked (exit status, size and SHA-256 of every file) before "
        "it counts.",
        "Sent bytes (`sent/file`): nginx logs `$body_bytes_sent` of every request to its "
        "access log (a line when the request ends, also when the client went away); the "
        "lines a run added are summed (read once the log has not grown for "
        f"{LOG_QUIET * 1e3:.0f} ms, waiting at most {LOG_MAX_WAIT:.0f} s) and divided by "
        "the bytes of the files the workload fetches (W1, W2: the one file; W3: all "
        f"{W3_FILES} files); the table shows the median over runs. A reply cut short counts "
        "what nginx had written to the socket, which can be more than the client read. In W3 "
        "it is what nginx sent to the relay. The dd rows do not fetch (empty).",
        "Durability differs: e2s and dd fsync what they write (e2s then renames it into "
        "place); curl, aria2c and fsspec leave it in the page cache, so their wall time does "
        "not include writing it to disk. The W1 row `curl + fsync` (`sync FILE` is fsync) is "
        "curl made as durable as e2s.",
        f"W2: nginx `limit_rate {RATE_LIMIT}` = 50 MB/s (10^6 bytes) per connection; nginx's "
        "own `50m` suffix would mean 50 MiB/s. The cap applies per connection, so tools that "
        "open more connections get more bandwidth, as from a real per-connection-capped CDN.",
        f"W3: {W3_FILES} files of random bytes from 4 KiB to {w3_max // 1024} KiB "
        "(log-uniform sizes) behind `bench/delay_proxy.py`, which holds every request "
        f"{DELAY_MS:.0f} ms before forwarding it to nginx (keep-alive preserved; no delay on "
        "connection set-up).",
    ]
    notes.append(QUIET.note())
    notes += QUIET_NOTES
    imports = []
    for label in ("W1", "W2", "W3"):
        for tool in results.get(label, []):
            if not tool.name.startswith("fsspec"):
                continue
            for s in tool.samples:
                try:
                    imports.append(json.loads(s.stderr.strip().splitlines()[-1])["import_s"])
                except (ValueError, IndexError, KeyError):
                    pass
    if imports:
        notes.append("Of the fsspec path's wall time, importing fsspec's http filesystem "
                     f"(aiohttp, requests) takes {statistics.median(imports) * 1e3:.0f} ms "
                     "(median over all its runs; `fsspec_path.py` reports it), plus starting "
                     "Python itself.")
    if "W4" in results:
        build = results["W4"].get("library_build_type")
        notes.append("W4 in process: Google Benchmark, 10 repetitions, the median of their "
                     "means; the same Package resolves an already cached file (the server is "
                     "stopped before timing, so a miss would fail)."
                     + (f" Debian's libbenchmark reports itself built as `{build}`; that "
                        "affects only the harness's own bookkeeping, not e2s (Release)."
                        if build and build != "release" else ""))
        notes.append(f"W4 whole process: `e2s resolve` of a cached file, spawned directly "
                     f"(no launcher), {process_runs} times after one warming run; each run is "
                     "followed by a spawn of `true`, whose median shows what starting any "
                     "process from the harness costs here.")

    print()
    print(text_table(rows))
    print()
    for name, measured, result in targets:
        print(f"  {result}  {name}: {measured}")
    write_markdown(args.results, args, info, rows, targets, results, notes, commands)
    log(f"\nbench: wrote {os.path.relpath(args.results)}")


if __name__ == "__main__":
    main()
