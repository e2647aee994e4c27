//! Who may talk to the daemon from a browser: the `Host` and `Origin` checks.
//!
//! Loopback is not a trust boundary against browsers: any web page the user visits can send
//! requests to `127.0.0.1`, and with DNS rebinding a foreign name can resolve there too. So:
//!
//! - **Host.** Every request's `Host` must name the daemon: `localhost`, `127.0.0.1` or `[::1]`
//!   with its port, the address it is bound to, or the host of an allowed origin. A rebound
//!   name (`Host: evil.example:8080`) is refused. Bound to anything but loopback (which
//!   requires a token) the `Host` is not checked: the token is the boundary there, and the
//!   daemon may be reached by names it cannot know (`eeg-pi.local`).
//! - **Origin.** A state-changing request (any method but `GET`, `HEAD` and `OPTIONS`) and every
//!   WebSocket upgrade that carries an `Origin` must come from the daemon's own origins
//!   (`http://` and each allowed host above, or the `Host` it was sent to) or one given with `--allow-origin` /
//!   `EEGD_ALLOW_ORIGIN`. Browsers always send `Origin` on such requests; tools that send none
//!   (curl, scripts) are not browsers and pass.
//!
//! A refusal is 403 with the usual JSON error. docs/protocol.md ("Origins") states the rule.
use super::error::ApiError;
use axum::http::{header, HeaderMap, Method};
use std::net::SocketAddr;

/// The hosts and origins allowed, fixed once the listener is bound.
#[derive(Debug, Clone)]
pub struct Access {
    /// `host:port`, lower case; `None`: any host.
    hosts: Option<Vec<String>>,
    /// `scheme://host:port`, lower case, port always written.
    origins: Vec<String>,
}

/// The port a scheme implies when an origin or `Host` leaves it out.
fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// `host` or `host:port` → `host:port` (lower case); `[v6]` keeps its brackets.
fn with_port(authority: &str, port: u16) -> String {
    let a = authority.trim().to_ascii_lowercase();
    let has_port = match a.rfind(']') {
        Some(end) => a[end..].contains(':'),
        None => a.contains(':'),
    };
    if has_port {
        a
    } else {
        format!("{a}:{port}")
    }
}

/// `scheme://host[:port][/]` → (`scheme`, `host:port`), or `None` when it is not an origin.
fn parse_origin(origin: &str) -> Option<(String, String)> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") {
        return None;
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return None;
    }
    let authority = with_port(authority, default_port(&scheme));
    Some((scheme, authority))
}

impl Access {
    /// The rule for a daemon listening on `local`, with `allowed` extra origins.
    pub fn new(local: SocketAddr, allowed: &[String]) -> Result<Access, String> {
        let port = local.port();
        let mut hosts =
            vec![format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
        let own = local.to_string().to_ascii_lowercase();
        if !hosts.contains(&own) {
            hosts.push(own);
        }
        let mut origins: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
        for o in allowed {
            let (scheme, authority) = parse_origin(o)
                .ok_or_else(|| format!("`{o}` is not an origin such as `http://host:8080`"))?;
            origins.push(format!("{scheme}://{authority}"));
            hosts.push(authority);
        }
        let any_host = !local.ip().is_loopback();
        Ok(Access { hosts: (!any_host).then_some(hosts), origins })
    }

    /// `Ok` when the request may go on, else the 403 to answer.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(|h| with_port(h, 80));
        if let (Some(hosts), Some(host)) = (&self.hosts, &host) {
            if !hosts.contains(host) {
                return Err(ApiError::Forbidden(format!(
                    "`Host: {host}` does not name this daemon; open it as http://{}",
                    hosts[1]
                )));
            }
        }
        let upgrade = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if safe && !upgrade {
            return Ok(());
        }
        let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
        let text = origin.to_str().unwrap_or_default();
        // Same-origin (the page was loaded from the `Host` just checked), or listed.
        let allowed = parse_origin(text).is_some_and(|(s, a)| {
            (s == "http" && host.as_ref() == Some(&a)) || self.origins.contains(&format!("{s}://{a}"))
        });
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "requests from the origin `{text}` are not allowed; start eegd with `--allow-origin {text}` to allow it"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn loopback() -> Access {
        Access::new("127.0.0.1:8080".parse().unwrap(), &["https://lab.example".to_string()]).unwrap()
    }

    #[test]
    fn allows_own_hosts_and_refuses_rebound_names() {
        let a = loopback();
        for host in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080", "[::1]:8080", "lab.example:443"] {
            let h = headers(&[("host", host)]);
            assert!(a.check(&Method::GET, &h).is_ok(), "{host}");
        }
        for host in ["evil.example:8080", "127.0.0.1:9999", "localhost", "127.0.0.1.evil.example:8080"] {
            let h = headers(&[("host", host)]);
            assert!(a.check(&Method::GET, &h).is_err(), "{host}");
        }
    }

    #[test]
    fn checks_origin_on_state_changes_and_upgrades_only() {
        let a = loopback();
        let foreign = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")]);
        assert!(a.check(&Method::GET, &foreign).is_ok(), "a plain GET is not checked");
        assert!(a.check(&Method::POST, &foreign).is_err());
        assert!(a.check(&Method::PATCH, &foreign).is_err());
        let upgrade = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
            ("upgrade", "websocket"),
        ]);
        assert!(a.check(&Method::GET, &upgrade).is_err());
        for origin in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "https://lab.example",
            "https://lab.example:443/",
        ] {
            let mut h = headers(&[("host", "127.0.0.1:8080")]);
            h.insert("origin", HeaderValue::from_str(origin).unwrap());
            assert!(a.check(&Method::POST, &h).is_ok(), "{origin}");
        }
        for origin in ["null", "http://localhost:8081", "http://lab.example", "file://"] {
            let mut h = headers(&[("host", "127.0.0.1:8080")]);
            h.insert("origin", HeaderValue::from_str(origin).unwrap());
            assert!(a.check(&Method::POST, &h).is_err(), "{origin}");
        }
        let none = headers(&[("host", "127.0.0.1:8080")]);
        assert!(a.check(&Method::POST, &none).is_ok(), "tools send no Origin");
    }

    #[test]
    fn any_host_when_bound_to_every_interface() {
        let a = Access::new("0.0.0.0:8080".parse().unwrap(), &[]).unwrap();
        assert!(a.check(&Method::GET, &headers(&[("host", "eeg-pi.local:8080")])).is_ok());
        let h = headers(&[("host", "eeg-pi.local:8080"), ("origin", "http://eeg-pi.local:8080")]);
        assert!(a.check(&Method::POST, &h).is_ok(), "the UI served from that host");
        let h = headers(&[("host", "eeg-pi.local:8080"), ("origin", "http://evil.example")]);
        assert!(a.check(&Method::POST, &h).is_err());
    }

    #[test]
    fn refuses_a_malformed_allowed_origin() {
        let local = "127.0.0.1:1".parse().unwrap();
        assert!(Access::new(local, &["lab.example".to_string()]).is_err());
        assert!(Access::new(local, &["http://lab.example/path".to_string()]).is_err());
    }
}
