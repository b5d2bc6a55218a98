//! The signals that ask loadlens to stop: SIGINT (Ctrl-C on a terminal) and SIGTERM (`kill`,
//! `timeout`, a container stopping, a CI runner cancelling the job). Both mean "stop and keep
//! what you have": a run stops gracefully and still writes every report, and a second one stops
//! it at once. Without a handler SIGTERM would end the process on the spot, with no report and,
//! under the full-screen view, a terminal left in raw mode.

/// Which stop signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

/// Listens for the stop signals from its creation on (a SIGTERM that arrives between two calls
/// of [`StopSignals::next`] is kept, not lost).
pub struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Start listening. Must be called inside the Tokio runtime.
    pub fn new() -> Self {
        StopSignals {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok(),
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
        let terminate = async {
            let received = match self.terminate.as_mut() {
                Some(t) => t.recv().await.is_some(),
                None => false,
            };
            if !received {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = interrupt => Stop::Interrupt,
            () = terminate => Stop::Terminate,
        }
    }
}
