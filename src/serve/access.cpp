// AccessPolicy: the Host, origin and token checks of the dashboard (serve/access.h), and
// is_loopback_host (sparsa/serve.h).
#include "serve/access.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <random>

#include "sparsa/serve.h"

namespace sparsa::serve {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string unbracketed(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return lower(host);
}

bool is_ip_literal(const std::string& host) {
  in_addr v4{};
  in6_addr v6{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

bool is_loopback_address(const sockaddr* a) {
  if (a->sa_family == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr) >> 24) == 127;
  if (a->sa_family == AF_INET6) {
    const in6_addr& v6 = reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

bool is_wildcard(const std::string& host) { return host == "0.0.0.0" || host == "::" || host.empty(); }

// "name:port" / "[v6]:port" / "name" -> (name without brackets, lower case; port, 80 when absent).
// nullopt when malformed.
std::optional<std::pair<std::string, int>> split_host(std::string_view h) {
  std::string_view name = h, port;
  if (!h.empty() && h.front() == '[') {
    const size_t close = h.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    name = h.substr(0, close + 1);
    const std::string_view rest = h.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
    }
  } else if (const size_t colon = h.rfind(':'); colon != std::string_view::npos) {
    if (h.find(':') != colon) return std::nullopt;  // an unbracketed IPv6 address is not a Host
    name = h.substr(0, colon);
    port = h.substr(colon + 1);
  }
  if (name.empty()) return std::nullopt;
  int p = 80;
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    p = std::stoi(std::string(port));
  }
  return std::make_pair(unbracketed(name), p);
}

std::string cookie_value(std::string_view cookie_header, std::string_view name) {
  while (!cookie_header.empty()) {
    const size_t semi = cookie_header.find(';');
    const std::string_view pair = trim(cookie_header.substr(0, semi));
    cookie_header = semi == std::string_view::npos ? std::string_view() : cookie_header.substr(semi + 1);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && trim(pair.substr(0, eq)) == name) return std::string(trim(pair.substr(eq + 1)));
  }
  return {};
}

}  // namespace

bool is_loopback_host(std::string_view host) {
  const std::string h = unbracketed(host);
  if (h == "localhost") return true;
  if (h.empty() || is_wildcard(h)) return false;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(h.c_str(), nullptr, &hints, &found) != 0 || !found) return false;
  bool all = true;
  for (const addrinfo* a = found; a; a = a->ai_next) all = all && is_loopback_address(a->ai_addr);
  freeaddrinfo(found);
  return all;
}

std::string random_token() {
  std::random_device source;
  std::string token;
  for (int i = 0; i < 6; ++i) token += fmt::format("{:08x}", static_cast<uint32_t>(source()));
  return token;
}

AccessPolicy::AccessPolicy(const std::string& bind_host, int port, std::string token)
    : port_(port), token_(std::move(token)), cookie_(fmt::format("sparsa_token_{}", port)) {
  const std::string bound = unbracketed(bind_host);
  any_ip_ = is_wildcard(bound);
  if (!any_ip_) names_.push_back(bound);
  if (any_ip_ || is_loopback_host(bound))
    for (const char* name : {"localhost", "127.0.0.1", "::1"}) names_.emplace_back(name);
}

bool AccessPolicy::host_allowed(std::string_view host_header) const {
  const auto host = split_host(host_header);
  if (!host || host->second != port_) return false;
  if (any_ip_ && is_ip_literal(host->first)) return true;
  return std::find(names_.begin(), names_.end(), host->first) != names_.end();
}

std::optional<std::string> AccessPolicy::cross_origin(std::string_view host_header, std::string_view origin,
                                                      std::string_view fetch_site) const {
  if (!fetch_site.empty() && fetch_site != "same-origin" && fetch_site != "none")
    return fmt::format("a {} request (Sec-Fetch-Site); the dashboard answers only its own pages", fetch_site);
  if (!origin.empty() && lower(origin) != "http://" + lower(host_header))
    return fmt::format("a request from {} (Origin); the dashboard answers only its own pages", origin);
  return std::nullopt;
}

bool AccessPolicy::is_token(std::string_view candidate) const {
  if (candidate.size() != token_.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token_.size(); ++i) diff |= static_cast<unsigned char>(candidate[i] ^ token_[i]);
  return diff == 0;
}

bool AccessPolicy::token_ok(std::string_view header_token, std::string_view cookie_header) const {
  if (token_.empty()) return true;
  return is_token(header_token) || is_token(cookie_value(cookie_header, cookie_));
}

std::string AccessPolicy::set_cookie() const {
  return fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict", cookie_, token_);
}

}  // namespace sparsa::serve
