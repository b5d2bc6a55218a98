//! `loadlens completions SHELL` and `loadlens man`: shell completion scripts and the man page,
//! generated from the same clap definitions as the parser ([`crate::cli::command`]), so they
//! list every subcommand and flag, the integrations' included, and cannot drift from them.

use std::io::Write as _;

use clap::Args;
use clap_complete::Shell;

use crate::exit::{Exit, Failure};

/// `loadlens completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    pub shell: Shell,
}

/// `loadlens man`.
#[derive(Args, Debug)]
pub struct ManArgs {}

/// Print the completion script for `args.shell` on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<Exit, Failure> {
    let mut cmd = crate::cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "loadlens", &mut out);
    write_stdout(&out)
}

/// Print the man page (roff) on stdout: `loadlens(1)` with every subcommand's options in it.
pub fn man(_: &ManArgs) -> Result<Exit, Failure> {
    let cmd = crate::cli::command();
    let mut out = Vec::new();
    render(&cmd, &mut out).map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    write_stdout(&out)
}

/// The page of `cmd`, then a section per subcommand with its own options (clap_mangen renders
/// one command per page; one page is what `man loadlens` should show).
fn render(cmd: &clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    // clap_mangen's own list points at one page per subcommand (`loadlens-run(1)`); this page
    // holds them all, so the list names them and the sections below follow.
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        writeln!(out, ".TP\n\\fB{}\\fR", sub.get_name())?;
        if let Some(about) = sub.get_about() {
            writeln!(out, "{}", escape(&about.to_string()))?;
        }
    }
    // Nested subcommands (`convert har`) get a section each, after their parent's.
    let mut all = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        all.push((sub.get_name().to_owned(), sub));
        for nested in sub.get_subcommands().filter(|s| s.get_name() != "help") {
            all.push((format!("{} {}", sub.get_name(), nested.get_name()), nested));
        }
    }
    for (name, sub) in all {
        let sub = sub.clone().bin_name(format!("loadlens {name}"));
        writeln!(out, ".SH \"LOADLENS {}\"", name.to_uppercase())?;
        let page = clap_mangen::Man::new(sub.clone());
        let mut own = Vec::new();
        page.render_synopsis_section(&mut own)?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(own, ".PP\n{}", escape(&about.to_string()))?;
        }
        page.render_options_section(&mut own)?;
        // Its sections become subsections of this one.
        for line in String::from_utf8_lossy(&own).lines() {
            match line.strip_prefix(".SH ") {
                Some(heading) => writeln!(out, ".SS {heading}")?,
                None => writeln!(out, "{line}")?,
            }
        }
    }
    man.render_version_section(out)?;
    Ok(())
}

/// Text as a roff line: a leading `.` or `'` would be read as a request.
fn escape(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('\\', "\\\\");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn write_stdout(bytes: &[u8]) -> Result<Exit, Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(Exit::Passed),
        // `loadlens man | head`: a closed pipe is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Passed),
        Err(e) => Err(Failure::new(Exit::Internal, format!("cannot write: {e}"))),
    }
}
