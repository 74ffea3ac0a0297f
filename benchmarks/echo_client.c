/*
 * echo_client: a small epoll load generator for the `echo` benchmark suite.
 *
 * It exists so that the load never costs more than the server under test: one
 * thread, level-triggered epoll, no allocation on the hot path. Python load
 * clients spend about as much CPU per message as the Python servers they
 * drive, which on a 2-core machine would measure the client.
 *
 * Two workloads against 127.0.0.1:PORT over N connections:
 *
 *   pingpong  each connection sends a SIZE-byte message, waits for all SIZE
 *             bytes to come back, and repeats, until MESSAGES round trips
 *             are done across all connections (a fixed workload).
 *   stream    each connection writes CHUNK-byte chunks as fast as the server
 *             echoes them back and reads everything, until BYTES (split over
 *             the connections) have gone out and come back. At most WINDOW
 *             bytes per connection are unanswered, so a server that never
 *             pushes back (a plain echo protocol buffers without limit) is
 *             not made to hold the whole workload in memory.
 *
 * Every run is bounded: a wall-clock cap (-t) stops it and reports
 * "timed_out": true with what was done.
 *
 * With -r the client hands the timing edges to its parent: it connects,
 * makes one SIZE-byte round trip on every connection (so the server has
 * accepted and served each one), prints "ready", and starts when a line
 * arrives on stdin. After the workload it prints the JSON result and waits
 * for another line (or EOF) before closing the connections, so the parent
 * can read the server's CPU time around exactly the workload: connection
 * set-up and teardown fall outside it.
 *
 * Output, one JSON line: mode, connections, size, messages, bytes, seconds,
 * messages_per_sec, mb_per_sec, latency_us {p50, p99} (pingpong),
 * client_cpu_seconds, timed_out; or {"error": "..."} with exit status 1.
 *
 * Build: gcc -O2 -o echo_client echo_client.c
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 4096
#define READ_BUFFER (256 * 1024)
/* epoll_wait sleeps at most this long, so the wall-clock cap is noticed
 * even when a server stops answering. */
#define POLL_MS 100

enum mode { PINGPONG, STREAM };

struct conn {
    int fd;
    int want_out;          /* EPOLLOUT currently registered */
    /* pingpong: bytes of the current message still to send / to receive */
    long out_left;
    long in_left;
    double sent_at;        /* when the current message's first byte went out */
    /* stream */
    long long quota;       /* bytes this connection sends in all */
    long long sent;
    long long received;
};

static struct conn conns[MAX_CONNECTIONS];
static char out_buf[READ_BUFFER];
static char in_buf[READ_BUFFER];
static int epfd = -1;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6
         + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Report a failure as JSON on stdout (the parent parses one line either way). */
static void fail(const char *what, int err) {
    if (err)
        printf("{\"error\": \"%s: %s\"}\n", what, strerror(err));
    else
        printf("{\"error\": \"%s\"}\n", what);
    fflush(stdout);
    exit(1);
}

static void usage(void) {
    fprintf(stderr,
            "usage: echo_client -p PORT [-m pingpong|stream] [-c CONNECTIONS] [-s SIZE]\n"
            "                   [-n MESSAGES] [-b BYTES] [-k CHUNK] [-w WINDOW] [-t SECONDS] [-r]\n");
    exit(2);
}

static void set_out_interest(struct conn *c, int want) {
    struct epoll_event ev;
    if (c->want_out == want)
        return;
    c->want_out = want;
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl", errno);
}

static int connect_one(int port) {
    struct sockaddr_in addr;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        fail("socket", errno);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Blocking connect: on loopback it completes at once, and the set-up is
     * outside the timed part anyway. */
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        fail("connect", errno);
    /* Nagle would hold back small writes waiting for an ACK: every server
     * under test sets TCP_NODELAY too. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Blocking exchange of one message on a still-blocking socket (used before
 * the run, to be sure the server has accepted and served the connection). */
static void prime(int fd, long size, double cap) {
    long got = 0;
    /* A server that accepts but never answers must not hang us here either. */
    struct timeval limit = {(time_t)cap, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (send(fd, out_buf, (size_t)size, 0) != size)
        fail("priming send", errno);
    while (got < size) {
        ssize_t n = recv(fd, in_buf, sizeof in_buf, 0);
        if (n <= 0)
            fail(n == 0 ? "server closed the connection while priming" : "priming recv",
                 n == 0 ? 0 : errno);
        got += n;
    }
}

/* Wait for one line (or EOF) on stdin: the parent's go-ahead. */
static void wait_for_parent(void) {
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL)
        return; /* EOF: the parent is gone or done; carry on and exit soon */
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Send as much of the current ping-pong message as the socket takes. */
static void pingpong_send(struct conn *c, long size) {
    while (c->out_left > 0) {
        ssize_t n = send(c->fd, out_buf + (size - c->out_left), (size_t)c->out_left, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            fail("send", errno);
        }
        c->out_left -= n;
    }
    set_out_interest(c, c->out_left > 0);
}

/* Stream: send while this connection has quota and window left. */
static void stream_send(struct conn *c, long chunk, long window) {
    int blocked = 0;
    while (c->sent < c->quota) {
        long long room = window - (c->sent - c->received);
        long long n_want = c->quota - c->sent;
        ssize_t n;
        if (room <= 0)
            break;
        if (n_want > chunk)
            n_want = chunk;
        if (n_want > room)
            n_want = room;
        n = send(c->fd, out_buf, (size_t)n_want, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                blocked = 1;
                break;
            }
            fail("send", errno);
        }
        c->sent += n;
    }
    /* Ask for EPOLLOUT only when the kernel buffer is what stopped us; a
     * full window waits for reads instead (level-triggered EPOLLOUT would
     * otherwise spin). */
    set_out_interest(c, blocked);
}

int main(int argc, char **argv) {
    enum mode mode = PINGPONG;
    int port = 0, nconn = 50, handshake = 0, opt, i, n_events;
    long size = 64, chunk = 65536, window = 4 * 65536;
    long long messages = 100000, total_bytes = 256LL * 1024 * 1024;
    double cap = 60.0, start, elapsed, cpu_start, cpu_used, p50 = 0, p99 = 0;
    double *latencies = NULL;
    long long issued = 0, completed = 0, finished = 0, moved = 0;
    int timed_out = 0;
    struct epoll_event events[256];

    /* If the benchmark dies, so do we: no orphan load generators. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);

    while ((opt = getopt(argc, argv, "p:m:c:s:n:b:k:w:t:r")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'm':
            if (strcmp(optarg, "pingpong") == 0) mode = PINGPONG;
            else if (strcmp(optarg, "stream") == 0) mode = STREAM;
            else usage();
            break;
        case 'c': nconn = atoi(optarg); break;
        case 's': size = atol(optarg); break;
        case 'n': messages = atoll(optarg); break;
        case 'b': total_bytes = atoll(optarg); break;
        case 'k': chunk = atol(optarg); break;
        case 'w': window = atol(optarg); break;
        case 't': cap = atof(optarg); break;
        case 'r': handshake = 1; break;
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || nconn < 1 || nconn > MAX_CONNECTIONS || size < 1
        || size > READ_BUFFER || chunk < 1 || chunk > READ_BUFFER || window < chunk
        || messages < 1 || total_bytes < nconn || cap <= 0)
        usage();
    memset(out_buf, 'x', sizeof out_buf);
    if (mode == PINGPONG) {
        /* One slot per message, allocated before the clock starts. */
        latencies = malloc((size_t)messages * sizeof *latencies);
        if (latencies == NULL)
            fail("out of memory for latencies", 0);
    }

    epfd = epoll_create1(0);
    if (epfd < 0)
        fail("epoll_create1", errno);
    for (i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        struct epoll_event ev;
        c->fd = connect_one(port);
        prime(c->fd, size, cap);
        /* Non-blocking from here on: the loop waits only in epoll_wait. */
        if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0)
            fail("fcntl", errno);
        c->quota = total_bytes / nconn + (i < total_bytes % nconn ? 1 : 0);
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            fail("epoll_ctl", errno);
    }
    if (handshake) {
        printf("ready\n");
        fflush(stdout);
        wait_for_parent();
    }

    cpu_start = cpu_seconds();
    start = now();
    /* Start every connection. */
    for (i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        if (mode == PINGPONG) {
            if (issued < messages) {
                issued++;
                c->out_left = c->in_left = size;
                c->sent_at = start;
                pingpong_send(c, size);
            } else {
                finished++;
            }
        } else {
            stream_send(c, chunk, window);
        }
    }

    while (finished < nconn) {
        double t = now();
        if (t - start > cap) {
            timed_out = 1;
            break;
        }
        n_events = epoll_wait(epfd, events, 256, POLL_MS);
        if (n_events < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait", errno);
        }
        for (i = 0; i < n_events; i++) {
            struct conn *c = events[i].data.ptr;
            uint32_t ev = events[i].events;
            if (ev & EPOLLIN) {
                ssize_t n = recv(c->fd, in_buf, sizeof in_buf, 0);
                if (n < 0) {
                    if (errno != EAGAIN && errno != EINTR)
                        fail("recv", errno);
                    n = 0;
                } else if (n == 0) {
                    fail("server closed a connection during the run", 0);
                }
                if (mode == PINGPONG) {
                    if (n > c->in_left)
                        fail("server echoed more than was sent", 0);
                    c->in_left -= n;
                    if (n > 0 && c->in_left == 0 && c->out_left == 0) {
                        double done_at = now();
                        latencies[completed++] = (done_at - c->sent_at) * 1e6;
                        if (issued < messages) {
                            issued++;
                            c->out_left = c->in_left = size;
                            c->sent_at = done_at;
                            pingpong_send(c, size);
                        } else {
                            finished++;
                        }
                    }
                } else {
                    c->received += n;
                    moved += n;
                    if (c->received > c->quota)
                        fail("server echoed more than was sent", 0);
                    if (n > 0 && c->received == c->quota)
                        finished++;
                    else
                        stream_send(c, chunk, window);
                }
            } else if (ev & (EPOLLERR | EPOLLHUP)) {
                fail("connection error or hang-up during the run", 0);
            }
            if (ev & EPOLLOUT) {
                if (mode == PINGPONG)
                    pingpong_send(c, size);
                else
                    stream_send(c, chunk, window);
            }
        }
    }
    elapsed = now() - start;
    cpu_used = cpu_seconds() - cpu_start;

    if (mode == PINGPONG && completed > 0) {
        qsort(latencies, (size_t)completed, sizeof *latencies, compare_doubles);
        p50 = latencies[(completed - 1) / 2];
        p99 = latencies[(long long)((double)(completed - 1) * 0.99)];
        moved = completed * size;
    }
    printf("{\"mode\": \"%s\", \"connections\": %d, \"size\": %ld, \"chunk\": %ld, "
           "\"messages\": %lld, \"bytes\": %lld, \"seconds\": %.6f, "
           "\"messages_per_sec\": %.1f, \"mb_per_sec\": %.3f, ",
           mode == PINGPONG ? "pingpong" : "stream", nconn, size, chunk,
           mode == PINGPONG ? completed : 0LL, moved, elapsed,
           mode == PINGPONG ? (double)completed / elapsed : 0.0,
           (double)moved / 1e6 / elapsed);
    if (mode == PINGPONG)
        printf("\"latency_us\": {\"p50\": %.2f, \"p99\": %.2f}, ", p50, p99);
    printf("\"client_cpu_seconds\": %.6f, \"timed_out\": %s}\n", cpu_used,
           timed_out ? "true" : "false");
    fflush(stdout);

    if (handshake)
        wait_for_parent(); /* the parent reads the server's CPU time first */
    for (i = 0; i < nconn; i++)
        close(conns[i].fd);
    free(latencies);
    return 0;
}
