//! Byte encodings loadlens needs in more than one crate: standard base64, for HTTP basic-auth
//! values (the dashboard's expected `--web-auth` header, the OTLP exporter's endpoint
//! credentials); the `user:password@` of a URL, taken out to be sent as basic auth and shown
//! as `user:***@`; and percent-encoding, with the `percent-encoding` crate and one encode set
//! per use ([`Set`]): a query component, a form field, a path segment.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Where a percent-encoded text goes, which decides what stays as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// A query parameter's name or value, or a W3C `baggage` value: RFC 3986 unreserved
    /// characters (`A-Z a-z 0-9 - . _ ~`) stay, everything else is `%XX` (a space is `%20`, a
    /// `+` is `%2B`, so no server reads either as the other).
    Component,
    /// An `application/x-www-form-urlencoded` field (WHATWG URL standard): `A-Z a-z 0-9 * -
    /// . _` stay, a space is `+`, everything else is `%XX`.
    Form,
    /// One path segment (RFC 3986 `pchar`): unreserved characters, sub-delimiters, `:` and
    /// `@` stay; `/`, `?`, `#`, `%`, a space and the rest are `%XX`, so the segment stays one.
    PathSegment,
}

const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');
const PATH_SEGMENT: &AsciiSet = &COMPONENT
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Percent-encode `s` (as UTF-8) for `set`.
pub fn encode(s: &str, set: Set) -> String {
    match set {
        Set::Component => utf8_percent_encode(s, COMPONENT).to_string(),
        // A space is the only byte encoded as `%20`: a `%` of the text is `%25`.
        Set::Form => utf8_percent_encode(s, FORM).to_string().replace("%20", "+"),
        Set::PathSegment => utf8_percent_encode(s, PATH_SEGMENT).to_string(),
    }
}

/// Standard base64 (RFC 4648, section 4) with padding. Written by hand: its uses are a few
/// header values built once, which do not justify a dependency.
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Where the `user:password@` of `url` is: the byte range of the authority's user info
/// (without the `@`), if it has one.
fn userinfo(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest[..end].rfind('@').map(|at| start..start + at)
}

/// `url` without its `user:password@`, and those credentials as the `user:password` bytes of
/// basic auth, percent-decoded as curl does (`None` when the URL has none). The credentials must
/// not stay in the URL: HTTP clients put the authority, user info and all, in the `Host`
/// header, and everything that shows a URL would show the password.
pub fn take_userinfo(url: &str) -> (String, Option<Vec<u8>>) {
    let Some(range) = userinfo(url) else {
        return (url.to_owned(), None);
    };
    let info = &url[range.clone()];
    let (user, password) = info.split_once(':').unwrap_or((info, ""));
    let mut pair = percent_decode(user);
    pair.push(b':');
    pair.extend(percent_decode(password));
    let bare = format!("{}{}", &url[..range.start], &url[range.end + 1..]);
    (bare, (!info.is_empty()).then_some(pair))
}

/// `url` without its `user:password@` ([`take_userinfo`]), and the `Authorization` value they
/// make (`Basic …`). A URL without them comes back unchanged, with `None`.
pub fn url_credentials(url: &str) -> (String, Option<String>) {
    let (bare, pair) = take_userinfo(url);
    (bare, pair.map(|p| format!("Basic {}", base64(&p))))
}

/// `url` fit to be shown: `http://user:***@host/` for `http://user:password@host/`, and
/// `http://***@host/` when there is only a user name (often a token).
pub fn redact_url(url: &str) -> String {
    let Some(range) = userinfo(url) else {
        return url.to_owned();
    };
    let shown = match url[range.clone()].split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{}{shown}{}", &url[..range.start], &url[range.end..])
}

/// `%XX` sequences decoded; anything else, including a malformed `%`, kept as is.
pub fn percent_decode(s: &str) -> Vec<u8> {
    percent_decode_str(s).collect()
}

/// Percent-encode a query component ([`Set::Component`]).
pub fn encode_component(s: &str) -> String {
    encode(s, Set::Component)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_use_has_its_own_encode_set() {
        let text = "a b+c/d?e=f&g~h*i'j%k@l:m é";
        assert_eq!(
            encode(text, Set::Component),
            "a%20b%2Bc%2Fd%3Fe%3Df%26g~h%2Ai%27j%25k%40l%3Am%20%C3%A9"
        );
        assert_eq!(
            encode(text, Set::Form),
            "a+b%2Bc%2Fd%3Fe%3Df%26g%7Eh*i%27j%25k%40l%3Am+%C3%A9"
        );
        assert_eq!(
            encode(text, Set::PathSegment),
            "a%20b+c%2Fd%3Fe=f&g~h*i'j%25k@l:m%20%C3%A9"
        );
        // A `%20` already in the text is not taken for a space.
        assert_eq!(encode("%20 x", Set::Form), "%2520+x");
        // Decoding undoes each; a malformed `%` stays as it is.
        for set in [Set::Component, Set::PathSegment] {
            assert_eq!(percent_decode(&encode(text, set)), text.as_bytes());
        }
        assert_eq!(percent_decode("100%+%zz%4"), b"100%+%zz%4");
    }

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("ops:s3cret-pw", "b3BzOnMzY3JldC1wdw=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        // Every byte value, not only text.
        assert_eq!(base64(&[0x00, 0xff, 0xfe]), "AP/+");
    }

    #[test]
    fn url_credentials_become_basic_auth_and_are_never_shown() {
        let (bare, auth) = url_credentials("http://ops:s3cret-pw@h.test:8080/x?q=a@b");
        assert_eq!(bare, "http://h.test:8080/x?q=a@b");
        assert_eq!(auth.as_deref(), Some("Basic b3BzOnMzY3JldC1wdw=="));
        assert_eq!(
            redact_url("http://ops:s3cret-pw@h.test:8080/x?q=a@b"),
            "http://ops:***@h.test:8080/x?q=a@b"
        );
        // Percent-encoded, as a password with `@` or `:` must be.
        let (_, auth) = url_credentials("https://a%40b:p%3Aw@h.test/");
        assert_eq!(
            auth.as_deref(),
            Some(&*format!("Basic {}", base64(b"a@b:p:w")))
        );
        assert_eq!(redact_url("https://tok3n@h.test/"), "https://***@h.test/");
        // Nothing to take out: unchanged, and an `@` in the path is not user info.
        for url in ["http://h.test/users/@me", "http://h.test", "h.test:80"] {
            assert_eq!(url_credentials(url), (url.to_owned(), None));
            assert_eq!(redact_url(url), url);
        }
    }
}
