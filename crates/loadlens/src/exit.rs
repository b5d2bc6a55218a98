//! Exit codes: documented in the README and stable.

/// How loadlens exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the run completed and every threshold passed.
    Passed = 0,
    /// 1: the run completed and a threshold failed.
    ThresholdsFailed = 1,
    /// 2: invalid input or usage (bad flag, scenario error, invalid URL).
    InvalidInput = 2,
    /// 3: a guard (threshold with abort, monitor) aborted the run.
    Aborted = 3,
    /// 4: internal error (a report could not be written, a bug).
    Internal = 4,
    /// 130: interrupted with Ctrl-C (reports were still written).
    Interrupted = 130,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error that ends the program with a given exit code and a one-line message.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub exit: Exit,
    /// Message (one line, no secrets).
    pub message: String,
}

impl Failure {
    /// A failure with `exit` and `message`.
    pub fn new(exit: Exit, message: String) -> Self {
        Failure { exit, message }
    }
}
