//! The signals that ask loadlens to stop: SIGINT (Ctrl-C on a terminal), SIGTERM (`kill`,
//! `timeout`, a container stopping, a CI runner cancelling the job) and SIGHUP (the terminal
//! went away: a closed window, a dropped ssh session). All mean "stop and keep what you have":
//! a run stops gracefully and still writes every report, and a second one stops it at once.
//! Without a handler SIGTERM and SIGHUP would end the process on the spot, with no report and,
//! under the full-screen view, a terminal left in raw mode.

/// Which stop signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP.
    Hangup,
}

/// Listens for the stop signals from its creation on (a SIGTERM that arrives between two calls
/// of [`StopSignals::next`] is kept, not lost).
pub struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Start listening. Must be called inside the Tokio runtime.
    pub fn new() -> Self {
        #[cfg(unix)]
        use tokio::signal::unix::{signal, SignalKind};
        StopSignals {
            #[cfg(unix)]
            terminate: signal(SignalKind::terminate()).ok(),
            #[cfg(unix)]
            hangup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The next stop signal; never resolves where no handler could be installed.
    pub async fn next(&mut self) -> Stop {
        let interrupt = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let (terminate, hangup) = (received(&mut self.terminate), received(&mut self.hangup));
        #[cfg(not(unix))]
        let (terminate, hangup) = (std::future::pending::<()>(), std::future::pending::<()>());
        tokio::select! {
            () = interrupt => Stop::Interrupt,
            () = terminate => Stop::Terminate,
            () = hangup => Stop::Hangup,
        }
    }
}

/// The next delivery of `signal`; never resolves without a handler.
#[cfg(unix)]
async fn received(signal: &mut Option<tokio::signal::unix::Signal>) {
    let received = match signal.as_mut() {
        Some(s) => s.recv().await.is_some(),
        None => false,
    };
    if !received {
        std::future::pending::<()>().await;
    }
}
