#!/usr/bin/env python3
"""Cluster start-up through a site mirror (README, "Running on a cluster").

N simulated nodes (separate e2s processes, each with its own cache folder)
cold-start the same package at once: one large file and many small ones,
served by nginx on loopback (the upstream). Each N runs twice: without a
mirror, and with one s3:// mirror on moto_server (E2S_MIRROR, every node
pushing, so the mirror's lease decides who goes upstream). Reported per run:
bytes nginx sent / package size, the slowest node's wall time against one
node alone, and bytes the nodes read from the mirror.

Usage: cluster.py --e2s BIN --work DIR [--nodes 8,32] [--big-mib 256]
                  [--small 50] [--results FILE]
Needs nginx; moto runs with the `python3` on PATH (moto_s3.py).
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

NOTES = """- Every node is an `e2s fetch ROOT FILES...` process with a cache folder of its own,
  all started at once; "slowest node" is the wall time of the last one to finish.
  Upstream bytes are the body bytes nginx logged (`$body_bytes_sent`).
- With the mirror every node has `E2S_MIRROR=s3://...` and `E2S_MIRROR_PUSH=1`: the
  first to miss a file takes the mirror's lease and fetches it upstream, the others
  wait for its copy. "Read from mirror" sums the bytes the nodes took from it.
- Nodes run with `--connections 1`: moto serves a Range request by copying the whole
  object in Python, so parallel ranges against moto cost more than they bring
  (measured with 2 nodes and a 64 MiB file: 1.4 s with 1 connection, 2.9 s with 4,
  6.5 s with 16). S3, MinIO and Ceph serve ranges directly.
- Everything (nginx, moto, the nodes) shares the machine's 2 cores, and the upstream
  is unthrottled loopback nginx: the mirror's wall time here is moto's throughput
  (about 120 MB/s for all nodes together), not a network's. What the mirror saves is
  upstream traffic: N times the package without it, once with it. On a cluster whose
  upstream is the internet (rate limits, HF's 429s, egress bills), that is the time too.
"""

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MOTO = os.path.join(REPO, "tests", "servers", "moto_s3.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit("%s exited early" % what)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("%s did not start" % what)


def write_package(folder, big_mib, small):
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(17)
    files = {"big.bin": big_mib << 20}
    for i in range(small):
        files["small/s%02d.bin" % i] = rng.randint(4 << 10, 1 << 20)
    for name, size in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(left, 1 << 20))
                f.write(chunk)
                left -= len(chunk)
    return files


class Nginx:
    def __init__(self, work, root):
        self.prefix = os.path.join(work, "nginx")
        os.makedirs(os.path.join(self.prefix, "logs"), exist_ok=True)
        self.port = free_port()
        self.log = os.path.join(self.prefix, "logs", "sent.log")
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off; worker_processes 2; pid %(p)s/nginx.pid; error_log %(p)s/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; keepalive_requests 100000;
  client_body_temp_path %(p)s/tmp; proxy_temp_path %(p)s/tmp; fastcgi_temp_path %(p)s/tmp;
  uwsgi_temp_path %(p)s/tmp; scgi_temp_path %(p)s/tmp;
  log_format sent '$body_bytes_sent $request_uri';
  server { listen 127.0.0.1:%(port)d; root %(root)s; access_log %(log)s sent; }
}
""" % {"p": self.prefix, "port": self.port, "root": root, "log": self.log})
        self.proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", self.prefix, "-c", conf],
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "nginx")

    def sent(self):
        """Body bytes sent since the last call (the log is rotated by truncation)."""
        time.sleep(0.3)  # nginx logs a request when it completes
        with open(self.log, "r+") as f:
            lines = [line.split() for line in f]
            total = sum(int(parts[0]) for parts in lines if parts and parts[0].isdigit())
            if os.environ.get("CLUSTER_DEBUG"):
                for parts in lines:
                    print(" ".join(parts))
            f.truncate(0)
        return total

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(10)


class Moto:
    def __init__(self, work):
        setup = os.path.join(work, "moto-setup.json")
        with open(setup, "w") as f:
            json.dump({"buckets": [{"name": "site-mirror"}]}, f)
        self.proc = subprocess.Popen(["python3", MOTO, "--port", "0", "--setup", setup],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        line = self.proc.stdout.readline()
        match = re.match(r"PORT (\d+)", line)
        if not match:
            sys.exit("moto did not start: " + line)
        self.endpoint = "http://127.0.0.1:%s" % match.group(1)

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(10)


def run_nodes(e2s, work, root, files, count, mirror, env_base):
    """Starts `count` nodes at once; returns (slowest seconds, bytes read from the mirror)."""
    procs = []
    for i in range(count):
        env = dict(env_base)
        env["EARTH2STUDIO_MODEL_CACHE"] = os.path.join(work, "node-%d" % i)
        if mirror:
            env.update({"E2S_MIRROR": mirror, "E2S_MIRROR_PUSH": "1"})
        verbosity = "-v" if os.environ.get("CLUSTER_DEBUG") else "-q"
        extra = os.environ.get("CLUSTER_ARGS", "").split()
        procs.append((time.time(), subprocess.Popen([e2s, verbosity] + extra + ["fetch", root] + files, env=env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    slowest, mirror_bytes = 0.0, 0
    for start, proc in procs:
        out, err = proc.communicate(timeout=3600)
        slowest = max(slowest, time.time() - start)
        if proc.returncode != 0:
            sys.exit("a node failed (%d): %s" % (proc.returncode, err.strip()))
        if os.environ.get("CLUSTER_DEBUG"):
            print("---- node took %.1f s\n%s" % (time.time() - start, err[-3000:]))
        match = re.search(r"site mirror \d+ \((\d+) B\)", out)
        mirror_bytes += int(match.group(1)) if match else 0
    for i in range(count):
        shutil.rmtree(os.path.join(work, "node-%d" % i), ignore_errors=True)
    return slowest, mirror_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--e2s", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--nodes", default="8,32")
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--results")
    args = parser.parse_args()

    data = os.path.join(args.work, "data")
    sizes = write_package(os.path.join(data, "pkg"), args.big_mib, args.small)
    package_bytes = sum(sizes.values())
    files = sorted(sizes)
    nginx, moto = Nginx(args.work, data), Moto(args.work)
    try:
        root = "http://127.0.0.1:%d/pkg" % nginx.port
        env_base = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "E2S_", "EARTH2STUDIO_", "HF_")) and "proxy" not in k.lower()}
        env_base.update({"AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "bench",
                         "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "HOME": args.work,
                         "E2S_MIRROR_LEASE_SECONDS": "600"})
        nginx.sent()
        alone, _ = run_nodes(args.e2s, args.work, root, files, 1, None, env_base)
        nginx.sent()
        rows = []
        for run, count in enumerate(int(n) for n in args.nodes.split(",")):
            for mirror in (None, "s3://site-mirror/run-%d" % run):
                slowest, mirror_bytes = run_nodes(args.e2s, args.work, root, files, count, mirror, env_base)
                upstream = nginx.sent()
                rows.append((count, mirror is not None, upstream / package_bytes, slowest, slowest / alone,
                             mirror_bytes))
                print("N=%d %s: upstream %.2f x package, slowest %.1f s (%.1f x one node), mirror read %.2f GiB"
                      % (count, "mirror" if mirror else "no mirror", upstream / package_bytes, slowest,
                         slowest / alone, mirror_bytes / (1 << 30)), flush=True)
    finally:
        nginx.stop()
        moto.stop()

    table = ["| nodes | mirror | upstream bytes / package | slowest node | vs one node alone | read from mirror |",
             "|---|---|---|---|---|---|"]
    for count, mirrored, ratio, slowest, factor, mirror_bytes in rows:
        table.append("| %d | %s | %.2f | %.1f s | %.1f x | %.2f GiB |" % (
            count, "s3 (moto)" if mirrored else "none", ratio, slowest, factor, mirror_bytes / (1 << 30)))
    report = ("Package: 1 file of %d MiB and %d small files (%.1f MiB in all); one node alone, no mirror: "
              "%.1f s.\n\n%s\n" % (args.big_mib, args.small, package_bytes / (1 << 20), alone, "\n".join(table)))
    print(report)
    if args.results:
        # Its own section of the results file (bench/run.sh keeps it).
        heading = "## Cluster start-up through a site mirror (issue #17)"
        old = open(args.results).read() if os.path.exists(args.results) else ""
        at = old.find("## Cluster start-up through a site mirror")
        head = (old[:at] if at >= 0 else old).rstrip("\n")
        with open(args.results, "w") as f:
            f.write(head + "\n\n" + heading + "\n\nWritten by `./bench/cluster.sh` on the machine above.\n\n" +
                    report + "\n" + NOTES)


if __name__ == "__main__":
    main()
