/*
 * What a group commit can reach on this machine, with no engine at all:
 * W writer threads append EVENT-byte records to a mapped, preallocated
 * file (fallocate, as joblog's segments are) and wait until a syncing
 * thread has made them durable (msync MS_SYNC of the bytes placed since
 * the last sync); the syncer sleeps until something is placed, then syncs
 * all of it. Prints
 * the records per second, the mean records per sync and the mean sync,
 * next to the fsync probe of joblog-bench (p50 of a 4 KiB overwrite +
 * fdatasync). docs/benchmarks.md, "What a group commit can reach".
 *
 * With ZERO_AHEAD bytes (0: none), the writers also write zeros through
 * the map over the next ZERO_AHEAD bytes past the last page placed, when
 * fewer than half of them are left, and the syncer syncs them with the
 * records, as joblog's log does (src/log/writer.rs, ZERO_AHEAD).
 *
 *   cc -O2 -pthread bench/scripts/groupcommit.c -o /tmp/groupcommit
 *   /tmp/groupcommit DIR WRITERS [EVENT_BYTES] [SECONDS] [ZERO_AHEAD]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
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

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t synced_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t placed_cv = PTHREAD_COND_INITIALIZER;
static char *map;
static size_t placed, synced, zeroed, zero_ahead, events, event_bytes, limit;
static int stop;

static void *writer(void *arg) {
    (void)arg;
    char rec[65536];
    memset(rec, 7, sizeof rec);
    pthread_mutex_lock(&mu);
    while (!stop && placed + event_bytes <= limit) {
        size_t end = placed + event_bytes;
        memcpy(map + placed, rec, event_bytes);
        placed = end;
        events++;
        if (zero_ahead && placed + zero_ahead / 2 > zeroed) {
            size_t from = (placed + 4095) & ~4095UL;
            if (from < zeroed) from = zeroed;
            size_t to = from + zero_ahead < limit ? from + zero_ahead : limit;
            if (to > from) memset(map + from, 0, to - from), zeroed = to;
        }
        pthread_cond_signal(&placed_cv);
        while (synced < end && !stop) pthread_cond_wait(&synced_cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR WRITERS [EVENT_BYTES] [SECONDS] [ZERO_AHEAD]\n", argv[0]);
        return 2;
    }
    int writers = atoi(argv[2]);
    event_bytes = argc > 3 ? (size_t)atol(argv[3]) : 124;
    double seconds = argc > 4 ? atof(argv[4]) : 3.0;
    zero_ahead = argc > 5 ? (size_t)atol(argv[5]) : 0;
    if (writers < 1 || writers > 256 || event_bytes < 1 || event_bytes > 65536 || zero_ahead > (64UL << 20)) return 2;
    char path[4096];

    /* The probe: a 4 KiB overwrite + fdatasync, p50 of 300. */
    snprintf(path, sizeof path, "%s/groupcommit-probe.bin", argv[1]);
    int pf = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char block[4096];
    memset(block, 0xa5, sizeof block);
    if (pf < 0 || pwrite(pf, block, sizeof block, 0) != sizeof block || fsync(pf)) return perror("probe"), 1;
    double t[300];
    for (int i = 0; i < 300; i++) {
        double s = now_us();
        if (pwrite(pf, block, 8 + i % 8, 0) < 0 || fdatasync(pf)) return perror("probe"), 1;
        t[i] = now_us() - s;
    }
    qsort(t, 300, sizeof t[0], cmp);
    close(pf);
    unlink(path);

    limit = 512UL << 20;
    snprintf(path, sizeof path, "%s/groupcommit.bin", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || fallocate(fd, 0, 0, (off_t)limit) || fsync(fd)) return perror(path), 1;
    map = mmap(NULL, limit, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return perror("mmap"), 1;
    pthread_t th[256];
    for (int i = 0; i < writers; i++) pthread_create(&th[i], NULL, writer, NULL);
    double start = now_us(), end = start + seconds * 1e6, busy = 0;
    long syncs = 0;
    while (now_us() < end) {
        pthread_mutex_lock(&mu);
        while (placed == synced) pthread_cond_wait(&placed_cv, &mu);
        size_t from = synced, to = placed, upto = zeroed > placed ? zeroed : placed;
        pthread_mutex_unlock(&mu);
        size_t page = from & ~4095UL;
        double s = now_us();
        if (msync(map + page, upto - page, MS_SYNC)) return perror("msync"), 1;
        busy += now_us() - s;
        syncs++;
        pthread_mutex_lock(&mu);
        synced = to;
        pthread_cond_broadcast(&synced_cv);
        pthread_mutex_unlock(&mu);
    }
    pthread_mutex_lock(&mu);
    stop = 1;
    pthread_cond_broadcast(&synced_cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < writers; i++) pthread_join(th[i], NULL);
    double secs = (now_us() - start) / 1e6, per_sync = (double)events / syncs, mean = busy / syncs;
    printf("writers %d, %zu-byte records, zeros ahead %zu: %.0f records/s, %.2f per sync, mean sync %.1f us, "
           "a sync in flight %.0f%% of the time; probe fsync p50 %.1f us; "
           "records/s / (records per sync / probe p50) = %.2f\n",
           writers, event_bytes, zero_ahead, events / secs, per_sync, mean, 100 * busy / (secs * 1e6), t[150],
           events / secs / (per_sync / (t[150] / 1e6)));
    munmap(map, limit);
    close(fd);
    unlink(path);
    return 0;
}
