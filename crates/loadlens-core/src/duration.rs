//! Durations as users write them (`250ms`, `1m30s`, `1.5s`, or a number of seconds), parsed
//! one way everywhere: scenario files, flags, thresholds, stages and arrival rates; and
//! milliseconds as reports write them ([`ms`]). At the bottom of the core's layers: it imports
//! nothing from the crate.

use std::time::Duration;

/// The longest duration accepted anywhere (run time, timeouts, think times, stages): 365 days.
/// Longer ones are input errors rather than overflows: a duration is added to clock instants
/// and multiplied during the run, and `18446744073709551615s` once panicked there.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// Why a text is not a duration. The message names the text and shows the expected form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationError {
    /// Not a number followed by a unit (empty, or a unit without a number).
    #[error("invalid duration `{0}`: expected e.g. `500ms`, `10s`, `1m30s`, `2h`")]
    Malformed(String),
    /// A component's number does not parse (`1.2.3s`).
    #[error("invalid number in duration `{0}`")]
    Number(String),
    /// A unit other than `us`, `ms`, `s`, `m`, `h`, `d`.
    #[error("unknown unit `{unit}` in duration `{input}` (use ms, s, m, h)")]
    Unit {
        /// The unit as written.
        unit: String,
        /// The whole text.
        input: String,
    },
    /// Negative, not a number, or longer than [`MAX_DURATION`].
    #[error("invalid duration `{input}`: {range}")]
    OutOfRange {
        /// The whole text.
        input: String,
        /// What is wrong with its value.
        range: RangeError,
    },
}

/// Why a number of seconds is not an acceptable duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Negative, NaN or infinite.
    #[error("expected 0 or more seconds")]
    Negative,
    /// Longer than [`MAX_DURATION`].
    #[error("longer than the maximum of 365 days")]
    TooLong,
}

/// Parse a duration: `250ms`, `1.5s`, `2m`, `1h30m`, or a bare number of seconds; at most
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let out_of_range = |range| DurationError::OutOfRange {
        input: s.to_owned(),
        range,
    };
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).map_err(out_of_range);
    }
    // Accept decimals in each component (`1.5s`), which humantime does not.
    let mut total = 0.0f64;
    let mut num = String::new();
    let mut unit = String::new();
    let flush =
        |num: &mut String, unit: &mut String, total: &mut f64| -> Result<(), DurationError> {
            if num.is_empty() {
                return Err(DurationError::Malformed(s.to_owned()));
            }
            let v: f64 = num
                .parse()
                .map_err(|_| DurationError::Number(s.to_owned()))?;
            let mult = match unit.as_str() {
                "ms" => 1e-3,
                "us" | "µs" => 1e-6,
                "s" | "sec" | "" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                "d" => 86_400.0,
                u => {
                    return Err(DurationError::Unit {
                        unit: u.to_owned(),
                        input: s.to_owned(),
                    })
                }
            };
            *total += v * mult;
            num.clear();
            unit.clear();
            Ok(())
        };
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            if !unit.is_empty() {
                flush(&mut num, &mut unit, &mut total)?;
            }
            num.push(c);
        } else if !c.is_whitespace() {
            unit.push(c);
        }
    }
    flush(&mut num, &mut unit, &mut total)?;
    secs_to_duration(total).map_err(out_of_range)
}

/// A number of seconds as a duration: not negative, not NaN, at most [`MAX_DURATION`].
pub fn secs_to_duration(secs: f64) -> Result<Duration, RangeError> {
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(RangeError::Negative);
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(RangeError::TooLong);
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Milliseconds with precision that suits the magnitude (sub-ms loopback latencies stay visible).
pub fn ms(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn each_kind_of_bad_duration_has_its_own_error_and_message() {
        let err = |s: &str| parse_duration(s).unwrap_err();
        assert_eq!(err(""), DurationError::Malformed(String::new()));
        assert_eq!(
            err("").to_string(),
            "invalid duration ``: expected e.g. `500ms`, `10s`, `1m30s`, `2h`"
        );
        assert_eq!(err("1.2.3s"), DurationError::Number("1.2.3s".into()));
        assert_eq!(
            err("10 parsecs"),
            DurationError::Unit {
                unit: "parsecs".into(),
                input: "10 parsecs".into()
            }
        );
        assert_eq!(
            err("10 parsecs").to_string(),
            "unknown unit `parsecs` in duration `10 parsecs` (use ms, s, m, h)"
        );
        assert_eq!(
            err("-1").to_string(),
            "invalid duration `-1`: expected 0 or more seconds"
        );
        assert_eq!(
            err("366d"),
            DurationError::OutOfRange {
                input: "366d".into(),
                range: RangeError::TooLong
            }
        );
        assert_eq!(secs_to_duration(f64::NAN), Err(RangeError::Negative));
        assert_eq!(secs_to_duration(1.5), Ok(Duration::from_millis(1500)));
    }
}
