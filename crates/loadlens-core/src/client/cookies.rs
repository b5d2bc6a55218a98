//! A per-VU cookie jar: enough of RFC 6265 for load tests (host-only and domain cookies, path
//! prefixes, `Secure`, `Max-Age`/`Expires` deletion), with a cap on stored cookies.

use std::time::{Duration, Instant};

/// One stored cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cookie {
    name: String,
    value: String,
    domain: String,
    host_only: bool,
    path: String,
    secure: bool,
    expires: Option<Instant>,
}

/// Cookies of one virtual user.
#[derive(Clone, Debug, Default)]
pub struct CookieJar {
    cookies: Vec<Cookie>,
}

impl CookieJar {
    /// Most cookies kept; the oldest is evicted past this.
    pub const MAX: usize = 200;

    /// Store the cookie of one `Set-Cookie` header received from `host` for `request_path`.
    pub fn store(&mut self, host: &str, request_path: &str, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        let mut c = Cookie {
            name: name.to_owned(),
            value: value.trim().trim_matches('"').to_owned(),
            domain: host.to_ascii_lowercase(),
            host_only: true,
            path: default_path(request_path),
            secure: false,
            expires: None,
        };
        let mut delete = false;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "domain" if !v.is_empty() => {
                    let d = v.trim_start_matches('.').to_ascii_lowercase();
                    // A server may only set cookies for itself or a parent domain.
                    if !domain_matches(&c.domain, &d) {
                        return;
                    }
                    c.domain = d;
                    c.host_only = false;
                }
                "path" if v.starts_with('/') => c.path = v.to_owned(),
                "secure" => c.secure = true,
                "max-age" => match v.parse::<i64>() {
                    Ok(s) if s <= 0 => delete = true,
                    Ok(s) => c.expires = Some(Instant::now() + Duration::from_secs(s as u64)),
                    Err(_) => {}
                },
                "expires" if c.expires.is_none() => {
                    if let Ok(t) = humantime::parse_rfc3339_weak(v).or_else(|_| parse_http_date(v))
                    {
                        match t.duration_since(std::time::SystemTime::now()) {
                            Ok(left) => c.expires = Some(Instant::now() + left),
                            Err(_) => delete = true,
                        }
                    }
                }
                _ => {}
            }
        }
        self.cookies
            .retain(|o| !(o.name == c.name && o.domain == c.domain && o.path == c.path));
        if !delete {
            if self.cookies.len() >= Self::MAX {
                self.cookies.remove(0);
            }
            self.cookies.push(c);
        }
    }

    /// The `Cookie` header value for a request, or `None` when no cookie applies.
    pub fn header_for(&mut self, host: &str, path: &str, secure: bool) -> Option<String> {
        let now = Instant::now();
        self.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
        let host = host.to_ascii_lowercase();
        let mut out = String::new();
        for c in &self.cookies {
            let host_ok = if c.host_only {
                c.domain == host
            } else {
                domain_matches(&host, &c.domain)
            };
            if host_ok && path_matches(path, &c.path) && (secure || !c.secure) {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                out.push_str(&c.name);
                out.push('=');
                out.push_str(&c.value);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Value of the cookie `name` applicable to `host`, if any (for captures).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .rev()
            .find(|c| c.name == name)
            .map(|c| c.value.as_str())
    }

    /// Number of cookies stored.
    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    /// True when no cookie is stored.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }
}

fn default_path(request_path: &str) -> String {
    let p = request_path.split('?').next().unwrap_or("/");
    match p.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => p[..i].to_owned(),
    }
}

fn domain_matches(host: &str, domain: &str) -> bool {
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
}

fn path_matches(req: &str, cookie: &str) -> bool {
    let req = req.split('?').next().unwrap_or("/");
    req == cookie
        || (req.starts_with(cookie)
            && (cookie.ends_with('/') || req.as_bytes()[cookie.len()] == b'/'))
}

/// Parse an HTTP date: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 or asctime.
fn parse_http_date(s: &str) -> Result<std::time::SystemTime, httpdate::Error> {
    httpdate::parse_http_date(s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_only_cookie_round_trip() {
        let mut jar = CookieJar::default();
        jar.store(
            "shop.test",
            "/authenticate",
            "session=abc; Path=/; HttpOnly",
        );
        assert_eq!(
            jar.header_for("shop.test", "/cart/add", false).as_deref(),
            Some("session=abc")
        );
        assert_eq!(jar.header_for("other.test", "/", false), None);
        assert_eq!(jar.get("session"), Some("abc"));
    }

    #[test]
    fn domain_path_secure_and_deletion() {
        let mut jar = CookieJar::default();
        jar.store("a.shop.test", "/", "d=1; Domain=shop.test; Path=/api");
        jar.store("a.shop.test", "/", "s=2; Secure");
        jar.store("a.shop.test", "/", "evil=3; Domain=example.com");
        assert_eq!(
            jar.header_for("b.shop.test", "/api/x", false).as_deref(),
            Some("d=1")
        );
        assert_eq!(jar.header_for("b.shop.test", "/apix", false), None);
        assert_eq!(
            jar.header_for("a.shop.test", "/", true).as_deref(),
            Some("s=2")
        );
        jar.store("a.shop.test", "/", "s=; Max-Age=0");
        assert_eq!(jar.header_for("a.shop.test", "/", true), None);
        jar.store(
            "a.shop.test",
            "/",
            "old=1; Expires=Sun, 06 Nov 1994 08:49:37 GMT",
        );
        assert_eq!(jar.len(), 1);
    }

    #[test]
    fn http_date_parses() {
        // The three forms HTTP allows: IMF-fixdate, RFC 850 and asctime.
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            let t = parse_http_date(date).unwrap();
            assert_eq!(
                t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
                784_111_777,
                "{date}"
            );
        }
        // A cookie whose RFC 850 date is in the past is dropped at once.
        let mut jar = CookieJar::default();
        jar.store(
            "a.test",
            "/",
            "old=1; Expires=Sunday, 06-Nov-94 08:49:37 GMT",
        );
        assert_eq!(jar.len(), 0);
    }
}
