/* A C channel server: the reactor with a C handler and a C ordering classifier.
 *
 *   server PATH SECONDS      serves at PATH until SIGINT/SIGTERM or SECONDS pass
 *
 * Requests:
 *   fail:WHY    answered as a failure with the message WHY
 *   later:...   echoed from another thread, a millisecond later (a responder may be
 *               answered from any thread)
 *   w:KEY       a write on KEY: increments KEY's counter and answers its new value
 *   r:KEY       a read of KEY: answers its counter
 *   anything    echoed
 *
 * The classifier makes writes on one key run one at a time, in arrival order, and reads
 * beside each other but never beside a write: the counters need no lock. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringbell.h"

#define SLOTS 256

static unsigned long counters[SLOTS]; /* guarded by the per-key ordering, not a lock */
static atomic_int stop_requested; /* lock-free on Linux: safe in a signal handler */

static void on_signal(int sig) {
    (void)sig;
    atomic_store(&stop_requested, 1); /* rb_server_stop() is not async-signal-safe */
}

static int starts_with(const rb_request *r, const char *prefix) {
    size_t n = strlen(prefix);
    return r->len >= n && memcmp(r->body, prefix, n) == 0;
}

static uint64_t key_of(const rb_request *r) {
    uint64_t h = 1469598103934665603u; /* FNV-1a over the key, after "w:" or "r:" */
    for (size_t i = 2; i < r->len; i++) h = (h ^ r->body[i]) * 1099511628211u;
    return h % SLOTS;
}

static int classify(void *context, const rb_request *r, uint64_t *key) {
    (void)context;
    if (starts_with(r, "w:")) {
        *key = key_of(r);
        return RB_ACCESS_WRITE;
    }
    if (starts_with(r, "r:")) {
        *key = key_of(r);
        return RB_ACCESS_READ;
    }
    return RB_ACCESS_UNORDERED;
}

struct later {
    rb_responder *responder;
    size_t len;
    uint8_t body[];
};

static void *answer_later(void *arg) {
    struct later *l = arg;
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
    rb_respond(l->responder, l->body, l->len); /* consumes the responder, whatever it returns */
    free(l);
    return NULL;
}

static void handle(void *context, const rb_request *r, rb_responder *res) {
    (void)context;
    char text[32];
    if (starts_with(r, "fail:")) {
        rb_respond_failed(res, r->body + 5, r->len - 5);
    } else if (starts_with(r, "later:")) {
        /* The body is only valid during this call: copy it for the other thread. */
        struct later *l = malloc(sizeof *l + r->len);
        pthread_t t;
        if (l == NULL) {
            rb_respond_failed(res, (const uint8_t *)"out of memory", 13);
            return;
        }
        l->responder = res;
        l->len = r->len;
        memcpy(l->body, r->body, r->len);
        if (pthread_create(&t, NULL, answer_later, l) != 0) {
            rb_respond_failed(res, (const uint8_t *)"no thread", 9);
            free(l);
            return;
        }
        pthread_detach(t);
    } else if (starts_with(r, "w:")) {
        unsigned long v = ++counters[key_of(r)];
        int n = snprintf(text, sizeof text, "%lu", v);
        rb_respond(res, (const uint8_t *)text, (size_t)n);
    } else if (starts_with(r, "r:")) {
        int n = snprintf(text, sizeof text, "%lu", counters[key_of(r)]);
        rb_respond(res, (const uint8_t *)text, (size_t)n);
    } else {
        rb_respond(res, r->body, r->len);
    }
}

struct watch {
    rb_server *server;
    double seconds;
};

static void *watcher(void *arg) {
    struct watch *w = arg;
    struct timespec tick = {0, 10000000};
    for (double t = 0; t < w->seconds && !atomic_load(&stop_requested); t += 0.01) {
        nanosleep(&tick, NULL);
    }
    rb_server_stop(w->server);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: server PATH SECONDS\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    rb_server_options opts = rb_server_options_default();
    opts.workers = 4;
    opts.access = classify;
    rb_server *server = NULL;
    int rc = rb_server_bind(argv[1], &opts, handle, NULL, &server);
    if (rc != RB_OK) {
        fprintf(stderr, "server: bind: %s: %s\n", rb_error_name(rc), rb_last_error_message());
        return 1;
    }
    struct watch w = {server, strtod(argv[2], NULL)};
    pthread_t t;
    if (pthread_create(&t, NULL, watcher, &w) != 0) {
        rb_server_free(server);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    rc = rb_server_run(server);
    pthread_join(t, NULL);
    rb_server_free(server);
    if (rc != RB_OK) {
        fprintf(stderr, "server: run: %s: %s\n", rb_error_name(rc), rb_last_error_message());
        return 1;
    }
    fprintf(stderr, "server: stopped\n");
    return 0;
}
