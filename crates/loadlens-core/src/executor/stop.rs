//! The signal that stops users: the run's, a lane's, one user's (ramp-down), in a tree.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// A node of the stop tree: stopping it stops its children too.
///
/// A user reads its signal once per iteration. A [`CancellationToken`] answers
/// `is_cancelled` under a mutex of its own, a cache line per user that is cold when the user
/// wakes (issue #18's slow case). So every node of one tree also shares one flag, set by the
/// first stop anywhere in it: until then, a read is one load of a line every user reads, and
/// the token is asked only after. Every stop goes through [`Stop::stop`], which sets the flag,
/// so none can be missed.
#[derive(Clone, Debug)]
pub(super) struct Stop {
    token: CancellationToken,
    /// Something in this tree was stopped.
    any: Arc<AtomicBool>,
}

impl Stop {
    /// The root of a new tree.
    pub fn new() -> Self {
        Stop {
            token: CancellationToken::new(),
            any: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A node below this one: stopped by it, or by itself alone.
    pub fn child(&self) -> Self {
        Stop {
            token: self.token.child_token(),
            any: self.any.clone(),
        }
    }

    /// Stop this node and the nodes below it.
    pub fn stop(&self) {
        self.token.cancel();
        // After the token: a reader that sees the flag finds the token cancelled.
        self.any.store(true, Ordering::Release);
    }

    /// Was this node (or one above it) stopped? A stop that is under way on another thread
    /// may be seen at the next read.
    pub fn is_stopped(&self) -> bool {
        self.any.load(Ordering::Acquire) && self.token.is_cancelled()
    }

    /// Wait until this node is stopped.
    pub async fn stopped(&self) {
        self.token.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_reaches_the_nodes_below_and_only_them() {
        let run = Stop::new();
        let lane = run.child();
        let (a, b) = (lane.child(), lane.child());
        assert!(!a.is_stopped() && !b.is_stopped());
        a.stop();
        assert!(a.is_stopped(), "a user stopped alone");
        assert!(!b.is_stopped() && !lane.is_stopped() && !run.is_stopped());
        run.stop();
        assert!(b.is_stopped() && lane.is_stopped());
        let late = lane.child();
        assert!(
            late.is_stopped(),
            "a node made after the stop starts stopped"
        );
    }

    #[tokio::test]
    async fn waiting_ends_when_a_node_above_stops() {
        let run = Stop::new();
        let user = run.child().child();
        let waiter = tokio::spawn(async move { user.stopped().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        run.stop();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the wait ended")
            .unwrap();
    }
}
