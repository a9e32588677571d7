#!/usr/bin/env python3
"""Loopback HTTP/1.1 file server with fault injection, for e2s tests and demos.

Standard library only, so it runs with the distribution's python3.

Usage:
    http_server.py --root DIR [--port 0] [--host 127.0.0.1] [--rate BYTES_PER_SEC]
                   [--latency-ms N] [--idle-exit SECONDS] [--no-stdin-watch] [--verbose]
                   [--tls-cert FILE --tls-key FILE]

On start it prints exactly one line "PORT <n>" to stdout. It exits when its stdin
reaches EOF (so it dies with the test process that holds the pipe), unless
--no-stdin-watch is given, and after --idle-exit seconds without a request.

With --tls-cert and --tls-key (PEM files) it speaks HTTPS instead (TLS 1.2 or
later), for the files and the control endpoints alike; everything else is the
same. The handshake runs in the connection's own thread, so a client that
rejects the certificate only ends its own connection (quietly, unless
--verbose).

Files under --root are served for GET and HEAD with Content-Length, a quoted MD5
ETag, Last-Modified, Accept-Ranges and single-range support (206/416), plus
If-None-Match (304) and If-Range. Paths are percent-decoded and confined to the
root; anything else, including directories, is 404.

Control endpoints (JSON; never recorded in the statistics):
  GET  /_stats    {"requests": [{"method", "path", "range", "status", "headers",
                                 "client_port", "body_bytes"}...],
                   "body_bytes": <body bytes sent by file responses>,
                   "max_concurrent": <most file requests answered at once>}
                  "path" is the request target as received (query included);
                  "headers" has lowercased names; "client_port" is the peer's
                  TCP port, equal across requests on one kept-alive connection.
  POST /_reset    forget statistics, faults and extra headers
  POST /_fault    {"path": "/a/b.bin", "kind": ..., "times": 1, "methods": ["GET", "HEAD"]}
                  The next `times` matching requests (path compared without the
                  query, after percent-decoding) get the fault; times <= 0 (e.g.
                  -1) means every matching request until /_reset.
                  Faults are consumed in the order they were queued.
  POST /_headers  {"path": "/a/b.bin", "headers": {"X-Foo": "bar", "ETag": null}}
                  Extra headers on every response for that path; a name equal
                  to a default header replaces it, a null value removes it.
                  Do not override Content-Length (that breaks the framing).

Fault kinds:
  status        {"status": 503, "retry_after": "1"?, "body": "..."?} answer that
                status with a short text body (or the given one).
  cut           {"after": N} headers with the full Content-Length, N body bytes,
                then an abortive close (TCP RST): the client sees a reset.
  short         {"after": N} the same but an orderly close (FIN): the client sees
                end of stream before Content-Length was reached.
  trickle       {"bytes_per_sec": N} the body is sent that slowly.
  stall         {"after": N, "seconds": S} N body bytes, then silence for S
                seconds, then the connection is closed.
  redirect      {"location": "...", "status": 302} no body.
  ignore_range  200 with the whole file even when a Range was asked for.
  wrong_range   206 whose Content-Range (and bytes) are shifted one byte later
                than asked (earlier when the range ends at the end of the file;
                a request for the whole file gets bytes 1- of it).
  long          {"extra": N} Content-Length announces size+N and the body is the
                file followed by N garbage bytes. This is the only way to hand
                an HTTP/1.1 client more bytes than the file has: a client stops
                reading at Content-Length, so bytes beyond it are never seen.
                The ETag stays that of the real file; a HEAD that matches
                the fault announces size+N as well.
  corrupt       one byte in the middle of the body is flipped; size and ETag
                headers are unchanged.
  serve         answered as usual: only the modifiers below apply.
  announce      {"content_length": N} a 200 whose Content-Length says N (with
                Accept-Ranges), then the file's real bytes and a close: a
                server lying about a huge size.

Modifiers:
  "headers": {...}          header overrides for this response only, as
                            /_headers does for every response (a null value
                            removes the header); on every kind.
  "source": "a/other.bin"   the bytes (ETag and size too) of that file under
                            --root instead of the requested one: a new version
                            served under the same name (this script only).
"""

import argparse
import email.utils
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024
CONTROL_PATHS = ("/_stats", "/_reset", "/_fault", "/_headers")
FAULT_KINDS = ("status", "cut", "short", "trickle", "stall", "redirect", "ignore_range",
               "wrong_range", "long", "corrupt", "serve", "announce")


class State:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, args):
        self.root = os.path.realpath(args.root)
        self.rate = args.rate
        self.latency = args.latency_ms / 1000.0
        self.verbose = args.verbose
        self.lock = threading.Lock()
        self.requests = []
        self.body_bytes = 0
        self.faults = []          # FIFO of dicts with "path", "methods", "times"
        self.extra_headers = {}   # decoded path -> {name: value or None}
        self.etags = {}           # (path, size, mtime_ns) -> md5 hex
        self.last_activity = time.monotonic()
        self.active = 0
        self.serving = 0          # file requests being answered right now
        self.max_serving = 0      # the most at once since the last reset

    def reset(self):
        with self.lock:
            self.requests = []
            self.body_bytes = 0
            self.max_serving = 0
            self.faults = []
            self.extra_headers = {}

    def take_fault(self, path, method):
        return self.take_fault_where(
            lambda fault: fault["path"] == path and method in fault["methods"])

    def take_fault_where(self, matches):
        """Consumes and returns the first queued fault that `matches`, or None.

        The fakes built on this module match faults differently (per listener,
        "*" paths) but must consume them in exactly this way.
        """
        with self.lock:
            for fault in self.faults:
                if matches(fault):
                    if fault["times"] > 0:
                        fault["times"] -= 1
                        if fault["times"] == 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def etag_of(self, path, st):
        # Hashing a multi-GB file per request would dominate the tests' time.
        key = (path, st.st_size, st.st_mtime_ns)
        with self.lock:
            cached = self.etags.get(key)
        if cached is not None:
            return cached
        digest = hashlib.md5()
        with open(path, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                digest.update(block)
        value = digest.hexdigest()
        with self.lock:
            self.etags[key] = value
        return value


def parse_range(value, size):
    """Returns (first, last) inclusive, "unsatisfiable", or None to ignore.

    Malformed and multi-range headers are ignored (RFC 9110 allows that), which
    yields a plain 200.
    """
    if not value:
        return None
    value = value.strip()
    if not value.startswith("bytes=") or "," in value:
        return None
    spec = value[len("bytes="):].strip()
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    first, last = first.strip(), last.strip()
    try:
        if first == "":
            if not last.isdigit():
                return None
            suffix = int(last)
            if suffix == 0 or size == 0:
                return "unsatisfiable"
            return (max(0, size - suffix), size - 1)
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        begin = int(first)
        end = int(last) if last else None
    except ValueError:
        return None
    if end is not None and end < begin:
        return None
    if begin >= size:
        return "unsatisfiable"
    return (begin, size - 1 if end is None else min(end, size - 1))


def faulted_range(wanted, size, kind):
    """`wanted` (from parse_range) as an ignore_range or wrong_range fault bends it.

    "unsatisfiable" passes through unchanged, so callers still answer 416.
    """
    if kind == "ignore_range":
        return None
    if kind != "wrong_range" or wanted == "unsatisfiable":
        return wanted
    first, last = wanted if wanted else (0, size - 1)
    if last + 1 < size:
        first, last = first + 1, last + 1
    elif first > 0:
        first, last = first - 1, last - 1
    else:
        first = min(1, last)  # the whole file was asked for
    return (first, last)


def body_span(wanted, size, fault):
    """(status, first, last, length, announced Content-Length) of a file body.

    `wanted` is a satisfiable range or None (whole file); a "long" fault
    announces more bytes than the file has.
    """
    if wanted is None:
        status, first, last = 200, 0, size - 1
    else:
        status, (first, last) = 206, wanted
    length = last - first + 1 if size else 0
    kind = fault["kind"] if fault else None
    announced = length + int(fault.get("extra", 0)) if kind == "long" else length
    return status, first, last, length, announced


def etag_matches(header, etag):
    """Weak comparison of an If-None-Match / If-Range list against `etag`."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate.strip('"') == etag:
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, so tests can see connection reuse
    # Headers and body go out in separate writes; with Nagle on, the body
    # waits for the client's delayed ACK (~40 ms per request).
    disable_nagle_algorithm = True
    server_version = "e2s-test-http"
    sys_version = ""
    state = None                    # set in main()

    # ---- plumbing -------------------------------------------------------

    def log_message(self, fmt, *args):
        if self.state.verbose:
            sys.stderr.write("http_server: " + (fmt % args) + "\n")

    def setup(self):
        # The listening socket does not handshake on accept (see main()), so
        # a stalled or rejecting TLS client cannot hold up the accept loop.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionResetError, BrokenPipeError):
            # A client that resets a kept-alive connection (after a timeout or
            # an aborted sink) is normal here, not worth a traceback.
            self.close_connection = True

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method):
        # Counted so that a long stall or a slow body never looks idle; an
        # idle kept-alive connection (waiting in readline) does not count.
        with self.state.lock:
            self.state.active += 1
        try:
            self.dispatch_counted(method)
        finally:
            with self.state.lock:
                self.state.active -= 1
                self.state.last_activity = time.monotonic()

    def dispatch_counted(self, method):
        self.method = method
        self.fault = None
        self.status_sent = None
        self.entry = None
        target = urllib.parse.urlsplit(self.path)
        self.decoded_path = urllib.parse.unquote(target.path)
        if target.path in CONTROL_PATHS:
            self.control(method, target.path)
            return
        if method == "POST":
            self.record()
            self.simple(405, b"method not allowed\n")
            return
        # Recorded before anything is sent: a client that has its response
        # must find the request in /_stats, whatever this thread does next.
        self.record()
        with self.state.lock:
            self.state.serving += 1
            self.state.max_serving = max(self.state.max_serving, self.state.serving)
        try:
            self.serve_counted()
        finally:
            with self.state.lock:
                self.state.serving -= 1

    def serve_counted(self):
        if self.state.latency:
            time.sleep(self.state.latency)
        try:
            self.serve_file()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (timeout tests, aborted sinks): not an error.
            self.close_connection = True

    def record(self):
        self.entry = {
            "method": self.method,
            "path": self.path,
            "range": self.headers.get("Range"),
            "status": None,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "client_port": self.client_address[1],
            "body_bytes": 0,
        }
        with self.state.lock:
            self.state.requests.append(self.entry)

    def count_body(self, size):
        """Counts body bytes before they are written, for the same reason."""
        if self.entry is None:
            return
        with self.state.lock:
            self.entry["body_bytes"] += size
            self.state.body_bytes += size

    def start(self, status, headers):
        """Sends the status line and headers, applying per-path extras, then
        the "headers" of the fault this response answers."""
        with self.state.lock:
            extra = dict(self.state.extra_headers.get(self.decoded_path, {}))
        extra.update((getattr(self, "fault", None) or {}).get("headers") or {})
        merged = {}
        lower_names = {}
        for name, value in list(headers) + list(extra.items()):
            key = name.lower()
            if key in lower_names:
                del merged[lower_names[key]]
            lower_names[key] = name
            merged[name] = value
        self.status_sent = status
        if self.entry is not None:
            with self.state.lock:
                self.entry["status"] = status
        self.send_response(status)
        for name, value in merged.items():
            if value is not None:
                self.send_header(name, str(value))
        self.end_headers()

    def simple(self, status, body, headers=()):
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))] + list(headers)
        self.start(status, headers)
        if self.method != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def abort_connection(self):
        """Closes with a TCP RST instead of a FIN."""
        self.wfile.flush()
        # Give the client a moment to read what was sent: a RST that overtakes
        # unread data makes the peer drop it, which would make tests flaky.
        time.sleep(0.05)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # detach() + os.close() closes now; socket.close() would wait for the
        # rfile/wfile references and socketserver would send a FIN first.
        os.close(self.connection.detach())
        self.close_connection = True

    # ---- control API ----------------------------------------------------

    def control(self, method, path):
        try:
            if path == "/_stats" and method == "GET":
                with self.state.lock:
                    snapshot = {"requests": list(self.state.requests),
                                "body_bytes": self.state.body_bytes,
                                "max_concurrent": self.state.max_serving}
                self.send_json(snapshot)
            elif path == "/_reset" and method == "POST":
                self.read_json()
                self.state.reset()
                self.send_json({"ok": True})
            elif path == "/_fault" and method == "POST":
                spec = self.read_json()
                if "path" not in spec or "kind" not in spec:
                    raise ValueError("a fault needs \"path\" and \"kind\"")
                if spec["kind"] not in FAULT_KINDS:
                    raise ValueError("unknown fault kind %r" % spec["kind"])
                if spec["kind"] == "redirect" and "location" not in spec:
                    raise ValueError("a redirect fault needs \"location\"")
                fault = dict(spec)
                fault["path"] = urllib.parse.unquote(urllib.parse.urlsplit(spec["path"]).path)
                fault["times"] = int(spec.get("times", 1))
                fault["methods"] = [m.upper() for m in spec.get("methods", ["GET", "HEAD"])]
                with self.state.lock:
                    self.state.faults.append(fault)
                self.send_json({"ok": True})
            elif path == "/_headers" and method == "POST":
                spec = self.read_json()
                key = urllib.parse.unquote(urllib.parse.urlsplit(spec["path"]).path)
                with self.state.lock:
                    self.state.extra_headers.setdefault(key, {}).update(spec.get("headers", {}))
                self.send_json({"ok": True})
            else:
                body = b"bad control request\n"
                self.send_response(405)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(body)
        except (ValueError, KeyError, TypeError) as error:
            body = (str(error) + "\n").encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    # ---- files ----------------------------------------------------------

    def locate(self, relative=None):
        """The file for the request path (or `relative`), or None (missing,
        directory, outside root)."""
        if relative is None:
            relative = self.decoded_path.lstrip("/")
        if "\0" in relative:
            return None
        candidate = os.path.realpath(os.path.join(self.state.root, relative))
        root = self.state.root
        if candidate != root and not candidate.startswith(root + os.sep):
            return None
        if not os.path.isfile(candidate):
            return None
        return candidate

    def answer_fault(self, fault):
        """Answers a "status" or "redirect" fault, which replace any reply.

        Returns False (and sends nothing) for other kinds or no fault: those
        act on the body, once the request has been routed.
        """
        kind = fault["kind"] if fault else None
        if kind == "status":
            status = int(fault.get("status", 503))
            body = fault.get("body", "injected %d\n" % status).encode()
            headers = [("Retry-After", fault["retry_after"])] if "retry_after" in fault else []
            self.simple(status, body, headers)
            return True
        if kind == "redirect":
            self.start(int(fault.get("status", 302)),
                       [("Location", fault["location"]), ("Content-Length", "0")])
            return True
        return False

    def serve_file(self):
        fault = self.fault = self.state.take_fault(self.decoded_path, self.method)
        kind = fault["kind"] if fault else None
        if self.answer_fault(fault):
            return

        path = self.locate(fault.get("source") if fault else None)
        if path is None:
            self.simple(404, b"not found\n")
            return
        st = os.stat(path)
        size = st.st_size
        etag = self.state.etag_of(path, st)
        last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        common = [("ETag", '"%s"' % etag), ("Last-Modified", last_modified),
                  ("Accept-Ranges", "bytes")]

        inm = self.headers.get("If-None-Match")
        if inm is not None and etag_matches(inm, etag):
            self.start(304, common)
            return
        if kind == "announce":
            self.start(200, [("Content-Type", "application/octet-stream"),
                             ("Content-Length", str(int(fault["content_length"])))] + common)
            if self.method != "HEAD":
                self.send_body(path, 0, size, None)
                self.wfile.flush()
            self.close_connection = True
            return

        wanted = parse_range(self.headers.get("Range"), size)
        if_range = self.headers.get("If-Range")
        if wanted is not None and if_range is not None:
            still_valid = (etag_matches(if_range, etag) if '"' in if_range
                           else if_range.strip() == last_modified)
            if not still_valid:
                wanted = None
        wanted = faulted_range(wanted, size, kind)
        if wanted == "unsatisfiable":
            self.simple(416, b"range not satisfiable\n",
                        [("Content-Range", "bytes */%d" % size)] + common)
            return
        status, first, last, length, announced = body_span(wanted, size, fault)

        headers = [("Content-Type", "application/octet-stream"),
                   ("Content-Length", str(announced))] + common
        if status == 206:
            headers.append(("Content-Range", "bytes %d-%d/%d" % (first, last, size)))
        self.start(status, headers)
        if self.method == "HEAD":
            return
        self.send_body(path, first, length, fault)

    def send_body(self, path, offset, length, fault):
        kind = fault["kind"] if fault else None
        limit = length
        if kind in ("cut", "short", "stall"):
            limit = min(length, int(fault.get("after", 0)))
        rate = self.state.rate
        if kind == "trickle":
            rate = int(fault.get("bytes_per_sec", 1024))
        flip_at = length // 2 if kind == "corrupt" and length else None

        with open(path, "rb") as f:
            f.seek(offset)
            sent = 0
            while sent < limit:
                step = min(CHUNK, limit - sent)
                if rate:
                    step = min(step, max(1, rate // 10))
                block = f.read(step)
                if not block:
                    break  # the file shrank underneath us
                if flip_at is not None and sent <= flip_at < sent + len(block):
                    i = flip_at - sent
                    block = block[:i] + bytes([block[i] ^ 0xFF]) + block[i + 1:]
                self.count_body(len(block))
                self.wfile.write(block)
                sent += len(block)
                if rate:
                    time.sleep(len(block) / rate)

        if kind == "long":
            extra = int(fault.get("extra", 0))
            self.count_body(extra)
            self.wfile.write(b"\xAA" * extra)
        elif kind == "cut":
            self.abort_connection()
        elif kind == "short":
            self.wfile.flush()
            self.close_connection = True
        elif kind == "stall":
            self.wfile.flush()
            time.sleep(float(fault.get("seconds", 60)))
            self.close_connection = True


def watch_stdin():
    """Exits the process when the parent closes our stdin (or dies)."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def watch_idle(state, idle_seconds):
    """Exits after idle_seconds without a request (a leaked server cleans up)."""
    while True:
        time.sleep(min(1.0, idle_seconds))
        with state.lock:
            idle = state.active == 0 and time.monotonic() - state.last_activity > idle_seconds
        if idle:
            os._exit(0)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs when a client opens 16
    # connections at once, and each drop costs a second of retransmission.
    request_queue_size = 128
    verbose = False

    def handle_error(self, request, client_address):
        # A client that rejects our self-signed certificate (and hangs up in
        # the handshake) is what TLS tests expect, not worth a traceback.
        if (isinstance(request, ssl.SSLSocket) and isinstance(sys.exc_info()[1], OSError)
                and not self.verbose):
            return
        super().handle_error(request, client_address)


def tls_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def run_servers(state, args, main_server, other_servers=()):
    """Serves every listener until stdin closes, idle time runs out or ^C.

    Prints "PORT <n>" of `main_server` (the one line tests read); the others
    run in daemon threads, and the fakes publish their ports some other way
    (GET /_info). Shared by this script and the fakes that import it.
    """
    for server in (main_server,) + tuple(other_servers):
        server.verbose = args.verbose
    for server in other_servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
    if not args.no_stdin_watch:
        threading.Thread(target=watch_stdin, daemon=True).start()
    if args.idle_exit > 0:
        threading.Thread(target=watch_idle, args=(state, args.idle_exit), daemon=True).start()

    print("PORT %d" % main_server.server_address[1], flush=True)
    try:
        main_server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="folder whose files are served")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rate", type=int, default=0, help="bytes/s per response, 0 = unlimited")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay before each file response")
    parser.add_argument("--idle-exit", type=float, default=600, help="exit after this many idle seconds")
    parser.add_argument("--no-stdin-watch", action="store_true", help="keep running when stdin closes")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    parser.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")

    state = State(args)
    Handler.state = state
    server = Server((args.host, args.port), Handler)
    if args.tls_cert:
        server.socket = tls_context(args.tls_cert, args.tls_key).wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False)
    run_servers(state, args, server)


if __name__ == "__main__":
    main()
