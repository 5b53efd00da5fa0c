// sparsa::serve::Server: cpp-httplib routes over the Api, the embedded files, limits and
// JSON errors (the contract: sparsa/serve.h; the endpoints: docs/serve.md).
#include "sparsa/serve.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <cstdio>

#include "serve/api.h"
#include "serve/assets.h"
#include "sparsa/error.h"

namespace sparsa::serve {
namespace {

using json = nlohmann::json;

// A response that would exceed ServeOptions::max_response_bytes (HTTP 413).
struct TooLarge : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void send_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(json{{"error", message}, {"status", status}}.dump(), "application/json");
}

std::string_view default_message(int status) {
  switch (status) {
    case 400: return "bad request";
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

bool is_loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

}  // namespace

struct Server::Impl {
  ServeOptions opt;
  std::unique_ptr<Store> store;
  std::unique_ptr<Api> api;
  httplib::Server http;
  int port = 0;

  explicit Impl(const ServeOptions& o);
  void send_body(httplib::Response& res, std::string body, const char* type) const;
  void send_json(httplib::Response& res, const json& j) const { send_body(res, j.dump(), "application/json"); }
  httplib::Server::Handler guarded(std::function<void(const httplib::Request&, httplib::Response&)> f) const;
  bool host_allowed(const httplib::Request& req) const;
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
    } catch (const Error& e) {
      send_error(res, e.kind() == ErrorKind::kBadInput ? 400 : 500, e.what());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sparsa serve: %s %s: %s\n", req.method.c_str(), req.path.c_str(), e.what());
      send_error(res, 500, e.what());
    }
  };
}

// On a loopback address, only requests naming a loopback host are served, so that a web page
// from elsewhere cannot reach the dashboard through a DNS name rebound to 127.0.0.1.
bool Server::Impl::host_allowed(const httplib::Request& req) const {
  if (!is_loopback(opt.host)) return true;
  std::string host = req.get_header_value("Host");
  if (!host.empty() && host.front() == '[') {  // "[::1]:8765"
    const size_t close = host.find(']');
    host = close == std::string::npos ? std::string() : host.substr(1, close - 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
    host.resize(colon);
  }
  return is_loopback(host);
}

void Server::Impl::add_routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (host_allowed(req)) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, 403, "the dashboard answers only requests for a loopback host (127.0.0.1, localhost)");
    return httplib::Server::HandlerResponse::Handled;
  });
  http.Get("/api/info", guarded([this](const httplib::Request&, httplib::Response& res) {
    json j = api->info();
    j["queries"] = Api::query_catalog();
    send_json(res, j);
  }));
  http.Get("/api/queries",
           guarded([this](const httplib::Request&, httplib::Response& res) { send_json(res, Api::query_catalog()); }));
  http.Get(R"(/api/q/([a-z_]+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
    send_json(res, api->named_query(req.matches[1].str(), params_of(req)));
  }));
  http.Get(R"(/api/img/([a-z_]+)\.png)", guarded([this](const httplib::Request& req, httplib::Response& res) {
    send_body(res, api->image(req.matches[1].str(), params_of(req)), "image/png");
  }));
  http.Post("/api/sql", guarded([this](const httplib::Request& req, httplib::Response& res) {
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("sql") || !body["sql"].is_string())
      bad_input("the request body must be JSON {{\"sql\": \"SELECT ...\"}}");
    send_json(res, api->sql(body["sql"].get<std::string>()));
  }));
  http.Get("/api/bench-results", guarded([this](const httplib::Request&, httplib::Response& res) {
    send_json(res, api->bench_results());
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
  const auto not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    send_error(res, 405, fmt::format("{} is not allowed on {}", req.method, req.path));
  };
  http.Post(R"(/.*)", not_allowed);
  http.Put(R"(/.*)", not_allowed);
  http.Patch(R"(/.*)", not_allowed);
  http.Delete(R"(/.*)", not_allowed);
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) send_error(res, res.status, std::string(default_message(res.status)));
  });
}

Server::Impl::Impl(const ServeOptions& o) : opt(o) {
  if (opt.threads < 1 || opt.threads > 1024) bad_input("request threads: {} is outside [1, 1024]", opt.threads);
  if (opt.port < 0 || opt.port > 65535) bad_input("port {} is outside [0, 65535]", opt.port);
  if (opt.limits.max_rows < 1) bad_input("the row limit of a query must be at least 1");
  if (!(opt.limits.max_seconds > 0)) bad_input("the time limit of a query must be positive");
  if (!std::filesystem::is_regular_file(opt.db)) bad_input("{}: no such database file", opt.db.string());
  store = Store::open(opt.db, Store::Mode::kSandboxed);
  const std::filesystem::path masks = opt.masks_dir.empty() ? opt.db.parent_path() / "masks" : opt.masks_dir;
  api = std::make_unique<Api>(*store, masks, opt.bench_results, opt.limits);

  http.new_task_queue = [n = opt.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
  http.set_payload_max_length(opt.max_request_bytes);
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
}

Server::Server(const ServeOptions& options) : impl_(std::make_unique<Impl>(options)) {}
Server::~Server() { stop(); }

int Server::port() const { return impl_->port; }

std::string Server::url() const {
  const std::string& h = impl_->opt.host;
  return fmt::format("http://{}:{}/", h.find(':') != std::string::npos ? "[" + h + "]" : h, impl_->port);
}

void Server::run() { impl_->http.listen_after_bind(); }
void Server::stop() { impl_->http.stop(); }

}  // namespace sparsa::serve
