#!/usr/bin/env python3
"""How much longer a small sync takes when it reaches a block the
filesystem allocated but never wrote (fallocate), the case
`src/log/writer.rs`'s ZERO_AHEAD is for.

It writes frames of 150 bytes, 8 per sync, through a shared map of a
preallocated file and msyncs them, as the log does, and reports the syncs
that reached a new 4 KiB page apart from those that did not; then the same
over blocks written (with zeros, through the map) and synced beforehand.

    python3 bench/scripts/sync-new-block.py [DIR]
"""
import mmap
import os
import sys
import time

FRAME, PER_SYNC, SYNCS, SIZE = 150, 8, 3000, 64 << 20


def run(directory, zeros_first):
    path = os.path.join(directory, "sync-new-block.tmp")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, SIZE)
        os.fsync(fd)
        m = mmap.mmap(fd, SIZE)
        written = FRAME * PER_SYNC * SYNCS
        if zeros_first:
            m[0:written + 4096] = bytes(written + 4096)
            m.flush(0, written + 4096)
        new, same, off = [], [], 0
        for _ in range(SYNCS):
            start = off
            for _ in range(PER_SYNC):
                m[off:off + FRAME] = b"x" * FRAME
                off += FRAME
            page = start // 4096 * 4096
            t = time.perf_counter()
            m.flush(page, off - page)
            took = time.perf_counter() - t
            reaches_new = (off - 1) // 4096 != start // 4096 or start % 4096 == 0
            (new if reaches_new else same).append(took)
        m.close()
        return new, same
    finally:
        os.close(fd)
        os.remove(path)


def median_us(v):
    return sorted(v)[len(v) // 2] * 1e6


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    for _ in range(2):
        reaching = {}
        for zeros_first in (False, True):
            new, same = run(directory, zeros_first)
            reaching[zeros_first] = median_us(new)
            what = "blocks written first" if zeros_first else "preallocated only  "
            print(
                f"{what}: sync reaching a new page p50 {median_us(new):.0f} µs ({len(new)}), "
                f"others {median_us(same):.0f} µs ({len(same)}), ratio {median_us(new) / median_us(same):.2f}"
            )
        # The same syncs (same pages), only the blocks' state differs.
        print(f"  a sync reaching a new page, preallocated / written first: {reaching[False] / reaching[True]:.2f}")


if __name__ == "__main__":
    main()
