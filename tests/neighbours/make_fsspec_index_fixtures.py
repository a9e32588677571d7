"""Prints the pickles fsspec_index_test.cpp embeds, as hex.

Run once with Debian 12's interpreter and fsspec (2022.11):
    /usr/bin/python3 tests/neighbours/make_fsspec_index_fixtures.py
The "real" ones come from fsspec itself (its times and uids change with each
run); the others are pickle.dump of a dict shaped like fsspec's index.
"""
import hashlib
import http.server
import os
import pickle
import tempfile
import threading

import fsspec
from fsspec.implementations.cached import CachingFileSystem, WholeFileCacheFileSystem


def show(name, data):
    print(f"// {name}: {len(data)} bytes")
    for i in range(0, len(data), 48):
        print(f'"{data[i:i + 48].hex()}"')
    print()


def real_http(root):
    """WholeFileCacheFileSystem over http, as Earth2Studio's http and ngc use it."""
    os.makedirs(f"{root}/www/models/fcn")
    for name, body in [("weights.tar", b"weights\n"), ("metadata.json", b'{"a":1}\n')]:
        with open(f"{root}/www/models/fcn/{name}", "wb") as f:
            f.write(body)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=f"{root}/www")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/models/fcn"
    fs = WholeFileCacheFileSystem(target_protocol="http", cache_storage=f"{root}/whole")
    for name in ["weights.tar", "metadata.json"]:
        with fs.open(f"{base}/{name}", "rb") as f:
            f.read()
    server.shutdown()
    with open(f"{root}/whole/cache", "rb") as f:
        return f.read()


def real_blocks(root):
    """CachingFileSystem (block cache) over the local filesystem."""
    with open(f"{root}/big.bin", "wb") as f:
        f.write(bytes(65536))
    fs = CachingFileSystem(target_protocol="file", cache_storage=f"{root}/blocks")
    with fs.open(f"{root}/big.bin", "rb", block_size=4096) as f:
        f.seek(10000)
        f.read(100)
    with open(f"{root}/blocks/cache", "rb") as f:
        return f.read()


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def crafted(protocol):
    """Every kind of value an index may hold; protocol 2 has no set, frozenset
    or bytes opcodes (it pickles them by calling builtins), so lists there."""
    ngc = "https://api.ngc.nvidia.com/v2/models/nvidia/modulus/sfno/versions/0.1.0/files/sfno.zip"
    hf = "NickGeneva/earth_ai@2a3cbd8/pangu/pangu_weather_6.onnx"
    s3 = "era5-pds/2020/01/data/air_temperature_at_2_metres.nc"
    gs = "gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3/.zmetadata"
    modern = protocol >= 4
    return {
        ngc: {"original": ngc, "fn": sha(ngc), "blocks": True, "time": 1700000000.25, "uid": "e9b4"},
        hf: {"fn": sha(hf), "blocks": {0, 1, 5} if modern else [0, 1, 5], "time": 1700000001,
             "uid": None, "blocksize": 5242880, "size": 2**40, "offset": -5},
        s3: {"original": "s3://" + s3, "fn": sha(s3), "blocks": [], "time": 2.5,
             "uid": b"\x00\x01" if modern else "0001",
             "meta": {"t": (1, "a", None, False), "u": (1, 2), "e": (),
                      "f": frozenset({7}) if modern else [7]}},
        gs: {"original": gs, "fn": None, "blocks": True, "time": 3.0},
        "no-fn": {"original": "no-fn", "time": 4.0},
        "not-a-dict": [1, 2],
    }


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


if __name__ == "__main__":
    print(f"// fsspec {fsspec.__version__}")
    with tempfile.TemporaryDirectory() as root:
        show("real_http", real_http(root))
        show("real_blocks", real_blocks(root))
    for protocol in [2, 4, 5]:
        data = pickle.dumps(crafted(protocol), protocol=protocol)
        assert pickle.loads(data) == crafted(protocol)
        show(f"crafted_protocol_{protocol}", data)
    for protocol in [2, 4]:
        show(f"evil_protocol_{protocol}", pickle.dumps({"k": {"fn": "x", "uid": Evil()}}, protocol=protocol))
