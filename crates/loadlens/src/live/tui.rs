//! The full-screen terminal: raw mode and the alternate screen for the length of the run, keys
//! read on a thread of their own, a redraw on each snapshot, key, message and resize.
//!
//! The terminal is given back on every way out — the end of the run, a drawing error, a panic
//! (a hook restores it before the panic message is printed, so the message stays readable) —
//! and before the end-of-run summary is printed, so that stays on the screen as without the
//! view. In raw mode Ctrl-C is a key, not a signal: it is read here and counts as a stop request
//! like `q` (see [`super::Interrupts`]).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use tokio::sync::mpsc;

use super::console::Message;
use super::view::View;
use super::Feed;

/// How the full-screen view ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The run is over (or the snapshot stream closed); the terminal is restored.
    Done,
    /// Something else restored the terminal during the run (the panic hook after a panic in
    /// another thread); the caller goes on without the full screen.
    Lost,
}

/// How long the key thread waits for a key before it looks whether it should stop.
const KEY_POLL: Duration = Duration::from_millis(100);

/// Show the run full screen until it ends.
pub async fn run(feed: &mut Feed) -> io::Result<End> {
    let session = Session::enter()?;
    // One write per frame: a frame in pieces shows as tearing on a slow terminal.
    let out = io::BufWriter::with_capacity(1 << 16, io::stdout());
    let mut terminal = Terminal::new(CrosstermBackend::new(out))?;
    terminal.clear()?;
    let console = feed.interrupts.console().clone();
    let (message_tx, mut messages) = mpsc::unbounded_channel();
    console.attach(message_tx);
    let (key_tx, mut keys) = mpsc::unbounded_channel();
    let reader = KeyReader::spawn(key_tx)?;

    let mut view = View::new(feed.header.clone(), feed.run_time, feed.names.clone());
    if let Some(s) = feed.snapshots.borrow_and_update().clone() {
        view.push(s);
    }
    let end = loop {
        view.stop_requests = feed.interrupts.count();
        view.stopping = feed.interrupts.is_stopping();
        if !session.is_active() {
            break Ok(End::Lost);
        }
        if let Err(e) = terminal.draw(|f| view.render(f)) {
            break Err(e);
        }
        tokio::select! {
            r = feed.snapshots.changed() => {
                if r.is_err() {
                    break Ok(End::Done);
                }
                if let Some(s) = feed.snapshots.borrow_and_update().clone() {
                    view.push(s);
                }
            }
            Some(ev) = keys.recv() => {
                // Anything else (a resize above all) only needs the redraw at the top.
                if let Event::Key(k) = ev {
                    if is_stop(&k) {
                        feed.interrupts.request();
                    }
                }
            }
            Some(m) = messages.recv() => match m {
                Message::Notice(text) => view.notice(text),
                Message::Log(line) => view.log(line),
            },
            _ = feed.done.cancelled() => break Ok(End::Done),
        }
    };
    drop(reader);
    let held = console.detach();
    drop(terminal);
    drop(session);
    for line in held {
        tell!("{line}");
    }
    end
}

/// `q` or Ctrl-C.
fn is_stop(k: &KeyEvent) -> bool {
    k.kind == KeyEventKind::Press
        && match k.code {
            KeyCode::Char('q' | 'Q') => !k.modifiers.contains(KeyModifiers::CONTROL),
            KeyCode::Char('c' | 'C') => k.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// Raw mode and the alternate screen, left when dropped or by the panic hook, whichever comes
/// first.
struct Session {
    active: Arc<AtomicBool>,
}

impl Session {
    fn enter() -> io::Result<Session> {
        enable_raw_mode()?;
        let session = Session {
            active: Arc::new(AtomicBool::new(true)),
        };
        let active = session.active.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore(&active);
            previous(info);
        }));
        // On error, dropping `session` leaves raw mode again.
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        Ok(session)
    }

    fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        restore(&self.active);
    }
}

/// Leave raw mode and the alternate screen, once.
fn restore(active: &AtomicBool) {
    if active.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
    }
}

/// The thread that reads terminal events; stopped and joined when dropped (within
/// [`KEY_POLL`]), or left behind when it does not stop in time: on a terminal that went away
/// (SIGHUP) crossterm's reader loops on the end of input inside `poll` and never returns, and
/// joining it would keep the run from ever writing its reports.
struct KeyReader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeyReader {
    fn spawn(tx: mpsc::UnboundedSender<Event>) -> io::Result<KeyReader> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loadlens-keys".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    match event::poll(KEY_POLL) {
                        Ok(true) => match event::read() {
                            Ok(ev) => {
                                if tx.send(ev).is_err() {
                                    return;
                                }
                            }
                            Err(_) => return,
                        },
                        Ok(false) => {}
                        Err(_) => return,
                    }
                }
            })?;
        Ok(KeyReader {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for KeyReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(t) = self.thread.take() else { return };
        let deadline = std::time::Instant::now() + KEY_POLL * 4;
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_and_ctrl_c_stop_other_keys_do_not() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(is_stop(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(is_stop(&key(KeyCode::Char('Q'), KeyModifiers::SHIFT)));
        assert!(is_stop(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!is_stop(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!is_stop(&key(KeyCode::Char('q'), KeyModifiers::CONTROL)));
        assert!(!is_stop(&key(KeyCode::Esc, KeyModifiers::NONE)));
        let mut release = key(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert!(!is_stop(&release));
    }
}
