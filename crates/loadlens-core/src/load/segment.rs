//! Execution segments: the exact share `I/N` of a run's load that one worker executes, so that
//! N workers on N machines together run exactly the load of one (k6's execution segments are
//! the model; this is the equal-share case, written for our load model).
//!
//! Everything countable is dealt out round-robin over one global numbering: user `j` (in start
//! order), arrival `k` (in intended-time order), iteration, CSV row and `counter()` value each
//! belong to segment `j mod N`. Hence, at every moment,
//!
//! - the segments' user counts add up to the whole run's (`share` of the global count), and a
//!   segment's count never goes down while the global one goes up, so a ramp stays a ramp;
//! - the segments' arrivals are disjoint and their union is the whole run's arrival schedule,
//!   each at its own intended instant (segment `i` of `N` issues arrivals `i, i+N, i+2N, …`);
//! - totals (`iterations`, `pre_allocated_vus`, `max_vus`) split the same way and add up exactly,
//!   rounding included: with 5 users and 3 segments the shares are 2, 2 and 1.
//!
//! A segment only changes *which part* of the load a process runs; the load settings kept in
//! reports stay those of the whole run, with the segment beside them.

use std::fmt;
use std::str::FromStr;

use super::LoadSettings;

/// The share `index+1 / count` of a run (`index` counted from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    index: u64,
    count: u64,
}

impl Default for Segment {
    fn default() -> Self {
        Segment::WHOLE
    }
}

/// A segment that does not parse or does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Not of the form `I/N`.
    #[error("segment `{0}` must be I/N with 1 <= I <= N, e.g. `2/3` (the second of three)")]
    Form(String),
    /// `N` is 0.
    #[error("segment `{0}`: the number of segments N must be at least 1")]
    NoSegments(String),
    /// `I` is 0 (segments count from 1; worker indexes count from 0).
    #[error("segment `{0}`: segments count from 1 (1/N … N/N); a 0-based worker index goes in --worker-index or JOB_COMPLETION_INDEX")]
    Zero(String),
    /// `I` is above `N`.
    #[error("segment `{0}`: I is above N; there are only N segments (1/N … N/N)")]
    Above(String),
    /// A 0-based worker index at or above the number of workers.
    #[error("worker index {index} is out of range for {workers} workers: expected 0 to {}", .workers.saturating_sub(1))]
    IndexOutOfRange {
        /// The 0-based index given.
        index: u64,
        /// The number of workers.
        workers: u64,
    },
    /// `--workers 0`.
    #[error("--workers must be at least 1")]
    NoWorkers,
    /// An open model whose VU limit cannot give every segment a VU.
    #[error("{what} ({max}) is below the number of segments ({count}): each segment needs at least one VU; raise {what} to at least {count}")]
    TooFewVus {
        /// `max_vus`.
        what: &'static str,
        /// The limit.
        max: u64,
        /// The number of segments.
        count: u64,
    },
}

impl Segment {
    /// The whole run: `1/1`.
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// Segment `number` (from 1) of `count`.
    pub fn new(number: u64, count: u64) -> Result<Self, SegmentError> {
        let text = || format!("{number}/{count}");
        match (number, count) {
            (_, 0) => Err(SegmentError::NoSegments(text())),
            (0, _) => Err(SegmentError::Zero(text())),
            (i, n) if i > n => Err(SegmentError::Above(text())),
            (i, n) => Ok(Segment {
                index: i - 1,
                count: n,
            }),
        }
    }

    /// The segment of worker `index` (from 0, like Kubernetes' `JOB_COMPLETION_INDEX`) of
    /// `workers`.
    pub fn of_worker(index: u64, workers: u64) -> Result<Self, SegmentError> {
        if workers == 0 {
            return Err(SegmentError::NoWorkers);
        }
        if index >= workers {
            return Err(SegmentError::IndexOutOfRange { index, workers });
        }
        Ok(Segment {
            index,
            count: workers,
        })
    }

    /// Its position, from 0.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of segments.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True for `1/1`.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Of the items `0..total` of the whole run, how many are this segment's: those `j` with
    /// `j mod N == index`. The shares of the N segments add up to `total`.
    pub fn share(&self, total: u64) -> u64 {
        if total > self.index {
            (total - self.index - 1) / self.count + 1
        } else {
            0
        }
    }

    /// Whether item `j` of the whole run is this segment's.
    pub fn owns(&self, j: u64) -> bool {
        j % self.count == self.index
    }

    /// The whole run's number of this segment's item `local` (its `local`-th, from 0).
    pub fn global(&self, local: u64) -> u64 {
        local.saturating_mul(self.count).saturating_add(self.index)
    }

    /// Check that `load` can be split into this many segments (open model: every segment
    /// needs a VU to run its arrivals).
    pub fn check(&self, load: &LoadSettings) -> Result<(), SegmentError> {
        if let Some(a) = &load.arrival {
            if a.max_vus < self.count {
                return Err(SegmentError::TooFewVus {
                    what: "max_vus",
                    max: a.max_vus,
                    count: self.count,
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

impl FromStr for Segment {
    type Err = SegmentError;

    /// `I/N`, `I` from 1.
    fn from_str(s: &str) -> Result<Self, SegmentError> {
        let form = || SegmentError::Form(s.to_owned());
        let (i, n) = s.trim().split_once('/').ok_or_else(form)?;
        let i: u64 = i.trim().parse().map_err(|_| form())?;
        let n: u64 = n.trim().parse().map_err(|_| form())?;
        Segment::new(i, n)
    }
}

impl serde::Serialize for Segment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Segment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
