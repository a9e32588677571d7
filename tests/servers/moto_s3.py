#!/usr/bin/env python3
"""The real moto S3 server (moto 5.x) on loopback, set up for e2s tests.

Needs moto and boto3, so it runs with the `python3` found on PATH (the image's
Python), not Debian's /usr/bin/python3; TestServer's Interpreter::path_python3
does that. Unlike the stdlib fakes it has no /_stats, /_reset or /_fault:
moto keeps no request log, so tests observe it only through replies.

Usage:
    moto_s3.py [--port 0] [--host 127.0.0.1] [--auth] [--setup FILE]
               [--credentials-out FILE] [--region us-east-1]
               [--min-part-size BYTES] [--pristine] [--no-stdin-watch] [--verbose]

Starts moto's threaded server on --host:--port (0: the OS chooses), applies
--setup, writes --credentials-out, and only then prints exactly one line
"PORT <n>" to stdout; so when a test sees the port everything is in place
(about 1 s). It exits when its stdin reaches EOF (the test process holding the
pipe ended), unless --no-stdin-watch. AWS_* variables and proxies of the
environment are ignored. Requests are path-style: {endpoint}/{bucket}/{key}.

Without --auth no signature is checked (signed and unsigned requests alike),
but an unsigned GET/HEAD of an existing object still needs a bucket policy
allowing it (or a public-read ACL), else 403 with an EMPTY body. Buckets with
"public": true get such a policy; listings and missing keys are not checked.

--auth     moto enforces SigV4 and IAM policies (its INITIAL_NO_AUTH_ACTION_COUNT):
           the setup runs inside the no-auth allowance, then enforcement starts
           with the first request after "PORT". Replies in this mode:
             signed with a known key, allowed by policy  -> 200
             wrong secret        -> 403 <Code>SignatureDoesNotMatch</Code>
             unknown key id      -> 403 <Code>InvalidAccessKeyId</Code> (also a
                                    session key id sent without its token)
             session key, wrong token -> 400 <Code>InvalidToken</Code>
             known key, no IAM permission -> 403 <Code>AccessDenied</Code>
             unsigned GET/HEAD of an existing object that is not public
                                 -> 403, EMPTY body (moto checks that first)
             any other unsigned request -> 403 <Code>AccessDenied</Code> (fixed,
                                 see below; public objects included, so read
                                 those from an instance without --auth)

Fixes that make moto 5.2.1 judge requests as AWS does; --pristine turns them off:
  - Signature check: moto rebuilds the signed URL from werkzeug's
    request.url, which decodes %2F, %C3%BC, ... in the path and query, so
    every signed request whose key or query holds an encoded character
    (listing with prefix=a%2F, keys with spaces, '+', unicode) failed with
    SignatureDoesNotMatch, boto3's included. The check now uses the request
    target as received (so an under-encoded path would pass here where AWS,
    which re-encodes, would refuse it: check the wire encoding separately).
  - --auth, unsigned requests that reach moto's authenticator (listing,
    missing keys, public objects): moto crashed with 500 (it looks up the
    missing Authorization header); now 403 AccessDenied XML.
  - Bucket policies: moto checks an unsigned HEAD against the action
    "s3:HeadObject", which AWS does not have, so a public object answered
    GET 200 but HEAD 403; HEAD is now judged as s3:GetObject (AWS's rule).

--min-part-size  moto's S3_UPLOAD_PART_MIN_SIZE (default 5 MiB, as AWS): the
           smallest part but the last of a multipart upload. Lower it to keep
           multipart objects small in tests.

Setup file (JSON, every key optional):
  {"buckets": [
     {"name": "public-models",
      "public": true,            bucket policy: anyone may s3:GetObject and
                                 s3:ListBucket
      "policy": {...},           or this bucket policy document instead
      "objects": [
        {"key": "a/b.bin", "text": "utf-8 text"}       bytes: one of text,
        {"key": "c.bin", "file": "/abs/path"}          a file's content,
        {"key": "d.bin", "size": 1000, "seed": 7}      or generated (see below)
          + "multipart_part_size": N   upload with multipart parts of N bytes
                                       (ETag "<md5 of part md5s>-<parts>")
          + "etag": "<32 hex>"         store this ETag instead of the MD5 of the
                                       bytes (a lying object; written through
                                       moto's backend, not through the S3 API)
      ],
      "if_none_match": "refuse"  a server without conditional writes: a PUT or
                                 POST to this bucket carrying If-None-Match gets
                                 501 <Code>NotImplemented</Code> (as AWS says of
                                 a header it does not implement); "ignore": the
                                 header is dropped before moto sees it (the
                                 write happens, whatever is there). moto itself
                                 honours If-None-Match: * on PUT and on
                                 CompleteMultipartUpload (412 PreconditionFailed)
      "generate": [{"prefix": "many/", "count": 1200}]
                                 keys "<prefix><i:05d>.txt" for i in 0..count-1,
                                 each holding its own key as bytes (written
                                 through moto's backend: 1000+ PUTs over HTTP
                                 take ~10 s)
     }],
   "users": [{"name": "alice", "policy": {...}}]
                                 IAM user with one access key; the policy
                                 (default: allow s3:* and sts:* on *) is
                                 attached inline
   "sessions": [{"name": "reader", "policy": {...}, "duration": 3600}]
                                 IAM role "<name>" (trusting anyone, inline
                                 policy as for users) assumed once through STS
                                 AssumeRole: temporary credentials with a
                                 session token, which moto accepts when signed
                                 with x-amz-security-token}

Generated bytes ("size"/"seed") are the same as the C++ tests' make_bytes():
  state = (seed * 2654435761 + 1) mod 2^32
  for each byte: state = (state * 1664525 + 1013904223) mod 2^32; byte = state >> 24

--credentials-out FILE  (written before "PORT"):
  {"endpoint": "http://127.0.0.1:<port>", "region": "us-east-1",
   "users": {"alice": {"access_key_id", "secret_access_key"}},
   "sessions": {"reader": {"access_key_id", "secret_access_key", "session_token"}},
   "objects": {"<bucket>/<key>": {"etag": "\\"...\\"" (as HEAD sends it), "size": n}}}
"""

import argparse
import json
import logging
import os
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

ACCOUNT_ID = "123456789012"  # moto's default account
ALLOW_ALL = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:*"], "Resource": "*"}]}
NO_AUTH_ALLOWANCE = 1_000_000  # requests without auth during setup (--auth)


def generated_bytes(size, seed):
    state = (seed * 2654435761 + 1) & 0xFFFFFFFF
    out = bytearray(size)
    for i in range(size):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = state >> 24
    return bytes(out)


def object_bytes(spec):
    if "text" in spec:
        return spec["text"].encode("utf-8")
    if "file" in spec:
        with open(spec["file"], "rb") as f:
            return f.read()
    if "size" in spec:
        return generated_bytes(int(spec["size"]), int(spec.get("seed", 0)))
    raise ValueError("object %r needs \"text\", \"file\" or \"size\"" % spec.get("key"))


def public_policy(bucket):
    return {"Version": "2012-10-17",
            "Statement": [
                {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                 "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::%s/*" % bucket]},
                {"Sid": "PublicList", "Effect": "Allow", "Principal": "*",
                 "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::%s" % bucket]}]}


def install_fixes():
    """Makes moto's --auth mode judge requests as AWS does (see the docstring)."""
    from urllib.parse import urlsplit

    from flask import has_request_context
    from flask import request as flask_request
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import S3IAMRequest
    from moto.s3.exceptions import S3AccessDeniedError

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self, iam_request_cls, resource="*"):
        enforcing = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        if not enforcing or not issubclass(iam_request_cls, S3IAMRequest):
            return original(self, iam_request_cls, resource)
        if self.headers.get("Authorization") is None and "X-Amz-Signature=" not in self.uri:
            raise S3AccessDeniedError()
        raw = flask_request.environ.get("RAW_URI") if has_request_context() else None
        if not raw:
            return original(self, iam_request_cls, resource)
        saved = self.uri
        parts = urlsplit(saved)
        self.uri = "%s://%s%s" % (parts.scheme, parts.netloc, raw)
        try:
            return original(self, iam_request_cls, resource)
        finally:
            self.uri = saved

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate

    from moto.s3.models import FakeBucket

    original_permission = FakeBucket.get_permission

    def get_permission(self, action, resource):
        # AWS authorises HEAD Object with s3:GetObject; there is no s3:HeadObject.
        if action == "s3:HeadObject":
            action = "s3:GetObject"
        return original_permission(self, action, resource)

    FakeBucket.get_permission = get_permission


def install_if_none_match(modes):
    """Buckets whose server lacks conditional writes (see "if_none_match")."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__
    refusal = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
               b'<Message>A header you provided implies functionality that is not implemented'
               b'</Message><Header>If-None-Match</Header></Error>')

    def call(self, environ, start_response):
        bucket = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]
        mode = modes.get(bucket)
        if (mode and environ.get("REQUEST_METHOD") in ("PUT", "POST")
                and "HTTP_IF_NONE_MATCH" in environ):
            if mode == "ignore":
                del environ["HTTP_IF_NONE_MATCH"]
            else:
                # Read, so that the client is never cut off mid-body.
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response("501 Not Implemented", [("Content-Type", "application/xml"),
                                                       ("Content-Length", str(len(refusal)))])
                return [refusal]
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = call


def watch_stdin():
    """Exits the process when the parent closes our stdin (or dies)."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def client(service, endpoint, region, key_id="setup", secret="setup", token=None):
    import boto3
    from botocore.config import Config
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        aws_session_token=token,
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


def put_multipart(s3, bucket, key, data, part_size):
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for number, offset in enumerate(range(0, max(len(data), 1), part_size), start=1):
        reply = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                               PartNumber=number, Body=data[offset:offset + part_size])
        parts.append({"PartNumber": number, "ETag": reply["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": parts})


def apply_setup(setup, endpoint, region):
    from moto.s3.models import s3_backends
    backend = s3_backends[ACCOUNT_ID]["aws"]
    s3 = client("s3", endpoint, region)
    out = {"endpoint": endpoint, "region": region, "users": {}, "sessions": {}, "objects": {}}

    for bucket in setup.get("buckets", []):
        name = bucket["name"]
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name,
                             CreateBucketConfiguration={"LocationConstraint": region})
        policy = bucket.get("policy")
        if policy is None and bucket.get("public"):
            policy = public_policy(name)
        if policy is not None:
            s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        for spec in bucket.get("objects", []):
            key = spec["key"]
            data = object_bytes(spec)
            if "etag" in spec:
                backend.put_object(name, key, data, etag=spec["etag"])
            elif "multipart_part_size" in spec:
                put_multipart(s3, name, key, data, int(spec["multipart_part_size"]))
            else:
                s3.put_object(Bucket=name, Key=key, Body=data)
            head = s3.head_object(Bucket=name, Key=key)
            out["objects"][name + "/" + key] = {"etag": head["ETag"],
                                                "size": head["ContentLength"]}
        for gen in bucket.get("generate", []):
            for i in range(int(gen["count"])):
                key = "%s%05d.txt" % (gen.get("prefix", ""), i)
                backend.put_object(name, key, key.encode("utf-8"))

    if setup.get("users") or setup.get("sessions"):
        iam = client("iam", endpoint, region)
    for user in setup.get("users", []):
        iam.create_user(UserName=user["name"])
        iam.put_user_policy(UserName=user["name"], PolicyName="e2s-test",
                            PolicyDocument=json.dumps(user.get("policy", ALLOW_ALL)))
        key = iam.create_access_key(UserName=user["name"])["AccessKey"]
        out["users"][user["name"]] = {"access_key_id": key["AccessKeyId"],
                                      "secret_access_key": key["SecretAccessKey"]}

    if setup.get("sessions"):
        sts = client("sts", endpoint, region)
    for session in setup.get("sessions", []):
        trust = {"Version": "2012-10-17",
                 "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                "Action": "sts:AssumeRole"}]}
        role = iam.create_role(RoleName=session["name"],
                               AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        iam.put_role_policy(RoleName=session["name"], PolicyName="e2s-test",
                            PolicyDocument=json.dumps(session.get("policy", ALLOW_ALL)))
        creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="e2s-test",
                                DurationSeconds=int(session.get("duration", 3600)))["Credentials"]
        out["sessions"][session["name"]] = {"access_key_id": creds["AccessKeyId"],
                                            "secret_access_key": creds["SecretAccessKey"],
                                            "session_token": creds["SessionToken"]}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--auth", action="store_true",
                        help="enforce SigV4 and IAM policies after the setup")
    parser.add_argument("--setup", metavar="FILE", help="buckets, objects, users (JSON)")
    parser.add_argument("--credentials-out", metavar="FILE",
                        help="write created keys, sessions and object ETags here (JSON)")
    parser.add_argument("--region", default="us-east-1", help="region of the buckets")
    parser.add_argument("--min-part-size", type=int, default=5 * 1024 * 1024,
                        help="smallest multipart part but the last")
    parser.add_argument("--pristine", action="store_true",
                        help="moto exactly as shipped (no --auth fixes, see above)")
    parser.add_argument("--no-stdin-watch", action="store_true",
                        help="keep running when stdin closes")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args()

    # moto reads these when imported.
    os.environ["S3_UPLOAD_PART_MIN_SIZE"] = str(args.min_part_size)
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(NO_AUTH_ALLOWANCE if args.auth else "inf")
    # No real AWS configuration of the machine may reach boto3 or moto.
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "all_proxy"):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "*"

    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    if not args.no_stdin_watch:
        threading.Thread(target=watch_stdin, daemon=True).start()

    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.server import ThreadedMotoServer

    if not args.pristine:
        install_fixes()

    setup = {}
    if args.setup:
        with open(args.setup, "rb") as f:
            setup = json.loads(f.read() or b"{}")
    modes = {b["name"]: b["if_none_match"] for b in setup.get("buckets", []) if "if_none_match" in b}
    if modes:
        install_if_none_match(modes)

    server = ThreadedMotoServer(args.host, args.port, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    endpoint = "http://%s:%d" % (args.host, port)

    result = apply_setup(setup, endpoint, args.region)
    if args.auth:
        # Enforcement starts with the next request (the allowance is a count).
        settings.INITIAL_NO_AUTH_ACTION_COUNT = ActionAuthenticatorMixin.request_count
    if args.credentials_out:
        temp = args.credentials_out + ".tmp"
        with open(temp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(temp, args.credentials_out)

    print("PORT %d" % port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
