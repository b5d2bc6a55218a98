//! Messages for the person at the terminal while a run is shown: stop notices and the
//! `tracing` log lines (a sink's "Export failed." warning). Normally they go to stderr; while the
//! full-screen view owns the terminal, writing there would scribble over it, so they go into the
//! view instead, and the log lines are printed to stderr again once the terminal is restored, so
//! nothing is lost.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// A message for the full-screen view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// What a stop request does (`Stopping: …`).
    Notice(String),
    /// One `tracing` line, without colour codes.
    Log(String),
}

/// Log lines kept for printing after the full-screen view (the newest; older ones are counted).
const HELD_LINES: usize = 200;

/// Where messages go: stderr, or the full-screen view while it is up. Cheap to clone; also the
/// `tracing` writer of the process (see `main`).
#[derive(Debug, Clone, Default)]
pub struct Console {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    screen: Option<mpsc::UnboundedSender<Message>>,
    held: VecDeque<String>,
    dropped: usize,
}

impl Console {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tell the person something: in the full-screen view while it is up, else on stderr.
    pub fn notice(&self, text: &str) {
        if let Some(tx) = &self.state().screen {
            if tx.send(Message::Notice(text.trim().to_owned())).is_ok() {
                return;
            }
        }
        // Never a panic: after SIGHUP there is no terminal to write to.
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    /// Send messages to the full-screen view from now on.
    pub(super) fn attach(&self, screen: mpsc::UnboundedSender<Message>) {
        let mut s = self.state();
        s.screen = Some(screen);
        s.held.clear();
        s.dropped = 0;
    }

    /// Back to stderr; returns the log lines the view got, to be printed once the terminal is
    /// restored.
    pub(super) fn detach(&self) -> Vec<String> {
        let mut s = self.state();
        s.screen = None;
        let mut lines = Vec::with_capacity(s.held.len() + 1);
        if s.dropped > 0 {
            lines.push(format!("… {} earlier log lines not shown", s.dropped));
        }
        lines.extend(s.held.drain(..));
        s.dropped = 0;
        lines
    }

    fn log(&self, bytes: &[u8]) {
        {
            let mut s = self.state();
            if let Some(tx) = s.screen.clone() {
                let text = String::from_utf8_lossy(bytes).into_owned();
                for l in strip_ansi(&text).lines().filter(|l| !l.trim().is_empty()) {
                    let _ = tx.send(Message::Log(l.to_owned()));
                }
                if s.held.len() == HELD_LINES {
                    s.held.pop_front();
                    s.dropped += 1;
                }
                s.held.push_back(text.trim_end().to_owned());
                return;
            }
        }
        let _ = std::io::stderr().lock().write_all(bytes);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Console {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            console: self.clone(),
            buf: Vec::new(),
        }
    }
}

/// One formatted `tracing` event, delivered whole when dropped (the formatter writes an event
/// with one writer).
#[derive(Debug)]
pub struct LogLine {
    console: Console,
    buf: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.console.log(&self.buf);
        }
    }
}

/// `text` without ANSI escape sequences (the log formatter colours levels).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters… final byte in @..=~; other escapes are two characters.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter as _;

    #[test]
    fn log_lines_go_to_the_screen_while_attached_and_are_handed_back_after() {
        let console = Console::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        console.attach(tx);
        writeln!(
            console.make_writer(),
            "\x1b[33m WARN\x1b[0m otlp: Export failed."
        )
        .unwrap();
        console.notice("\nStopping: now");
        assert_eq!(
            rx.try_recv().unwrap(),
            Message::Log(" WARN otlp: Export failed.".into())
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            Message::Notice("Stopping: now".into())
        );
        let held = console.detach();
        assert_eq!(held, vec!["\x1b[33m WARN\x1b[0m otlp: Export failed."]);
        // Detached: nothing reaches the old channel any more.
        console.notice("Stopping now.");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn held_lines_are_bounded_and_the_rest_counted() {
        let console = Console::default();
        let (tx, _rx) = mpsc::unbounded_channel();
        console.attach(tx);
        for i in 0..HELD_LINES + 5 {
            writeln!(console.make_writer(), "line {i}").unwrap();
        }
        let held = console.detach();
        assert_eq!(held.len(), HELD_LINES + 1);
        assert_eq!(held[0], "… 5 earlier log lines not shown");
        assert_eq!(held[1], "line 5");
    }

    #[test]
    fn strips_colour_codes_only() {
        assert_eq!(
            strip_ansi("\x1b[2m2026\x1b[0m \x1b[1;31mERROR\x1b[0m x"),
            "2026 ERROR x"
        );
        assert_eq!(strip_ansi("plain – text"), "plain – text");
    }
}
