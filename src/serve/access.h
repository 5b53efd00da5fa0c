// Who may use the dashboard (the contract: sparsa/serve.h): the Host header must name the bound
// address, API requests must come from the dashboard's own origin and carry the launch token.
// Independent of HTTP: the server passes header values in.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sparsa::serve {

// A random token of 48 hex digits from the system's random source (std::random_device).
std::string random_token();

class AccessPolicy {
 public:
  // For a server bound to `bind_host`:`port`; `token` empty = no token required.
  AccessPolicy(const std::string& bind_host, int port, std::string token);

  // Whether a Host header value ("name:port", "[v6]:port", or "name" for port 80) names the
  // bound address: the address itself, and localhost / 127.0.0.1 / [::1] when it is a loopback
  // address; any IP address (never a DNS name) when bound to every address (0.0.0.0, ::).
  bool host_allowed(std::string_view host_header) const;

  // Why an API request is refused as cross-origin, or nullopt: a Sec-Fetch-Site other than
  // same-origin / none, or an Origin other than "http://" + the (allowed) Host header.
  std::optional<std::string> cross_origin(std::string_view host_header, std::string_view origin,
                                          std::string_view fetch_site) const;

  // Whether the request carries the token: in the header (kTokenHeader) or the cookie
  // cookie_name() of its Cookie header. Always true when no token is required.
  bool token_ok(std::string_view header_token, std::string_view cookie_header) const;
  // Whether `candidate` is the token (constant time).
  bool is_token(std::string_view candidate) const;

  const std::string& token() const { return token_; }
  // "sparsa_token_<port>": one cookie per dashboard, since cookies do not tell ports apart.
  const std::string& cookie_name() const { return cookie_; }
  // Set-Cookie value of the token: HttpOnly, SameSite=Strict, Path=/.
  std::string set_cookie() const;

 private:
  std::vector<std::string> names_;  // host names (lower case, v6 without brackets) the Host may give
  bool any_ip_ = false;             // bound to every address: any IP literal is fine
  int port_;
  std::string token_, cookie_;
};

inline constexpr const char* kTokenHeader = "X-Sparsa-Token";

}  // namespace sparsa::serve
