/* SPSC ring ends over a memfd between two processes: the parent makes a ring, forks, and
 * produces 100000 numbered frames; the child attaches the consumer to the inherited
 * descriptor and checks each one. Prints "ok" when the child saw them all, in order. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringbell.h"

#define FRAMES 100000u
#define TIMEOUT_US (10u * 1000u * 1000u)

static int fail(const char *who, const char *what, int rc) {
    fprintf(stderr, "spsc %s: %s: %s: %s\n", who, what, rb_error_name(rc), rb_last_error_message());
    return 1;
}

static int consume(int fd) {
    rb_consumer *rx = NULL;
    int rc = rb_consumer_attach(fd, &rx);
    if (rc != RB_OK) return fail("child", "attach", rc);
    uint8_t buf[64];
    for (uint32_t i = 0; i < FRAMES; i++) {
        uint32_t tag = 0;
        size_t len = 0;
        rc = rb_consumer_recv(rx, &tag, buf, sizeof buf, &len, TIMEOUT_US);
        if (rc != RB_OK) return fail("child", "recv", rc);
        uint32_t got;
        if (tag != i || len != sizeof got) return fail("child", "frame out of order", RB_E_CORRUPT);
        memcpy(&got, buf, sizeof got);
        if (got != i * 3u) return fail("child", "payload", RB_E_CORRUPT);
    }
    /* The producer closed after the last frame. */
    size_t len = 0;
    rc = rb_consumer_recv(rx, NULL, buf, sizeof buf, &len, TIMEOUT_US);
    rb_consumer_close(rx);
    return rc == RB_E_CLOSED ? 0 : fail("child", "after the last frame", rc);
}

int main(void) {
    int fd = -1;
    int rc = rb_spsc_create(65536, &fd);
    if (rc != RB_OK) return fail("parent", "create", rc);
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) _exit(consume(fd));
    rb_producer *tx = NULL;
    rc = rb_producer_attach(fd, &tx);
    close(fd); /* the producer keeps its own descriptor */
    if (rc != RB_OK) return fail("parent", "attach", rc);
    for (uint32_t i = 0; i < FRAMES; i++) {
        uint32_t v = i * 3u;
        rc = rb_producer_send(tx, i, (const uint8_t *)&v, sizeof v, TIMEOUT_US);
        if (rc != RB_OK) return fail("parent", "send", rc);
    }
    rb_producer_close(tx);
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "spsc: the consumer failed\n");
        return 1;
    }
    printf("ok\n");
    return 0;
}
