#!/usr/bin/env python3
"""Reads one file from a Hugging Face hub cache the way huggingface_hub does
with local_files_only=True (protocols.md section 1.6), knowing nothing of e2s.

Usage: hf_cache_reader.py HUB_CACHE TYPE REPO_ID REVISION PATH
  TYPE is models, datasets or spaces. Prints the sha256 of the file's bytes;
  exits 1 when the cache does not hold it, naming what is missing.
"""
import hashlib
import os
import re
import sys


def main(hub_cache, kind, repo_id, revision, path):
    folder = os.path.join(hub_cache, kind + "--" + repo_id.replace("/", "--"))
    commit = revision
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        ref = os.path.join(folder, "refs", revision)
        if not os.path.isfile(ref):
            sys.exit("no ref " + ref)
        with open(ref) as f:
            commit = f.read()
    snapshot = os.path.join(folder, "snapshots", commit, path)
    if not os.path.exists(snapshot):  # follows the symlink, as huggingface_hub checks
        sys.exit("no snapshot file " + snapshot)
    if os.path.islink(snapshot):
        target = os.readlink(snapshot)
        if os.path.isabs(target) or os.path.normpath(os.path.join(os.path.dirname(snapshot), target)) != \
                os.path.normpath(os.path.join(folder, "blobs", os.path.basename(target))):
            sys.exit("the snapshot link does not lead into blobs/: " + target)
    digest = hashlib.sha256()
    with open(snapshot, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    print(digest.hexdigest())


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
