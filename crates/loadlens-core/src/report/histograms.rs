//! The lossless part of the JSON result: per request name (and the aggregate, and per named
//! scenario) every counter and every HDR histogram of the run, histograms in HDR's V2
//! compressed encoding, base64. From it `loadlens merge` rebuilds the exact statistics of each
//! segment and adds them up, so that merged percentiles are those of the union of all samples.
//! Readers that do not know the section ignore it; every other field of the result is unchanged.

use std::collections::BTreeMap;

use crate::stats::{DecodeError, LatencyHistogram, RequestStats, StatsSet};

/// The `histograms` section of the result.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Histograms {
    /// How histograms are written: `hdr-v2-deflate-base64`.
    pub encoding: String,
    /// Unit of the histograms' values: `us`.
    pub unit: String,
    /// Every request name together.
    pub aggregate: StatsRecord,
    /// Per request name, in the order of `requests`.
    pub requests: Vec<StatsRecord>,
    /// Per named scenario (empty for a single unnamed scenario).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<ScenarioRecords>,
}

/// The records of one named scenario.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScenarioRecords {
    /// Scenario name.
    pub name: String,
    /// Per request name.
    pub requests: Vec<StatsRecord>,
}

/// Everything [`RequestStats`] holds that reports read, losslessly.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsRecord {
    /// HTTP method (empty for the aggregate).
    pub method: String,
    /// Request name (`Aggregated` for the aggregate).
    pub name: String,
    /// Requests completed.
    pub count: u64,
    /// Requests failed.
    pub failures: u64,
    /// Failures per status class: 1xx to 5xx, then no response.
    pub failures_by_class: [u64; 6],
    /// Wire bytes sent.
    pub bytes_sent: u64,
    /// Wire bytes received.
    pub bytes_received: u64,
    /// Sum of decoded body lengths.
    pub content_bytes: u64,
    /// Requests that opened a new connection.
    pub new_connections: u64,
    /// Checks passed.
    pub checks_passed: u64,
    /// Checks failed.
    pub checks_failed: u64,
    /// Responses per status code.
    pub status_codes: BTreeMap<String, u64>,
    /// Response times (from the intended start in the open model).
    pub latency: String,
    /// Response times from the actual start (open model, when some request was delayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_uncorrected: Option<String>,
    /// DNS lookups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    /// TCP connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// TLS handshakes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// Time to first byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb: Option<String>,
    /// Body download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<String>,
}

/// The value of [`Histograms::encoding`].
pub const ENCODING: &str = "hdr-v2-deflate-base64";

impl Histograms {
    /// The section for the run's `names` (`(method, name)` in `NameId` order), its cumulative
    /// `stats` and its named scenarios' `(name, stats)`.
    pub fn of<'a>(
        names: &[(String, String)],
        stats: &StatsSet,
        scenarios: impl IntoIterator<Item = (&'a str, &'a StatsSet)>,
    ) -> Self {
        let records = |set: &StatsSet| {
            names
                .iter()
                .zip(&set.requests)
                .filter(|(_, s)| s.count > 0)
                .map(|((m, n), s)| StatsRecord::of(m, n, s))
                .collect()
        };
        Histograms {
            encoding: ENCODING.into(),
            unit: "us".into(),
            aggregate: StatsRecord::of("", "Aggregated", &stats.aggregate()),
            requests: records(stats),
            scenarios: scenarios
                .into_iter()
                .map(|(name, set)| ScenarioRecords {
                    name: name.to_owned(),
                    requests: records(set),
                })
                .collect(),
        }
    }
}

impl StatsRecord {
    /// The record of `stats`.
    pub fn of(method: &str, name: &str, stats: &RequestStats) -> Self {
        let some = |h: &LatencyHistogram| (!h.is_empty()).then(|| h.to_base64());
        StatsRecord {
            method: method.to_owned(),
            name: name.to_owned(),
            count: stats.count,
            failures: stats.failures,
            failures_by_class: stats.failures_by_class,
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            content_bytes: stats.content_bytes,
            new_connections: stats.new_connections,
            checks_passed: stats.checks_passed,
            checks_failed: stats.checks_failed,
            status_codes: stats
                .status_codes
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect(),
            latency: stats.latency.to_base64(),
            latency_uncorrected: some(&stats.latency_uncorrected),
            dns: some(&stats.dns),
            connect: some(&stats.connect),
            tls: some(&stats.tls),
            ttfb: some(&stats.ttfb),
            download: some(&stats.download),
        }
    }

    /// The statistics back (response times per outcome, which only exporters read, are not
    /// kept). The error names the field that does not decode.
    pub fn stats(&self) -> Result<RequestStats, DecodeError> {
        let field = |what: &str, text: &str| {
            LatencyHistogram::from_base64(text)
                .map_err(|e| DecodeError::new(format!("`{what}` of {}: {e}", self.label())))
        };
        let opt = |what: &str, text: &Option<String>| {
            text.as_deref()
                .map_or(Ok(LatencyHistogram::new()), |t| field(what, t))
        };
        let mut status_codes = Vec::new();
        for (code, n) in &self.status_codes {
            let code = code.parse().map_err(|_| {
                DecodeError::new(format!("status code `{code}` of {}", self.label()))
            })?;
            status_codes.push((code, *n));
        }
        status_codes.sort_unstable();
        let latency = field("latency", &self.latency)?;
        if latency.len() != self.count {
            return Err(DecodeError::new(format!(
                "the latency histogram of {} holds {} values for {} requests",
                self.label(),
                latency.len(),
                self.count
            )));
        }
        Ok(RequestStats {
            count: self.count,
            failures: self.failures,
            failures_by_class: self.failures_by_class,
            latency,
            latency_uncorrected: opt("latency_uncorrected", &self.latency_uncorrected)?,
            dns: opt("dns", &self.dns)?,
            connect: opt("connect", &self.connect)?,
            tls: opt("tls", &self.tls)?,
            ttfb: opt("ttfb", &self.ttfb)?,
            download: opt("download", &self.download)?,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            content_bytes: self.content_bytes,
            new_connections: self.new_connections,
            checks_passed: self.checks_passed,
            checks_failed: self.checks_failed,
            status_codes,
            by_outcome: Vec::new(),
        })
    }

    /// `METHOD name`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.name).trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Failure, NameId, Phases, Sample};
    use crate::stats::RequestSummary;
    use std::time::{Duration, SystemTime};

    fn sample_with(name: u32, total: Duration, status: u16) -> Sample {
        Sample {
            name: NameId(name),
            started_at: SystemTime::now(),
            total,
            schedule_delay: Duration::ZERO,
            phases: Phases {
                ttfb: Some(total / 2),
                connect: (status == 503).then_some(total / 4),
                ..Phases::default()
            },
            status: Some(status),
            bytes_sent: 10,
            bytes_received: 20,
            content_length: 5,
            new_connection: status == 503,
            failure: (status >= 500)
                .then(|| Failure::new(crate::sample::ErrorKind::Status, "HTTP 503")),
            checks_passed: 1,
            checks_failed: 0,
            trace: None,
            vu: 0,
            scenario: 0,
            user_type: 0,
            task: 0,
            url: None,
            protocol: None,
        }
    }

    #[test]
    fn a_record_gives_back_the_same_figures() {
        let mut set = StatsSet::new(2);
        for i in 0..500u64 {
            set.record(&sample_with(
                (i % 2) as u32,
                Duration::from_micros(300 + i * 37),
                if i % 7 == 0 { 503 } else { 200 },
            ));
        }
        let names = vec![("GET".into(), "/a".into()), ("POST".into(), "/b".into())];
        let h = Histograms::of(&names, &set, []);
        assert_eq!(h.requests.len(), 2);
        let text = serde_json::to_string(&h).unwrap();
        let back: Histograms = serde_json::from_str(&text).unwrap();
        for (rec, stats) in back.requests.iter().zip(&set.requests) {
            let d = Duration::from_secs(3);
            let again = rec.stats().unwrap();
            assert_eq!(
                RequestSummary::of("GET", "/a", &again, d),
                RequestSummary::of("GET", "/a", stats, d)
            );
        }
        assert_eq!(back.aggregate.stats().unwrap().count, 500);
        let mut bad = back.requests[0].clone();
        bad.count += 1;
        let e = bad.stats().unwrap_err().to_string();
        assert_eq!(
            e,
            "the latency histogram of GET /a holds 250 values for 251 requests"
        );
    }
}
