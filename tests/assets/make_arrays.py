"""Writes the arrays tests/assets/npy_test.cpp and safetensors_test.cpp read.

    make_arrays.py OUTDIR

Writes .npy files (every dtype e2s reads, both byte orders, C and Fortran
order, format versions 1.0 to 3.0, 0-d, empty and 3-d arrays), .npz files
(stored and deflated), safetensors files written by hand (the format is an
8-byte little-endian header length, a JSON header, then the data), a few
hostile .npz files, and OUTDIR/manifest.json with every expected value in C
order. NaN and infinities are the strings "nan", "inf" and "-inf", since JSON
has no such numbers. Needs NumPy; deterministic content.
"""

import io
import json
import math
import os
import struct
import sys
import zipfile

import numpy as np

INTS = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
FLOATS = ["float16", "float32", "float64"]
DTYPES = ["bool"] + INTS + FLOATS


def values_of(dtype, count):
    """`count` values of `dtype` that include its extremes and, for floats,
    -0.0, infinities, NaN and subnormals; each position distinct enough that
    a transposition shows."""
    if dtype == "bool":
        return np.array([(i * 7) % 3 == 0 for i in range(count)], dtype=bool)
    if dtype in INTS:
        info = np.iinfo(dtype)
        special = [info.min, info.max, 0, 1]
        span = min(int(info.max), 1000)
        rest = [(i * 37) % span - (span // 2 if info.min < 0 else 0) for i in range(count)]
        return np.array((special + rest)[:count], dtype=dtype)
    info = np.finfo(dtype)
    special = [-0.0, float("inf"), float("-inf"), float("nan"), float(info.max),
               float(info.smallest_subnormal), -float(info.tiny)]
    rest = [(i - count / 2) * 0.375 for i in range(count)]
    return np.array((special + rest)[:count], dtype=dtype)


def expected(array):
    """The manifest's record of `array`: dtype, shape, values in C order."""
    out = []
    for v in np.ascontiguousarray(array).ravel(order="C").tolist():
        if isinstance(v, float) and not math.isfinite(v):
            out.append("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
        else:
            out.append(v)
    return {"dtype": array.dtype.name, "shape": list(array.shape), "values": out}


def write_npy(outdir, manifest):
    records = manifest["npy"]

    def save(name, array, version=None):
        path = os.path.join(outdir, name)
        with open(path, "wb") as f:
            if version is None:
                np.save(f, array, allow_pickle=False)
            else:
                np.lib.format.write_array(f, array, version=version, allow_pickle=False)
        records.append(dict(expected(array), file=name))

    shape = (2, 3, 4)
    for dtype in DTYPES:
        base = values_of(dtype, 24).reshape(shape)
        orders = ["|"] if base.dtype.itemsize == 1 else ["<", ">"]
        for order in orders:
            typed = base.astype(base.dtype.newbyteorder(order))
            tag = {"<": "le", ">": "be", "|": "na"}[order]
            save("%s_%s_c.npy" % (dtype, tag), typed)
            save("%s_%s_f.npy" % (dtype, tag), np.asfortranarray(typed))
        save("%s_scalar.npy" % dtype, values_of(dtype, 1).reshape(()))
        save("%s_empty.npy" % dtype, values_of(dtype, 0).reshape((0, 3)))
    # Fortran order in 2-d and 4-d, with uneven sides.
    save("float64_f_2d.npy", np.asfortranarray(values_of("float64", 35).reshape(5, 7)))
    save("int32_f_4d.npy", np.asfortranarray(values_of("int32", 120).reshape(2, 3, 4, 5)))
    save("int16_be_f_3d.npy",
         np.asfortranarray(values_of("int16", 30).reshape(5, 3, 2).astype(">i2")))
    save("float32_1d.npy", values_of("float32", 9))
    save("uint8_empty_3d.npy", values_of("uint8", 0).reshape((3, 0, 2)))
    for major in (1, 2, 3):
        save("float32_v%d.npy" % major, values_of("float32", 6).reshape(2, 3), (major, 0))
        save("int64_be_f_v%d.npy" % major,
             np.asfortranarray(values_of("int64", 6).reshape(3, 2).astype(">i8")), (major, 0))


def write_npz(outdir, manifest):
    arrays = {
        "weights": values_of("float32", 24).reshape(2, 3, 4),
        "big_endian": values_of("int64", 6).reshape(2, 3).astype(">i8"),
        "fortran": np.asfortranarray(values_of("float64", 12).reshape(3, 4)),
        "half": values_of("float16", 10),
        "mask": values_of("bool", 5),
        "scalar": values_of("uint16", 1).reshape(()),
        "empty": values_of("int8", 0).reshape(0, 2),
        "sub/name": values_of("uint32", 3),
    }
    record = {name: expected(array) for name, array in arrays.items()}
    np.savez(os.path.join(outdir, "stored.npz"), **arrays)
    np.savez_compressed(os.path.join(outdir, "compressed.npz"), **arrays)
    np.savez(os.path.join(outdir, "positional.npz"), arrays["weights"], arrays["mask"])
    np.savez(os.path.join(outdir, "no_arrays.npz"))
    manifest["npz"] = [
        {"file": "stored.npz", "arrays": record},
        {"file": "compressed.npz", "arrays": record},
        {"file": "positional.npz",
         "arrays": {"arr_0": record["weights"], "arr_1": record["mask"]}},
        {"file": "no_arrays.npz", "arrays": {}},
    ]
    # 8 MiB of zeros, about 8 KiB deflated: loads only under a large enough ceiling.
    np.savez_compressed(os.path.join(outdir, "zeros.npz"), zeros=np.zeros(1 << 20))


def npy_bytes(array):
    f = io.BytesIO()
    np.save(f, array, allow_pickle=True)
    return f.getvalue()


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content, compression in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6)), content,
                             compress_type=compression)


def set_declared_size(path, size):
    """Rewrites the one member's uncompressed size in both zip headers."""
    with open(path, "r+b") as f:
        raw = bytearray(f.read())
        struct.pack_into("<I", raw, 22, size)
        struct.pack_into("<I", raw, raw.rfind(b"PK\x01\x02") + 24, size)
        f.seek(0)
        f.write(raw)


def write_hostile_npz(outdir):
    deflated = zipfile.ZIP_DEFLATED
    stored = zipfile.ZIP_STORED
    small = npy_bytes(np.arange(10, dtype="<f8"))
    # A zip bomb: declares the size of a 10-element array, inflates to 64 MiB more.
    path = os.path.join(outdir, "bomb_lying.npz")
    write_zip(path, [("x.npy", small + bytes(64 << 20), deflated)])
    set_declared_size(path, len(small))
    # The npy header inside claims 2**40 float64s; the member holds 80 bytes.
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }"
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    huge = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(80)
    write_zip(os.path.join(outdir, "huge_shape.npz"), [("x.npy", huge, deflated)])
    write_zip(os.path.join(outdir, "not_npy.npz"),
              [("x.npy", small, stored), ("readme.txt", b"hello\n", stored)])
    write_zip(os.path.join(outdir, "object.npz"),
              [("x.npy", npy_bytes(np.array([{"a": 1}, None], dtype=object)), stored)])
    write_zip(os.path.join(outdir, "folder.npz"), [("x.npy/", b"", stored)])
    # One byte of the stored array changed after its CRC was computed.
    path = os.path.join(outdir, "bad_crc.npz")
    write_zip(path, [("x.npy", small, stored)])
    with open(path, "r+b") as f:
        raw = bytearray(f.read())
        raw[raw.find(small) + len(small) - 1] ^= 0xFF
        f.seek(0)
        f.write(raw)
    with open(os.path.join(outdir, "not_a_zip.npz"), "wb") as f:
        f.write(small)
    open(os.path.join(outdir, "empty_file.npz"), "wb").close()


# safetensors -------------------------------------------------------------------

ST_CODES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16",
            "uint32": "U32", "int32": "I32", "uint64": "U64", "int64": "I64",
            "float16": "F16", "float32": "F32", "float64": "F64"}


def bfloat16_tensor():
    """bfloat16 bit patterns (no NumPy type) and the floats they are."""
    bits = [0x0000, 0x8000, 0x3F80, 0xC020, 0x4049, 0x7F80, 0xFF80, 0x7FC0,
            0x0001, 0x807F, 0x7F7F, 0x3E20]
    floats = [struct.unpack("<f", struct.pack("<I", b << 16))[0] for b in bits]
    raw = struct.pack("<%dH" % len(bits), *bits)
    record = expected(np.array(floats, dtype=np.float32).reshape(3, 4))
    record["dtype"] = "bfloat16"
    return raw, [3, 4], record


def write_safetensors(path, tensors, metadata=None, align=True):
    """tensors: name -> (dtype code, shape, raw little-endian bytes). As the
    reference writer: larger items first so each tensor is aligned, and the
    header padded with spaces to a multiple of 8."""
    size = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
            "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}
    names = sorted(tensors, key=lambda n: (-size[tensors[n][0]], n))
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name in names:
        code, shape, raw = tensors[name]
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    if align:
        text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name in names:
            f.write(tensors[name][2])


def write_all_safetensors(outdir, manifest):
    tensors = {}
    records = {}
    for dtype in DTYPES:
        array = values_of(dtype, 6).reshape(2, 3)
        tensors[dtype] = (ST_CODES[dtype], [2, 3], array.astype(array.dtype.newbyteorder("<")).tobytes())
        records[dtype] = expected(array)
    raw, shape, record = bfloat16_tensor()
    tensors["bfloat16"] = ("BF16", shape, raw)
    records["bfloat16"] = record
    scalar = values_of("float32", 1).reshape(())
    tensors["scalar"] = ("F32", [], scalar.astype("<f4").tobytes())
    records["scalar"] = expected(scalar)
    cube = values_of("float16", 24).reshape(2, 3, 4)
    tensors["layer.0/cube"] = ("F16", [2, 3, 4], cube.astype("<f2").tobytes())
    records["layer.0/cube"] = expected(cube)
    empty = values_of("float64", 0).reshape(0, 4)
    tensors["empty"] = ("F64", [0, 4], b"")
    records["empty"] = expected(empty)
    metadata = {"format": "pt", "note": "e2s test \u00e9"}
    write_safetensors(os.path.join(outdir, "model.safetensors"), tensors, metadata)
    # Without the reference writer's padding and ordering: a bool tensor first
    # and an odd header length leave the others at odd addresses.
    odd = {"a_flag": tensors["bool"], "b_f32": tensors["float32"], "c_i64": tensors["int64"]}
    header = {}
    offset = 0
    blobs = b""
    for name in ["a_flag", "b_f32", "c_i64"]:
        code, shape, raw = odd[name]
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs += raw
    text = json.dumps(header).encode()
    text += b" " * ((-(8 + len(text)) % 8) + 1)
    with open(os.path.join(outdir, "misaligned.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blobs)
    write_safetensors(os.path.join(outdir, "no_tensors.safetensors"), {}, {"only": "metadata"})
    manifest["safetensors"] = [
        {"file": "model.safetensors", "metadata": metadata, "tensors": records},
        {"file": "misaligned.safetensors", "metadata": {},
         "tensors": {"a_flag": records["bool"], "b_f32": records["float32"],
                     "c_i64": records["int64"]}},
        {"file": "no_tensors.safetensors", "metadata": {"only": "metadata"}, "tensors": {}},
    ]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_arrays.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    manifest = {"npy": []}
    write_npy(outdir, manifest)
    write_npz(outdir, manifest)
    write_hostile_npz(outdir)
    write_all_safetensors(outdir, manifest)
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, allow_nan=False)


if __name__ == "__main__":
    main()
