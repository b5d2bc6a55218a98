//! `loadlens convert curl`: curl command lines (as DevTools' "Copy as cURL" writes them) into
//! a scenario. One command gives one task; several (a file, stdin, Chrome's "Copy all as
//! cURL" joined with `;`) give one task whose steps are the requests in order.
//!
//! Words are split with `shell-words` (POSIX quoting, `\` line continuations); bash's `$'…'`
//! strings, which Chrome writes for bodies with quotes or newlines, are decoded first. Flags
//! that change the request are translated; flags that only change curl's own output are
//! ignored; any other flag is refused by name, so nothing is silently lost.

use std::path::PathBuf;

use clap::Args;

use super::{body_of, doc, path_and_query, sets_content_type, split_url, Body, Common, Draft};
use super::{Request, Step, Task};

/// `loadlens convert curl`.
#[derive(Args, Debug, Clone, Default)]
pub struct CurlArgs {
    /// The curl command (`'curl -X POST https://… -H … -d …'`); `-` or nothing reads stdin.
    #[arg(value_name = "COMMAND", conflicts_with = "file")]
    pub command: Option<String>,
    /// Read the command(s) from FILE: one or more curl commands, `\` continuations allowed.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The scenario's `host:` instead of the first URL's origin (requests to that origin
    /// become relative paths).
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
}

/// Convert the command(s) in `args`.
pub fn convert(args: &CurlArgs) -> Result<Draft, String> {
    let (text, from) = match (&args.command, &args.file) {
        (_, Some(f)) => (super::read_input(f)?, f.display().to_string()),
        (Some(c), None) if c != "-" => (c.clone(), "the command".to_owned()),
        _ => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                tell!("reading curl commands from stdin (paste, then Ctrl-D)");
            }
            (
                super::read_input(std::path::Path::new("-"))?,
                "stdin".to_owned(),
            )
        }
    };
    let commands = parse(&text).map_err(|e| format!("{from}: {e}"))?;
    let name = args.common.name.clone().unwrap_or_else(|| {
        args.file
            .as_deref()
            .map_or_else(|| "curl".to_owned(), super::stem)
    });
    to_draft(commands, args.host.as_deref(), name)
}

/// One parsed curl command.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Curl {
    /// The URL as given.
    pub url: String,
    /// `-X`.
    pub method: Option<String>,
    /// `-H`, in order (`Name: value`).
    pub headers: Vec<(String, String)>,
    /// Data pieces (`-d`, `--data-*`, `--json`), joined with `&` as curl does.
    pub data: Vec<String>,
    /// `--json` was used.
    pub json: bool,
    /// `-G`: the data goes into the query.
    pub get: bool,
    /// `-I`.
    pub head: bool,
    /// `-u user:password`.
    pub user: Option<String>,
    /// `--max-time` seconds.
    pub max_time: Option<f64>,
    /// `--connect-timeout` seconds.
    pub connect_timeout: Option<f64>,
    /// `-k`.
    pub insecure: bool,
    /// `--http1.1` / `--http2…`.
    pub http_version: Option<&'static str>,
}

/// Flags that only change what curl prints or saves: no effect on the request sent.
const IGNORED: &[&str] = &[
    "-s",
    "--silent",
    "-S",
    "--show-error",
    "-v",
    "--verbose",
    "-i",
    "--include",
    "-L",
    "--location",
    "--compressed",
    "-f",
    "--fail",
    "--fail-with-body",
    "-#",
    "--progress-bar",
    "--no-progress-meter",
    "-N",
    "--no-buffer",
    "-O",
    "--remote-name",
    "-g",
    "--globoff",
    "--location-trusted",
    "-j",
    "--junk-session-cookies",
    "--no-keepalive",
    "--tr-encoding",
    "-4",
    "--ipv4",
    "-6",
    "--ipv6",
    "--path-as-is",
];
/// The same, with a value to skip.
const IGNORED_WITH_VALUE: &[&str] = &[
    "-o",
    "--output",
    "-w",
    "--write-out",
    "--retry",
    "--retry-delay",
    "--retry-max-time",
    "--max-redirs",
    "-c",
    "--cookie-jar",
    "-D",
    "--dump-header",
    "--stderr",
    "--trace",
    "--trace-ascii",
    "--limit-rate",
    "--resolve",
    "--connect-to",
    "--interface",
];

/// Short flags that take a value.
const SHORT_WITH_VALUE: &str = "XHdubAemowcDFT";

/// Split `text` into curl commands.
pub fn parse(text: &str) -> Result<Vec<Curl>, String> {
    let text = text.replace("\r\n", "\n");
    if text.contains("^\"") || text.contains(" ^\n") {
        return Err(
            "this looks like a Windows cmd command (^ escapes): copy it as cURL (bash) instead"
                .into(),
        );
    }
    let words = shell_words::split(&ansi_c_strings(&text)?)
        .map_err(|_| "unbalanced quotes: a quote is opened and never closed".to_owned())?;
    let mut commands = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for w in words {
        match w.as_str() {
            ";" | "&&" | "||" => {
                commands.extend(current.take());
            }
            // A new command: after a separator, or right after another one's words.
            "curl" | "curl.exe" => {
                commands.extend(current.replace(Vec::new()));
            }
            _ => match current.as_mut() {
                Some(c) => c.push(w),
                None => {
                    return Err(format!(
                        "expected a command starting with `curl`, found `{w}`"
                    ))
                }
            },
        }
    }
    commands.extend(current);
    if commands.is_empty() {
        return Err("no curl command found".into());
    }
    commands
        .iter()
        .enumerate()
        .map(|(i, words)| {
            one(words).map_err(|e| {
                if commands.len() > 1 {
                    format!("curl command {}: {e}", i + 1)
                } else {
                    e
                }
            })
        })
        .collect()
}

fn one(words: &[String]) -> Result<Curl, String> {
    let mut c = Curl::default();
    let mut urls = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        // `-XPOST`, `-sSL`, `-d@x`: one short flag and its attached value, or a run of
        // short flags without values.
        let (flag, attached) = if w.starts_with("--") || !w.starts_with('-') || w.len() == 2 {
            (w.clone(), None)
        } else {
            let first = w.chars().nth(1).unwrap_or('-');
            if SHORT_WITH_VALUE.contains(first) {
                (format!("-{first}"), Some(w[2..].to_owned()))
            } else {
                // Expand `-sSL` into `-s -S -L` (all of them must be value-less).
                for ch in w[1..].chars() {
                    let f = format!("-{ch}");
                    if SHORT_WITH_VALUE.contains(ch) {
                        return Err(format!(
                            "`{w}`: put `{f}` last in a group of flags, or on its own"
                        ));
                    }
                    apply_bare(&mut c, &f)?;
                }
                continue;
            }
        };
        if !flag.starts_with('-') || flag == "-" {
            urls.push(flag);
            continue;
        }
        if let Some(eq) = flag.find('=').filter(|_| flag.starts_with("--")) {
            return Err(format!(
                "unknown flag `{}`: curl takes the value after a space (`{} {}`)",
                flag,
                &flag[..eq],
                &flag[eq + 1..]
            ));
        }
        let mut value = || -> Result<String, String> {
            if let Some(v) = attached.clone() {
                return Ok(v);
            }
            let v = words
                .get(i)
                .cloned()
                .ok_or_else(|| format!("`{flag}` needs a value"))?;
            i += 1;
            Ok(v)
        };
        match flag.as_str() {
            "-X" | "--request" => c.method = Some(value()?.to_ascii_uppercase()),
            "-H" | "--header" => {
                let h = value()?;
                if let Some(name) = h.strip_suffix(';') {
                    // curl's way of sending a header with an empty value.
                    c.headers.push((name.trim().to_owned(), String::new()));
                } else if let Some((k, v)) = h.split_once(':') {
                    if !v.trim().is_empty() {
                        c.headers.push((k.trim().to_owned(), v.trim().to_owned()));
                    }
                } else if h.starts_with('@') {
                    return Err(format!("`-H {h}`: headers from a file are not supported; write them as -H 'Name: value'"));
                } else {
                    return Err(format!("`-H {h}`: expected `Name: value`"));
                }
            }
            "-d" | "--data" | "--data-ascii" => {
                c.data.push(data_file(&value()?, true)?);
            }
            "--data-binary" => c.data.push(data_file(&value()?, false)?),
            "--data-raw" => c.data.push(value()?),
            "--data-urlencode" => c.data.push(urlencode_piece(&value()?)?),
            "--json" => {
                c.data.push(data_file(&value()?, false)?);
                c.json = true;
            }
            "-u" | "--user" => c.user = Some(value()?),
            "-b" | "--cookie" => {
                let v = value()?;
                if !v.contains('=') {
                    return Err(format!("`-b {v}`: reading cookies from a file is not supported; pass them as -b 'name=value; other=value' (each virtual user also keeps the cookies the responses set)"));
                }
                c.headers.push(("Cookie".into(), v));
            }
            "-A" | "--user-agent" => c.headers.push(("User-Agent".into(), value()?)),
            "-e" | "--referer" => c.headers.push(("Referer".into(), value()?)),
            "--url" => urls.push(value()?),
            "-m" | "--max-time" => c.max_time = Some(seconds(&flag, &value()?)?),
            "--connect-timeout" => c.connect_timeout = Some(seconds(&flag, &value()?)?),
            "-F" | "--form" | "--form-string" => {
                return Err(format!("`{flag}` (a multipart form) is not supported: loadlens has no multipart body; send the body with --data-binary @FILE and its Content-Type header"));
            }
            "-T" | "--upload-file" => {
                return Err(format!(
                    "`{flag}` is not supported: use -X PUT --data-binary @FILE"
                ));
            }
            f if IGNORED_WITH_VALUE.contains(&f) => {
                value()?;
            }
            f => apply_bare(&mut c, f)?,
        }
    }
    match urls.as_slice() {
        [url] => c.url = url.clone(),
        [] => return Err("no URL".into()),
        [_, second, ..] => {
            return Err(format!(
                "more than one URL (`{second}`): write one curl command per URL"
            ))
        }
    }
    Ok(c)
}

/// A flag without a value.
fn apply_bare(c: &mut Curl, f: &str) -> Result<(), String> {
    match f {
        "-G" | "--get" => c.get = true,
        "-I" | "--head" => c.head = true,
        "-k" | "--insecure" => c.insecure = true,
        "--http1.1" | "--http1.0" | "-0" => c.http_version = Some("http1"),
        "--http2" | "--http2-prior-knowledge" => c.http_version = Some("http2"),
        f if IGNORED.contains(&f) => {}
        f => {
            return Err(format!(
                "unknown curl flag `{f}`: convert does not know what it would change in the request"
            ))
        }
    }
    Ok(())
}

fn seconds(flag: &str, v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && s.is_finite())
        .ok_or_else(|| format!("`{flag} {v}`: expected a number of seconds above 0"))
}

/// `-d @file` reads the file (without its line breaks, as curl does for `-d`).
fn data_file(v: &str, strip_newlines: bool) -> Result<String, String> {
    let Some(path) = v.strip_prefix('@') else {
        return Ok(v.to_owned());
    };
    let text = if path == "-" {
        return Err("`@-` (data from stdin) is not supported: give the data or a file".into());
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read data file {path}: {e}"))?
    };
    Ok(if strip_newlines {
        text.replace(['\r', '\n'], "")
    } else {
        text
    })
}

/// `--data-urlencode`'s forms: `content`, `=content`, `name=content`, `@file`, `name@file`.
fn urlencode_piece(v: &str) -> Result<String, String> {
    let enc = loadlens_core::encoding::encode_component;
    if let Some((name, content)) = v.split_once('=') {
        return Ok(if name.is_empty() {
            enc(content)
        } else {
            format!("{name}={}", enc(content))
        });
    }
    if let Some((name, file)) = v.split_once('@') {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read data file {file}: {e}"))?;
        return Ok(if name.is_empty() {
            enc(&text)
        } else {
            format!("{name}={}", enc(&text))
        });
    }
    Ok(enc(v))
}

/// Replace bash's `$'…'` strings (outside other quotes) by plain single-quoted ones.
fn ansi_c_strings(text: &str) -> Result<String, String> {
    if !text.contains("$'") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let (mut single, mut double) = (false, false);
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if !single => {
                out.push(ch);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '\'' if !double => {
                single = !single;
                out.push(ch);
            }
            '"' if !single => {
                double = !double;
                out.push(ch);
            }
            '$' if !single && !double && chars.peek() == Some(&'\'') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err("unbalanced quotes: a $'…' string is never closed".into())
                        }
                        Some('\'') => break,
                        Some('\\') => s.push(ansi_escape(&mut chars)),
                        Some(c) => s.push(c),
                    }
                }
                out.push('\'');
                out.push_str(&s.replace('\'', "'\\''"));
                out.push('\'');
            }
            _ => out.push(ch),
        }
    }
    Ok(out)
}

fn ansi_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> char {
    fn hex(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize) -> char {
        let mut v = 0u32;
        for _ in 0..n {
            match chars.peek().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    chars.next();
                }
                None => break,
            }
        }
        char::from_u32(v).unwrap_or('\u{fffd}')
    }
    match chars.next() {
        Some('n') => '\n',
        Some('t') => '\t',
        Some('r') => '\r',
        Some('e' | 'E') => '\u{1b}',
        Some('a') => '\u{7}',
        Some('b') => '\u{8}',
        Some('f') => '\u{c}',
        Some('v') => '\u{b}',
        Some('x') => hex(chars, 2),
        Some('u') => hex(chars, 4),
        Some('U') => hex(chars, 8),
        Some(c) => c,
        None => '\\',
    }
}

/// The draft of `commands`.
fn to_draft(commands: Vec<Curl>, host: Option<&str>, name: String) -> Result<Draft, String> {
    let mut draft = Draft {
        name,
        user_type: "user".into(),
        ..Draft::default()
    };
    let mut steps = Vec::new();
    let host = host.map(|h| h.trim_end_matches('/').to_owned());
    // The first command's origin: its requests are relative to `host:` (`--host` retargets them).
    let mut first_origin: Option<String> = None;
    for c in commands {
        let url = if c.url.contains("://") {
            c.url.clone()
        } else {
            // curl's default scheme.
            format!("http://{}", c.url)
        };
        let (origin, path, mut query) =
            split_url(&url).ok_or_else(|| format!("invalid URL `{}`", c.url))?;
        let first = first_origin.get_or_insert_with(|| origin.clone());
        let mut data = c.data.join("&");
        let mut method = c.method.clone().unwrap_or_else(|| {
            if c.head {
                "HEAD"
            } else if !c.data.is_empty() && !c.get {
                "POST"
            } else {
                "GET"
            }
            .to_owned()
        });
        if c.get && !data.is_empty() {
            query = Some(match query {
                Some(q) if !q.is_empty() => format!("{q}&{data}"),
                _ => data.clone(),
            });
            data.clear();
            if c.method.is_none() {
                method = "GET".into();
            }
        }
        let path = if origin == *first {
            path
        } else {
            format!("{origin}{path}")
        };
        let (path, query) = path_and_query(&path, query.as_deref());
        let mut headers: Vec<(String, String)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), doc::literal(v)))
            .collect();
        let header = |hs: &[(String, String)], n: &str| {
            hs.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        if let Some(user) = &c.user {
            if header(&headers, "authorization").is_none() {
                let auth = loadlens_core::encoding::base64(user.as_bytes());
                headers.push(("Authorization".into(), format!("Basic {auth}")));
                draft.notes.push("-u: the password is in the scenario (Authorization: Basic, base64, not encrypted); keep the file private or put it in an environment variable (`${API_AUTH}`)".into());
            }
        }
        let body = (!data.is_empty() || c.json).then(|| {
            let ct = header(&headers, "content-type").unwrap_or_else(|| {
                if c.json {
                    "application/json".into()
                } else {
                    "application/x-www-form-urlencoded".into()
                }
            });
            let body = body_of(&ct, &data);
            if !sets_content_type(&body, &ct) && header(&headers, "content-type").is_none() {
                headers.push(("Content-Type".into(), ct));
            }
            body
        });
        if c.json && header(&headers, "accept").is_none() {
            headers.push(("Accept".into(), "application/json".into()));
        }
        if let Some(Body::Json(_) | Body::Form(_)) = &body {
            // The body kind sets this header itself.
            headers.retain(|(k, v)| {
                !(k.eq_ignore_ascii_case("content-type")
                    && sets_content_type(body.as_ref().unwrap(), v))
            });
        }
        steps.push(Step::Request(Request {
            method,
            path,
            query,
            headers,
            body,
            timeout: c.max_time.map(std::time::Duration::from_secs_f64),
            ..Request::default()
        }));
        if c.insecure && !draft.client.iter().any(|(k, _)| k == "insecure") {
            draft
                .client
                .push(("insecure".into(), doc::Node::Bool(true)));
        }
        if let Some(v) = c.http_version {
            draft.client.retain(|(k, _)| k != "http_version");
            draft
                .client
                .push(("http_version".into(), doc::Node::str(v)));
        }
        if let Some(s) = c.connect_timeout {
            draft.client.retain(|(k, _)| k != "connect_timeout");
            let ms = (s * 1000.0).round().max(1.0) as u64;
            draft.client.push((
                "connect_timeout".into(),
                doc::Node::Plain(format!("{ms}ms")),
            ));
        }
    }
    draft.host = host.or(first_origin);
    let n = steps.len();
    draft.tasks = if n == 1 {
        vec![Task {
            name: None,
            tags: Vec::new(),
            steps,
        }]
    } else {
        vec![Task {
            name: Some(draft.name.clone()),
            tags: Vec::new(),
            steps,
        }]
    };
    if n > 1 {
        draft.hoist_common_headers();
    }
    draft.comments.push(format!(
        "Converted from {n} curl command{} by `loadlens convert curl`.",
        if n == 1 { "" } else { "s" }
    ));
    Ok(draft)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(cmd: &str) -> String {
        let d = to_draft(parse(cmd).unwrap(), None, "t".into()).unwrap();
        let text = d.to_yaml();
        super::super::check(&text, "t.yaml", None).unwrap_or_else(|e| panic!("{e}\n{text}"));
        text
    }

    #[test]
    fn flags_become_the_request() {
        let c = &parse(
            "curl -sS -X POST 'https://api.example.com/v1/orders?b=2&a=1' \\\n  -H 'Content-Type: application/json' -H 'X-Trace: on' \\\n  --data-raw '{\"sku\":\"A1\",\"qty\":2}' -u me:pw --max-time 5 -k",
        )
        .unwrap()[0];
        assert_eq!(c.method.as_deref(), Some("POST"));
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.user.as_deref(), Some("me:pw"));
        let text = yaml("curl -sS -X POST 'https://api.example.com/v1/orders?b=2&a=1' -H 'Content-Type: application/json' -H 'X-Trace: on' --data-raw '{\"sku\":\"A1\",\"qty\":2}' -u me:pw --max-time 5 -k");
        assert!(text.contains("host: https://api.example.com\n"), "{text}");
        assert!(text.contains("method: POST"), "{text}");
        // Query in the written order, JSON body as json: (its Content-Type implied).
        assert!(
            text.find("b: \"2\"").unwrap() < text.find("a: \"1\"").unwrap(),
            "{text}"
        );
        assert!(
            text.contains("sku: A1") && text.contains("qty: 2"),
            "{text}"
        );
        assert!(!text.contains("Content-Type"), "{text}");
        assert!(text.contains("Authorization: Basic bWU6cHc="), "{text}");
        assert!(
            text.contains("timeout: 5s") && text.contains("insecure: true"),
            "{text}"
        );
    }

    #[test]
    fn data_forms_get_json_and_cookies() {
        let text = yaml("curl http://h/login -d user=a -d 'pass=b c' -b 'sid=1; x=2'");
        assert!(
            text.contains("method: POST") && text.contains("form:"),
            "{text}"
        );
        assert!(
            text.contains("pass: b c") && text.contains("Cookie: sid=1; x=2"),
            "{text}"
        );
        let text = yaml("curl -G http://h/search -d q=shoes --data-urlencode 'tag=a&b'");
        assert!(!text.contains("method:"), "{text}");
        assert!(
            text.contains("q: shoes") && text.contains("tag: a&b"),
            "{text}"
        );
        let text = yaml("curl --json '{\"a\":[1]}' h:8080/x");
        assert!(
            text.contains("host: http://h:8080") && text.contains("json:"),
            "{text}"
        );
        assert!(text.contains("Accept: application/json"), "{text}");
        let d = to_draft(
            parse("curl http://h/a ; curl http://other/b").unwrap(),
            Some("http://127.0.0.1:8080/"),
            "t".into(),
        )
        .unwrap();
        let text = d.to_yaml();
        assert!(
            text.contains("host: http://127.0.0.1:8080\n") && text.contains("path: /a\n"),
            "{text}"
        );
        assert!(text.contains("path: http://other/b"), "{text}");
        let text = yaml("curl -XPUT -HX-A:1 -d@/dev/null http://h/");
        assert!(
            text.contains("method: PUT") && text.contains("X-A: \"1\""),
            "{text}"
        );
    }

    #[test]
    fn chrome_copy_all_as_curl_makes_a_flow() {
        let text = yaml(
            "curl 'http://h/a' -H 'accept: */*' ;\ncurl 'http://h/b' -H 'accept: */*' \\\n  --data-raw $'{\"t\":\"it\\'s\\\\n\"}' -H 'content-type: application/json'",
        );
        assert!(
            text.contains("steps:") && text.contains("path: /a") && text.contains("path: /b"),
            "{text}"
        );
        assert!(text.contains("t: \"it's\\n\""), "{text}");
        assert!(
            text.starts_with("# Converted from 2 curl commands"),
            "{text}"
        );
    }

    #[test]
    fn unknown_and_unsupported_flags_are_named() {
        let e = parse("curl --frobnicate http://h/").unwrap_err();
        assert!(e.contains("`--frobnicate`"), "{e}");
        let e = parse("curl -F a=@x http://h/").unwrap_err();
        assert!(e.contains("`-F`") && e.contains("multipart"), "{e}");
        let e = parse("curl --data=x http://h/").unwrap_err();
        assert!(e.contains("`--data x`"), "{e}");
        let e = parse("curl -sZ http://h/").unwrap_err();
        assert!(e.contains("`-Z`"), "{e}");
        assert!(parse("curl 'http://h/").unwrap_err().contains("unbalanced"));
        assert!(parse("wget http://h/").unwrap_err().contains("`wget`"));
        assert!(parse("curl -H").unwrap_err().contains("`-H` needs a value"));
        assert!(parse("curl http://a/ http://b/")
            .unwrap_err()
            .contains("one curl command per URL"));
    }

    #[test]
    fn templates_and_env_syntax_in_data_are_sent_as_written() {
        let text = yaml("curl http://h/ -H 'content-type: text/plain' -d 'x={{y}} ${HOME}'");
        assert!(text.contains("{{ random_choice({{) }}y}}"), "{text}");
        assert!(text.contains("\\x24{HOME}"), "{text}");
    }
}
