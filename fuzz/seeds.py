#!/usr/bin/env python3
"""Writes valid inputs for the fuzz targets (docs/format.md, versions 1 and 2), so
the fuzzers start from real logs instead of guessing magic bytes."""
import os, struct, zlib

SALT = 0x4A4F424C

def header(first_seq):
    b = b"JOBLOGSG" + struct.pack("<HHIQ", 1, 1, 0, first_seq)
    return b + struct.pack("<II", zlib.crc32(b), 0)

def frame(seq, left, payload, mark=0):
    ln = struct.pack("<I", len(payload))
    rest = struct.pack("<QII", seq, left, mark)
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
def header2(first_seq):
    b = b"JOBLOGSG" + struct.pack("<HHIQ", 2, 1, 0, first_seq)
    return b + struct.pack("<II", zlib.crc32(b), 0)

# Format 2 with marks, and the same with a damaged second frame (the
# survey target's first byte is where it starts, minus the header length).
f1 = frame(1, 0, b"created", 32)
f2 = frame(2, 0, b"second", 32 + len(f1))
f3 = frame(3, 0, b"third", 32 + len(f1) + len(f2))
seg2 = header2(1) + f1 + f2 + f3
bad2 = bytearray(seg2)
bad2[32 + len(f1) + 26] ^= 0xFF
here = os.path.dirname(os.path.abspath(__file__))
for target, inputs in {
    "open": [struct.pack("<H", len(seg)) + seg, struct.pack("<H", len(seg)) + seg + sealed],
    "segment": [seg, seg2, bytes(bad2)],
    "survey": [bytes([0]) + seg2, bytes([len(f1)]) + bytes(bad2)],
    "manifest": [sealed],
    # The Dataverse Web API's $filter: the grammar's every construct once.
    "odata_filter": [
        b"statecode eq 3 and (statuscode eq 31 or not statuscode eq 30)",
        b"contains(name,'it''s') and startswith(_ownerid_value,'al') and regardingobjectid eq 'contact:3'",
        b"createdon ge 2026-01-01T00:00:00Z and completedon lt 2026-01-01T00:00:02.5Z and postponeuntil eq null",
        b"asyncoperationid ne 3f2504e0-4f89-11d3-9a0c-0305e82c3301 and -1 ge errorcode and retrycount le 4",
        b"operationtype eq 1 and _workflowactivationid_value eq 'wf0' and message gt 'T'",
    ],
}.items():
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(inputs):
        with open(os.path.join(d, f"seed-{i}"), "wb") as f:
            f.write(data)
