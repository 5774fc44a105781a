/* A C client of a ringbell channel server.
 *
 *   client PATH              calls the server at PATH and checks every answer; prints "ok"
 *   client PATH --bench N    times N calls of 64 bytes; prints the median and 99th
 *                            percentile round trip in nanoseconds
 *
 * The server is expected to echo, and to answer "fail:WHY" with a failure whose message is
 * WHY (capi/examples/rust_echo_server.rs and server.c both do). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringbell.h"

#define TIMEOUT_US (10u * 1000u * 1000u)

static int fail(const char *what, int rc) {
    fprintf(stderr, "client: %s: %s: %s\n", what, rb_error_name(rc), rb_last_error_message());
    return 1;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int bench(rb_client *c, uint8_t *buf, size_t cap, size_t n) {
    uint8_t req[64];
    memset(req, 7, sizeof req);
    if (n == 0) n = 1;
    uint64_t *times = calloc(n, sizeof *times); /* calloc checks n * size for overflow */
    if (times == NULL) return fail("malloc", RB_E_INVALID_ARGUMENT);
    size_t len = 0;
    for (size_t i = 0; i < n && i < 1000; i++) { /* warm up */
        int rc = rb_client_call(c, req, sizeof req, buf, cap, &len, TIMEOUT_US);
        if (rc != RB_OK) { free(times); return fail("call", rc); }
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        int rc = rb_client_call(c, req, sizeof req, buf, cap, &len, TIMEOUT_US);
        times[i] = now_ns() - t0;
        if (rc != RB_OK || len != sizeof req) { free(times); return fail("call", rc); }
    }
    qsort(times, n, sizeof *times, by_value);
    printf("c client: %zu calls, p50 %llu ns, p99 %llu ns\n", n,
           (unsigned long long)times[(n - 1) / 2], (unsigned long long)times[(size_t)((double)(n - 1) * 0.99)]);
    free(times);
    return 0;
}

static int check(rb_client *c, uint8_t *buf, size_t cap) {
    char req[64];
    size_t len = 0;
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(req, sizeof req, "hello %d", i);
        int rc = rb_client_call(c, (const uint8_t *)req, (size_t)n, buf, cap, &len, TIMEOUT_US);
        if (rc != RB_OK) return fail("call", rc);
        if (len != (size_t)n || memcmp(buf, req, len) != 0) {
            fprintf(stderr, "client: asked \"%s\", got %zu other bytes\n", req, len);
            return 1;
        }
    }
    /* A failure comes back as its code, with the handler's message as the body. */
    const char *bad = "fail:no such key";
    int rc = rb_client_call(c, (const uint8_t *)bad, strlen(bad), buf, cap, &len, TIMEOUT_US);
    if (rc != RB_E_FAILED || len != 11 || memcmp(buf, "no such key", 11) != 0) {
        fprintf(stderr, "client: a failure came back as %s (%zu bytes)\n", rb_error_name(rc), len);
        return 1;
    }
    /* Pipelined: sixteen sent, then their answers, in request order. */
    uint32_t ids[16];
    for (int i = 0; i < 16; i++) {
        int n = snprintf(req, sizeof req, "later:%d", i);
        rc = rb_client_send(c, (const uint8_t *)req, (size_t)n, &ids[i], TIMEOUT_US);
        if (rc != RB_OK) return fail("send", rc);
    }
    for (int i = 0; i < 16; i++) {
        uint32_t id = 0;
        int n = snprintf(req, sizeof req, "later:%d", i);
        rc = rb_client_recv(c, buf, cap, &len, &id, TIMEOUT_US);
        if (rc != RB_OK) return fail("recv", rc);
        if (id != ids[i] || len != (size_t)n || memcmp(buf, req, len) != 0) {
            fprintf(stderr, "client: pipelined answer %d out of order\n", i);
            return 1;
        }
    }
    /* A buffer too short: the length needed comes back. */
    rc = rb_client_call(c, (const uint8_t *)"0123456789", 10, buf, 4, &len, TIMEOUT_US);
    if (rc != RB_E_BUFFER_TOO_SMALL || len != 10) {
        fprintf(stderr, "client: a short buffer gave %s and %zu\n", rb_error_name(rc), len);
        return 1;
    }
    /* Bad arguments are errors, never crashes. */
    if (rb_client_call(NULL, NULL, 0, NULL, 0, &len, 0) != RB_E_INVALID_ARGUMENT) {
        fprintf(stderr, "client: a NULL client was not refused\n");
        return 1;
    }
    if (strcmp(rb_error_name(RB_E_TIMEOUT), "RB_E_TIMEOUT") != 0) return 1;
    /* Nobody listening: an error with the system's message. */
    rb_client *none = NULL;
    rc = rb_client_connect("/nonexistent/ringbell.sock", &none);
    if (rc == RB_OK || none != NULL || rb_last_error_message()[0] == '\0') {
        fprintf(stderr, "client: connecting to nothing gave %s\n", rb_error_name(rc));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: client PATH [--bench N]\n");
        return 2;
    }
    rb_client *c = NULL;
    int rc = rb_client_connect(argv[1], &c);
    if (rc != RB_OK) return fail("connect", rc);
    size_t cap = rb_client_max_response(c);
    uint8_t *buf = malloc(cap);
    int status;
    if (buf == NULL) {
        status = fail("malloc", RB_E_INVALID_ARGUMENT);
    } else if (argc >= 4 && strcmp(argv[2], "--bench") == 0) {
        status = bench(c, buf, cap, (size_t)strtoul(argv[3], NULL, 10));
    } else {
        status = check(c, buf, cap);
        if (status == 0) printf("ok\n");
    }
    free(buf);
    rb_client_close(c);
    return status;
}
