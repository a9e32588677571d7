#!/usr/bin/env python3
"""What other programs leave in their caches, written as they write it, for
bench/copies.sh (neither huggingface_hub nor Earth2Studio's HfFileSystem is
installed here; both layouts follow protocols.md sections 1.6, 5.4 and 7).

  neighbours.py hf-download HUB_CACHE ENDPOINT REPO_ID FILE...
      as `hf download`: HEAD for commit and ETag, GET, blobs/<etag>,
      snapshots/<commit>/<file> -> ../../blobs/<etag>, refs/main.
  neighbours.py earth2studio CACHE_STORAGE ENDPOINT REPO_ID FILE...
      as Earth2Studio's Package("hf://REPO_ID", cache_options={"cache_storage":
      CACHE_STORAGE, "same_names": True}): files flat under their base names,
      the JSON index "cache" of newer fsspec beside them.
"""
import json
import os
import sys
import time
import urllib.request

opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def head(url):
    request = urllib.request.Request(url, method="HEAD")
    try:
        reply = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect).open(request)
    except urllib.error.HTTPError as redirect:  # 302 to the CDN for LFS files
        reply = redirect
    etag = reply.headers.get("X-Linked-Etag") or reply.headers.get("ETag")
    return reply.headers["X-Repo-Commit"], etag.strip('"')


def get(url):
    with opener.open(url) as reply:
        return reply.read()


def hf_download(hub_cache, endpoint, repo_id, files):
    repo = os.path.join(hub_cache, "models--" + repo_id.replace("/", "--"))
    for name in files:
        url = "%s/%s/resolve/main/%s" % (endpoint, repo_id, name)
        commit, etag = head(url)
        blob = os.path.join(repo, "blobs", etag)
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with open(blob + ".incomplete", "wb") as f:
            f.write(get(url))
        os.replace(blob + ".incomplete", blob)
        link = os.path.join(repo, "snapshots", commit, name)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("../" * name.count("/") + "../../blobs/" + etag, link)
        os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
        with open(os.path.join(repo, "refs", "main"), "w") as f:
            f.write(commit)


def earth2studio(storage, endpoint, repo_id, files):
    os.makedirs(storage, exist_ok=True)
    index = {}
    for name in files:
        key = "%s/%s" % (repo_id, name)
        with open(os.path.join(storage, os.path.basename(name)), "wb") as f:
            f.write(get("%s/%s/resolve/main/%s" % (endpoint, repo_id, name)))
        index[key] = {"original": key, "fn": os.path.basename(name), "blocks": True, "time": time.time(),
                      "uid": key}
    with open(os.path.join(storage, "cache"), "w") as f:
        json.dump(index, f)


if __name__ == "__main__":
    if len(sys.argv) < 6 or sys.argv[1] not in ("hf-download", "earth2studio"):
        sys.exit(__doc__)
    (hf_download if sys.argv[1] == "hf-download" else earth2studio)(sys.argv[2], sys.argv[3], sys.argv[4],
                                                                      sys.argv[5:])
