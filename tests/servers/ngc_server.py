#!/usr/bin/env python3
"""Fake NGC model registry (API, auth and storage hosts) on loopback, for e2s tests.

Standard library only (runs with Debian's /usr/bin/python3). It follows
protocols.md section 2: the endpoints, replies and error codes of the NGC
model registry that Earth2Studio and ngc-cli use. It imports http_server.py
(same folder) for the HTTP plumbing, Range parsing and fault injection; that
script keeps working on its own.

Usage:
    ngc_server.py --root DIR [--port 0] [--host 127.0.0.1] [--key KEY]...
                  [--token-ttl SECONDS] [--url-ttl SECONDS] [--page-size N]
                  [--page-style reference|number] [--idle-exit SECONDS]
                  [--no-stdin-watch] [--verbose]

Three HTTP/1.1 listeners run in one process, on the same --host:
  api      the registry API on --port, printed as the single stdout line "PORT <n>"
  auth     the token service (authn.nvidia.com) on an OS-chosen port
  storage  the object store behind the signed download URLs, on an OS-chosen port
GET /_info on the API port tells the other two ports. The process exits when its
stdin reaches EOF (unless --no-stdin-watch) and after --idle-exit seconds
without a request.

Models (read on every request, so tests may write them after start-up):
    DIR/<org or _>/<team or _>/<name>/model.json            (optional)
    DIR/<org or _>/<team or _>/<name>/<version>/<files...>  the files of one version
  "_" stands for "no org" / "no team": ngc://models/fcn@1 lives in DIR/_/_/fcn/1/,
  ngc://models/acme/fcn@1 in DIR/acme/_/fcn/1/, ngc://models/acme/t/fcn@1 in
  DIR/acme/t/fcn/1/. The API also accepts "no-org" / "no-team" for "_".
  model.json, every key optional (defaults shown):
    {"private": false,           files, listing and version info need a bearer token
                                 whose key has access (see "keys")
     "keys": null,               API keys (--key values) with access to a private
                                 model; null = every --key
     "licence_required": false,  the files endpoint answers 412 (licence not accepted)
     "licence_accepted": [],     keys whose owner accepted the licence: their
                                 tokens get the files (anonymous callers never do)
     "urls": "normal"}           the files endpoint's 200 reply: "normal", "missing"
                                 (no "urls" member) or "empty" ("urls": [])

API routes (ORG/TEAM parts optional as in the URIs; paths of files are
percent-decoded once, so "a/b.bin" and "a%2Fb.bin" name the same file; '+' is
kept literally):
  GET /v2/models/org/{org}[/team/{team}]/{name}/{version}/files?path={p}   guest
  GET /v2/models/{name}/{version}/files?path={p}                            guest, no org
  GET /v2/org/{org}[/team/{team}]/models/{name}/{version}/files?path={p}   private (Bearer)
      200 {"urls": ["http://<host>:<storage>/<opaque>/<p>?Expires=<unix>&Signature=<hex>
           &Key-Pair-Id=<id>"], "filepath": [p], "requestStatus": {"statusCode": "SUCCESS"}}
      Each call signs a new URL valid for --url-ttl seconds (default 3600).
      With redirect=true: 302 to that URL instead. Without path: every file of the
      version, parallel arrays "filepath"/"urls" + paginationInfo, paged as below.
  GET /v2/models/{org}[/{team}]/{name}/versions/{version}[/files]          guest
  GET /v2/org/{org}[/team/{team}]/models/{name}/versions/{version}[/files] private
      version: {"modelVersion": {"versionId", "status": "UPLOAD_COMPLETE",
      "totalFileCount", "totalSizeInBytes"}, "requestStatus": {...}}
      files: {"modelFiles": [{"path", "sizeInBytes"}...], "paginationInfo": {"index",
      "size", "totalPages", "totalResults", "nextPage"}, "requestStatus": {...}}.
      Files come in REVERSE path order (clients sort). Page size = min(page-size
      query (default 25), --page-size (default 1000)). Next pages: page-reference=
      <nextPage> (an opaque base64 token with '=' padding; sent encoded or raw) or
      page-number=<index>. With --page-style number, "nextPage" is left out and
      clients must use totalPages/page-number; with the default "reference" style
      "nextPage" is "" on the last page.
  Access rules, in this order:
    private endpoint: no/unknown/expired bearer -> 401; token scope must hold
      "group/ngc:{org}" and, for team models, "group/ngc:{org}/{team}" -> else 403.
    model folder missing -> 404; private model: (guest endpoint without a valid
      token -> 401), token of a key without access -> 403.
    files endpoint only: licence_required and not accepted -> 412.
    unknown version -> 404; unknown file -> 404.
  Error bodies: {"requestStatus": {"statusCode": "NOT_FOUND" | "UNAUTHORIZED" |
  "FORBIDDEN" | "PRECONDITION_FAILED" | "INVALID_REQUEST", "statusDescription": "..."}}.
  The guest endpoints ignore an Authorization header for public models and use it
  (same rules as the private endpoint, minus the scope check) for private ones.

Auth host:
  GET /token?service=ngc&scope=group/ngc:{org}[&scope=group/ngc:{org}/{team}]
      Authorization: Basic base64("$oauthtoken:<key>"), key one of --key ->
      200 {"token": "<random>", "expires_in": --token-ttl (default 3600)}; the token
      remembers its key, its scopes and its expiry. Unknown parameters are ignored.
      Missing or bad credentials -> 401; service other than ngc -> 400.
  Personal keys ("nvapi-...") given with --key are accepted on the API as bearer
  tokens directly, with every scope (they are also accepted here).

Storage host: GET|HEAD /<opaque>/<path>?Expires=..&Signature=..&Key-Pair-Id=..
  only URLs the files endpoint issued: the file with Content-Length, ETag (MD5),
  Last-Modified, Accept-Ranges: bytes, single Range (206 + Content-Range, 416).
  Like S3/CloudFront: an Authorization header -> 400 InvalidArgument; unknown
  signature or tampered path/Expires -> 403 SignatureDoesNotMatch; expired or
  revoked (/_expire_urls) -> 403 AccessDenied "Request has expired". Error bodies
  are S3-style XML.

Control endpoints, on the API port only, never recorded (JSON):
  GET  /_stats          {"requests": [{"host": "api"|"auth"|"storage", "method",
                         "path" (target as received, query included), "range",
                         "status", "headers" (lowercased names), "client_port",
                         "body_bytes"}...], "body_bytes": n}. Each request is
                         recorded before its response is sent.
  POST /_reset          forget statistics, faults and extra headers (issued tokens
                        and URLs stay valid)
  POST /_fault          {"host": "api"|"auth"|"storage" (default "api"), "path": decoded
                         path without query, or "*" (any path of that host), "kind",
                         "times": 1, "methods": ["GET", "HEAD"], ...}. Kinds and their
                         parameters as in http_server.py: status, redirect (answer any
                         route), cut, short, trickle, stall, ignore_range, wrong_range,
                         long, corrupt (act on storage file bodies). A storage fault with
                         "expire_urls": true also revokes every issued URL once the
                         faulty request has passed the signature check (a download that
                         is cut and then finds its URL expired).
  POST /_headers        {"path", "headers"} extra response headers (as http_server.py)
  POST /_expire_tokens  every token issued so far is expired from now on (401 on the API)
  POST /_expire_urls    every signed URL issued so far is revoked (403 on storage)
  GET  /_info           {"api_port", "auth_port", "storage_port", "tokens": [{"scopes",
                         "expired"}...], "urls_issued": n}
"""

import argparse
import base64
import binascii
import email.utils
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_common  # noqa: E402  (what the fakes share)
import http_server as base  # noqa: E402  (the shared plumbing)

API_CONTROL = ("/_stats", "/_reset", "/_fault", "/_headers", "/_info", "/_expire_tokens",
               "/_expire_urls")
SIGNING_KEY = b"e2s-fake-ngc-storage"
DEFAULT_PAGE_SIZE = 25


def is_part(text):
    return bool(text) and all(c.isalnum() or c in "_-" for c in text) and text.isascii()


def parse_query(query):
    """{name: [values]}, each value percent-decoded once ('+' kept as is)."""
    out = {}
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        out.setdefault(urllib.parse.unquote(name), []).append(urllib.parse.unquote(value))
    return out


class NgcState(fake_common.FakeState):
    """http_server's shared state plus the registry's own."""

    default_host = "api"

    def __init__(self, args):
        super().__init__(args)
        self.host = args.host
        self.keys = list(args.key or [])
        self.token_ttl = args.token_ttl
        self.url_ttl = args.url_ttl
        self.page_size = max(1, args.page_size)
        self.page_style = args.page_style
        self.api_port = 0
        self.auth_port = 0
        self.storage_port = 0
        self.tokens = {}     # token -> {"key", "scopes", "expires", "revoked"}
        self.urls = {}       # signature -> {"file", "path", "expires", "revoked"}
        self.url_serial = 0

    def issue_token(self, key, scopes):
        token = "ngc-token-" + secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = {"key": key, "scopes": list(scopes),
                                  "expires": time.time() + self.token_ttl, "revoked": False}
        return token

    def identity(self, token):
        """(key, scopes or None for every scope), or a reason string when refused."""
        if token is None:
            return "no bearer token"
        with self.lock:
            record = self.tokens.get(token)
            record = dict(record) if record else None
        if record is None:
            if token.startswith("nvapi-") and token in self.keys:
                return (token, None)
            return "unknown token"
        if record["revoked"] or time.time() >= record["expires"]:
            return "expired token"
        return (record["key"], record["scopes"])

    def sign(self, file_path, url_path):
        with self.lock:
            self.url_serial += 1
            serial = self.url_serial
        expires = int(time.time()) + self.url_ttl
        message = ("%s\n%d\n%d" % (url_path, expires, serial)).encode()
        signature = hmac.new(SIGNING_KEY, message, hashlib.sha256).hexdigest()
        with self.lock:
            self.urls[signature] = {"file": file_path, "path": url_path, "expires": expires,
                                    "revoked": False}
        return "http://%s:%d%s?Expires=%d&Signature=%s&Key-Pair-Id=APKAE2SFAKE%04d" % (
            self.host, self.storage_port, urllib.parse.quote(url_path), expires, signature,
            serial)

    def expire_tokens(self):
        with self.lock:
            for record in self.tokens.values():
                record["revoked"] = True

    def expire_urls(self):
        with self.lock:
            for record in self.urls.values():
                record["revoked"] = True


class Model:
    """One model folder and its model.json."""

    def __init__(self, state, org, team, name):
        self.org = org
        self.team = team
        self.name = name
        self.id = "/".join(p for p in (org, team, name) if p)
        self.dir = os.path.join(state.root, org or "_", team or "_", name)
        config = {}
        config_path = os.path.join(self.dir, "model.json")
        if os.path.isfile(config_path):
            with open(config_path, "rb") as f:
                config = json.loads(f.read() or b"{}")
        self.private = bool(config.get("private", False))
        self.keys = config.get("keys")
        self.licence_required = bool(config.get("licence_required", False))
        self.licence_accepted = list(config.get("licence_accepted") or [])
        self.urls_mode = config.get("urls", "normal")

    @staticmethod
    def load(state, org, team, name):
        if org in ("no-org", "_"):
            org = None
        if team in ("no-team", "_"):
            team = None
        for part in (org, team):
            if part is not None and not is_part(part):
                return None
        if not is_part(name) or (team and not org):
            return None
        model = Model(state, org, team, name)
        return model if os.path.isdir(model.dir) else None

    def has_access(self, key):
        if not self.private:
            return True
        if key is None:
            return False
        return self.keys is None or key in self.keys

    def version_dir(self, version):
        if not version or version in (".", "..") or "/" in version or version == "model.json":
            return None
        path = os.path.join(self.dir, version)
        return path if os.path.isdir(path) else None

    def file(self, version_dir, path):
        if not path or "\0" in path or path.startswith("/"):
            return None
        if any(part in ("", ".", "..") for part in path.split("/")):
            return None
        top = os.path.realpath(version_dir)
        candidate = os.path.realpath(os.path.join(top, path))
        if not candidate.startswith(top + os.sep) or not os.path.isfile(candidate):
            return None
        return candidate

    @staticmethod
    def files(version_dir):
        """[(relative path, size)] of every file of a version, in REVERSE path order."""
        out = []
        for current, _dirs, names in os.walk(version_dir):
            rel_dir = os.path.relpath(current, version_dir).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            for name in names:
                out.append((rel_dir + name, os.path.getsize(os.path.join(current, name))))
        out.sort(reverse=True)
        return out


class Refused(Exception):
    """An API error reply: status, statusCode, description."""

    def __init__(self, status, code, description, headers=()):
        super().__init__(description)
        self.headers = list(headers)
        self.status = status
        self.code = code
        self.description = description


class NgcHandler(fake_common.FakeHandler):
    """Shared by the three listeners; `host_name` says which one a request came to."""

    server_version = "e2s-fake-ngc"
    log_name = "ngc_server"
    host_name = "api"
    control_host = "api"
    control_paths = API_CONTROL

    def parse_query(self, query):
        return parse_query(query)

    def route(self):
        if self.host_name == "storage":
            self.route_storage()
        elif self.host_name == "auth":
            self.route_auth()
        else:
            try:
                self.route_api()
            except Refused as refused:
                self.api_error(refused.status, refused.code, refused.description,
                               refused.headers)

    # ---- replies --------------------------------------------------------

    def reply_json(self, obj, status=200, headers=()):
        body = json.dumps(obj).encode()
        self.send_body_bytes(body, status, [("Content-Type", "application/json")] + list(headers))

    def api_error(self, status, code, description, headers=()):
        self.reply_json({"requestStatus": {"statusCode": code, "statusDescription": description,
                                           "requestId": secrets.token_hex(8)}},
                        status, headers)

    def s3_error(self, status, code, message, extra=""):
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                "<Message>%s</Message>%s<RequestId>%s</RequestId></Error>"
                % (code, message, extra, secrets.token_hex(8).upper())).encode()
        self.send_body_bytes(body, status, [("Content-Type", "application/xml")])

    # ---- auth host ------------------------------------------------------

    def route_auth(self):
        if self.target.path != "/token":
            self.api_error(404, "NOT_FOUND", "no such route")
            return
        if self.query.get("service", [""])[0] != "ngc":
            self.api_error(400, "INVALID_REQUEST", "service must be ngc")
            return
        key = None
        value = self.headers.get("Authorization") or ""
        if value[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(value[6:].strip(),
                                                     validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            if user == "$oauthtoken" and password in self.state.keys:
                key = password
        if key is None:
            self.api_error(401, "UNAUTHORIZED", "Invalid credentials",
                           [("WWW-Authenticate", 'Basic realm="ngc"')])
            return
        scopes = self.query.get("scope", [])
        token = self.state.issue_token(key, scopes)
        self.reply_json({"token": token, "expires_in": self.state.token_ttl})

    # ---- API host -------------------------------------------------------

    def bearer(self):
        value = self.headers.get("Authorization") or ""
        if value[:7].lower() != "bearer ":
            return None
        return value[7:].strip() or None

    def route_api(self):
        segments = self.target.path.split("/")[1:]
        if len(segments) < 3 or segments[0] != "v2":
            raise Refused(404, "NOT_FOUND", "no such route")
        if segments[1] == "org":
            self.route_private(segments[2:])
        elif segments[1] == "models":
            self.route_guest(segments[2:])
        else:
            raise Refused(404, "NOT_FOUND", "no such route")

    def route_private(self, parts):
        # {org}[/team/{team}]/models/{name}/...
        org, parts = parts[0], parts[1:]
        team = None
        if len(parts) >= 2 and parts[0] == "team":
            team, parts = parts[1], parts[2:]
        if len(parts) < 3 or parts[0] != "models":
            raise Refused(404, "NOT_FOUND", "no such route")
        name, rest = parts[1], parts[2:]
        who = self.state.identity(self.bearer())
        if isinstance(who, str):
            raise Refused(401, "UNAUTHORIZED", "Authentication failed: %s" % who,
                          [("WWW-Authenticate", 'Bearer realm="ngc"')])
        key, scopes = who
        org_id = None if org in ("no-org", "_") else org
        team_id = None if team in (None, "no-team", "_") else team
        if scopes is not None and org_id:
            needed = ["group/ngc:%s" % org_id]
            if team_id:
                needed.append("group/ngc:%s/%s" % (org_id, team_id))
            missing = [s for s in needed if s not in scopes]
            if missing:
                raise Refused(403, "FORBIDDEN",
                              "Access denied: the token's scope does not include %s"
                              % ", ".join(missing))
        model = self.open_model(org, team, name, key, authenticated=True)
        self.route_model(model, rest, key)

    def route_guest(self, parts):
        if len(parts) >= 3 and (parts[-2] == "versions" or (
                len(parts) >= 4 and parts[-3] == "versions" and parts[-1] == "files")):
            # {org}[/{team}]/{name}/versions/{version}[/files]
            at = len(parts) - 2 if parts[-2] == "versions" else len(parts) - 3
            names, rest = parts[:at], parts[at:]
            if not 1 <= len(names) <= 3:
                raise Refused(404, "NOT_FOUND", "no such route")
            org = names[0] if len(names) >= 2 else None
            team = names[1] if len(names) == 3 else None
            name = names[-1]
        elif len(parts) >= 5 and parts[0] == "org":
            # org/{org}[/team/{team}]/{name}/{version}/files
            org, parts = parts[1], parts[2:]
            team = None
            if len(parts) >= 4 and parts[0] == "team":
                team, parts = parts[1], parts[2:]
            if len(parts) != 3:
                raise Refused(404, "NOT_FOUND", "no such route")
            name, rest = parts[0], parts[1:]
        elif len(parts) == 3:
            org, team, name, rest = None, None, parts[0], parts[1:]
        else:
            raise Refused(404, "NOT_FOUND", "no such route")
        key = None
        token = self.bearer()
        authenticated = False
        probe = Model.load(self.state, org, team, name)
        if probe is not None and probe.private:
            who = self.state.identity(token)
            if isinstance(who, str):
                raise Refused(401, "UNAUTHORIZED",
                              "Authentication required to access model %s (%s)" % (probe.id, who),
                              [("WWW-Authenticate", 'Bearer realm="ngc"')])
            key, authenticated = who[0], True
        model = self.open_model(org, team, name, key, authenticated)
        self.route_model(model, rest, key)

    def open_model(self, org, team, name, key, authenticated):
        model = Model.load(self.state, org, team, name)
        label = "/".join(urllib.parse.unquote(p) for p in (org, team, name)
                         if p and p not in ("no-org", "no-team", "_"))
        if model is None:
            raise Refused(404, "NOT_FOUND", "Model '%s' could not be found" % label)
        if model.private and not model.has_access(key if authenticated else None):
            raise Refused(403, "FORBIDDEN", "Access to model '%s' is denied" % model.id)
        return model

    def route_model(self, model, rest, key):
        # rest: [version, "files"] | ["versions", version] | ["versions", version, "files"]
        if len(rest) == 2 and rest[1] == "files":
            self.files_endpoint(model, urllib.parse.unquote(rest[0]), key)
        elif len(rest) in (2, 3) and rest[0] == "versions" and rest[1]:
            version = urllib.parse.unquote(rest[1])
            version_dir = self.version_or_404(model, version)
            if len(rest) == 2:
                self.version_info(model, version, version_dir)
            elif rest[2] == "files":
                self.listing(model, version, version_dir)
            else:
                raise Refused(404, "NOT_FOUND", "no such route")
        else:
            raise Refused(404, "NOT_FOUND", "no such route")

    def version_or_404(self, model, version):
        version_dir = model.version_dir(version)
        if version_dir is None:
            raise Refused(404, "NOT_FOUND", "Version '%s' of model '%s' could not be found"
                          % (version, model.id))
        return version_dir

    def paging(self):
        """(offset, size) from page-size and page-reference / page-number."""
        try:
            asked = int(self.query.get("page-size", [str(DEFAULT_PAGE_SIZE)])[0])
        except ValueError:
            raise Refused(400, "INVALID_REQUEST", "page-size must be an integer")
        size = max(1, min(asked, self.state.page_size))
        if "page-reference" in self.query:
            reference = self.query["page-reference"][0]
            try:
                data = json.loads(base64.b64decode(reference, validate=True))
                offset, size = int(data["offset"]), int(data["size"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise Refused(400, "INVALID_REQUEST", "invalid page-reference %r" % reference)
            return offset, size
        try:
            number = int(self.query.get("page-number", ["0"])[0])
        except ValueError:
            raise Refused(400, "INVALID_REQUEST", "page-number must be an integer")
        return max(0, number) * size, size

    def page_info(self, offset, size, total):
        pages = (total + size - 1) // size
        info = {"index": offset // size, "size": size, "totalPages": pages,
                "totalResults": total}
        if self.state.page_style == "reference":
            more = offset + size < total
            token = ""
            if more:
                # Padded base64 on purpose: '=' must survive the round trip.
                token = base64.b64encode(json.dumps(
                    {"offset": offset + size, "size": size, "n": secrets.token_hex(1)}).encode()
                ).decode()
            info["nextPage"] = token
        return info

    def version_info(self, model, version, version_dir):
        files = Model.files(version_dir)
        self.reply_json({"modelVersion": {"versionId": version, "status": "UPLOAD_COMPLETE",
                                          "totalFileCount": len(files),
                                          "totalSizeInBytes": sum(s for _, s in files)},
                         "requestStatus": {"statusCode": "SUCCESS"}})

    def listing(self, model, version, version_dir):
        files = Model.files(version_dir)
        offset, size = self.paging()
        page = files[offset:offset + size]
        self.reply_json({"modelFiles": [{"path": p, "sizeInBytes": s} for p, s in page],
                         "paginationInfo": self.page_info(offset, size, len(files)),
                         "requestStatus": {"statusCode": "SUCCESS"}})

    def files_endpoint(self, model, version, key):
        if model.licence_required and (key is None or key not in model.licence_accepted):
            raise Refused(412, "PRECONDITION_FAILED",
                          "The license agreement of model '%s' must be accepted before "
                          "downloading" % model.id)
        version_dir = self.version_or_404(model, version)
        opaque = hashlib.sha1(("%s@%s" % (model.id, version)).encode()).hexdigest()[:20]
        if "path" not in self.query:
            files = Model.files(version_dir)
            offset, size = self.paging()
            page = files[offset:offset + size]
            self.reply_json({
                "filepath": [p for p, _ in page],
                "urls": [self.state.sign(os.path.join(version_dir, p), "/%s/%s" % (opaque, p))
                         for p, _ in page],
                "paginationInfo": self.page_info(offset, size, len(files)),
                "requestStatus": {"statusCode": "SUCCESS"}})
            return
        path = self.query["path"][0]
        full = model.file(version_dir, path)
        if full is None:
            raise Refused(404, "NOT_FOUND", "File '%s' could not be found in model '%s' "
                          "version '%s'" % (path, model.id, version))
        url = self.state.sign(full, "/%s/%s" % (opaque, path))
        if self.query.get("redirect", ["false"])[0].lower() == "true":
            self.send_body_bytes(b"", 302, [("Location", url)])
            return
        reply = {"filepath": [path], "requestStatus": {"statusCode": "SUCCESS"}}
        if model.urls_mode == "empty":
            reply["urls"] = []
        elif model.urls_mode != "missing":
            reply["urls"] = [url]
        self.reply_json(reply)

    # ---- storage host ---------------------------------------------------

    def route_storage(self):
        if self.headers.get("Authorization") is not None:
            self.s3_error(400, "InvalidArgument",
                          "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                          "parameter, Signature query string parameter or the Authorization "
                          "header should be specified")
            return
        signature = self.query.get("Signature", [""])[0]
        expires = self.query.get("Expires", [""])[0]
        with self.state.lock:
            record = self.state.urls.get(signature)
            record = dict(record) if record else None
        if (record is None or record["path"] != self.decoded_path
                or expires != str(record["expires"])):
            self.s3_error(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature "
                          "you provided.")
            return
        if record["revoked"] or time.time() > record["expires"]:
            now = email.utils.formatdate(time.time(), usegmt=True)
            self.s3_error(403, "AccessDenied", "Request has expired",
                          "<Expires>%s</Expires><ServerTime>%s</ServerTime>"
                          % (email.utils.formatdate(record["expires"], usegmt=True), now))
            return
        if self.fault and self.fault.get("expire_urls"):
            self.state.expire_urls()
        path = record["file"]
        if not os.path.isfile(path):
            self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        st = os.stat(path)
        self.serve_file_bytes(path, [
            ("ETag", '"%s"' % self.state.etag_of(path, st)),
            ("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True)),
        ])

    # ---- control --------------------------------------------------------

    def control(self, method, path):
        if path == "/_info" and method == "GET":
            with self.state.lock:
                tokens = [{"scopes": r["scopes"],
                           "expired": r["revoked"] or time.time() >= r["expires"]}
                          for r in self.state.tokens.values()]
                issued = len(self.state.urls)
            self.send_json({"api_port": self.state.api_port, "auth_port": self.state.auth_port,
                            "storage_port": self.state.storage_port, "tokens": tokens,
                            "urls_issued": issued})
        elif path == "/_expire_tokens" and method == "POST":
            self.read_json()
            self.state.expire_tokens()
            self.send_json({"ok": True})
        elif path == "/_expire_urls" and method == "POST":
            self.read_json()
            self.state.expire_urls()
            self.send_json({"ok": True})
        else:
            super().control(method, path)


class ApiHandler(NgcHandler):
    host_name = "api"


class AuthHandler(NgcHandler):
    host_name = "auth"


class StorageHandler(NgcHandler):
    host_name = "storage"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder of models (see --help)")
    parser.add_argument("--port", type=int, default=0, help="API port; 0 lets the OS choose")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--key", action="append", help="a valid API key (repeatable)")
    parser.add_argument("--token-ttl", type=int, default=3600,
                        help="lifetime of issued tokens in seconds (their expires_in)")
    parser.add_argument("--url-ttl", type=int, default=3600,
                        help="lifetime of signed download URLs in seconds")
    parser.add_argument("--page-size", type=int, default=1000,
                        help="largest page of a listing, whatever the client asks")
    parser.add_argument("--page-style", choices=("reference", "number"), default="reference",
                        help="reference: paginationInfo.nextPage; number: totalPages only")
    parser.add_argument("--idle-exit", type=float, default=600,
                        help="exit after this many idle seconds")
    parser.add_argument("--no-stdin-watch", action="store_true",
                        help="keep running when stdin closes")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args()

    state = NgcState(args)
    for handler in (ApiHandler, AuthHandler, StorageHandler):
        handler.state = state
    api = base.Server((args.host, args.port), ApiHandler)
    auth = base.Server((args.host, 0), AuthHandler)
    storage = base.Server((args.host, 0), StorageHandler)
    state.api_port = api.server_address[1]
    state.auth_port = auth.server_address[1]
    state.storage_port = storage.server_address[1]
    base.run_servers(state, args, api, [auth, storage])


if __name__ == "__main__":
    main()
