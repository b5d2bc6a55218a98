//! The full-screen live view in a real terminal: tmux (Debian's `tmux`, installed by `scripts/test`)
//! runs loadlens in a 120×40 pane against the demo target; the tests read the screen with
//! `capture-pane` and type with `send-keys`, as a person would. Each test has its own tmux
//! server (`-L`, no user configuration), killed at the end even when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::*;

/// One tmux server with one pane running a shell command.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A server on its own socket running `command` in a `width`×`height` pane. A test fails,
    /// saying how to install it, when there is no tmux.
    fn start(tag: &str, width: u16, height: u16, command: &str) -> Tmux {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok(),
            "no tmux: run the suite with `scripts/test`, which installs Debian's `tmux`"
        );
        let tmux = Tmux {
            socket: format!("loadlens-it-{tag}-{}", std::process::id()),
        };
        let out = tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {}", stderr(&out));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    /// What the pane shows now.
    fn screen(&self) -> String {
        stdout(&self.run(&["capture-pane", "-p"]))
    }

    /// The pane's scrollback and screen (the normal screen's: the alternate screen keeps none).
    fn history(&self) -> String {
        stdout(&self.run(&["capture-pane", "-p", "-S", "-"]))
    }

    fn send(&self, keys: &str) {
        let out = self.run(&["send-keys", keys]);
        assert!(out.status.success(), "tmux send-keys: {}", stderr(&out));
    }

    /// Wait up to `limit` for the screen to satisfy `ok`; panics with the last screen.
    fn wait_for(&self, limit: Duration, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < limit,
                "no {what} within {limit:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The pane's command: loadlens, then its exit code and the terminal settings (raw mode or
/// not) into files, then a wait so the final screen can be read.
fn pane_command(args: &[&str], dir: &TempDir) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    format!(
        // The terminal's modes are saved before the exit code: a test that has seen the exit
        // code finds them (in the other order it could read them before the shell wrote them).
        "{} {}; code=$?; stty -a > {}; echo EXIT=$code > {}; sleep 300",
        quote(bin()),
        args.join(" "),
        quote(&dir.join("stty")),
        quote(&dir.join("exit")),
    )
}

/// The exit code written by [`pane_command`], waited for up to `limit`.
fn exit_code(path: &Path, limit: Duration) -> (i32, Duration) {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Some(code) = s.trim().strip_prefix("EXIT=") {
                return (code.parse().unwrap(), start.elapsed());
            }
        }
        assert!(
            start.elapsed() < limit,
            "loadlens did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn storefront() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/storefront.yaml")
}

/// The number after `label ` on the screen (`reqs 123`).
fn figure(screen: &str, label: &str) -> Option<u64> {
    let at = screen.find(&format!("{label} "))? + label.len() + 1;
    screen[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn full_screen_view_shows_the_run_and_q_stops_it_gracefully() {
    let target = DemoTarget::start(&["--latency", "fixed(5ms)", "--error-rate", "0.05"]);
    let dir = TempDir::new("tui");
    let json = dir.join("r.json");
    let command = pane_command(
        &[
            "run",
            &storefront().display().to_string(),
            "-H",
            &target.url,
            "-u",
            "5",
            "-t",
            "60s",
            "--json",
            &json,
        ],
        &dir,
    );
    let tmux = Tmux::start("tui", 120, 40, &command);

    let screen = tmux.wait_for(
        Duration::from_secs(30),
        "full-screen view with requests",
        |s| {
            // The key help is drawn last: with it, the first frame is complete.
            s.contains("stop gracefully")
                && s.contains(" Requests ")
                && s.contains("/api/products")
                && s.contains("/api/v1/search")
                && figure(s, "reqs").is_some_and(|n| n > 0)
        },
    );
    // Header, sparklines, errors panel and key help are all there, in the alternate screen
    // (the line printed before the run is not).
    assert!(screen.contains(" loadlens  run "), "{screen}");
    assert!(screen.contains("left 00:00:"), "{screen}");
    assert!(screen.contains(" req/s  now "), "{screen}");
    assert!(screen.contains(" p95  now "), "{screen}");
    assert!(screen.contains(" Errors"), "{screen}");
    assert!(!screen.contains("loadlens 0."), "{screen}");

    tmux.send("q");
    let (code, took) = exit_code(&dir.path("exit"), Duration::from_secs(20));
    assert_eq!(code, 130, "q stops like Ctrl-C (exit 130)");
    assert!(took < Duration::from_secs(20), "{took:?}");

    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    assert_eq!(j["run"]["verdict"], "interrupted");
    assert_eq!(j["run"]["killed"], false, "one q stops gracefully");
    assert!(j["aggregate"]["request_count"].as_u64().unwrap() > 0);
    assert!(
        j["run"]["duration_s"].as_f64().unwrap() < 40.0,
        "{}",
        j["run"]
    );

    // The terminal is back: the end summary is on the normal screen, the view is gone, and the
    // shell after loadlens sees a cooked terminal (not raw mode).
    let after = tmux.wait_for(Duration::from_secs(5), "end summary", |s| {
        s.contains(&format!("wrote {json}"))
    });
    assert!(after.contains("Response time percentiles"), "{after}");
    assert!(after.contains("Aggregated"), "{after}");
    assert!(!after.contains("stop gracefully"), "{after}");
    let stty = std::fs::read_to_string(dir.path("stty")).unwrap();
    let modes: Vec<&str> = stty.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig", "opost"] {
        assert!(modes.contains(&mode), "{mode} is off after exit:\n{stty}");
    }
}

#[test]
fn ctrl_c_keys_in_the_full_screen_view_stop_gracefully_then_at_once() {
    // Slow responses: after the first Ctrl-C the run waits for them, so the notice shows, and the
    // second Ctrl-C abandons them.
    let target = DemoTarget::start(&["--latency", "fixed(20s)"]);
    let dir = TempDir::new("tui-ctrl-c");
    let json = dir.join("r.json");
    let url = format!("{}/health", target.url);
    let command = pane_command(
        &[
            "run",
            "--url",
            &url,
            "-c",
            "3",
            "-z",
            "60s",
            "--stop-timeout",
            "60s",
            "--json",
            &json,
        ],
        &dir,
    );
    let tmux = Tmux::start("tui-ctrl-c", 100, 30, &command);
    tmux.wait_for(Duration::from_secs(30), "full-screen view", |s| {
        s.contains("stop gracefully") && s.contains("elapsed 00:00:01")
    });
    tmux.send("C-c");
    let screen = tmux.wait_for(Duration::from_secs(5), "stop notice", |s| {
        s.contains("Stopping: in-flight requests get to finish")
    });
    assert!(screen.contains("stopping"), "{screen}");
    assert!(screen.contains(" Requests "), "still full screen: {screen}");
    tmux.send("C-c");
    let (code, _) = exit_code(&dir.path("exit"), Duration::from_secs(20));
    assert_eq!(code, 130);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    assert_eq!(j["run"]["killed"], true, "the second Ctrl-C stops at once");
    tmux.wait_for(Duration::from_secs(5), "end summary", |s| {
        s.contains(&format!("wrote {json}"))
    });
    let history = tmux.history();
    assert!(history.contains("interrupted (users stopped"), "{history}");
    assert!(
        !history.contains("Stopping"),
        "the notices were shown in the view: {history}"
    );
}

#[test]
fn no_tui_keeps_one_updating_line_on_a_terminal() {
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let dir = TempDir::new("tui-off");
    let json = dir.join("r.json");
    let url = format!("{}/health", target.url);
    let command = pane_command(
        &[
            "run", "--url", &url, "-c", "2", "-z", "60s", "--no-tui", "--json", &json,
        ],
        &dir,
    );
    let tmux = Tmux::start("tui-off", 120, 40, &command);
    let screen = tmux.wait_for(Duration::from_secs(30), "progress line", |s| {
        s.contains("elapsed, 00:00:") && s.contains(" reqs, ") && !s.contains("| 0 reqs, ")
    });
    assert!(screen.contains("loadlens 0."), "normal screen: {screen}");
    assert!(!screen.contains(" Requests "), "{screen}");
    // Not raw mode: Ctrl-C is a signal, handled as before.
    tmux.send("C-c");
    let (code, _) = exit_code(&dir.path("exit"), Duration::from_secs(20));
    assert_eq!(code, 130);
    let after = tmux.wait_for(Duration::from_secs(5), "end summary", |s| {
        s.contains(&format!("wrote {json}"))
    });
    assert!(
        after.contains("Stopping: in-flight requests get to finish"),
        "{after}"
    );
}

#[test]
fn sigterm_during_the_full_screen_view_stops_gracefully_and_gives_the_terminal_back() {
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let dir = TempDir::new("tui-term");
    let json = dir.join("r.json");
    let url = format!("{}/health", target.url);
    let command = pane_command(
        &[
            "run", "--url", &url, "-c", "2", "-z", "60s", "--json", &json,
        ],
        &dir,
    );
    let tmux = Tmux::start("tui-term", 100, 30, &command);
    tmux.wait_for(Duration::from_secs(30), "full-screen view", |s| {
        s.contains("stop gracefully") && figure(s, "reqs").is_some_and(|n| n > 0)
    });
    // The pane's shell runs loadlens as its child: that is the process to stop.
    let shell = stdout(&tmux.run(&["display-message", "-p", "#{pane_pid}"]));
    let children = Command::new("pgrep")
        .args(["-P", shell.trim()])
        .output()
        .unwrap();
    let pid: u32 = stdout(&children)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no child of the pane's shell {shell}"));
    send_signal(pid, "TERM");
    let (code, _) = exit_code(&dir.path("exit"), Duration::from_secs(20));
    assert_eq!(code, 130, "SIGTERM stops like Ctrl-C");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    assert_eq!(j["run"]["verdict"], "interrupted");
    assert_eq!(j["run"]["killed"], false, "one SIGTERM stops gracefully");
    let after = tmux.wait_for(Duration::from_secs(5), "end summary", |s| {
        s.contains(&format!("wrote {json}"))
    });
    assert!(
        !after.contains("stop gracefully"),
        "the view is gone: {after}"
    );
    let stty = std::fs::read_to_string(dir.path("stty")).unwrap();
    let modes: Vec<&str> = stty.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig", "opost"] {
        assert!(
            modes.contains(&mode),
            "{mode} is off after SIGTERM:\n{stty}"
        );
    }
}

#[test]
fn a_run_started_in_the_background_keeps_to_one_line_and_is_not_stopped() {
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let dir = TempDir::new("tui-bg");
    let json = dir.join("r.json");
    let url = format!("{}/health", target.url);
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    // `set -m`: job control, so `&` puts loadlens in a background job of its own, as in an
    // interactive shell. Taking the terminal into raw mode from there would stop it (SIGTTOU),
    // and `wait` would return 128 + 22.
    let command = format!(
        "set -m; {} run --url {} -c 2 -z 2s --json {} & wait $!; echo EXIT=$? > {}; sleep 300",
        quote(bin()),
        quote(&url),
        quote(&json),
        quote(&dir.join("exit")),
    );
    let tmux = Tmux::start("tui-bg", 120, 30, &command);
    let (code, _) = exit_code(&dir.path("exit"), Duration::from_secs(30));
    assert_eq!(code, 0, "{}", tmux.screen());
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    assert!(j["aggregate"]["request_count"].as_u64().unwrap() > 0);
    let history = tmux.history();
    assert!(
        history.contains("loadlens 0."),
        "the normal screen: {history}"
    );
    assert!(history.contains(&format!("wrote {json}")), "{history}");
}

#[test]
fn a_terminal_that_goes_away_stops_the_run_gracefully_and_the_reports_are_still_written() {
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let dir = TempDir::new("tui-hup");
    let json = dir.join("r.json");
    let url = format!("{}/health", target.url);
    let command = pane_command(
        &[
            "run", "--url", &url, "-c", "2", "-z", "60s", "--json", &json,
        ],
        &dir,
    );
    let tmux = Tmux::start("tui-hup", 100, 30, &command);
    tmux.wait_for(Duration::from_secs(30), "full-screen view", |s| {
        s.contains("stop gracefully") && figure(s, "reqs").is_some_and(|n| n > 0)
    });
    // The window closes (a dropped ssh session does the same): the terminal is gone and
    // loadlens gets SIGHUP.
    drop(tmux);
    let start = Instant::now();
    let j = loop {
        if let Ok(text) = std::fs::read_to_string(dir.path("r.json")) {
            if let Ok(j) = serde_json::from_str::<serde_json::Value>(&text) {
                break j;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no report within 20 s of the terminal going away"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(j["run"]["verdict"], "interrupted");
    assert_eq!(j["run"]["killed"], false, "stopped gracefully");
    assert!(j["aggregate"]["request_count"].as_u64().unwrap() > 0);
    assert!(
        j["run"]["duration_s"].as_f64().unwrap() < 30.0,
        "stopped when the terminal went away, not at the end of its 60 s: {}",
        j["run"]
    );
}

/// `--jsonl -` on a terminal: the lines own stdout, so the live view keeps to plain lines — no
/// full screen, no updating line — and every JSON line arrives whole, one per line.
#[test]
fn json_lines_on_stdout_keep_the_terminal_to_plain_lines() {
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let dir = TempDir::new("tui-jsonl");
    let url = format!("{}/health", target.url);
    let command = pane_command(
        &[
            "run",
            "--url",
            &url,
            "-c",
            "2",
            "-z",
            "3s",
            "--progress-interval",
            "1s",
            "--jsonl",
            "-",
        ],
        &dir,
    );
    let tmux = Tmux::start("tui-jsonl", 200, 50, &command);
    let (code, _) = exit_code(&dir.path("exit"), Duration::from_secs(60));
    assert_eq!(code, 0);
    let history = tmux.history();
    assert!(!history.contains(" Requests "), "no full screen: {history}");
    let lines: Vec<&str> = history
        .lines()
        .filter(|l| l.contains("\"event\":"))
        .collect();
    // Every line of the run is on the normal screen, from the first to the last (a full-screen
    // view would have taken those written during the run into its alternate screen).
    for event in ["run_start", "interval", "health", "run_end"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("\"event\":\"{event}\""))),
            "no {event} line on the terminal: {history}"
        );
    }
    for l in &lines {
        // A long line wraps in the pane; the run's lines are shorter than 200 columns only in
        // part, so check the ones that fit: each starts with `{` and nothing is written into it.
        assert!(
            l.starts_with('{'),
            "a JSON line with something before it: {l}"
        );
        if l.len() < 200 {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not one whole JSON object ({e}): {l}"));
        }
    }
}
