#!/usr/bin/env python3
"""Writes valid inputs for the fuzz targets (docs/format.md, version 1), so
the fuzzers start from real logs instead of guessing magic bytes."""
import os, struct, zlib

SALT = 0x4A4F424C

def header(first_seq):
    b = b"JOBLOGSG" + struct.pack("<HHIQ", 1, 1, 0, first_seq)
    return b + struct.pack("<II", zlib.crc32(b), 0)

def frame(seq, left, payload):
    ln = struct.pack("<I", len(payload))
    rest = struct.pack("<QII", seq, left, 0)
    crc = zlib.crc32(ln + rest + payload, SALT)
    return ln + struct.pack("<I", crc) + rest + payload

def segment(first_seq, frames):
    return header(first_seq) + b"".join(frame(*f) for f in frames)

def manifest(entries, next_seq):
    b = b"JOBLOGMF" + struct.pack("<IIQQ", 1, len(entries), 1, next_seq)
    for e in entries:
        b += struct.pack("<QQQQII", *e)
    return b + struct.pack("<I", zlib.crc32(b))

seg = segment(1, [(1, 0, b"created"), (2, 2, b"a"), (3, 1, b"bb"), (4, 0, b"ccc"), (5, 0, b"x" * 40)])
sealed = manifest([(1, 5, len(seg), 5, zlib.crc32(seg), 0)], 6)
here = os.path.dirname(os.path.abspath(__file__))
for target, inputs in {
    "open": [struct.pack("<H", len(seg)) + seg, struct.pack("<H", len(seg)) + seg + sealed],
    "segment": [seg],
    "manifest": [sealed],
}.items():
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(inputs):
        with open(os.path.join(d, f"seed-{i}"), "wb") as f:
            f.write(data)
