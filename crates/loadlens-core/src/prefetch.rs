//! Bringing a woken future's memory into the cache before it is polled (issue #18).
//!
//! A user that waited 50 ms for its response finds its state evicted by the 999 others that
//! ran meanwhile. Polling it then walks a chain of nested state machines (the user's loop, its
//! iteration, its steps, the request, the exchange, the codec), and each step reads the address
//! of the next: one cache miss after another, each waited for in turn. Asking for every cache
//! line of the boxed future first lets those misses overlap instead. Measured on the slow bench
//! case (1,000 users, 50 ms responses): 9 % less CPU per request for the steps' box alone, and
//! about 14 % with the user's loop and its client's timer, connections and counters too
//! (docs/benchmarks.md, issue #18).
//!
//! A prefetch is a hint: it never faults, never changes a value and is dropped by the CPU when
//! it is busy, so it cannot change what a future computes, only how soon its memory arrives.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The most bytes of one value asked for: the largest future polled here is about 2 KiB, and a
/// prefetch per line of something much larger would cost more than the misses it saves.
const MAX_BYTES: usize = 4096;
const LINE: usize = 64;

/// Ask the CPU to bring every cache line of `value` (its first 4 KiB) into its caches.
pub fn warm<T: ?Sized>(value: &T) {
    Hint::of(value).warm();
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch(p: *const u8) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // The one `unsafe` of the workspace (see `unsafe_code` in Cargo.toml).
    // SAFETY: `_mm_prefetch` is unsafe only because it needs SSE, which every x86-64 CPU has.
    // A prefetch does not access memory architecturally: it never faults, whatever the address.
    #[allow(unsafe_code)]
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch(_: *const u8) {}

/// Where a value was, kept to be [`warm`]ed later: only its address and length, so it borrows
/// nothing. It is never read through, so a stale one (the value moved or was dropped since)
/// costs a wasted hint and nothing else.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hint {
    addr: usize,
    len: usize,
}

impl Hint {
    /// Where `value` is now.
    pub fn of<T: ?Sized>(value: &T) -> Hint {
        Hint {
            addr: value as *const T as *const u8 as usize,
            len: std::mem::size_of_val(value),
        }
    }

    fn warm(self) {
        if self.len == 0 {
            return;
        }
        let end = self.addr + self.len.min(MAX_BYTES);
        let mut line = self.addr & !(LINE - 1);
        while line < end {
            prefetch(line as *const u8);
            line += LINE;
        }
    }
}

/// A boxed future whose memory, and the memory it [`Hint`]s at, is [`warm`]ed before each
/// poll.
pub struct Warmed<F: ?Sized> {
    hints: [Hint; 3],
    fut: Pin<Box<F>>,
}

impl<F: ?Sized> Warmed<F> {
    /// `fut`, and `hints` at what it will read besides its own memory when it wakes.
    pub fn new(fut: Pin<Box<F>>, hints: [Hint; 3]) -> Self {
        Warmed { hints, fut }
    }
}

impl<F: Future + ?Sized> Future for Warmed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        warm(&*self.fut);
        for h in self.hints {
            h.warm();
        }
        self.fut.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_warmed_future_returns_what_it_computes() {
        let fut: Pin<Box<dyn Future<Output = u32> + Send>> = Box::pin(async {
            tokio::task::yield_now().await;
            42
        });
        let stale = Hint::of(&*Box::new([0u8; 100]));
        assert_eq!(Warmed::new(fut, [stale; 3]).await, 42);
    }
}
