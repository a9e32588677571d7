#!/usr/bin/env python3
"""Fake Google Cloud Storage (public XML object URLs + JSON API) on loopback.

Standard library only (runs with Debian's /usr/bin/python3). It follows
protocols.md section 4. It imports http_server.py (same folder) for the HTTP
plumbing, Range parsing, control endpoints and fault injection.

Usage:
    gcs_server.py --root DIR [--port 0] [--host 127.0.0.1] [--page-size 1000]
                  [--idle-exit SECONDS] [--no-stdin-watch] [--verbose]

Prints exactly one line "PORT <n>" to stdout; exits when its stdin reaches EOF
(unless --no-stdin-watch) and after --idle-exit seconds without a request.
Point STORAGE_EMULATOR_HOST at "127.0.0.1:<n>" or "http://127.0.0.1:<n>".

Buckets and objects (read on every request, so tests may change them after
start-up): DIR/<bucket>/<object name> ('/' in names are folders). Names
starting with '.' at the top of DIR are not buckets. DIR/.gcs.json (optional):
  {"lies":      ["bucket/name", ...],  md5Hash, crc32c, X-Goog-Hash and the
                                        ETag describe other bytes (the object's
                                        bytes + b"lie"); sizes stay true
   "md5_lies":  ["bucket/name", ...],  only the md5 (md5Hash, X-Goog-Hash md5=,
                                        ETag) lies; the crc32c is true
   "composite": ["bucket/name", ...],  a composite object: no md5 anywhere
                                        (X-Goog-Hash crc32c only, no md5Hash),
                                        componentCount 2, ETag not an MD5
   "private":   ["bucket/name", "bucket/"]  that object / every object of that
                                        bucket (and its listing) refuses
                                        anonymous callers; a private object
                                        of a listable bucket is still listed}
No credentials are ever accepted: a private object is private for everyone.

Public object URL (XML API):
  GET|HEAD /{bucket}/{object}         object percent-encoded, '/' kept
    200/206 Content-Length, Content-Type, ETag ("<md5 hex>", or "-C<b64>=" for
    composites), Last-Modified, Accept-Ranges, x-goog-generation,
    x-goog-metageneration, x-goog-stored-content-length,
    x-goog-stored-content-encoding, x-goog-storage-class and X-Goog-Hash as
    TWO header lines, "crc32c=<b64 of big-endian CRC32C>" and "md5=<b64>"
    (the whole object's hashes, on 206 too). Single Range (206 + Content-Range;
    416 when unsatisfiable).
    Errors: XML <Error><Code>NoSuchKey|NoSuchBucket|AccessDenied</Code>
    <Message/><Details/></Error>, 404/404/403 (HEAD: no body).
JSON API:
  GET /storage/v1/b/{bucket}/o/{object}       object encoded with no safe
    characters ('/' as %2F; a literal '/' there is 404, as on GCS): the object
    resource {"kind": "storage#object", "name", "bucket", "size" (string),
    "md5Hash", "crc32c", "etag", "generation", "metageneration" (strings),
    "contentType", "timeCreated", "updated", "mediaLink", "selfLink", ...}.
    With ?alt=media: the bytes, as the media URL below.
  GET /download/storage/v1/b/{bucket}/o/{object}?alt=media[&generation=N]
    the bytes, with the same headers and Range handling as the public URL.
  GET /storage/v1/b/{bucket}/o?prefix=&delimiter=&pageToken=&maxResults=
    &startOffset=&endOffset=
    {"kind": "storage#objects", "items": [...], "prefixes": [...],
     "nextPageToken": "..."}; items sorted by name; at most min(maxResults,
    --page-size) items (+ prefixes) per page; nextPageToken while more remain
    (opaque; unknown tokens are 400 invalid).
  JSON errors: {"error": {"code": N, "message": "...", "errors": [{"domain":
  "global", "reason": "notFound"|"required"|"invalid", "message": "..."}]}}:
  404 notFound (bucket or object), 401 required (private, anonymous caller).
  A wrong generation= is 404.

Control endpoints (never recorded), as http_server.py: GET /_stats, POST
/_reset, POST /_fault, POST /_headers. A fault's "path" is compared with the
decoded request path without the query ("/bucket/name",
"/download/storage/v1/b/bucket/o/name", ...) or "*" for any path. "status"
and "redirect" answer any route; the body kinds (cut, short, trickle, stall,
ignore_range, wrong_range, long, corrupt) act on object bytes. /_headers
extras replace default headers of the same name (both X-Goog-Hash lines at
once: {"X-Goog-Hash": "crc32c=...,md5=..."} sends the single-line form).
Every request is recorded before its response is sent.
"""

import argparse
import base64
import email.utils
import hashlib
import json
import os
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_common  # noqa: E402  (what the fakes share)
import http_server as base  # noqa: E402  (the shared plumbing)

LIE_SUFFIX = b"lie"


def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c_update(crc, data):
    """CRC-32C (Castagnoli), reflected, as GCS computes it; crc starts at 0."""
    crc ^= 0xFFFFFFFF
    table = CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def rfc3339(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (
        ".%03dZ" % int((seconds % 1) * 1000))


class GcsState(fake_common.FakeState):
    """http_server's shared state plus hash caching and the root's config."""

    def __init__(self, args):
        super().__init__(args)
        self.page_size = max(1, args.page_size)
        self.hashes = {}  # (path, size, mtime_ns, lie) -> (md5 bytes, crc32c int)

    def config(self):
        path = os.path.join(self.root, ".gcs.json")
        if not os.path.isfile(path):
            return {}
        with open(path, "rb") as f:
            return json.loads(f.read() or b"{}")

    def hashes_of(self, path, st, lie):
        key = (path, st.st_size, st.st_mtime_ns, lie)
        with self.lock:
            cached = self.hashes.get(key)
        if cached is not None:
            return cached
        md5 = hashlib.md5()
        crc = 0
        with open(path, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                md5.update(block)
                crc = crc32c_update(crc, block)
        if lie:
            md5.update(LIE_SUFFIX)
            crc = crc32c_update(crc, LIE_SUFFIX)
        value = (md5.digest(), crc)
        with self.lock:
            self.hashes[key] = value
        return value


class GcsObject:
    """One object: its file, flags from .gcs.json and derived metadata."""

    def __init__(self, state, bucket, name, path, config):
        self.bucket = bucket
        self.name = name
        self.path = path
        full = bucket + "/" + name
        self.lie = full in config.get("lies", [])
        self.composite = full in config.get("composite", [])
        st = os.stat(path)
        self.size = st.st_size
        self.mtime = st.st_mtime
        self.generation = str(st.st_mtime_ns // 1000)  # GCS: microseconds since epoch
        md5, crc = state.hashes_of(path, st, self.lie)
        if full in config.get("md5_lies", []):
            md5 = state.hashes_of(path, st, True)[0]
        self.md5_b64 = b64(md5)
        self.md5_hex = md5.hex()
        self.crc32c_b64 = b64(crc.to_bytes(4, "big"))
        # JSON etag: opaque base64 (GCS encodes generation + metageneration).
        self.json_etag = b64(b"C" + self.generation.encode() + b"E1")

    def xml_etag(self):
        if self.composite:
            return '"-C%s="' % self.json_etag.rstrip("=")
        return '"%s"' % self.md5_hex

    def hash_headers(self):
        headers = [("X-Goog-Hash", "crc32c=" + self.crc32c_b64)]
        if not self.composite:
            headers.append(("X-Goog-Hash", "md5=" + self.md5_b64))
        return headers

    def resource(self, base_url):
        enc = urllib.parse.quote(self.name, safe="")
        out = {
            "kind": "storage#object",
            "id": "%s/%s/%s" % (self.bucket, self.name, self.generation),
            "selfLink": "%s/storage/v1/b/%s/o/%s" % (base_url, self.bucket, enc),
            "mediaLink": "%s/download/storage/v1/b/%s/o/%s?generation=%s&alt=media"
                         % (base_url, self.bucket, enc, self.generation),
            "name": self.name,
            "bucket": self.bucket,
            "generation": self.generation,
            "metageneration": "1",
            "contentType": "application/octet-stream",
            "storageClass": "STANDARD",
            "size": str(self.size),
            "crc32c": self.crc32c_b64,
            "etag": self.json_etag,
            "timeCreated": rfc3339(self.mtime),
            "updated": rfc3339(self.mtime),
            "timeStorageClassUpdated": rfc3339(self.mtime),
        }
        if self.composite:
            out["componentCount"] = 2
        else:
            out["md5Hash"] = self.md5_b64
        return out


def valid_name(name):
    return bool(name) and "\0" not in name and not any(
        part in ("", ".", "..") for part in name.split("/"))


class GcsHandler(fake_common.FakeHandler):
    server_version = "e2s-fake-gcs"
    log_name = "gcs_server"

    # ---- plumbing -------------------------------------------------------

    def start(self, status, headers):
        """As http_server's, but a header name may repeat (X-Goog-Hash)."""
        with self.state.lock:
            extra = dict(self.state.extra_headers.get(self.decoded_path, {}))
        replaced = {name.lower() for name in extra}
        lines = [(n, v) for n, v in headers if n.lower() not in replaced]
        lines += [(n, v) for n, v in extra.items() if v is not None]
        self.status_sent = status
        if self.entry is not None:
            with self.state.lock:
                self.entry["status"] = status
        self.send_response(status)
        for name, value in lines:
            self.send_header(name, str(value))
        self.end_headers()

    def refuses_method(self, method):
        # GCS answers faults first; route() refuses other methods with a JSON 405.
        return False

    def send_bytes(self, status, body, headers):
        self.send_body_bytes(body, status, headers)

    def json_error(self, status, message, reason, extra=None):
        error = {"domain": "global", "reason": reason, "message": message}
        error.update(extra or {})
        body = json.dumps({"error": {"code": status, "message": message,
                                     "errors": [error]}}).encode()
        self.send_bytes(status, body, [("Content-Type", "application/json; charset=UTF-8")])

    def xml_error(self, status, code, message, details):
        body = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code>"
                "<Message>%s</Message><Details>%s</Details></Error>"
                % (code, message, details)).encode()
        self.send_bytes(status, body, [("Content-Type", "application/xml; charset=UTF-8")])

    def base_url(self):
        return "http://" + (self.headers.get("Host") or "%s:%d" % self.server.server_address[:2])

    # ---- lookup ---------------------------------------------------------

    def bucket_dir(self, bucket):
        if not bucket or bucket.startswith(".") or "/" in bucket or "\0" in bucket:
            return None
        path = os.path.join(self.state.root, bucket)
        return path if os.path.isdir(path) else None

    def lookup(self, bucket, name):
        """("ok", GcsObject) or ("no_bucket"|"no_object"|"private", None)."""
        top = self.bucket_dir(bucket)
        if top is None:
            return "no_bucket", None
        config = self.state.config()
        private = config.get("private", [])
        if bucket + "/" in private or bucket + "/" + name in private:
            return "private", None
        if not valid_name(name):
            return "no_object", None
        top = os.path.realpath(top)
        candidate = os.path.realpath(os.path.join(top, name))
        if not candidate.startswith(top + os.sep) or not os.path.isfile(candidate):
            return "no_object", None
        return "ok", GcsObject(self.state, bucket, name, candidate, config)

    # ---- routing --------------------------------------------------------

    def route(self):
        if self.method not in ("GET", "HEAD"):
            self.json_error(405, "Method not allowed", "methodNotAllowed")
            return
        raw = self.target.path
        if raw.startswith("/storage/v1/b/"):
            self.route_json(raw[len("/storage/v1/b/"):], media=False)
        elif raw.startswith("/download/storage/v1/b/"):
            self.route_json(raw[len("/download/storage/v1/b/"):], media=True)
        else:
            self.route_public(raw)

    def route_public(self, raw):
        bucket, _, rest = raw.lstrip("/").partition("/")
        bucket = urllib.parse.unquote(bucket)
        name = urllib.parse.unquote(rest)
        if not rest:
            self.xml_error(404, "NoSuchKey", "The specified key does not exist.",
                           "No such object: %s/" % bucket)
            return
        status, obj = self.lookup(bucket, name)
        if status == "no_bucket":
            self.xml_error(404, "NoSuchBucket", "The specified bucket does not exist.",
                           "No such bucket: %s" % bucket)
        elif status == "no_object":
            self.xml_error(404, "NoSuchKey", "The specified key does not exist.",
                           "No such object: %s/%s" % (bucket, name))
        elif status == "private":
            self.xml_error(403, "AccessDenied", "Access denied.",
                           "Anonymous caller does not have storage.objects.get access to "
                           "the Google Cloud Storage object. Permission 'storage.objects.get' "
                           "denied on resource (or it may not exist).")
        else:
            self.serve_media(obj)

    def route_json(self, rest, media):
        bucket_raw, _, rest = rest.partition("/")
        bucket = urllib.parse.unquote(bucket_raw)
        if rest == "o" and not media:
            self.list_objects(bucket)
            return
        if not rest.startswith("o/") or "/" in rest[2:]:
            self.json_error(404, "Not Found", "notFound")
            return
        name = urllib.parse.unquote(rest[2:])
        status, obj = self.lookup(bucket, name)
        if status == "no_bucket":
            self.json_error(404, "The specified bucket does not exist.", "notFound")
        elif status == "no_object":
            self.json_error(404, "No such object: %s/%s" % (bucket, name), "notFound")
        elif status == "private":
            self.json_error(401, "Anonymous caller does not have storage.objects.get access "
                            "to the Google Cloud Storage object. Permission "
                            "'storage.objects.get' denied on resource (or it may not exist).",
                            "required", {"locationType": "header", "location": "Authorization"})
        else:
            generation = self.query.get("generation", [None])[0]
            if generation is not None and generation != obj.generation:
                self.json_error(404, "No such object: %s/%s" % (bucket, name), "notFound")
            elif media or self.query.get("alt", [""])[0] == "media":
                self.serve_media(obj)
            else:
                self.send_bytes(200, json.dumps(obj.resource(self.base_url())).encode(),
                                [("Content-Type", "application/json; charset=UTF-8"),
                                 ("ETag", obj.json_etag)])

    # ---- media ----------------------------------------------------------

    def range_not_satisfiable(self, size, common):
        self.xml_error(416, "InvalidRange",
                       "The requested range cannot be satisfied.",
                       "bytes=%s" % self.headers.get("Range", ""))

    def serve_media(self, obj):
        common = [
            ("ETag", obj.xml_etag()),
            ("Last-Modified", email.utils.formatdate(obj.mtime, usegmt=True)),
            ("x-goog-generation", obj.generation),
            ("x-goog-metageneration", "1"),
            ("x-goog-stored-content-encoding", "identity"),
            ("x-goog-stored-content-length", str(obj.size)),
            ("x-goog-storage-class", "STANDARD"),
        ] + obj.hash_headers()
        self.serve_file_bytes(obj.path, common, size=obj.size)

    # ---- listing --------------------------------------------------------

    def list_objects(self, bucket):
        top = self.bucket_dir(bucket)
        if top is None:
            self.json_error(404, "The specified bucket does not exist.", "notFound")
            return
        config = self.state.config()
        if bucket + "/" in config.get("private", []):
            self.json_error(401, "Anonymous caller does not have storage.objects.list access "
                            "to the Google Cloud Storage bucket. Permission "
                            "'storage.objects.list' denied on resource (or it may not exist).",
                            "required", {"locationType": "header", "location": "Authorization"})
            return
        q = {k: v[0] for k, v in self.query.items()}
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        start_offset = q.get("startOffset", "")
        end_offset = q.get("endOffset", "")
        try:
            max_results = int(q.get("maxResults") or self.state.page_size)
            if max_results <= 0:
                raise ValueError
        except ValueError:
            self.json_error(400, "Invalid value for maxResults", "invalid")
            return
        max_results = min(max_results, self.state.page_size)
        after = None
        if q.get("pageToken"):
            try:
                after = base64.urlsafe_b64decode(q["pageToken"].encode()).decode("utf-8")
                if not after.startswith("after:"):
                    raise ValueError
                after = after[len("after:"):]
            except ValueError:
                self.json_error(400, "Invalid page token", "invalid")
                return

        names = []
        for current, dirs, files in os.walk(top):
            rel = os.path.relpath(current, top).replace(os.sep, "/")
            rel = "" if rel == "." else rel + "/"
            for f in files:
                names.append(rel + f)
        names.sort(key=lambda n: n.encode("utf-8"))

        entries = []  # (sort key, "item"|"prefix", value), each counts toward maxResults
        seen_prefixes = set()
        for name in names:
            if not name.startswith(prefix):
                continue
            if start_offset and name.encode() < start_offset.encode():
                continue
            if end_offset and name.encode() >= end_offset.encode():
                continue
            if delimiter:
                cut = name.find(delimiter, len(prefix))
                if cut >= 0:
                    common = name[:cut + len(delimiter)]
                    if common not in seen_prefixes:
                        seen_prefixes.add(common)
                        entries.append((common, "prefix", common))
                    continue
            entries.append((name, "item", name))
        if after is not None:
            entries = [e for e in entries if e[0].encode() > after.encode()]

        page = entries[:max_results]
        reply = {"kind": "storage#objects"}
        items = []
        prefixes = []
        base_url = self.base_url()
        for _, kind, value in page:
            if kind == "prefix":
                prefixes.append(value)
                continue
            # Listing is a bucket permission: objects that refuse anonymous
            # reads are listed all the same, as on GCS.
            path = os.path.join(top, value)
            if os.path.isfile(path):
                items.append(GcsObject(self.state, bucket, value, path, config).resource(base_url))
        if prefixes:
            reply["prefixes"] = prefixes
        if len(entries) > max_results:
            token = "after:" + page[-1][0]
            reply["nextPageToken"] = base64.urlsafe_b64encode(token.encode()).decode()
        if items:
            reply["items"] = items
        self.send_bytes(200, json.dumps(reply).encode(),
                        [("Content-Type", "application/json; charset=UTF-8")])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder of buckets (see --help)")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--page-size", type=int, default=1000,
                        help="most list items per page (GCS: 1000)")
    parser.add_argument("--idle-exit", type=float, default=600,
                        help="exit after this many idle seconds")
    parser.add_argument("--no-stdin-watch", action="store_true",
                        help="keep running when stdin closes")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args()

    state = GcsState(args)
    GcsHandler.state = state
    server = base.Server((args.host, args.port), GcsHandler)
    base.run_servers(state, args, server)


if __name__ == "__main__":
    main()
