//! What keeps other web pages away from the dashboard. It can start, change and stop load, so
//! a page on another site must not be able to drive it through the visitor's browser:
//!
//! - **DNS rebinding.** Without `--web-auth`, a request must name the dashboard by an IP
//!   address or `localhost` in its `Host` header. A rebound name (`evil.example` resolving to
//!   127.0.0.1) is refused, so its page can neither read the state nor post.
//! - **Cross-site requests.** A state change (any method but GET and HEAD) must come from the
//!   page itself: no `Origin` other than the dashboard's own, no `Sec-Fetch-Site` other than
//!   `same-origin`/`none`, and a JSON body (`Content-Type: application/json`). A form or a
//!   `text/plain` fetch from another site cannot set that type without a CORS preflight, which
//!   the dashboard never grants. This holds with `--web-auth` too: a browser sends remembered
//!   credentials along with a cross-site request.
//! - **Framing.** Every answer forbids being framed (clickjacking).

use std::net::IpAddr;

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

/// Why a request is refused before any route sees it: the status and a one-line reason.
pub(super) fn refusal(
    method: &Method,
    headers: &HeaderMap,
    authenticated: bool,
) -> Option<(StatusCode, &'static str)> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !authenticated && !host.is_some_and(names_this_machine) {
        return Some((
            StatusCode::FORBIDDEN,
            "the dashboard answers only to an IP address or localhost in the Host header (DNS rebinding); open http://127.0.0.1:PORT/ or set --web-auth",
        ));
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    let fetch_site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if fetch_site.is_some_and(|s| s != b"same-origin" && s != b"none") {
        return Some((StatusCode::FORBIDDEN, "cross-site request refused"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = host.map(|h| format!("http://{h}"));
        let same = origin
            .to_str()
            .ok()
            .zip(own.as_deref())
            .is_some_and(|(o, own)| o.eq_ignore_ascii_case(own));
        if !same {
            return Some((StatusCode::FORBIDDEN, "cross-origin request refused"));
        }
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Some((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON, with Content-Type: application/json",
        ));
    }
    None
}

/// Whether a `Host` header names this machine without a DNS name: an IP address or
/// `localhost`, with or without a port.
fn names_this_machine(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => v6,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// Headers on every answer: never framed, never sniffed as another type.
pub(super) fn harden(headers: &mut HeaderMap) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_addresses_and_localhost_name_the_dashboard() {
        for ok in [
            "127.0.0.1:8089",
            "127.0.0.1",
            "localhost:1",
            "LOCALHOST",
            "[::1]:8089",
            "[::1]",
            "10.0.0.7:80",
        ] {
            assert!(names_this_machine(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8089",
            "127.0.0.1.nip.io:8089",
            "localhost.evil:1",
            "[::1]x",
            "",
        ] {
            assert!(!names_this_machine(bad), "{bad}");
        }
    }

    #[test]
    fn a_state_change_must_be_json_from_the_page_itself() {
        let post = Method::POST;
        let page = headers(&[
            ("host", "127.0.0.1:8089"),
            ("origin", "http://127.0.0.1:8089"),
            ("sec-fetch-site", "same-origin"),
            ("content-type", "application/json"),
        ]);
        assert_eq!(refusal(&post, &page, false), None);
        let curl = headers(&[
            ("host", "localhost:8089"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        assert_eq!(refusal(&post, &curl, false), None);
        let refused = |pairs: &[(&'static str, &'static str)], auth: bool| {
            refusal(&post, &headers(pairs), auth).map(|(s, _)| s.as_u16())
        };
        // A form or a text/plain fetch: no preflight, so the type is what gives it away.
        assert_eq!(
            refused(
                &[("host", "127.0.0.1:8089"), ("content-type", "text/plain")],
                false
            ),
            Some(415)
        );
        assert_eq!(refused(&[("host", "127.0.0.1:8089")], true), Some(415));
        // Another site, with or without credentials remembered by the browser.
        for auth in [false, true] {
            assert_eq!(
                refused(
                    &[
                        ("host", "127.0.0.1:8089"),
                        ("origin", "http://evil.example"),
                        ("content-type", "application/json")
                    ],
                    auth
                ),
                Some(403)
            );
            assert_eq!(
                refused(
                    &[
                        ("host", "127.0.0.1:8089"),
                        ("sec-fetch-site", "cross-site"),
                        ("content-type", "application/json")
                    ],
                    auth
                ),
                Some(403)
            );
        }
        // A rebound name: refused for reading too, unless the dashboard asks for a password.
        let rebound = &[
            ("host", "evil.example:8089"),
            ("origin", "http://evil.example:8089"),
            ("content-type", "application/json"),
        ];
        assert_eq!(refused(rebound, false), Some(403));
        assert_eq!(
            refusal(&Method::GET, &headers(&rebound[..1]), false).map(|(s, _)| s.as_u16()),
            Some(403)
        );
        assert_eq!(refused(rebound, true), None);
        assert_eq!(
            refusal(&Method::GET, &headers(&[("host", "127.0.0.1:1")]), false),
            None
        );
    }
}
