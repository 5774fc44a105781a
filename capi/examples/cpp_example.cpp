// The C++ wrapper in use: a server with a lambda handler and a key classifier, and a client
// calling it, in one process on two threads. `cpp_example --connect PATH` instead calls
// a server elsewhere (the Rust echo server in the check). Prints "ok".
#include <atomic>
#include <cstdio>
#include <cstring>
#include <array>
#include <string>
#include <thread>
#include <unistd.h>

#include "ringbell.hpp"

namespace {

int expect(bool ok, const char *what) {
    if (!ok) std::fprintf(stderr, "cpp_example: %s\n", what);
    return ok ? 0 : 1;
}

int call_external(const std::string &path) {
    ringbell::client c(path);
    if (expect(c.call("from C++") == "from C++", "echo")) return 1;
    try {
        c.call("fail:because");
        return expect(false, "a failure did not throw");
    } catch (const ringbell::error &e) {
        if (expect(e.code() == RB_E_FAILED && std::strstr(e.what(), "because"), "failure")) return 1;
    }
    std::puts("ok");
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    if (argc >= 3 && std::string(argv[1]) == "--connect") {
        try {
            return call_external(argv[2]);
        } catch (const ringbell::error &e) {
            std::fprintf(stderr, "cpp_example: %s\n", e.what());
            return 1;
        }
    }

    std::string path = "/tmp/ringbell-cpp-example-" + std::to_string(getpid()) + ".sock";
    // One counter per key, made before serving: the per-key ordering guards each counter,
    // not the container (two keys' writes run at once).
    std::array<long, 64> counters{};
    ringbell::server server(
        path,
        [&](const ringbell::request &req, ringbell::responder &res) {
            std::string_view body = req.text();
            if (body == "throw") throw std::runtime_error("the handler threw");
            if (body.starts_with("w:")) {
                res.respond(std::to_string(++counters[body.size() % counters.size()]));
                return;
            }
            if (body == "later") {
                // Answered from another thread, after the handler returned.
                std::thread([r = std::move(res)]() mutable {
                    try {
                        r.respond("done later");
                    } catch (...) { // nothing may escape a thread's function
                    }
                }).detach();
                return;
            }
            res.respond(req.body());
        },
        ringbell::server_options{.workers = 2},
        [](const ringbell::request &req) {
            if (req.text() == "refuse") throw std::runtime_error("no");
            if (req.text().starts_with("w:")) {
                return ringbell::access::write(req.text().size() % 64);
            }
            return ringbell::access::unordered();
        });
    std::thread serving([&] {
        try {
            server.run();
        } catch (const ringbell::error &e) {
            std::fprintf(stderr, "cpp_example: run: %s\n", e.what());
        }
    });

    int failures = 0;
    try {
        ringbell::client c(path);
        failures += expect(c.call("hello") == "hello", "echo");
        std::string big(1000, 'x');
        failures += expect(c.call(big) == big, "a 1000-byte echo");
        for (int i = 1; i <= 100; i++) {
            failures += expect(c.call("w:abc") == std::to_string(i), "ordered writes");
        }
        failures += expect(c.call("later") == "done later", "an answer from another thread");
        try {
            c.call("throw");
            failures += expect(false, "a throwing handler did not fail the call");
        } catch (const ringbell::error &e) {
            failures += expect(e.code() == RB_E_FAILED && std::strstr(e.what(), "the handler threw"),
                               "a throwing handler's message");
        }
        try {
            c.call("refuse");
            failures += expect(false, "a throwing classifier did not refuse");
        } catch (const ringbell::error &e) {
            failures += expect(e.code() == RB_E_HANDLER_PANICKED, "a throwing classifier's code");
        }
        // Pipelined through the wrapper.
        std::uint32_t a = c.send("one"), b = c.send("two");
        ringbell::response ra = c.recv(), rb = c.recv();
        failures += expect(ra.id == a && ra.body == "one" && rb.id == b && rb.body == "two",
                           "pipelined answers in order");
    } catch (const ringbell::error &e) {
        std::fprintf(stderr, "cpp_example: %s\n", e.what());
        failures++;
    }
    try {
        ringbell::client nobody("/nonexistent/ringbell.sock");
        failures += expect(false, "connecting to nothing did not throw");
    } catch (const ringbell::error &e) {
        failures += expect(e.code() != RB_OK, "connect error code");
    }
    server.stop();
    serving.join();
    if (failures == 0) std::puts("ok");
    return failures == 0 ? 0 : 1;
}
