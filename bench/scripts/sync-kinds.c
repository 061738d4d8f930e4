/*
 * What one durable write costs on this machine, by how the bytes reach the
 * page cache: written with pwrite, or copied into a shared writable map
 * (as joblog's log did until 2026-12-06), then fdatasync or msync. Every
 * kind runs in turn within each round, in one process, so that the disk's
 * drift over minutes hits them all alike. Prints p50, mean and p90 in µs.
 * docs/benchmarks.md, "Frames written, not copied into the map".
 *
 *   cc -O2 bench/scripts/sync-kinds.c -o /tmp/sync-kinds
 *   /tmp/sync-kinds DIR [ROUNDS]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define KINDS 6

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [ROUNDS]\n", argv[0]);
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 600;
    if (rounds < 10 || rounds > 100000) return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/sync-kinds.bin", argv[1]);
    size_t len = 16UL << 20;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return perror(path), 1;
    /* Written (not only allocated) blocks: no extent conversion in a sync. */
    static char zeros[1 << 16];
    for (size_t o = 0; o < len; o += sizeof zeros)
        if (pwrite(fd, zeros, sizeof zeros, (off_t)o) != (ssize_t)sizeof zeros) return perror("pwrite"), 1;
    if (fsync(fd)) return perror("fsync"), 1;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return perror("mmap"), 1;
    static char rec[4096];
    memset(rec, 0xa5, sizeof rec);
    const char *names[KINDS] = {
        "pwrite 8-15 B at 0 + fdatasync (the probe)",
        "pwrite 1000 B at 4 KiB + fdatasync",
        "pwrite 1000 B appended + fdatasync",
        "map 1000 B appended + msync",
        "map 8-15 B at 12 KiB + msync",
        "map 8-15 B at 16 KiB + fdatasync",
    };
    double *t = calloc((size_t)KINDS * rounds, sizeof *t);
    size_t off = 1 << 20, moff = 2 << 20;
    for (int i = 0; i < rounds; i++) {
        for (int k = 0; k < KINDS; k++) {
            double s = now_us();
            int rc = 0;
            switch (k) {
            case 0: rc = pwrite(fd, rec, 8 + i % 8, 0) < 0 || fdatasync(fd); break;
            case 1: rc = pwrite(fd, rec, 1000, 4096) < 0 || fdatasync(fd); break;
            case 2: rc = pwrite(fd, rec, 1000, (off_t)off) < 0 || fdatasync(fd); off += 1000; break;
            case 3: {
                size_t page = moff & ~4095UL;
                memcpy(map + moff, rec, 1000);
                moff += 1000;
                rc = msync(map + page, ((moff + 4095) & ~4095UL) - page, MS_SYNC);
                break;
            }
            case 4: memcpy(map + 12288, rec, 8 + i % 8); rc = msync(map + 12288, 4096, MS_SYNC); break;
            case 5: memcpy(map + 16384, rec, 8 + i % 8); rc = fdatasync(fd); break;
            }
            if (rc) return perror(names[k]), 1;
            t[k * rounds + i] = now_us() - s;
        }
    }
    for (int k = 0; k < KINDS; k++) {
        double *v = t + (size_t)k * rounds, sum = 0;
        qsort(v, rounds, sizeof *v, cmp);
        for (int i = 0; i < rounds; i++) sum += v[i];
        printf("%-44s p50 %6.1f  mean %6.1f  p90 %6.1f us\n", names[k], v[rounds / 2], sum / rounds, v[rounds * 9 / 10]);
    }
    munmap(map, len);
    close(fd);
    unlink(path);
    return 0;
}
