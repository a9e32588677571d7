#!/usr/bin/env python3
"""Fetches files as Earth2Studio's Package does for an http(s) root
(protocols.md section 5.4): fsspec's WholeFileCacheFileSystem over an
HTTPFileSystem, files flat in CACHE_STORAGE under their base names, and the
index file "cache" beside them (a pickle in fsspec before 2023, JSON after).

Usage: earth2studio_fetch.py CACHE_STORAGE URL...
  Prints, per URL, the local path fsspec cached it at.
"""
import sys

import fsspec
from fsspec.implementations.cached import WholeFileCacheFileSystem


def main(cache_storage, urls):
    fs = WholeFileCacheFileSystem(fs=fsspec.filesystem("http"), cache_storage=cache_storage, same_names=True)
    for url in urls:
        with fs.open(url, "rb") as f:
            f.read(1)
        detail = fs._check_file(url)  # (details, path) in fsspec 2022.11, the path in later ones
        print(detail[1] if isinstance(detail, tuple) else detail)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
