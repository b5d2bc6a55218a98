//! The Prometheus integration's settings: the scenario's `prometheus:` section
//! ([`FileSettings`]) and the resolved [`Config`] of a run.

use std::net::SocketAddr;
use std::time::Duration;

/// The scrape endpoint's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9646";

/// How long the endpoint waits, by default, for a scrape of the final metrics.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(5);

/// The sink's configuration, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// Serve `/metrics` on this address (`None`: remote write only).
    pub listen: Option<SocketAddr>,
    /// Remote-write receiver URL, possibly with `user:password@` (taken out and sent as basic
    /// auth, never shown).
    pub remote_write: Option<String>,
    /// At the end of a scraped run, how long to wait for a scrape of the final metrics.
    pub linger: Duration,
    /// How long the final remote write may take at the end of the run.
    pub finish_timeout: Duration,
    /// Attempts per remote-write request while the run lasts.
    pub max_attempts: u32,
    /// First retry backoff of remote write.
    pub backoff: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().ok(),
            remote_write: None,
            linger: DEFAULT_LINGER,
            finish_timeout: Duration::from_secs(5),
            max_attempts: 4,
            backoff: Duration::from_millis(250),
        }
    }
}

impl Config {
    /// The remote-write URL fit to be shown (credentials masked).
    pub fn remote_write_shown(&self) -> Option<String> {
        self.remote_write
            .as_deref()
            .map(loadlens_core::encoding::redact_url)
    }

    /// One line for the start banner; no secrets.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = self.listen {
            parts.push(format!("serving http://{a}/metrics"));
        }
        if let Some(u) = self.remote_write_shown() {
            parts.push(format!("remote write to {u}"));
        }
        parts.join(", ")
    }
}

/// The scenario file's `prometheus:` section (as the flags; the flags override it).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `listen`: serve `/metrics` on this address (`127.0.0.1:9646`, or a port alone), as
    /// `--prometheus ADDR`.
    #[serde(default)]
    pub listen: Option<String>,
    /// `remote_write`: push the series to this URL, as `--prometheus-remote-write`.
    #[serde(default)]
    pub remote_write: Option<String>,
    /// `linger`: at the end of a scraped run, how long to wait for a scrape of the final
    /// metrics (default 5s), as `--prometheus-linger`.
    #[serde(default, deserialize_with = "loadlens_core::scenario::opt_duration")]
    pub linger: Option<Duration>,
}

/// A listen address: `HOST:PORT`, or a port alone (on 127.0.0.1). What an environment twin of
/// a switch may say also works: `true`/`on`/`yes` is the default address, `false`/`off`/`no`
/// turns the endpoint off (`None`).
pub fn parse_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    let s = s.trim();
    match s.to_ascii_lowercase().as_str() {
        "false" | "off" | "no" => return Ok(None),
        "" | "true" | "on" | "yes" => return Ok(DEFAULT_LISTEN.parse().ok()),
        _ => {}
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(Some(SocketAddr::from(([127, 0, 0, 1], port))));
    }
    s.parse().map(Some).map_err(|_| {
        format!("`{s}` is not an address: expected HOST:PORT such as {DEFAULT_LISTEN}, or a port")
    })
}

/// A remote-write URL: `http://` or `https://`. The message never shows a password.
pub fn check_remote_write(url: &str) -> Result<(), String> {
    let (bare, _) = loadlens_core::encoding::take_userinfo(url);
    let ok = bare
        .strip_prefix("http://")
        .or_else(|| bare.strip_prefix("https://"))
        .is_some_and(|rest| !rest.is_empty() && bare.parse::<http::Uri>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an http:// or https:// URL (e.g. http://127.0.0.1:9090/api/v1/write)",
            loadlens_core::encoding::redact_url(url)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_ports_and_switch_words() {
        let at = |s: &str| parse_listen(s).map(|a| a.map(|a| a.to_string()));
        assert_eq!(at("0.0.0.0:9100"), Ok(Some("0.0.0.0:9100".into())));
        assert_eq!(at("9100"), Ok(Some("127.0.0.1:9100".into())));
        assert_eq!(at("true"), Ok(Some(DEFAULT_LISTEN.into())));
        assert_eq!(at("off"), Ok(None));
        assert!(at("localhost")
            .unwrap_err()
            .contains("`localhost` is not an address"));
    }

    #[test]
    fn a_remote_write_url_must_be_http_and_its_password_is_never_shown() {
        assert!(check_remote_write("https://u:p@mimir.example/api/v1/push").is_ok());
        let e = check_remote_write("ftp://u:s3cret@host/").unwrap_err();
        assert!(e.contains("u:***@host") && !e.contains("s3cret"), "{e}");
    }
}
