//! OTLP settings from the standard OpenTelemetry environment, with the scenario's `otel:`
//! section as defaults underneath (the environment wins, as every OpenTelemetry SDK does).
//!
//! Read here: `OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT,COMPRESSION,CERTIFICATE,CLIENT_CERTIFICATE,CLIENT_KEY}`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_{TRACES,METRICS}_EXPORTER`,
//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, `OTEL_BSP_{MAX_QUEUE_SIZE,
//! MAX_EXPORT_BATCH_SIZE,SCHEDULE_DELAY}` and `OTEL_SDK_DISABLED`.
//!
//! Credentials never outlive this module in a printable form: header values are marked
//! sensitive, and `user:password@` in an endpoint URL is taken out of the URL (which the run
//! header and export errors show) and sent, percent-decoded as curl does, as
//! `Authorization: Basic …` for that signal — unless its headers set `authorization`
//! themselves. Errors about an endpoint show its credentials as `***`. Certificate and key
//! files (`..._CERTIFICATE`, `..._CLIENT_CERTIFICATE`, `..._CLIENT_KEY`; the signal's own
//! variable wins, each on its own) are read and checked here, so a wrong file or a key that
//! is not the certificate's is a configuration error before the run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::Uri;
use loadlens_core::encoding::base64;

pub use super::tls::{ClientCertificate, TrustedCertificates};

/// Wire protocol of an OTLP exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (HTTP/2, `application/grpc`).
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

/// Where one signal goes (`OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterKind {
    /// OTLP to the configured endpoint.
    Otlp,
    /// One line per span / metric point on standard output.
    Console,
    /// Not exported.
    None,
}

/// Metric temporality (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// Totals since the run started (the OpenTelemetry default; what Prometheus expects).
    Cumulative,
    /// What happened since the previous export (`delta`, `lowmemory`).
    Delta,
}

/// Exporter settings of one signal.
#[derive(Debug, Clone)]
pub struct SignalConfig {
    /// Exporter.
    pub exporter: ExporterKind,
    /// Full URL: for http/protobuf the path of the signal (`/v1/traces`); for gRPC the
    /// authority only (the service path is added when sending).
    pub endpoint: Uri,
    /// Protocol.
    pub protocol: Protocol,
    /// Extra headers (`OTEL_EXPORTER_OTLP_HEADERS`): often credentials, so never logged.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Limit of one export attempt, retries included.
    pub timeout: Duration,
    /// Gzip the bodies.
    pub gzip: bool,
    /// The certificates to trust for an `https://` endpoint (`OTEL_EXPORTER_OTLP_CERTIFICATE`)
    /// instead of the built-in web PKI roots; `None`: those roots.
    pub certificate: Option<TrustedCertificates>,
    /// The certificate and key this client proves itself with when the endpoint asks
    /// (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `..._CLIENT_KEY`, mutual TLS).
    pub client_certificate: Option<Arc<ClientCertificate>>,
}

/// The scenario file's `otel:` section: OpenTelemetry export of a span per request and OTLP
/// metrics (as `--otel`). Every key is a default that the standard `OTEL_*` environment
/// overrides.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `enabled`: turn the export on (true) or off (false); on by default when the section
    /// exists.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `endpoint`: like `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://127.0.0.1:4318`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `protocol`: `grpc` or `http/protobuf` (`OTEL_EXPORTER_OTLP_PROTOCOL`).
    #[serde(default)]
    pub protocol: Option<String>,
    /// `service_name`: `service.name` (`OTEL_SERVICE_NAME`; default `loadlens`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// `resource_attributes` (`OTEL_RESOURCE_ATTRIBUTES` adds to and overrides them).
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    /// `sample_ratio`: fraction of requests traced, 0..1 (`OTEL_TRACES_SAMPLER=traceidratio`
    /// + `_ARG`).
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    /// `metric_interval`: how often metrics are exported (`OTEL_METRIC_EXPORT_INTERVAL`;
    /// default 60s).
    #[serde(default, deserialize_with = "loadlens_core::scenario::opt_duration")]
    pub metric_interval: Option<Duration>,
    /// `max_request_names`: request names exported individually in metrics; the rest share
    /// `_OTHER` (default 100).
    #[serde(default)]
    pub max_request_names: Option<usize>,
    /// `timeout`: most time spent flushing at the end of the run (default 5s).
    #[serde(
        default,
        rename = "timeout",
        deserialize_with = "loadlens_core::scenario::opt_duration"
    )]
    pub flush_timeout: Option<Duration>,
}

/// Everything the OTLP sink needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Traces.
    pub traces: SignalConfig,
    /// Metrics.
    pub metrics: SignalConfig,
    /// `service.name` (`OTEL_SERVICE_NAME`, default `loadlens`).
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in order.
    pub resource: Vec<(String, String)>,
    /// Fraction of requests traced (`OTEL_TRACES_SAMPLER` / `_ARG`); feeds the core's
    /// `TraceSettings`, so the `traceparent` sampled flag and the exported spans agree.
    pub sample_ratio: f64,
    /// How often metrics are exported (`OTEL_METRIC_EXPORT_INTERVAL`, default 60 s).
    pub metric_interval: Duration,
    /// Temporality of the exported sums and histograms.
    pub temporality: Temporality,
    /// Samples waiting for export before new ones are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub queue: usize,
    /// Spans per export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub batch: usize,
    /// Longest wait before a partial batch is exported (`OTEL_BSP_SCHEDULE_DELAY`).
    pub batch_delay: Duration,
    /// Request names exported with their own `loadtest.request_name`; the rest share
    /// [`super::OVERFLOW_NAME`].
    pub max_request_names: usize,
    /// Most time spent flushing at the end of the run.
    pub flush_timeout: Duration,
}

/// A setting the sink cannot use.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A variable (or `otel:` key) has a value outside what it accepts.
    #[error("{name}: {message}")]
    Invalid {
        /// Variable or key.
        name: String,
        /// What is wrong and what is accepted.
        message: String,
    },
}

pub(super) fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// Default number of request names exported individually.
pub const DEFAULT_MAX_REQUEST_NAMES: usize = 100;

impl Config {
    /// Resolve from `env` (usually `|k| std::env::var(k).ok()`) over the file's `otel:` section.
    pub fn resolve(
        file: &FileSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let get = |k: &str| {
            env(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let base_endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| file.endpoint.clone());
        let base_protocol =
            match get("OTEL_EXPORTER_OTLP_PROTOCOL").or_else(|| file.protocol.clone()) {
                Some(p) => Some(protocol("OTEL_EXPORTER_OTLP_PROTOCOL", &p)?),
                None => None,
            };
        let base_headers = match get("OTEL_EXPORTER_OTLP_HEADERS") {
            Some(h) => headers("OTEL_EXPORTER_OTLP_HEADERS", &h)?,
            None => Vec::new(),
        };
        let base_timeout = match get("OTEL_EXPORTER_OTLP_TIMEOUT") {
            Some(t) => millis("OTEL_EXPORTER_OTLP_TIMEOUT", &t)?,
            None => Duration::from_secs(10),
        };
        let base_gzip = match get("OTEL_EXPORTER_OTLP_COMPRESSION") {
            Some(c) => gzip("OTEL_EXPORTER_OTLP_COMPRESSION", &c)?,
            None => false,
        };
        let base_certificate = match get("OTEL_EXPORTER_OTLP_CERTIFICATE") {
            Some(p) => Some(TrustedCertificates::read(
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                &p,
            )?),
            None => None,
        };
        let signal = |sig: &str, path: &str| -> Result<SignalConfig, ConfigError> {
            let upper = sig.to_ascii_uppercase();
            let exporter_var = format!("OTEL_{upper}_EXPORTER");
            let exporter = if disabled {
                ExporterKind::None
            } else {
                match get(&exporter_var) {
                    Some(e) => exporter(&exporter_var, &e)?,
                    None => ExporterKind::Otlp,
                }
            };
            let pvar = format!("OTEL_EXPORTER_OTLP_{upper}_PROTOCOL");
            let protocol = match get(&pvar) {
                Some(p) => protocol(&pvar, &p)?,
                None => base_protocol.unwrap_or(Protocol::HttpProtobuf),
            };
            let evar = format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT");
            // The signal's own endpoint is used as is; the general one gets `/v1/<signal>`
            // appended for http/protobuf (OTLP exporter specification).
            let (raw, var) = match get(&evar) {
                Some(e) => (e, evar.as_str()),
                None => {
                    let base = base_endpoint.clone().unwrap_or_else(|| match protocol {
                        Protocol::Grpc => "http://localhost:4317".to_owned(),
                        Protocol::HttpProtobuf => "http://localhost:4318".to_owned(),
                    });
                    let url = match protocol {
                        Protocol::Grpc => base,
                        Protocol::HttpProtobuf => format!("{}/{path}", base.trim_end_matches('/')),
                    };
                    (url, "OTEL_EXPORTER_OTLP_ENDPOINT")
                }
            };
            let (endpoint, credentials) = endpoint(var, &raw)?;
            let hvar = format!("OTEL_EXPORTER_OTLP_{upper}_HEADERS");
            let mut hs = base_headers.clone();
            if let Some(h) = get(&hvar) {
                for (k, v) in headers(&hvar, &h)? {
                    hs.retain(|(n, _)| *n != k);
                    hs.push((k, v));
                }
            }
            // As curl does, `user:password@` in the URL is sent as basic auth; a header set
            // explicitly says more about what the collector expects, so it wins.
            if let Some(c) = credentials {
                if !hs.iter().any(|(n, _)| *n == AUTHORIZATION) {
                    let mut v = HeaderValue::from_str(&format!("Basic {}", base64(&c)))
                        .expect("`Basic ` and base64 are visible ASCII");
                    v.set_sensitive(true);
                    hs.push((AUTHORIZATION, v));
                }
            }
            let tvar = format!("OTEL_EXPORTER_OTLP_{upper}_TIMEOUT");
            let timeout = match get(&tvar) {
                Some(t) => millis(&tvar, &t)?,
                None => base_timeout,
            };
            let cvar = format!("OTEL_EXPORTER_OTLP_{upper}_COMPRESSION");
            let gzip = match get(&cvar) {
                Some(c) => gzip(&cvar, &c)?,
                None => base_gzip,
            };
            let certvar = format!("OTEL_EXPORTER_OTLP_{upper}_CERTIFICATE");
            let certificate = match get(&certvar) {
                Some(p) => Some(TrustedCertificates::read(&certvar, &p)?),
                None => base_certificate.clone(),
            };
            // Each of the pair on its own, the signal's variable first (as for CERTIFICATE).
            let file_of = |what: &str| {
                let own = format!("OTEL_EXPORTER_OTLP_{upper}_{what}");
                let general = format!("OTEL_EXPORTER_OTLP_{what}");
                get(&own)
                    .map(|p| (own, p))
                    .or_else(|| get(&general).map(|p| (general, p)))
            };
            let client_certificate = match (file_of("CLIENT_CERTIFICATE"), file_of("CLIENT_KEY")) {
                (None, None) => None,
                (Some((cvar, c)), Some((kvar, k))) => {
                    Some(Arc::new(ClientCertificate::read((&cvar, &c), (&kvar, &k))?))
                }
                (Some((var, _)), None) => {
                    return Err(invalid(
                        &var,
                        "a client certificate needs its private key: set \
                         OTEL_EXPORTER_OTLP_CLIENT_KEY (or the signal's ..._CLIENT_KEY) to its \
                         PEM file",
                    ))
                }
                (None, Some((var, _))) => {
                    return Err(invalid(
                        &var,
                        "a client key needs its certificate: set \
                         OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE (or the signal's \
                         ..._CLIENT_CERTIFICATE) to its PEM file",
                    ))
                }
            };
            Ok(SignalConfig {
                exporter,
                endpoint,
                protocol,
                headers: hs,
                timeout,
                gzip,
                certificate,
                client_certificate,
            })
        };
        let traces = signal("traces", "v1/traces")?;
        let metrics = signal("metrics", "v1/metrics")?;

        let mut resource: Vec<(String, String)> = file
            .resource_attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(r) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, v) in pairs("OTEL_RESOURCE_ATTRIBUTES", &r)? {
                resource.retain(|(n, _)| *n != k);
                resource.push((k, v));
            }
        }
        let service_name = get("OTEL_SERVICE_NAME")
            .or_else(|| {
                resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .or_else(|| file.service_name.clone())
            .unwrap_or_else(|| "loadlens".to_owned());
        resource.retain(|(k, _)| k != "service.name");

        let sample_ratio = match get("OTEL_TRACES_SAMPLER") {
            Some(s) => sampler(&s, get("OTEL_TRACES_SAMPLER_ARG").as_deref())?,
            None => file.sample_ratio.unwrap_or(1.0),
        };
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(invalid(
                "sample_ratio",
                format!("{sample_ratio} is outside 0..1"),
            ));
        }
        let metric_interval = match get("OTEL_METRIC_EXPORT_INTERVAL") {
            Some(t) => millis("OTEL_METRIC_EXPORT_INTERVAL", &t)?,
            None => file.metric_interval.unwrap_or(Duration::from_secs(60)),
        }
        .max(Duration::from_millis(100));
        let temporality = match get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")
            .map(|t| t.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("cumulative") => Temporality::Cumulative,
            Some("delta" | "lowmemory") => Temporality::Delta,
            Some(other) => {
                return Err(invalid(
                    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                    format!("`{other}`: expected cumulative, delta or lowmemory"),
                ))
            }
        };
        let number = |k: &str, default: usize| -> Result<usize, ConfigError> {
            match get(k) {
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid(k, format!("`{v}` is not a positive whole number"))),
                None => Ok(default),
            }
        };
        let queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?;
        let batch = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?.min(queue);
        let batch_delay = match get("OTEL_BSP_SCHEDULE_DELAY") {
            Some(t) => millis("OTEL_BSP_SCHEDULE_DELAY", &t)?,
            None => Duration::from_secs(1),
        };
        Ok(Config {
            traces,
            metrics,
            service_name,
            resource,
            sample_ratio,
            metric_interval,
            temporality,
            queue,
            batch,
            batch_delay,
            max_request_names: file
                .max_request_names
                .unwrap_or(DEFAULT_MAX_REQUEST_NAMES)
                .max(1),
            flush_timeout: file.flush_timeout.unwrap_or(Duration::from_secs(5)),
        })
    }

    /// True when neither signal is exported.
    pub fn is_off(&self) -> bool {
        self.traces.exporter == ExporterKind::None && self.metrics.exporter == ExporterKind::None
    }
}

fn protocol(name: &str, v: &str) -> Result<Protocol, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Err(invalid(
            name,
            "http/json is not supported: use http/protobuf or grpc",
        )),
        other => Err(invalid(
            name,
            format!("`{other}`: expected grpc or http/protobuf"),
        )),
    }
}

fn exporter(name: &str, v: &str) -> Result<ExporterKind, ConfigError> {
    // The specification allows a list; one exporter per signal is what loadlens supports.
    let first = v
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match first.as_str() {
        "otlp" => Ok(ExporterKind::Otlp),
        "console" => Ok(ExporterKind::Console),
        "none" => Ok(ExporterKind::None),
        other => Err(invalid(
            name,
            format!("`{other}`: expected otlp, console or none"),
        )),
    }
}

fn millis(name: &str, v: &str) -> Result<Duration, ConfigError> {
    v.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| invalid(name, format!("`{v}` is not a whole number of milliseconds")))
}

fn gzip(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "gzip" => Ok(true),
        "none" => Ok(false),
        other => Err(invalid(name, format!("`{other}`: expected gzip or none"))),
    }
}

fn sampler(s: &str, arg: Option<&str>) -> Result<f64, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        match arg {
            None => Ok(1.0),
            Some(a) => a
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    invalid(
                        "OTEL_TRACES_SAMPLER_ARG",
                        format!("`{a}` is not a ratio between 0 and 1"),
                    )
                }),
        }
    };
    // loadlens starts every trace, so the parent-based samplers decide like their root sampler.
    match s.to_ascii_lowercase().as_str() {
        "always_on" | "parentbased_always_on" => Ok(1.0),
        "always_off" | "parentbased_always_off" => Ok(0.0),
        "traceidratio" | "parentbased_traceidratio" => ratio(),
        other => Err(invalid(
            "OTEL_TRACES_SAMPLER",
            format!("`{other}`: expected always_on, always_off, traceidratio or their parentbased_ forms"),
        )),
    }
}

/// `key=value,key2=value2` with percent-encoded values (W3C baggage octets), as the OTel
/// environment specification defines for headers and resource attributes.
fn pairs(name: &str, v: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, val)) = item.split_once('=') else {
            return Err(invalid(
                name,
                "expected key=value pairs separated by commas (the value is not shown)",
            ));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(invalid(name, "an entry has an empty key"));
        }
        out.push((k.to_owned(), percent_decode(val.trim())));
    }
    Ok(out)
}

/// Parse an endpoint URL, taking out its `user:password@` (returned percent-decoded, as
/// `user:password` bytes for basic auth): the URL kept, shown in the run header and in export
/// errors, has no credentials. Errors show the value with the credentials as `***`.
fn endpoint(var: &str, raw: &str) -> Result<(Uri, Option<Vec<u8>>), ConfigError> {
    let authority_start = raw.find("://").map_or(0, |i| i + 3);
    let (url, credentials) = loadlens_core::encoding::take_userinfo(raw);
    // An unencoded `/`, `?` or `#` in a password ends the authority early, leaving the rest of
    // the password in the path: refuse rather than connect to the wrong host and print it.
    if url[authority_start..].contains('@') {
        return Err(invalid(
            var,
            format!(
                "`{}` has an `@` after the host: percent-encode `/`, `?`, `#` and `@` in a user \
                 name or password (%2F, %3F, %23, %40)",
                redacted(raw)
            ),
        ));
    }
    let uri: Uri = url.parse().map_err(|e| {
        invalid(
            var,
            format!(
                "`{}` is not an http:// or https:// URL ({e})",
                redacted(raw)
            ),
        )
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(invalid(
            var,
            format!(
                "`{}` must be an http:// or https:// URL with a host",
                redacted(raw)
            ),
        ));
    }
    if let Some(port) = loadlens_core::client::invalid_port(&uri) {
        // Sending to the scheme's default port instead would fail later with a misleading
        // "cannot connect to …:80".
        return Err(invalid(
            var,
            format!(
                "`{}` has the port `{port}`: expected a number from 0 to 65535",
                redacted(raw)
            ),
        ));
    }
    Ok((uri, credentials))
}

/// `raw` with everything between the scheme and the last `@` replaced by `***`: the user
/// name and password of a URL, and when the URL is malformed, anything that might hold them.
fn redacted(raw: &str) -> String {
    match raw.rfind('@') {
        Some(at) => {
            let start = raw[..at].find("://").map_or(0, |i| i + 3);
            format!("{}***{}", &raw[..start], &raw[at..])
        }
        None => raw.to_owned(),
    }
}

fn headers(name: &str, v: &str) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    pairs(name, v)?
        .into_iter()
        .map(|(k, v)| {
            let n = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| invalid(name, format!("`{k}` is not a header name")))?;
            let mut val = HeaderValue::from_str(&v)
                .map_err(|_| invalid(name, format!("the value of `{k}` is not a header value")))?;
            val.set_sensitive(true);
            Ok((n, val))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&loadlens_core::encoding::percent_decode(s)).into_owned()
}

#[cfg(test)]
pub(crate) fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}
