// ringbell.hpp: a header-only C++20 wrapper over ringbell.h.
//
// RAII handles (move-only; the destructor closes), std::span and std::string_view for
// bodies, and EXCEPTIONS for errors: every failing call throws ringbell::error, which
// carries the RB_E_* code (code()) and the library's message (what()). Exceptions, not
// std::expected, because std::expected needs C++23 and the compilers this targets default
// to C++17/20; a caller that wants no exceptions uses ringbell.h directly.
//
// Callbacks never let an exception reach the library: the handler and classifier
// trampolines are noexcept and catch everything. A handler that throws before answering
// answers its request as a failure with the exception's message; a classifier that
// throws refuses its request (the client gets RB_E_HANDLER_PANICKED).
//
// Thread safety is the C API's: a client is used by one thread at a time; a server runs on
// one thread and stops from any; a responder is answered once, from any thread.
#ifndef RINGBELL_HPP
#define RINGBELL_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringbell.h"

namespace ringbell {

// A failed call: code() is the RB_E_* code, what() names it and says what happened.
class error : public std::runtime_error {
public:
    error(int code, const std::string &message) : std::runtime_error(message), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

namespace detail {
inline void check(int rc) {
    if (rc != RB_OK) {
        throw error(rc, std::string(rb_error_name(rc)) + ": " + rb_last_error_message());
    }
}

inline std::uint64_t micros(std::chrono::microseconds t) {
    return t.count() < 0 ? 0 : static_cast<std::uint64_t>(t.count());
}

inline const char *path_arg(const std::string &path) {
    if (path.find('\0') != std::string::npos) {
        throw error(RB_E_INVALID_ARGUMENT, "RB_E_INVALID_ARGUMENT: a path with a NUL byte");
    }
    return path.c_str();
}

inline std::span<const std::byte> bytes(std::string_view s) noexcept {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

inline const std::uint8_t *u8(std::span<const std::byte> b) noexcept {
    return reinterpret_cast<const std::uint8_t *>(b.data());
}
} // namespace detail

// Waits without a deadline (a dead peer still ends the wait).
inline constexpr std::chrono::microseconds no_timeout{-1};

inline std::uint64_t timeout_us(std::chrono::microseconds t) {
    return t == no_timeout ? RB_NO_TIMEOUT : detail::micros(t);
}

// A response: its request id, its status (RB_OK, RB_E_BUSY, RB_E_FAILED, ...) and body.
struct response {
    std::uint32_t id = 0;
    int status = RB_OK;
    std::string body;
};

// A connection to a channel server.
class client {
public:
    // Connects to the server at path; throws ringbell::error if it cannot.
    explicit client(const std::string &path) {
        detail::check(rb_client_connect(detail::path_arg(path), &c_));
        try {
            buf_.resize(rb_client_max_response(c_));
        } catch (...) {
            rb_client_close(c_); // the destructor does not run for a failed constructor
            throw;
        }
    }
    client(client &&o) noexcept : c_(std::exchange(o.c_, nullptr)), buf_(std::move(o.buf_)) {}
    client &operator=(client &&o) noexcept {
        if (this != &o) {
            rb_client_close(c_);
            c_ = std::exchange(o.c_, nullptr);
            buf_ = std::move(o.buf_);
        }
        return *this;
    }
    client(const client &) = delete;
    client &operator=(const client &) = delete;
    ~client() { rb_client_close(c_); }

    // Sends a request and returns the response body; throws ringbell::error for any status
    // but Ok (a failure's message is in what()) and on timeout.
    std::string call(std::string_view request,
                     std::chrono::microseconds timeout = std::chrono::seconds(10)) {
        return call(detail::bytes(request), timeout);
    }

    std::string call(std::span<const std::byte> request,
                     std::chrono::microseconds timeout = std::chrono::seconds(10)) {
        std::size_t len = 0;
        int rc = rb_client_call(c_, detail::u8(request), request.size(), buf_.data(), buf_.size(),
                                &len, timeout_us(timeout));
        if (rc == RB_E_FAILED) {
            throw error(rc, "RB_E_FAILED: " + std::string(reinterpret_cast<char *>(buf_.data()), len));
        }
        detail::check(rc);
        return std::string(reinterpret_cast<char *>(buf_.data()), len);
    }

    // Sends a request without waiting for its answer; returns its id.
    std::uint32_t send(std::string_view request,
                       std::chrono::microseconds timeout = std::chrono::seconds(10)) {
        auto b = detail::bytes(request);
        std::uint32_t id = 0;
        detail::check(rb_client_send(c_, detail::u8(b), b.size(), &id, timeout_us(timeout)));
        return id;
    }

    // The next response, whatever its status (only transport failures throw).
    response recv(std::chrono::microseconds timeout = std::chrono::seconds(10)) {
        response r;
        std::size_t len = 0;
        r.status = rb_client_recv(c_, buf_.data(), buf_.size(), &len, &r.id, timeout_us(timeout));
        switch (r.status) {
        case RB_OK: case RB_E_BUSY: case RB_E_HANDLER_PANICKED: case RB_E_DROPPED:
        case RB_E_FAILED: case RB_E_SHUTTING_DOWN: case RB_E_RESPONSE_TOO_LARGE:
        case RB_E_BUFFER_TOO_SMALL: // never with a buffer of the server's response cap
            r.body.assign(reinterpret_cast<char *>(buf_.data()), len);
            return r;
        default:
            detail::check(r.status);
            return r;
        }
    }

    rb_client *get() const noexcept { return c_; }

private:
    rb_client *c_ = nullptr;
    std::vector<std::uint8_t> buf_;
};

// A request as a handler sees it: valid only during the handler's call.
class request {
public:
    explicit request(const rb_request *r) noexcept : r_(r) {}
    std::span<const std::byte> body() const noexcept {
        return {reinterpret_cast<const std::byte *>(r_->body), r_->len};
    }
    std::string_view text() const noexcept {
        return {reinterpret_cast<const char *>(r_->body), r_->len};
    }
    std::uint32_t id() const noexcept { return r_->id; }
    std::uint32_t pid() const noexcept { return r_->pid; }
    std::uint32_t uid() const noexcept { return r_->uid; }

private:
    const rb_request *r_;
};

// The answer to one request: respond() or fail() once, from any thread; destroyed
// unanswered, the client gets RB_E_DROPPED. Move it out of the handler to answer later.
class responder {
public:
    explicit responder(rb_responder *r) noexcept : r_(r) {}
    responder(responder &&o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    responder &operator=(responder &&o) noexcept {
        if (this != &o) {
            rb_responder_drop(r_);
            r_ = std::exchange(o.r_, nullptr);
        }
        return *this;
    }
    responder(const responder &) = delete;
    responder &operator=(const responder &) = delete;
    ~responder() { rb_responder_drop(r_); }

    void respond(std::span<const std::byte> body) {
        detail::check(rb_respond(take(), detail::u8(body), body.size()));
    }
    void respond(std::string_view body) { respond(detail::bytes(body)); }
    void fail(std::string_view message) {
        auto b = detail::bytes(message);
        detail::check(rb_respond_failed(take(), detail::u8(b), b.size()));
    }
    // Whether it still waits for an answer.
    explicit operator bool() const noexcept { return r_ != nullptr; }

private:
    rb_responder *take() {
        if (r_ == nullptr) throw error(RB_E_STATE, "RB_E_STATE: the responder was answered already");
        return std::exchange(r_, nullptr);
    }
    rb_responder *r_;
};

// A request's ordering: unordered, or a read or write of a key.
struct access {
    int kind = RB_ACCESS_UNORDERED;
    std::uint64_t key = 0;
    static access unordered() noexcept { return {}; }
    static access read(std::uint64_t key) noexcept { return {RB_ACCESS_READ, key}; }
    static access write(std::uint64_t key) noexcept { return {RB_ACCESS_WRITE, key}; }
};

struct server_options {
    unsigned workers = 2;         // 0: every request inline on run()'s thread
    bool socket_transport = false; // frames on the socket instead of shared memory
    unsigned max_clients = 0;     // 0: the default
};

// A channel server with its reactor. The handler gets each request and a responder (it
// may move the responder out to answer later, from any thread); it runs on run()'s thread
// or on a worker, several at once with workers.
class server {
public:
    using handler_fn = std::function<void(const request &, responder &)>;
    using access_fn = std::function<access(const request &)>;

    server(const std::string &path, handler_fn handler, server_options o = {},
           access_fn classify = nullptr)
        : st_(std::make_unique<state>(state{std::move(handler), std::move(classify)})) {
        rb_server_options opts = rb_server_options_default();
        opts.workers = o.workers;
        opts.transport = o.socket_transport ? RB_TRANSPORT_SOCKET : RB_TRANSPORT_SHARED_MEMORY;
        opts.max_clients = o.max_clients;
        opts.access = st_->classify ? &server::classify_trampoline : nullptr;
        detail::check(rb_server_bind(detail::path_arg(path), &opts, &server::handle_trampoline,
                                     st_.get(), &s_));
    }
    server(const server &) = delete;
    server &operator=(const server &) = delete;
    // Stops the server and waits for a run() on another thread to return (so an exception
    // that unwinds past a running server stops it). Never destroy it from a handler.
    ~server() { rb_server_free(s_); }

    // Serves until stop(); throws ringbell::error if it cannot serve.
    void run() { detail::check(rb_server_run(s_)); }
    // From any thread (not from a signal handler).
    void stop() noexcept { rb_server_stop(s_); }

private:
    struct state {
        handler_fn handle;
        access_fn classify;
    };

    static void handle_trampoline(void *ctx, const rb_request *r, rb_responder *res) noexcept {
        responder answer(res);
        try {
            static_cast<state *>(ctx)->handle(request(r), answer);
        } catch (const std::exception &e) {
            if (answer) {
                try { answer.fail(e.what()); } catch (...) {}
            }
        } catch (...) {
            if (answer) {
                try { answer.fail("unknown C++ exception"); } catch (...) {}
            }
        }
    }

    static int classify_trampoline(void *ctx, const rb_request *r, std::uint64_t *key) noexcept {
        try {
            access a = static_cast<state *>(ctx)->classify(request(r));
            *key = a.key;
            return a.kind;
        } catch (...) {
            return -1; // the request is refused, not run
        }
    }

    std::unique_ptr<state> st_;
    rb_server *s_ = nullptr;
};

} // namespace ringbell

#endif // RINGBELL_HPP
