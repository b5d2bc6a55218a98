//! Printing that cannot end the process. `println!` panics when stdout is gone (a closed pipe,
//! a full disk under a CI log, a terminal closed by SIGHUP), and with `panic = "abort"` that
//! would kill the run before its reports are written. A message that cannot be printed is lost;
//! the run goes on.

/// Print a line to stdout, ignoring write errors (EPIPE, ENOSPC, EIO).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Print a line to stderr, ignoring write errors.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
