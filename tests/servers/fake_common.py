"""What the protocol fakes (hf_server.py, ngc_server.py, gcs_server.py) share.

Standard library only. Each fake builds on http_server.py's State and Handler
and adds the same things on top: one state for several listeners, faults that
name a listener or "*" for any path, a request log that says which listener a
request came to, "status"/"redirect" faults that answer any route, and file
bodies with http_server's Range and body-fault handling. Keeping them here
means a fix to that handling reaches every fake at once; each fake keeps its
own routes, CLI and documented contract.
"""

import argparse
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_server as base  # noqa: E402  (the shared plumbing)

# Fault kinds that act on a file body; the others answer before routing.
BODY_FAULTS = ("cut", "short", "trickle", "stall", "ignore_range", "wrong_range", "long",
               "corrupt")


class FakeState(base.State):
    """http_server's state, for fakes that have no --rate or --latency-ms."""

    # The listener a fault belongs to when it names none (multi-listener fakes).
    default_host = None

    def __init__(self, args):
        super().__init__(argparse.Namespace(root=args.root, rate=0, latency_ms=0,
                                            verbose=args.verbose))

    def take_fault_on(self, host, path, method):
        """The next fault for a request to listener `host` (None: the only one).

        A fault's "path" of "*" matches any path of its listener.
        """
        def matches(fault):
            return ((host is None or fault.get("host", self.default_host) == host)
                    and fault["path"] in (path, "*") and method in fault["methods"])
        return self.take_fault_where(matches)


class FakeHandler(base.Handler):
    """http_server's handler with the request flow every fake follows.

    Subclasses set `log_name`, and for several listeners `host_name` (one
    subclass per listener) and `control_host`; they implement route().
    """

    log_name = "fake"
    host_name = None       # the listener this handler serves; None when there is one
    control_host = None    # the listener that answers the control endpoints
    control_paths = base.CONTROL_PATHS

    def log_message(self, fmt, *args):
        if self.state.verbose:
            label = self.log_name if self.host_name is None else "%s(%s)" % (
                self.log_name, self.host_name)
            sys.stderr.write("%s: %s\n" % (label, fmt % args))

    def record(self):
        entry = {} if self.host_name is None else {"host": self.host_name}
        entry.update({
            "method": self.method,
            "path": self.path,
            "range": self.headers.get("Range"),
            "status": None,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "client_port": self.client_address[1],
            "body_bytes": 0,
        })
        self.entry = entry
        with self.state.lock:
            self.state.requests.append(self.entry)

    def parse_query(self, query):
        return urllib.parse.parse_qs(query, keep_blank_values=True)

    def refuses_method(self, method):
        """Answers 405 to anything but GET and HEAD, before faults are looked at."""
        if method in ("GET", "HEAD"):
            return False
        self.simple(405, b"method not allowed\n")
        return True

    def dispatch_counted(self, method):
        self.method = method
        self.status_sent = None
        self.entry = None
        self.target = urllib.parse.urlsplit(self.path)
        self.decoded_path = urllib.parse.unquote(self.target.path)
        self.query = self.parse_query(self.target.query)
        if self.host_name == self.control_host and self.target.path in self.control_paths:
            self.control(method, self.target.path)
            return
        self.record()
        if self.refuses_method(method):
            return
        self.fault = self.state.take_fault_on(self.host_name, self.decoded_path, method)
        try:
            if not self.answer_fault(self.fault):
                self.route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def route(self):
        raise NotImplementedError

    # ---- replies --------------------------------------------------------

    def send_body_bytes(self, body, status, headers):
        headers = list(headers) + [("Content-Length", str(len(body)))]
        self.start(status, headers)
        if self.method != "HEAD":
            self.wfile.write(body)

    def range_not_satisfiable(self, size, common):
        self.simple(416, b"range not satisfiable\n",
                    [("Content-Range", "bytes */%d" % size)] + list(common))

    def serve_file_bytes(self, path, common, size=None):
        """200/206/416 for `path` with http_server's Range and body-fault handling."""
        fault = self.fault if (self.fault and self.fault["kind"] in BODY_FAULTS) else None
        kind = fault["kind"] if fault else None
        if size is None:
            size = os.path.getsize(path)
        wanted = base.parse_range(self.headers.get("Range"), size)
        wanted = base.faulted_range(wanted, size, kind)
        if wanted == "unsatisfiable":
            self.range_not_satisfiable(size, common)
            return
        status, first, last, length, announced = base.body_span(wanted, size, fault)
        headers = [("Content-Type", "application/octet-stream"),
                   ("Content-Length", str(announced)), ("Accept-Ranges", "bytes")] + list(common)
        if status == 206:
            headers.append(("Content-Range", "bytes %d-%d/%d" % (first, last, size)))
        self.start(status, headers)
        if self.method == "HEAD":
            return
        self.send_body(path, first, length, fault)
