#!/usr/bin/env python3
"""Earth2Studio's download path for an http(s) root, as a benchmark peer.

    fsspec_path.py --cache-dir DIR ROOT FILE...

Does what earth2studio.models.auto.Package does for an http root:
fsspec.filesystem("http") wrapped in a WholeFileCacheFileSystem over
cache_storage=DIR with same_names=True (as Earth2Studio's models pass it), and
Package.resolve(file) == `with fs.open(root/file, "rb") as f: f.name` for each
FILE, one after another, as a model's load_model() does. Earth2Studio's
progress-bar callback is left out (it only costs more). Prints one local path
per FILE, in order, like `e2s resolve`; on stderr, a JSON line with the seconds
spent importing and transferring.

Run it with the distribution's python3 (python3-fsspec, python3-aiohttp).
"""

import argparse
import json
import os
import sys
import time

started = time.perf_counter()
import fsspec  # noqa: E402
from fsspec.implementations.cached import WholeFileCacheFileSystem  # noqa: E402
import fsspec.implementations.http  # noqa: E402,F401  (imports aiohttp and requests)

imported = time.perf_counter()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("root")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    fs = WholeFileCacheFileSystem(
        fs=fsspec.filesystem("http"),
        cache_storage=args.cache_dir,
        expiry_time=31622400,
        same_names=True,
    )
    paths = []
    for name in args.files:
        with fs.open(os.path.join(args.root, name), "rb") as f:
            paths.append(f.name)
    done = time.perf_counter()
    sys.stdout.write("".join(p + "\n" for p in paths))
    sys.stderr.write(
        json.dumps({"import_s": imported - started, "transfer_s": done - imported}) + "\n"
    )


if __name__ == "__main__":
    main()
