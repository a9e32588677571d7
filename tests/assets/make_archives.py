"""Builds the archives tests/assets/archive_test.cpp extracts.

    make_archives.py OUTDIR

Writes OUTDIR/input/ (the tree the good archives hold) and, beside it, the
good archives (good.zip, good.tar, good.tar.gz, good.tar.bz2, good.tar.xz)
and one hostile archive per rule extraction must enforce. Every hostile
archive starts with a harmless "ok.txt", so a refusal comes after something
was already written. Paths that would climb out of the destination aim at
OUTDIR/../canary. Standard library only; deterministic content.
"""

import io
import os
import struct
import sys
import tarfile
import warnings
import zipfile


def data(size, seed):
    """Deterministic, poorly compressible bytes."""
    out = bytearray()
    state = seed * 2654435761 + 1
    while len(out) < size:
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out += state.to_bytes(8, "little")
    return bytes(out[:size])


# The good tree: path -> (bytes, mode). "empty/" is an empty folder.
GOOD_FILES = {
    "top.txt": (b"hello from the top\n", 0o644),
    "run.sh": (b"#!/bin/sh\necho run\n", 0o755),
    "nested/a/b/deep.bin": (data(300_000, 1), 0o644),
    "nested/a/zeros.bin": (bytes(100_000), 0o600),
    "nested/other.txt": (b"other\n" * 1000, 0o644),
    "nested/ünïcødé ✓.txt": (b"utf-8 name\n", 0o644),
}
GOOD_FOLDERS = ["empty"]


def write_input(outdir):
    root = os.path.join(outdir, "input")
    for path, (content, mode) in GOOD_FILES.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(content)
        os.chmod(full, mode)
    for folder in GOOD_FOLDERS:
        os.makedirs(os.path.join(root, folder), exist_ok=True)


def tar_member(name, content=b"", mode=0o644, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 1_700_000_000
    info.linkname = linkname
    info.size = len(content) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(content) if kind == tarfile.REGTYPE else None)


def write_tar(path, members, mode="w"):
    """members: (name, content, file mode, tar type, link target) tuples."""
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:
        for name, content, file_mode, kind, linkname in members:
            info, stream = tar_member(name, content, file_mode, kind, linkname)
            tar.addfile(info, stream)


def write_zip(path, members):
    """members: (name, content, compression) tuples; names ending in '/' are folders."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w") as archive:
            for name, content, compression in members:
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
                info.compress_type = compression
                info.create_system = 3  # Unix, so the mode below is read
                info.external_attr = ((0o40755 if name.endswith("/") else 0o100644) << 16)
                archive.writestr(info, content)


def file(name, content=b"x\n", mode=0o644):
    return (name, content, mode, tarfile.REGTYPE, "")


def link(name, target, kind=tarfile.SYMTYPE):
    return (name, b"", 0o777, kind, target)


def good_members():
    members = []
    for folder in ["nested", "nested/a", "nested/a/b"] + GOOD_FOLDERS:
        members.append((folder, b"", 0o755, tarfile.DIRTYPE, ""))
    for path, (content, mode) in GOOD_FILES.items():
        members.append(file(path, content, mode))
    members += [
        link("links/deep", "../nested/a/b/deep.bin"),
        link("nested/a/b/up", "../../../top.txt"),
        link("here", "."),
        link("hard.txt", "nested/other.txt", tarfile.LNKTYPE),
    ]
    return members


def write_good(outdir):
    write_tar(os.path.join(outdir, "good.tar"), good_members())
    write_tar(os.path.join(outdir, "good.tar.gz"), good_members(), "w:gz")
    write_tar(os.path.join(outdir, "good.tar.bz2"), good_members(), "w:bz2")
    write_tar(os.path.join(outdir, "good.tar.xz"), good_members(), "w:xz")
    # A tar made with `tar -C input -cf x.tar .` starts with "./".
    write_tar(os.path.join(outdir, "good_dot.tar"),
              [(".", b"", 0o755, tarfile.DIRTYPE, ""), file("./a//b/c.txt", b"c\n")])
    zip_members = [("empty/", b"", zipfile.ZIP_STORED)]
    for i, (path, (content, _)) in enumerate(GOOD_FILES.items()):
        compression = zipfile.ZIP_STORED if i % 2 == 0 else zipfile.ZIP_DEFLATED
        zip_members.append((path, content, compression))
    write_zip(os.path.join(outdir, "good.zip"), zip_members)


def lying_zip(path, size):
    """A zip whose one entry says it holds 1000 bytes but inflates to `size`."""
    write_zip(path, [("zeros.bin", bytes(size), zipfile.ZIP_DEFLATED)])
    with open(path, "r+b") as f:
        raw = bytearray(f.read())
        # Local header: uncompressed size at offset 22.
        struct.pack_into("<I", raw, 22, 1000)
        # Central directory entry: uncompressed size at offset 24.
        central = raw.rfind(b"PK\x01\x02")
        struct.pack_into("<I", raw, central + 24, 1000)
        f.seek(0)
        f.write(raw)


def write_hostile(outdir):
    canary = os.path.abspath(os.path.join(outdir, "..", "canary"))
    ok = file("ok.txt", b"fine\n")
    stored = zipfile.ZIP_STORED
    tars = {
        "slip_dotdot.tar": [ok, file("../evil")],
        "slip_nested.tar": [ok, file("a/../../evil")],
        "slip_absolute.tar": [ok, file(canary + "/evil")],
        "slip_backslash.tar": [ok, file("..\\evil")],
        "slip_drive.tar": [ok, file("C:/evil")],
        "symlink_absolute.tar": [ok, link("link", "/etc"), file("link/passwd")],
        "symlink_canary.tar": [ok, link("link", canary), file("link/evil")],
        "symlink_outside.tar": [ok, link("a/link", "../../outside")],
        "symlink_climb_after_name.tar": [ok, link("s", "."), link("t", "s/s/../..")],
        "symlink_through.tar": [ok, (("dir"), b"", 0o755, tarfile.DIRTYPE, ""),
                                link("link", "dir"), file("link/evil")],
        "hardlink_etc.tar": [ok, link("h", "/etc/passwd", tarfile.LNKTYPE)],
        "hardlink_up.tar": [ok, link("h", "../x", tarfile.LNKTYPE)],
        "hardlink_missing.tar": [ok, link("h", "nothere.txt", tarfile.LNKTYPE)],
        "device.tar": [ok, ("null", b"", 0o666, tarfile.CHRTYPE, "")],
        "fifo.tar": [ok, ("pipe", b"", 0o644, tarfile.FIFOTYPE, "")],
        "duplicate.tar": [ok, file("same.txt", b"one\n"), file("same.txt", b"two\n")],
        "duplicate_link.tar": [ok, file("same.txt"), link("same.txt", "ok.txt")],
        "file_then_folder.tar": [ok, file("x"), file("x/y")],
    }
    for name, members in tars.items():
        write_tar(os.path.join(outdir, name), members)
    zips = {
        "slip_dotdot.zip": [("ok.txt", b"fine\n", stored), ("../evil", b"x\n", stored)],
        "slip_backslash.zip": [("ok.txt", b"fine\n", stored), ("..\\evil", b"x\n", stored)],
        "duplicate.zip": [("ok.txt", b"fine\n", stored), ("ok.txt", b"other\n", stored)],
        "bomb_entries.zip": [("f%02d.txt" % i, b"", stored) for i in range(20)],
    }
    for name, members in zips.items():
        write_zip(os.path.join(outdir, name), members)
    # 70 MiB of zeros as tar.gz, about 1000:1 (past max_bytes or max_ratio
    # when those are set low, refused before any byte is written).
    write_tar(os.path.join(outdir, "bomb_zeros.tar.gz"),
              [ok, file("zeros.bin", bytes(70 << 20))], "w:gz")
    # Declares 1000 bytes, inflates to 70 MiB (about 1000:1): caught while
    # counting the bytes written.
    lying_zip(os.path.join(outdir, "bomb_lying.zip"), 70 << 20)

    for name in ["good.tar.gz", "good.zip", "good.tar"]:
        with open(os.path.join(outdir, name), "rb") as f:
            raw = f.read()
        with open(os.path.join(outdir, "truncated_" + name.replace(".", "_")), "wb") as f:
            f.write(raw[: len(raw) // 2])
    with open(os.path.join(outdir, "not_an_archive.txt"), "wb") as f:
        f.write(b"this is not an archive\n" * 100)
    open(os.path.join(outdir, "empty_file"), "wb").close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_archives.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    write_input(outdir)
    write_good(outdir)
    write_hostile(outdir)


if __name__ == "__main__":
    main()
