//! The trace receiver's settings: the scenario's `traces:` section ([`FileSettings`]) and the
//! resolved [`Config`] of a run.

use std::net::SocketAddr;
use std::time::Duration;

use loadlens_core::breakdown::JoinSettings;

/// OTLP/HTTP's default address.
pub const DEFAULT_HTTP: &str = "127.0.0.1:4318";
/// OTLP/gRPC's default address.
pub const DEFAULT_GRPC: &str = "127.0.0.1:4317";
/// How long a sampled request waits for its spans by default: longer than the 5 s an
/// OpenTelemetry SDK's batch span processor waits by default before it exports.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// The receiver's configuration, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// OTLP/HTTP address (`None`: off).
    pub http: Option<SocketAddr>,
    /// OTLP/gRPC address (`None`: off).
    pub grpc: Option<SocketAddr>,
    /// The join's settings (window, top k, link template).
    pub join: JoinSettings,
    /// Forward every export received to this OTLP/HTTP URL (`…/v1/traces`).
    pub forward: Option<http::Uri>,
    /// Fraction of requests traced when no span exporter (`--otel`) decides it.
    pub sample_ratio: f64,
    /// Sampled requests whose client sample may wait for the join at once.
    pub queue: usize,
    /// Every published breakdown also in the form that merges (a coordinated worker streams
    /// it to the coordinator); otherwise only the final one.
    pub live_histograms: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: DEFAULT_HTTP.parse().ok(),
            grpc: DEFAULT_GRPC.parse().ok(),
            join: JoinSettings {
                window: DEFAULT_WINDOW,
                ..JoinSettings::default()
            },
            forward: None,
            sample_ratio: 1.0,
            queue: 65_536,
            live_histograms: false,
        }
    }
}

impl Config {
    /// One line for the start banner; no secrets (a forward URL's credentials are masked).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = self.http {
            parts.push(format!("http://{a}/v1/traces"));
        }
        if let Some(a) = self.grpc {
            parts.push(format!("grpc {a}"));
        }
        let mut line = format!(
            "traces: receiving OTLP spans on {}, join window {}",
            parts.join(" and "),
            humantime::format_duration(self.join.window)
        );
        if let Some(f) = &self.forward {
            line.push_str(&format!(
                ", forwarding to {}",
                loadlens_core::encoding::redact_url(&f.to_string())
            ));
        }
        line
    }
}

/// The scenario file's `traces:` section (as the flags; the flags override it).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `enabled`: receive (true, the default when the section exists) or not.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `http`: OTLP/HTTP address (`127.0.0.1:4318`, a port alone, or `off`), as
    /// `--trace-receiver ADDR`.
    #[serde(default)]
    pub http: Option<String>,
    /// `grpc`: OTLP/gRPC address (`127.0.0.1:4317`, a port alone, or `off`), as
    /// `--trace-receiver-grpc ADDR`.
    #[serde(default)]
    pub grpc: Option<String>,
    /// `join_window`: how long a sampled request waits for its spans (default 10s), as
    /// `--trace-join-window`.
    #[serde(default, deserialize_with = "loadlens_core::scenario::opt_duration")]
    pub join_window: Option<Duration>,
    /// `forward`: forward what arrives to this OTLP/HTTP URL, as `--trace-forward`.
    #[serde(default)]
    pub forward: Option<String>,
    /// `top`: the slowest requests kept per request name (default 5), as `--trace-top`.
    #[serde(default)]
    pub top: Option<usize>,
    /// `link`: a trace link template with `{trace_id}`, as `--trace-link`.
    #[serde(default)]
    pub link: Option<String>,
    /// `sample_ratio`: fraction of requests traced when `--otel` is off (default 1), as
    /// `--trace-sample`.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
}

/// An address: `HOST:PORT`, a port alone (loopback), or `off`; `default` for an empty value.
pub fn parse_addr(s: &str, default: &str) -> Result<Option<SocketAddr>, String> {
    let s = s.trim();
    match s.to_ascii_lowercase().as_str() {
        "false" | "off" | "no" => return Ok(None),
        "" | "true" | "on" | "yes" => return Ok(default.parse().ok()),
        _ => {}
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(Some(SocketAddr::from(([127, 0, 0, 1], port))));
    }
    s.parse().map(Some).map_err(|_| {
        format!("`{s}` is not an address: expected HOST:PORT such as {default}, a port, or off")
    })
}

/// The forward URL: `http(s)://host[:port][/path]`; without a path, `/v1/traces` is added.
pub fn parse_forward(s: &str) -> Result<http::Uri, String> {
    let shown = loadlens_core::encoding::redact_url(s);
    let bad = || {
        format!(
            "`{shown}` is not an http:// or https:// URL (e.g. http://127.0.0.1:4318/v1/traces)"
        )
    };
    let uri: http::Uri = s.trim().parse().map_err(|_| bad())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(bad());
    }
    if uri.path() == "/" || uri.path().is_empty() {
        let with_path = format!(
            "{}://{}/v1/traces",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map(|a| a.as_str()).unwrap_or("")
        );
        return with_path.parse().map_err(|_| bad());
    }
    Ok(uri)
}

/// A link template must say where the trace id goes.
pub fn check_link(s: &str) -> Result<(), String> {
    if s.contains("{trace_id}") {
        Ok(())
    } else {
        Err(format!(
            "`{s}` has no {{trace_id}}: e.g. http://127.0.0.1:16686/trace/{{trace_id}}"
        ))
    }
}

/// A sampling ratio, 0..=1.
pub fn check_ratio(r: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{r} is outside 0..1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_forward_urls_and_links_are_checked() {
        assert_eq!(
            parse_addr("4400", DEFAULT_HTTP)
                .unwrap()
                .unwrap()
                .to_string(),
            "127.0.0.1:4400"
        );
        assert_eq!(parse_addr("off", DEFAULT_HTTP).unwrap(), None);
        assert_eq!(
            parse_addr("", DEFAULT_GRPC).unwrap().unwrap().to_string(),
            DEFAULT_GRPC
        );
        assert!(parse_addr("nowhere", DEFAULT_HTTP)
            .unwrap_err()
            .contains("is not an address"));
        assert_eq!(
            parse_forward("http://c:4318").unwrap().to_string(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            parse_forward("https://c/otlp/v1/traces").unwrap().path(),
            "/otlp/v1/traces"
        );
        let e = parse_forward("ftp://user:secret@c/x").unwrap_err();
        assert!(!e.contains("secret") && e.contains("is not an http"), "{e}");
        assert!(check_link("https://j/trace/{trace_id}").is_ok());
        assert!(check_link("https://j/trace/")
            .unwrap_err()
            .contains("{trace_id}"));
        assert!(check_ratio(1.5).is_err());
    }
}
