//! Small value types of the scenario language, each parsed from a string with a clear error:
//! durations (`250ms`, `1m30s`, or a number of seconds, through [`crate::duration`]), wait
//! times, HTTP methods.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::duration::{parse_duration, secs_to_duration};

/// Deserialize a map as its `(key, value)` pairs in the order written (serde's maps either
/// sort, `BTreeMap`, or need a dependency that keeps the order).
pub(crate) fn ordered_pairs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of names to values, e.g. `{ q: shoes, page: 1 }`")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                out.push((k, v));
            }
            Ok(out)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
    }
    d.deserialize_any(Pairs)
}

/// Deserialize `Option<Duration>` from a string or a number of seconds. A visitor (not an
/// untagged enum) so that errors keep the value's line and column.
pub(crate) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(ScalarVisitor {
        what: "a duration such as `500ms`, `10s`, `1m30s` or a number of seconds",
        from_secs: |s| {
            secs_to_duration(s)
                .map(Some)
                .map_err(|e| format!("invalid duration `{s}`: {e}"))
        },
        from_str: |t| parse_duration(t).map(Some).map_err(|e| e.to_string()),
        none: None,
    })
}

/// Deserialize `Option<u64>` bytes from `4MiB`, `512KiB`, `1.5MB` or a number of bytes (see
/// [`crate::client::parse_size`]), keeping the value's line and column in errors.
pub(crate) fn opt_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(ScalarVisitor {
        what: "a size such as `4MiB`, `512KiB` or a number of bytes",
        from_secs: |n| {
            crate::client::parse_size(&n.to_string())
                .map(Some)
                .map_err(|e| e.to_string())
        },
        from_str: |t| {
            crate::client::parse_size(t)
                .map(Some)
                .map_err(|e| e.to_string())
        },
        none: None,
    })
}

/// Visits a scalar that may be a number (seconds), a string, or null.
struct ScalarVisitor<T> {
    what: &'static str,
    from_secs: fn(f64) -> Result<T, String>,
    from_str: fn(&str) -> Result<T, String>,
    none: T,
}

impl<'de, T> serde::de::Visitor<'de> for ScalarVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        (self.from_secs)(v).map_err(E::custom)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        (self.from_secs)(v as f64).map_err(E::custom)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        (self.from_secs)(v as f64).map_err(E::custom)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.from_str)(v).map_err(E::custom)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<T, E> {
        Ok(self.none)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<T, E> {
        Ok(self.none)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

/// Think time between two tasks of a user, with Locust's semantics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum WaitTime {
    /// No wait.
    #[default]
    None,
    /// Uniformly random in `[min, max]`.
    Between(Duration, Duration),
    /// Always the same.
    Constant(Duration),
    /// Start an iteration at most every period: waits the period minus the iteration's time.
    ConstantPacing(Duration),
    /// Exponentially distributed waits with this mean (Poisson arrivals per user).
    Poisson(Duration),
}

/// A wait time that does not parse; each variant carries the wait as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// Not one of the forms.
    #[error("invalid wait `{wait}`: expected `between(MIN, MAX)`, `constant(T)`, `constant_pacing(T)`, `constant_throughput(N)`, `poisson(RATE)` or `none` (times in seconds or with units, e.g. `between(1, 3)`)")]
    Form {
        /// The wait as written.
        wait: String,
    },
    /// An argument that is not a duration.
    #[error("invalid wait `{wait}`: {reason}")]
    Duration {
        /// The wait as written.
        wait: String,
        /// What is wrong with the duration.
        reason: String,
    },
    /// `between(a, b)` with `a > b`.
    #[error("invalid wait `{wait}`: the minimum is larger than the maximum")]
    EmptyRange {
        /// The wait as written.
        wait: String,
    },
    /// A rate that is not a positive number.
    #[error("invalid wait `{wait}`: the rate must be a positive number per second")]
    Rate {
        /// The wait as written.
        wait: String,
    },
    /// A rate so low that the period exceeds the longest duration.
    #[error("invalid wait `{wait}`: the rate is below one per 365 days")]
    RateTooLow {
        /// The wait as written.
        wait: String,
    },
}

impl WaitTime {
    /// Parse `between(1, 3)`, `constant(2)`, `constant(500ms)`, `constant_pacing(5)`,
    /// `constant_throughput(2)` (iterations per second per user), `poisson(0.5)` (mean rate per
    /// second) or `none`.
    pub fn parse(s: &str) -> Result<WaitTime, WaitError> {
        let s = s.trim();
        if s.is_empty() || s == "none" || s == "0" {
            return Ok(WaitTime::None);
        }
        if let Ok(d) = parse_duration(s) {
            return Ok(WaitTime::Constant(d));
        }
        let wait = || s.to_owned();
        let (fun, args) = s
            .strip_suffix(')')
            .and_then(|x| x.split_once('('))
            .ok_or_else(|| WaitError::Form { wait: wait() })?;
        let args: Vec<&str> = args.split(',').map(str::trim).collect();
        let parse = |a: &str| {
            parse_duration(a).map_err(|e| WaitError::Duration {
                wait: wait(),
                reason: e.to_string(),
            })
        };
        match (fun.trim(), args.as_slice()) {
            ("between", [a, b]) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b {
                    return Err(WaitError::EmptyRange { wait: wait() });
                }
                Ok(WaitTime::Between(a, b))
            }
            ("constant", [a]) => Ok(WaitTime::Constant(parse(a)?)),
            ("constant_pacing", [a]) => Ok(WaitTime::ConstantPacing(parse(a)?)),
            ("constant_throughput" | "poisson", [a]) => {
                let rate: f64 = a
                    .parse()
                    .ok()
                    .filter(|r: &f64| *r > 0.0 && r.is_finite())
                    .ok_or_else(|| WaitError::Rate { wait: wait() })?;
                let period = secs_to_duration(1.0 / rate)
                    .map_err(|_| WaitError::RateTooLow { wait: wait() })?;
                Ok(if fun.trim() == "poisson" {
                    WaitTime::Poisson(period)
                } else {
                    WaitTime::ConstantPacing(period)
                })
            }
            _ => Err(WaitError::Form { wait: wait() }),
        }
    }

    /// Draw the next wait; `busy` is how long the iteration just finished took (for pacing).
    pub fn next(&self, rng: &mut fastrand::Rng, busy: Duration) -> Duration {
        match *self {
            WaitTime::None => Duration::ZERO,
            WaitTime::Constant(d) => d,
            WaitTime::Between(a, b) => a + (b - a).mul_f64(rng.f64()),
            WaitTime::ConstantPacing(p) => p.saturating_sub(busy),
            WaitTime::Poisson(mean) => mean.mul_f64(-(1.0 - rng.f64()).ln()),
        }
    }
}

impl fmt::Display for WaitTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitTime::None => f.write_str("none"),
            WaitTime::Between(a, b) => {
                write!(f, "between({}, {})", a.as_secs_f64(), b.as_secs_f64())
            }
            WaitTime::Constant(a) => write!(f, "constant({})", a.as_secs_f64()),
            WaitTime::ConstantPacing(a) => write!(f, "constant_pacing({})", a.as_secs_f64()),
            WaitTime::Poisson(m) => write!(f, "poisson({})", 1.0 / m.as_secs_f64()),
        }
    }
}

impl<'de> Deserialize<'de> for WaitTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor {
            what: "a wait time such as `between(1, 3)`, `constant(2)` or `none`",
            from_secs: |s| {
                secs_to_duration(s)
                    .map(WaitTime::Constant)
                    .map_err(|e| format!("invalid wait `{s}`: {e}"))
            },
            from_str: |t| WaitTime::parse(t).map_err(|e| e.to_string()),
            none: WaitTime::None,
        })
    }
}

/// An HTTP method, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method(pub http::Method);

impl Default for Method {
    fn default() -> Self {
        Method(http::Method::GET)
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let up = s.to_ascii_uppercase();
        match up.as_str() {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => {
                Ok(Method(up.parse().map_err(serde::de::Error::custom)?))
            }
            _ => Err(serde::de::Error::custom(format!(
                "unknown HTTP method `{s}`, expected one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::MAX_DURATION;

    #[test]
    fn durations_beyond_a_year_are_errors_not_panics() {
        assert_eq!(parse_duration("365d").unwrap(), MAX_DURATION);
        for d in [
            "18446744073709551615s",
            "1e30",
            "366d",
            "8761h",
            "1e308",
            "inf",
            "NaN",
        ] {
            let e = parse_duration(d).unwrap_err().to_string();
            assert!(e.contains(d), "{d}: {e}");
        }
        assert!(parse_duration("18446744073709551615s")
            .unwrap_err()
            .to_string()
            .contains("maximum of 365 days"));
        for w in [
            "constant(1e30)",
            "between(1,1e308)",
            "constant_pacing(1e300)",
            "poisson(1e-300)",
            "constant_throughput(1e-12)",
        ] {
            assert!(WaitTime::parse(w).is_err(), "{w}");
        }
    }

    #[test]
    fn wait_times() {
        assert_eq!(
            WaitTime::parse("between(1, 3)").unwrap(),
            WaitTime::Between(Duration::from_secs(1), Duration::from_secs(3))
        );
        assert_eq!(
            WaitTime::parse("constant(500ms)").unwrap(),
            WaitTime::Constant(Duration::from_millis(500))
        );
        assert!(WaitTime::parse("between(3, 1)")
            .unwrap_err()
            .to_string()
            .contains("larger"));
        assert!(WaitTime::parse("sometimes")
            .unwrap_err()
            .to_string()
            .contains("expected"));
        let w = WaitTime::Between(Duration::from_secs(1), Duration::from_secs(2));
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            let d = w.next(&mut rng, Duration::ZERO);
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        }
        let pacing = WaitTime::parse("constant_pacing(5)").unwrap();
        assert_eq!(
            pacing.next(&mut rng, Duration::from_secs(2)),
            Duration::from_secs(3)
        );
        assert_eq!(
            pacing.next(&mut rng, Duration::from_secs(7)),
            Duration::ZERO
        );
        assert_eq!(
            WaitTime::parse("constant_throughput(4)").unwrap(),
            WaitTime::ConstantPacing(Duration::from_millis(250))
        );
        let poisson = WaitTime::parse("poisson(10)").unwrap();
        let mean: f64 = (0..20_000)
            .map(|_| poisson.next(&mut rng, Duration::ZERO).as_secs_f64())
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 0.1).abs() < 0.005, "{mean}");
        assert!(WaitTime::parse("poisson(0)").is_err());
    }
}
