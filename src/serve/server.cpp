// sparsa::serve::Server: cpp-httplib routes over the Api, the embedded files, limits and
// JSON errors (the contract: sparsa/serve.h; the endpoints: docs/serve.md).
#include "sparsa/input_file.h"
#include "sparsa/serve.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <semaphore>

#include "serve/access.h"
#include "serve/api.h"
#include "serve/assets.h"
#include "serve/snapshot.h"
#include "sparsa/error.h"

namespace sparsa::serve {
namespace {

using json = nlohmann::json;

// A response that would exceed ServeOptions::max_response_bytes (HTTP 413).
struct TooLarge : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// No query slot freed within the time limit (HTTP 503).
struct Busy : std::runtime_error {
  using std::runtime_error::runtime_error;
};
using Routing = httplib::Server::HandlerResponse;

void send_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(json{{"error", message}, {"status", status}}.dump(), "application/json");
}

std::string_view default_message(int status) {
  switch (status) {
    case 400: return "bad request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 413: return "request too large";
    case 414: return "URI too long";
    default: return "request failed";
  }
}

Params params_of(const httplib::Request& req) {
  Params p;
  for (const auto& [key, value] : req.params) p.emplace(key, value);  // the first value of a repeated key
  return p;
}

// Request methods and paths the dashboard has: every other combination is refused (405) before
// its body is read.
bool method_allowed(const httplib::Request& req) {
  if (req.method == "GET" || req.method == "HEAD") return true;
  return req.method == "POST" && req.path == "/api/sql";
}

}  // namespace

// The API over one snapshot of the database, which it holds for as long as a request uses it.
struct SnapshotApi {
  std::shared_ptr<const Store> store;
  Api api;
};

struct Server::Impl {
  ServeOptions opt;
  std::unique_ptr<Snapshots> snapshots;
  std::filesystem::path masks_dir;
  QueryLimits limits;
  httplib::Server http;
  int port = 0;
  std::optional<AccessPolicy> access;  // once the port is bound
  mutable std::counting_semaphore<1024> query_slots;

  explicit Impl(const ServeOptions& o);
  // The API over the newest snapshot (a new one when the database changed: snapshot.h).
  SnapshotApi current() const {
    std::shared_ptr<const Store> store = snapshots->current();
    const Store& s = *store;
    return {std::move(store), Api(s, masks_dir, opt.bench_results, limits)};
  }
  void check_options() const;
  void send_body(httplib::Response& res, std::string body, const char* type) const;
  void send_json(httplib::Response& res, const json& j) const { send_body(res, j.dump(), "application/json"); }
  httplib::Server::Handler guarded(std::function<void(const httplib::Request&, httplib::Response&)> f) const;
  template <typename F>
  auto in_query_slot(F&& f) const;
  Routing admit(const httplib::Request& req, httplib::Response& res) const;
  Routing admit_page_token(const httplib::Request& req, httplib::Response& res) const;
  std::optional<std::string> read_body(const httplib::ContentReader& read, httplib::Response& res) const;
  void add_routes();
};

void Server::Impl::send_body(httplib::Response& res, std::string body, const char* type) const {
  if (body.size() > opt.max_response_bytes)
    throw TooLarge(fmt::format("the response ({} bytes) exceeds the limit of {} bytes; select fewer rows or columns",
                               body.size(), opt.max_response_bytes));
  res.set_header("Cache-Control", "no-store");
  res.set_content(std::move(body), type);
}

// Runs `f`, turning its exceptions into JSON errors with their status codes.
httplib::Server::Handler Server::Impl::guarded(
    std::function<void(const httplib::Request&, httplib::Response&)> f) const {
  return [f = std::move(f)](const httplib::Request& req, httplib::Response& res) {
    try {
      f(req, res);
    } catch (const NotFound& e) {
      send_error(res, 404, e.what());
    } catch (const TooLarge& e) {
      send_error(res, 413, e.what());
    } catch (const QueryTooLarge& e) {
      send_error(res, 413, e.what());
    } catch (const Busy& e) {
      send_error(res, 503, e.what());
    } catch (const Error& e) {
      send_error(res, e.kind() == ErrorKind::kBadInput ? 400 : 500, e.what());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sparsa serve: %s %s: %s\n", req.method.c_str(), req.path.c_str(), e.what());
      send_error(res, 500, e.what());
    }
  };
}

// Runs `f` (which queries the database) once one of the max_queries slots is free.
template <typename F>
auto Server::Impl::in_query_slot(F&& f) const {
  if (!query_slots.try_acquire_for(std::chrono::duration<double>(opt.limits.max_seconds)))
    throw Busy(fmt::format("{} queries are running; none finished within {} s, try again", opt.max_queries,
                           opt.limits.max_seconds));
  struct Release {
    std::counting_semaphore<1024>& slots;
    ~Release() { slots.release(); }
  } release{query_slots};
  return f();
}

// Every request passes here first: its Host, method and size, and for the API its origin and token.
Routing Server::Impl::admit(const httplib::Request& req, httplib::Response& res) const {
  const std::string host = req.get_header_value("Host");
  if (!access->host_allowed(host)) {
    send_error(res, 403, fmt::format("the dashboard answers only requests for the address it listens on ({}:{})",
                                     opt.host, port));
    return Routing::Handled;
  }
  if (!method_allowed(req)) {
    send_error(res, 405, fmt::format("{} is not allowed on {}", req.method, req.path));
    return Routing::Handled;
  }
  if (req.get_header_value<uint64_t>("Content-Length") > opt.max_request_bytes) {
    send_error(res, 413, fmt::format("the request body exceeds the limit of {} bytes", opt.max_request_bytes));
    return Routing::Handled;
  }
  if (!req.path.starts_with("/api/")) return admit_page_token(req, res);
  const auto why = access->cross_origin(host, req.get_header_value("Origin"), req.get_header_value("Sec-Fetch-Site"));
  if (why) {
    send_error(res, 403, fmt::format("refused {}", *why));
    return Routing::Handled;
  }
  if (!access->token_ok(req.get_header_value(kTokenHeader), req.get_header_value("Cookie"))) {
    send_error(res, 401, "this dashboard needs its token: open the URL that `sparsa serve` printed (with ?token=...)");
    return Routing::Handled;
  }
  return Routing::Unhandled;
}

// A page opened with ?token=...: the right token is set as the cookie and the page reloaded
// without it in the URL; a wrong one is refused.
Routing Server::Impl::admit_page_token(const httplib::Request& req, httplib::Response& res) const {
  if (access->token().empty() || !req.has_param("token")) return Routing::Unhandled;
  if (!access->is_token(req.get_param_value("token"))) {
    send_error(res, 401, "the token in the URL is not this dashboard's: open the URL that `sparsa serve` printed");
    return Routing::Handled;
  }
  res.set_header("Set-Cookie", access->set_cookie());
  res.set_header("Cache-Control", "no-store");
  res.set_redirect(req.path, 302);
  return Routing::Handled;
}

// The request body, counted while it is read (any transfer encoding): nullopt, with the 413 or
// 400 error sent, when it passes max_request_bytes or cannot be read.
std::optional<std::string> Server::Impl::read_body(const httplib::ContentReader& read, httplib::Response& res) const {
  std::string body;
  bool too_large = false;
  const bool ok = read([&](const char* data, size_t n) {
    if (body.size() + n > opt.max_request_bytes) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_large || res.status == 413) {
    send_error(res, 413, fmt::format("the request body exceeds the limit of {} bytes", opt.max_request_bytes));
    return std::nullopt;
  }
  if (!ok) {
    send_error(res, 400, "the request body could not be read");
    return std::nullopt;
  }
  return body;
}

void Server::Impl::add_routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) { return admit(req, res); });
  http.Get("/api/info", guarded([this](const httplib::Request&, httplib::Response& res) {
    json j = current().api.info();
    j["db"] = opt.db.string();  // the user's file, not the private snapshot
    j["snapshot"] = snapshots->generations();
    j["queries"] = Api::query_catalog();
    send_json(res, j);
  }));
  http.Get("/api/queries",
           guarded([this](const httplib::Request&, httplib::Response& res) { send_json(res, Api::query_catalog()); }));
  http.Get(R"(/api/q/([a-z_]+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
    send_body(res, in_query_slot([&] { return current().api.named_query(req.matches[1].str(), params_of(req)); }),
              "application/json");
  }));
  http.Get(R"(/api/img/([a-z_]+)\.png)", guarded([this](const httplib::Request& req, httplib::Response& res) {
    send_body(res, in_query_slot([&] { return current().api.image(req.matches[1].str(), params_of(req)); }), "image/png");
  }));
  http.Post("/api/sql", [this](const httplib::Request& req, httplib::Response& res,
                               const httplib::ContentReader& read) {
    const std::optional<std::string> text = read_body(read, res);
    if (!text) return;
    guarded([&](const httplib::Request&, httplib::Response& r) {
      const json body = json::parse(*text, nullptr, false);
      if (body.is_discarded() || !body.is_object() || !body.contains("sql") || !body["sql"].is_string())
        bad_input("the request body must be JSON {{\"sql\": \"SELECT ...\"}}");
      send_body(r, in_query_slot([&] { return current().api.sql(body["sql"].get<std::string>()); }), "application/json");
    })(req, res);
  });
  http.Get("/api/bench-results", guarded([this](const httplib::Request&, httplib::Response& res) {
    send_json(res, current().api.bench_results());
  }));
  http.Get(R"(/api/.*)", guarded([](const httplib::Request& req, httplib::Response&) -> void {
    throw NotFound(fmt::format("no API endpoint {}", req.path));
  }));
  http.Get(R"(/.*)", guarded([this](const httplib::Request& req, httplib::Response& res) {
    const Asset* a = find_asset(req.path);
    if (!a) throw NotFound(fmt::format("no page {}", req.path));
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(a->bytes), std::string(content_type(a->path)).c_str());
  }));
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) send_error(res, res.status, std::string(default_message(res.status)));
  });
}

void Server::Impl::check_options() const {
  if (opt.threads < 1 || opt.threads > 1024) bad_input("request threads: {} is outside [1, 1024]", opt.threads);
  if (opt.max_queries < 1 || opt.max_queries > 1024)
    bad_input("queries at once: {} is outside [1, 1024]", opt.max_queries);
  if (opt.query_threads < 1 || opt.query_threads > 1024)
    bad_input("query threads: {} is outside [1, 1024]", opt.query_threads);
  if (opt.query_memory_bytes < (size_t{16} << 20))
    bad_input("query memory: {} bytes is below 16 MiB", opt.query_memory_bytes);
  if (opt.port < 0 || opt.port > 65535) bad_input("port {} is outside [0, 65535]", opt.port);
  if (opt.limits.max_rows < 1) bad_input("the row limit of a query must be at least 1");
  if (!(opt.limits.max_seconds > 0)) bad_input("the time limit of a query must be positive");
  if (!is_loopback_host(opt.host)) {
    if (!opt.allow_remote)
      bad_input("{} is not a loopback address: serving it lets other machines reach the dashboard, which must be "
                "asked for explicitly", opt.host);
    if (!opt.require_token) bad_input("{} is not a loopback address: the dashboard needs its token there", opt.host);
  }
  if (!is_regular_file_path(opt.db)) bad_input("{}: no such database file", opt.db.string());
}

Server::Impl::Impl(const ServeOptions& o) : opt(o), query_slots(std::clamp(o.max_queries, 1, 1024)) {
  check_options();
  snapshots = std::make_unique<Snapshots>(
      opt.db, StoreResources{.memory_limit_bytes = opt.query_memory_bytes, .threads = opt.query_threads});
  masks_dir = opt.masks_dir.empty() ? opt.db.parent_path() / "masks" : opt.masks_dir;
  limits = opt.limits;
  limits.max_bytes = opt.max_response_bytes;

  http.new_task_queue = [n = opt.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
  http.set_payload_max_length(opt.max_request_bytes);
  // One request per connection: a refused body is never read, and closing the connection keeps
  // its rest from being parsed as further requests.
  http.set_keep_alive_max_count(1);
  // SO_REUSEADDR (a restart may bind at once) but not cpp-httplib's default SO_REUSEPORT, which
  // would let a second dashboard share the port silently.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                            {"X-Frame-Options", "DENY"},
                            {"Referrer-Policy", "no-referrer"},
                            {"Content-Security-Policy",
                             "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
                             "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'"}});
  add_routes();
  port = opt.port == 0 ? http.bind_to_any_port(opt.host) : (http.bind_to_port(opt.host, opt.port) ? opt.port : -1);
  if (port < 0) runtime_failure("cannot listen on {}:{} (in use, or not an address of this machine)", opt.host, opt.port);
  access.emplace(opt.host, port, opt.require_token ? (opt.token.empty() ? random_token() : opt.token) : std::string());
}

Server::Server(const ServeOptions& options) : impl_(std::make_unique<Impl>(options)) {}
Server::~Server() { stop(); }

int Server::port() const { return impl_->port; }

std::string Server::url() const {
  const std::string& h = impl_->opt.host;
  const std::string& token = impl_->access->token();
  return fmt::format("http://{}:{}/{}", h.find(':') != std::string::npos ? "[" + h + "]" : h, impl_->port,
                     token.empty() ? "" : "?token=" + token);
}

const std::string& Server::token() const { return impl_->access->token(); }

void Server::run() { impl_->http.listen_after_bind(); }
void Server::stop() { impl_->http.stop(); }

}  // namespace sparsa::serve
