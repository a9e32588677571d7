#!/usr/bin/env python3
"""Fake Hugging Face Hub and its LFS CDN on loopback, for e2s tests.

Standard library only (runs with Debian's /usr/bin/python3). It follows
protocols.md section 1: the URLs, headers, redirects and error codes the
real Hub uses. It imports http_server.py (same folder) for the HTTP plumbing,
Range parsing and fault injection; that script keeps working on its own.

Usage:
    hf_server.py --root DIR [--port 0] [--host 127.0.0.1] [--page-size N]
                 [--token TOKEN]... [--idle-exit SECONDS] [--no-stdin-watch]
                 [--verbose]

Two HTTP/1.1 listeners run in one process: the Hub on --port (printed as the
single stdout line "PORT <n>") and a CDN on another OS-chosen port of the same
--host (GET /_info tells which). The process exits when its stdin reaches EOF
(unless --no-stdin-watch) and after --idle-exit seconds without a request.

Repositories (read on every request, so tests may write them after start-up):
    DIR/<models|datasets|spaces>/<ns>/<name>/repo.json      (optional)
    DIR/<models|datasets|spaces>/<ns>/<name>/<folder>/...   the files of one revision
  repo.json, every key optional (defaults shown):
    {"revisions": {"main": "main"},   revision (branch, tag, "refs/pr/1") -> folder
     "private": false,                 files, tree and info need an access token
     "gated": false,                   files need an access token (false|"auto"|"manual")
     "disabled": false,                every route answers 403
     "moved_to": null,                 "ns2/name2": every route answers a relative 307
     "tokens": null,                   tokens with access; null = every --token
     "lfs_threshold": 1024,            files of at least this many bytes are LFS
     "resolve_cache": false}           small files first answer a relative 307 to
                                       /api/resolve-cache/... (seen on the real Hub)
  The commit of a folder is sha1("<models|datasets|spaces>/<ns>/<name>/<folder>")
  in lowercase hex; e.g. Python: hashlib.sha1(b"models/acme/weather/main").hexdigest().
  A 40-hex commit of any folder of the repo is accepted as a revision.

Hub routes (models have no prefix, datasets "datasets/", spaces "spaces/"; the
revision may be percent-encoded, "refs%2Fpr%2F1", or literal "refs/pr/N" /
"refs/convert/X"; paths are percent-decoded):
  HEAD|GET /{prefix}{ns}/{name}/resolve/{rev}/{path}
      small file: 200, ETag "<git blob sha1>", X-Repo-Commit, Content-Length,
        Accept-Ranges, body on GET, single Range (206/416).
      LFS file: 302, absolute Location
        http://<host>:<cdn>/lfs/<sha256>?X-Amz-Algorithm=...&X-Amz-Expires=3600&X-Amz-Signature=<hex>,
        X-Linked-Etag "<sha256>", X-Linked-Size, X-Repo-Commit, ETag "<git sha1 of
        the LFS pointer>", Content-Length of the short text body.
  HEAD|GET /api/resolve-cache/{models|datasets|spaces}/{ns}/{name}/{commit}/{path}
      the small-file answer (target of the resolve_cache 307).
  GET /api/{models|datasets|spaces}/{ns}/{name}[/revision/{rev}][?blobs=true]
      {"id", "sha", "private", "gated", "disabled", "siblings": [{"rfilename",
       +"size", "blobId", "lfs"? with blobs=true}]}
  GET /api/{models|datasets|spaces}/{ns}/{name}/tree/{rev}[/{path}]?recursive=&expand=
      path as "a%2Fb" or "a/b". JSON array of {"type": "file"|"directory", "path",
      "oid", "size", "lfs"?: {"oid": sha256, "size", "pointerSize"}} sorted by path;
      recursive=true lists every descendant (directories included), else the
      direct children. At most --page-size (default 50) entries per page; when
      more remain: Link: <http://<host>:<hub>/api/...?...&cursor=N>; rel="next".
      A path that is not a folder: 404 EntryNotFound.

Errors (X-Error-Code, X-Error-Message, and on GET a body {"error": message}):
  moved repo            307 relative Location: same route under the new name, query kept
  disabled repo         403, X-Error-Message "Access to this resource is disabled."
  missing repo          RepoNotFound "Repository not found": 401 without a known token,
                        404 with one (the real Hub hides existence from anonymous users)
  private, no access    RepoNotFound: 401 without a known token, 404 with a known one
  gated, no access      GatedRepo "Access to model ns/name is restricted...": 401 without a
                        known token, 403 with a known token that has no access. Gating
                        only covers files (resolve); info and tree stay public, as on
                        the Hub.
  missing revision      404 RevisionNotFound "Invalid rev id: <rev>"
  missing file          404 EntryNotFound "Entry not found" (+ X-Repo-Commit)
  Access tokens come as "Authorization: Bearer <token>". Known tokens: every
  --token plus the repo's "tokens".

CDN (other port): GET|HEAD /lfs/<sha256>?<signed query>: the blob, with
Content-Length, ETag (MD5, as S3), Last-Modified, Accept-Ranges, single Range
(206 + Content-Range, 416). Like S3 behind a signed URL: no X-Amz-Signature in
the query -> 403 AccessDenied; an Authorization header as well -> 400
InvalidArgument "Only one auth mechanism allowed". Unknown blob -> 404 NoSuchKey.

Control endpoints, on the Hub port only, never recorded:
  GET  /_stats    {"requests": [{"host": "hub"|"cdn", "method", "path", "range",
                   "status", "headers" (lowercased names), "client_port",
                   "body_bytes"}...], "body_bytes": n}. Each request is recorded
                  before its response is sent.
  POST /_reset    forget statistics, faults and extra headers
  POST /_fault    {"host": "hub"|"cdn" (default "hub"), "path": "/acme/x/resolve/main/f"
                   or "*" (any path of that host), "kind": ..., "times": 1,
                   "methods": ["GET", "HEAD"], ...}. Paths are compared decoded and
                  without the query. Kinds and parameters as in http_server.py:
                  status, redirect, cut, short, trickle, stall, ignore_range,
                  wrong_range, long, corrupt (flips one body byte, headers kept:
                  the "lying CDN"). status/redirect answer any route; the others
                  act on file bodies (hub small files, CDN blobs).
  POST /_headers  {"path", "headers"} extra response headers (as http_server.py; hub
                  and CDN paths alike)
  GET  /_info     {"hub_port", "cdn_port", "repos": {"models/ns/name": {"revisions":
                   {"main": "<commit>", ...}, "folders": {"main": "<commit>", ...}}}}
"""

import argparse
import email.utils
import hashlib
import hmac
import json
import os
import re
import sys
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_common  # noqa: E402  (what the fakes share)
import http_server as base  # noqa: E402  (the shared plumbing)

KINDS = ("models", "datasets", "spaces")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HUB_CONTROL = ("/_stats", "/_reset", "/_fault", "/_headers", "/_info")
SIGNING_KEY = b"e2s-fake-cdn"


def git_blob_sha1(size, chunks):
    digest = hashlib.sha1(b"blob %d\0" % size)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def lfs_pointer(sha256, size):
    return b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (
        sha256.encode(), size)


class HubState(fake_common.FakeState):
    """http_server's shared state plus the Hub's own."""

    default_host = "hub"

    def __init__(self, args):
        super().__init__(args)
        self.host = args.host
        self.page_size = max(1, args.page_size)
        self.tokens = set(args.token or [])
        self.hub_port = 0
        self.cdn_port = 0
        self.blobs = {}     # sha256 -> file path (registered when redirected to)
        self.digests = {}   # (path, size, mtime_ns) -> (git sha1, sha256)

    def digests_of(self, path):
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        with self.lock:
            cached = self.digests.get(key)
        if cached is not None:
            return cached
        sha1 = hashlib.sha1(b"blob %d\0" % st.st_size)
        sha256 = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                sha1.update(block)
                sha256.update(block)
        value = (sha1.hexdigest(), sha256.hexdigest())
        with self.lock:
            self.digests[key] = value
        return value


class Repo:
    """One repository folder and its repo.json."""

    def __init__(self, state, kind, ns, name):
        self.state = state
        self.kind = kind
        self.ns = ns
        self.name = name
        self.id = ns + "/" + name
        self.dir = os.path.join(state.root, kind, ns, name)
        config = {}
        config_path = os.path.join(self.dir, "repo.json")
        if os.path.isfile(config_path):
            with open(config_path, "rb") as f:
                config = json.loads(f.read() or b"{}")
        self.revisions = dict(config.get("revisions") or {"main": "main"})
        self.private = bool(config.get("private", False))
        self.gated = config.get("gated", False) or False
        self.disabled = bool(config.get("disabled", False))
        self.moved_to = config.get("moved_to")
        self.repo_tokens = config.get("tokens")
        self.lfs_threshold = int(config.get("lfs_threshold", 1024))
        self.resolve_cache = bool(config.get("resolve_cache", False))

    @staticmethod
    def load(state, kind, ns, name):
        if kind not in KINDS or not SEGMENT.match(ns) or not SEGMENT.match(name):
            return None
        if not os.path.isdir(os.path.join(state.root, kind, ns, name)):
            return None
        return Repo(state, kind, ns, name)

    @property
    def singular(self):
        return self.kind[:-1]

    @property
    def prefix(self):
        return "" if self.kind == "models" else self.kind + "/"

    def commit(self, folder):
        return hashlib.sha1(("%s/%s/%s" % (self.kind, self.id, folder)).encode()).hexdigest()

    def folders(self):
        names = set(self.revisions.values())
        for entry in os.listdir(self.dir):
            if os.path.isdir(os.path.join(self.dir, entry)):
                names.add(entry)
        return sorted(names)

    def folder_of(self, revision):
        """The folder of a revision name or 40-hex commit, or None."""
        if revision in self.revisions:
            return self.revisions[revision]
        if HEX40.match(revision):
            for folder in self.folders():
                if self.commit(folder) == revision:
                    return folder
        return None

    def known(self, token):
        return token is not None and (token in self.state.tokens
                                      or token in (self.repo_tokens or []))

    def has_access(self, token):
        if token is None:
            return False
        if self.repo_tokens is not None:
            return token in self.repo_tokens
        return token in self.state.tokens

    def file(self, folder, path):
        """The absolute file for `path` in `folder`, or None."""
        if not path or "\0" in path or path.startswith("/"):
            return None
        if any(part in ("", ".", "..") for part in path.split("/")):
            return None
        top = os.path.realpath(os.path.join(self.dir, folder))
        candidate = os.path.realpath(os.path.join(top, path))
        if not candidate.startswith(top + os.sep) or not os.path.isfile(candidate):
            return None
        return candidate

    def entries(self, folder):
        """Every file and directory of a revision: {path: entry dict}, sorted."""
        top = os.path.join(self.dir, folder)
        out = {}
        if not os.path.isdir(top):
            return out
        for current, dirs, files in os.walk(top):
            dirs.sort()
            rel_dir = os.path.relpath(current, top).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            for d in dirs:
                path = rel_dir + d
                out[path] = {"type": "directory", "path": path, "size": 0,
                             "oid": hashlib.sha1(("tree " + path).encode()).hexdigest()}
            for name in files:
                path = rel_dir + name
                out[path] = self.file_entry(os.path.join(current, name), path)
        return dict(sorted(out.items()))

    def file_entry(self, full_path, path):
        size = os.path.getsize(full_path)
        sha1, sha256 = self.state.digests_of(full_path)
        if size < self.lfs_threshold:
            return {"type": "file", "path": path, "oid": sha1, "size": size}
        pointer = lfs_pointer(sha256, size)
        return {"type": "file", "path": path, "size": size,
                "oid": git_blob_sha1(len(pointer), [pointer]),
                "lfs": {"oid": sha256, "size": size, "pointerSize": len(pointer)}}


def split_revision(segments):
    """(decoded revision, remaining raw segments) from raw path segments."""
    if not segments or segments[0] == "":
        return None, []
    if segments[0] == "refs" and len(segments) >= 3 and segments[1] in ("pr", "convert"):
        return "refs/%s/%s" % (segments[1], urllib.parse.unquote(segments[2])), segments[3:]
    return urllib.parse.unquote(segments[0]), segments[1:]


class HfHandler(fake_common.FakeHandler):
    """Shared by both listeners; `host_name` says which one a request came to."""

    server_version = "e2s-fake-hf"
    log_name = "hf_server"
    host_name = "hub"
    control_host = "hub"
    control_paths = HUB_CONTROL

    # ---- replies --------------------------------------------------------

    def hub_error(self, status, code, message, headers=()):
        extra = [("X-Error-Message", message)]
        if code:
            extra.append(("X-Error-Code", code))
        body = json.dumps({"error": message}).encode()
        self.send_body_bytes(body, status, [("Content-Type", "application/json; charset=utf-8")]
                             + extra + list(headers))

    def reply_json(self, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_body_bytes(body, 200, [("Content-Type", "application/json; charset=utf-8")]
                             + list(headers))

    # ---- routing --------------------------------------------------------

    def route(self):
        if self.host_name == "cdn":
            self.route_cdn()
            return
        if self.method not in ("GET", "HEAD"):
            self.simple(405, b"method not allowed\n")
            return
        segments = self.target.path.split("/")[1:]
        if segments and segments[0] == "api":
            self.route_api(segments[1:])
            return
        kind = "models"
        if segments and segments[0] in ("datasets", "spaces"):
            kind, segments = segments[0], segments[1:]
        if len(segments) < 4 or segments[2] != "resolve":
            self.simple(404, b"not found\n")
            return
        ns, name = segments[0], segments[1]
        repo = self.open_repo(kind, ns, name, "/" + "/".join(
            ([kind] if kind != "models" else []) + [ns, name]), segments[2:])
        if repo is None:
            return
        revision, rest = split_revision(segments[3:])
        if not revision or not rest:
            self.simple(404, b"not found\n")
            return
        if not self.check_files_access(repo):
            return
        folder = self.folder_or_error(repo, revision)
        if folder is None:
            return
        self.resolve_file(repo, folder, urllib.parse.unquote("/".join(rest)), revision)

    def route_api(self, segments):
        if len(segments) >= 6 and segments[0] == "resolve-cache" and segments[1] in KINDS:
            kind, ns, name, commit = segments[1:5]
            repo = self.open_repo(kind, ns, name, None, None)
            if repo is None or not self.check_files_access(repo):
                return
            folder = self.folder_or_error(repo, urllib.parse.unquote(commit))
            if folder is None:
                return
            path = urllib.parse.unquote("/".join(segments[5:]))
            self.resolve_file(repo, folder, path, commit, allow_indirect=False)
            return
        if len(segments) < 3 or segments[0] not in KINDS:
            self.simple(404, b"not found\n")
            return
        kind, ns, name = segments[0], segments[1], segments[2]
        repo = self.open_repo(kind, ns, name, "/api/%s/%s/%s" % (kind, ns, name), segments[3:])
        if repo is None:
            return
        rest = segments[3:]
        if not rest or rest == [""]:
            self.repo_info(repo, "main")
        elif rest[0] == "revision" and len(rest) >= 2:
            self.repo_info(repo, urllib.parse.unquote("/".join(rest[1:])))
        elif rest[0] == "tree" and len(rest) >= 2:
            revision, path_segments = split_revision(rest[1:])
            self.tree(repo, revision, urllib.parse.unquote("/".join(path_segments)).strip("/"))
        else:
            self.simple(404, b"not found\n")

    def open_repo(self, kind, ns, name, moved_base, raw_rest):
        """The repo, or None after answering (missing, moved, disabled, private)."""
        token = self.bearer()
        repo = Repo.load(self.state, kind, ns, name)
        if repo is None:
            known = token is not None and token in self.state.tokens
            self.hub_error(404 if known else 401, "RepoNotFound", "Repository not found")
            return None
        if repo.moved_to:
            if moved_base is None:
                self.hub_error(404, "RepoNotFound", "Repository not found")
                return None
            new_base = moved_base[: -len(repo.id)] + repo.moved_to
            location = new_base + "/" + "/".join(raw_rest) if raw_rest else new_base
            if self.target.query:
                location += "?" + self.target.query
            body = ("Temporary Redirect. Redirecting to %s" % location).encode()
            self.send_body_bytes(body, 307, [("Location", location),
                                             ("Content-Type", "text/plain; charset=utf-8")])
            return None
        if repo.disabled:
            self.hub_error(403, None, "Access to this resource is disabled.")
            return None
        if repo.private and not repo.has_access(token):
            self.hub_error(404 if repo.known(token) else 401, "RepoNotFound",
                           "Repository not found")
            return None
        return repo

    def check_files_access(self, repo):
        token = self.bearer()
        if not repo.gated or repo.has_access(token):
            return True
        if repo.known(token):
            message = ("Access to %s %s is restricted and you are not in the authorized list. "
                       "Visit http://%s:%d/%s%s to ask for access."
                       % (repo.singular, repo.id, self.state.host, self.state.hub_port,
                          repo.prefix, repo.id))
            self.hub_error(403, "GatedRepo", message)
        else:
            message = ("Access to %s %s is restricted. You must have access to it and be "
                       "authenticated to access it. Please log in." % (repo.singular, repo.id))
            self.hub_error(401, "GatedRepo", message)
        return False

    def folder_or_error(self, repo, revision):
        folder = repo.folder_of(revision)
        if folder is None:
            self.hub_error(404, "RevisionNotFound", "Invalid rev id: %s" % revision)
        return folder

    def bearer(self):
        value = self.headers.get("Authorization") or ""
        if value[:7].lower() != "bearer ":
            return None
        return value[7:].strip() or None

    # ---- files ----------------------------------------------------------

    def resolve_file(self, repo, folder, path, revision, allow_indirect=True):
        commit = repo.commit(folder)
        full = repo.file(folder, path)
        if full is None:
            self.hub_error(404, "EntryNotFound", "Entry not found",
                           [("X-Repo-Commit", commit)])
            return
        size = os.path.getsize(full)
        sha1, sha256 = self.state.digests_of(full)
        if size >= repo.lfs_threshold:
            with self.state.lock:
                self.state.blobs[sha256] = full
            signature = hmac.new(SIGNING_KEY, sha256.encode(), hashlib.sha256).hexdigest()
            disposition = urllib.parse.quote(
                "attachment; filename*=UTF-8''%s;" % urllib.parse.quote(os.path.basename(path)),
                safe="")
            location = ("http://%s:%d/lfs/%s?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                        "&X-Amz-Expires=3600&response-content-disposition=%s"
                        "&X-Amz-Signature=%s" % (self.state.host, self.state.cdn_port, sha256,
                                                 disposition, signature))
            pointer = lfs_pointer(sha256, size)
            body = ("Found. Redirecting to %s" % location).encode()
            self.send_body_bytes(body, 302, [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Location", location),
                ("ETag", '"%s"' % git_blob_sha1(len(pointer), [pointer])),
                ("X-Linked-Etag", '"%s"' % sha256),
                ("X-Linked-Size", str(size)),
                ("X-Repo-Commit", commit),
                ("Accept-Ranges", "bytes"),
            ])
            return
        if allow_indirect and repo.resolve_cache:
            origin = "/%s%s/resolve/%s/%s" % (repo.prefix, repo.id, revision, path)
            location = "/api/resolve-cache/%s/%s/%s/%s?%s=&etag=%s" % (
                repo.kind, repo.id, commit, urllib.parse.quote(path),
                urllib.parse.quote(origin, safe=""), urllib.parse.quote('"%s"' % sha1, safe=""))
            body = ("Temporary Redirect. Redirecting to %s" % location).encode()
            self.send_body_bytes(body, 307, [("Location", location),
                                             ("Content-Type", "text/plain; charset=utf-8")])
            return
        self.serve_file_bytes(full, [
            ("ETag", '"%s"' % sha1),
            ("X-Repo-Commit", commit),
            ("Content-Disposition", "inline; filename*=UTF-8''%s; filename=\"%s\";"
             % (urllib.parse.quote(os.path.basename(path)), os.path.basename(path))),
        ])

    # ---- API ------------------------------------------------------------

    def repo_info(self, repo, revision):
        folder = self.folder_or_error(repo, revision)
        if folder is None:
            return
        blobs = self.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for entry in repo.entries(folder).values():
            if entry["type"] != "file":
                continue
            sibling = {"rfilename": entry["path"]}
            if blobs:
                sibling["size"] = entry["size"]
                sibling["blobId"] = entry["oid"]
                if "lfs" in entry:
                    sibling["lfs"] = {"size": entry["size"], "sha256": entry["lfs"]["oid"],
                                      "pointerSize": entry["lfs"]["pointerSize"]}
            siblings.append(sibling)
        info = {"_id": hashlib.md5(repo.id.encode()).hexdigest()[:24], "id": repo.id,
                "sha": repo.commit(folder), "private": repo.private, "gated": repo.gated,
                "disabled": repo.disabled, "siblings": siblings}
        if repo.kind == "models":
            info["modelId"] = repo.id
        self.reply_json(info)

    def tree(self, repo, revision, path):
        if not revision:
            self.simple(404, b"not found\n")
            return
        folder = self.folder_or_error(repo, revision)
        if folder is None:
            return
        commit = repo.commit(folder)
        if path and (any(p in ("", ".", "..") for p in path.split("/"))
                     or not os.path.isdir(os.path.join(repo.dir, folder, path))):
            self.hub_error(404, "EntryNotFound", "%s does not exist on \"%s\"" % (path, revision),
                           [("X-Repo-Commit", commit)])
            return
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        prefix = path + "/" if path else ""
        listed = []
        for entry_path, entry in repo.entries(folder).items():
            if not entry_path.startswith(prefix):
                continue
            if not recursive and "/" in entry_path[len(prefix):]:
                continue
            listed.append(entry)
        try:
            start = int(self.query.get("cursor", ["0"])[0] or 0)
        except ValueError:
            self.hub_error(400, None, "Invalid cursor")
            return
        page = listed[start:start + self.state.page_size]
        headers = [("X-Repo-Commit", commit)]
        if start + self.state.page_size < len(listed):
            query = [(k, v) for k, v in urllib.parse.parse_qsl(self.target.query,
                                                               keep_blank_values=True)
                     if k != "cursor"]
            query.append(("cursor", str(start + self.state.page_size)))
            next_url = "http://%s:%d%s?%s" % (self.state.host, self.state.hub_port,
                                              self.target.path, urllib.parse.urlencode(query))
            headers.append(("Link", '<%s>; rel="next"' % next_url))
        self.reply_json(page, headers)

    # ---- CDN ------------------------------------------------------------

    def route_cdn(self):
        if self.method not in ("GET", "HEAD"):
            self.s3_error(405, "MethodNotAllowed", "The specified method is not allowed.")
            return
        segments = self.target.path.split("/")[1:]
        if len(segments) != 2 or segments[0] != "lfs":
            self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        if "X-Amz-Signature" not in self.query:
            self.s3_error(403, "AccessDenied", "Access Denied")
            return
        if self.headers.get("Authorization") is not None:
            self.s3_error(400, "InvalidArgument",
                          "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                          "parameter, Signature query string parameter or the Authorization "
                          "header should be specified")
            return
        sha256 = segments[1]
        with self.state.lock:
            path = self.state.blobs.get(sha256)
        if path is None or not os.path.isfile(path):
            self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        st = os.stat(path)
        self.serve_file_bytes(path, [
            ("ETag", '"%s"' % self.state.etag_of(path, st)),
            ("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True)),
            ("X-Cache", "Miss from cloudfront"),
        ])

    def s3_error(self, status, code, message):
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                "<Message>%s</Message></Error>" % (code, message)).encode()
        self.send_body_bytes(body, status, [("Content-Type", "application/xml")])

    # ---- control --------------------------------------------------------

    def control(self, method, path):
        if path == "/_info" and method == "GET":
            self.send_json(self.info())
            return
        super().control(method, path)

    def info(self):
        repos = {}
        for kind in KINDS:
            kind_dir = os.path.join(self.state.root, kind)
            if not os.path.isdir(kind_dir):
                continue
            for ns in sorted(os.listdir(kind_dir)):
                if not os.path.isdir(os.path.join(kind_dir, ns)):
                    continue
                for name in sorted(os.listdir(os.path.join(kind_dir, ns))):
                    repo = Repo.load(self.state, kind, ns, name)
                    if repo is None:
                        continue
                    repos["%s/%s" % (kind, repo.id)] = {
                        "revisions": {rev: repo.commit(folder)
                                      for rev, folder in repo.revisions.items()},
                        "folders": {folder: repo.commit(folder) for folder in repo.folders()},
                    }
        return {"hub_port": self.state.hub_port, "cdn_port": self.state.cdn_port,
                "repos": repos}


class HubHandler(HfHandler):
    host_name = "hub"


class CdnHandler(HfHandler):
    host_name = "cdn"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder of repositories (see --help)")
    parser.add_argument("--port", type=int, default=0, help="Hub port; 0 lets the OS choose")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--page-size", type=int, default=50, help="tree entries per page")
    parser.add_argument("--token", action="append", help="a valid access token (repeatable)")
    parser.add_argument("--idle-exit", type=float, default=600,
                        help="exit after this many idle seconds")
    parser.add_argument("--no-stdin-watch", action="store_true",
                        help="keep running when stdin closes")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args()

    state = HubState(args)
    HubHandler.state = state
    CdnHandler.state = state
    hub = base.Server((args.host, args.port), HubHandler)
    cdn = base.Server((args.host, 0), CdnHandler)
    state.hub_port = hub.server_address[1]
    state.cdn_port = cdn.server_address[1]
    base.run_servers(state, args, hub, [cdn])


if __name__ == "__main__":
    main()
