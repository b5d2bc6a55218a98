//! `loadlens convert`: a scenario from what users already have — a HAR file recorded in a
//! browser ([`har`]), an OpenAPI 3 document ([`openapi`]) or curl command lines ([`curl`]).
//!
//! Each converter reads its input into a [`Draft`] (host, headers, variables, tasks of
//! requests and think times); [`Draft::to_yaml`] writes it as a commented scenario, and
//! [`write()`] checks that text as `loadlens validate` does (every `${VAR:-default}` at its
//! default) before printing it or writing `-o FILE`, so a converted scenario passes
//! `validate`. Text taken from the
//! input goes through [`doc::literal`], so a `{{` or `${` in a recorded body is sent as
//! recorded, not read as a template or an environment variable.

pub mod curl;
pub mod doc;
pub mod har;
pub mod openapi;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::exit::{Exit, Failure};
use doc::Node;

/// `loadlens convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// What to convert.
    #[command(subcommand)]
    pub from: Source,
}

/// The kinds of input.
#[derive(Subcommand, Debug)]
pub enum Source {
    /// A HAR file recorded in a browser (DevTools › Network › Save all as HAR): its requests
    /// in order, think times from the recorded gaps.
    Har(har::HarArgs),
    /// An OpenAPI 3.0/3.1 document (JSON or YAML): one task per operation.
    Openapi(openapi::OpenApiArgs),
    /// curl command lines (DevTools › Copy as cURL): from the argument, a file or stdin (`-`).
    Curl(curl::CurlArgs),
}

/// Flags every converter takes.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Write the scenario to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The scenario's `name:` (default: the input file's stem).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// Run `loadlens convert`.
pub fn run(args: ConvertArgs) -> Result<Exit, Failure> {
    let invalid = |m: String| Failure::new(Exit::InvalidInput, m);
    let (draft, common) = match args.from {
        Source::Har(a) => (har::convert(&a).map_err(invalid)?, a.common),
        Source::Openapi(a) => (openapi::convert(&a).map_err(invalid)?, a.common),
        Source::Curl(a) => (curl::convert(&a).map_err(invalid)?, a.common),
    };
    write(&draft, &common)
}

/// Check the draft's text as `validate` does, then print it or write it to `-o`.
fn write(draft: &Draft, common: &Common) -> Result<Exit, Failure> {
    let text = draft.to_yaml();
    let shown = common
        .output
        .as_ref()
        .map_or("the converted scenario".to_owned(), |p| {
            p.display().to_string()
        });
    check(&text, &shown, common.output.as_deref()).map_err(|e| {
        Failure::new(
            Exit::Internal,
            format!("{e}\n(the converted scenario does not pass validate: a bug in convert; the input that caused it helps)\n{text}"),
        )
    })?;
    for note in &draft.notes {
        tell!("note: {note}");
    }
    match &common.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| {
                Failure::new(
                    Exit::Internal,
                    format!("cannot write {}: {e}", path.display()),
                )
            })?;
            tell!(
                "wrote {} ({} tasks, {} requests) — check it: loadlens validate {0}",
                path.display(),
                draft.tasks.len(),
                draft.requests()
            );
        }
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| Failure::new(Exit::Internal, format!("cannot write stdout: {e}")))?;
        }
    }
    Ok(Exit::Passed)
}

/// What `loadlens validate` checks, on `text`: parse, sections, compile.
pub fn check(text: &str, file: &str, path: Option<&Path>) -> Result<(), String> {
    use loadlens_core::scenario::Scenario;
    let dir = path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let s =
        // Every `${VAR:-default}` convert writes has a default: check with those, so that the
        // user's environment (an API key) never reaches an error message.
        Scenario::parse(text, file, dir, |_| None).map_err(|e| e.to_string())?;
    loadlens_sinks::integration::check_sections(&s, &loadlens_sinks::registry())
        .map_err(|e| e.to_string())?;
    let opts = loadlens_core::plan::PlanOptions {
        host: s.host.is_none().then(|| "http://host.invalid".to_owned()),
        ..Default::default()
    };
    loadlens_core::plan::Plan::compile(&s, &opts).map_err(|e| e.to_string())?;
    Ok(())
}

/// A scenario being built: what every converter produces.
#[derive(Debug, Default, Clone)]
pub struct Draft {
    /// Lines for the header comment (what was converted, what was left out).
    pub comments: Vec<String>,
    /// Printed on stderr after a successful conversion (what the user should look at).
    pub notes: Vec<String>,
    /// `name:`.
    pub name: String,
    /// `host:`: the base URL of relative paths.
    pub host: Option<String>,
    /// `headers:` sent with every request.
    pub headers: Vec<(String, String)>,
    /// `vars:`.
    pub vars: Vec<(String, String)>,
    /// `client:` settings.
    pub client: Vec<(String, Node)>,
    /// The user type's name.
    pub user_type: String,
    /// The tasks.
    pub tasks: Vec<Task>,
}

/// One task: a request, or a flow of requests and think times.
#[derive(Debug, Default, Clone)]
pub struct Task {
    /// `name:` (default: the request's name).
    pub name: Option<String>,
    /// `tags:` (for `-T`/`-E`).
    pub tags: Vec<String>,
    /// The steps.
    pub steps: Vec<Step>,
}

/// One step of a task.
#[derive(Debug, Clone)]
pub enum Step {
    /// A request.
    Request(Request),
    /// A pause.
    Think(Duration),
}

/// One request. Text fields are templates: converters put input text through
/// [`doc::literal`].
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Path (relative to the host) or absolute URL.
    pub path: String,
    /// Statistics name, when the default (the path) is not the right one.
    pub name: Option<String>,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Option<Body>,
    /// `timeout:`.
    pub timeout: Option<Duration>,
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// `json:`.
    Json(Node),
    /// `form:` (URL-encoded; names unique).
    Form(Vec<(String, String)>),
    /// `body:` (raw text; the request's headers carry its type).
    Text(String),
}

impl Draft {
    /// How many requests the tasks make (one pass).
    pub fn requests(&self) -> usize {
        self.tasks
            .iter()
            .flat_map(|t| &t.steps)
            .filter(|s| matches!(s, Step::Request(_)))
            .count()
    }

    /// Move the headers that every request sends with the same value to `headers:`.
    pub fn hoist_common_headers(&mut self) {
        let requests: Vec<&Request> = self.requests_iter().collect();
        let Some(first) = requests.first() else {
            return;
        };
        if requests.len() < 2 {
            return;
        }
        let common: Vec<(String, String)> = first
            .headers
            .iter()
            .filter(|(k, v)| {
                requests.iter().all(|r| {
                    r.headers
                        .iter()
                        .any(|(k2, v2)| k2.eq_ignore_ascii_case(k) && v2 == v)
                })
            })
            .cloned()
            .collect();
        for step in self.tasks.iter_mut().flat_map(|t| &mut t.steps) {
            if let Step::Request(r) = step {
                r.headers
                    .retain(|(k, _)| !common.iter().any(|(c, _)| c.eq_ignore_ascii_case(k)));
            }
        }
        self.headers.extend(common);
    }

    fn requests_iter(&self) -> impl Iterator<Item = &Request> {
        self.tasks
            .iter()
            .flat_map(|t| &t.steps)
            .filter_map(|s| match s {
                Step::Request(r) => Some(r),
                Step::Think(_) => None,
            })
    }

    /// The scenario's text.
    pub fn to_yaml(&self) -> String {
        let pairs = |p: &[(String, String)]| {
            Node::Map(p.iter().map(|(k, v)| (k.clone(), Node::str(v))).collect())
        };
        let tags = |t: &Task| Node::Seq(t.tags.iter().map(Node::str).collect());
        let tasks = self.tasks.iter().map(|t| match t.steps.as_slice() {
            [Step::Request(r)] => Node::map([
                ("name", t.name.clone().map_or(Node::Null, Node::Str)),
                ("tags", tags(t)),
                ("request", request(r)),
            ]),
            steps => Node::map([
                ("name", t.name.clone().map_or(Node::Null, Node::Str)),
                ("tags", tags(t)),
                (
                    "steps",
                    Node::Seq(
                        steps
                            .iter()
                            .map(|s| match s {
                                Step::Request(r) => Node::map([("request", request(r))]),
                                Step::Think(d) => Node::map([("think", duration(*d))]),
                            })
                            .collect(),
                    ),
                ),
            ]),
        });
        let tasks = tasks.map(|t| match t {
            Node::Map(m) => Node::Map(m.into_iter().filter(|(_, v)| *v != Node::Null).collect()),
            other => other,
        });
        let user_type = Node::map([
            ("name", Node::str(&self.user_type)),
            ("tasks", Node::Seq(tasks.collect())),
        ]);
        let root = Node::map([
            ("name", Node::str(&self.name)),
            (
                "host",
                self.host
                    .clone()
                    .map_or(Node::Null, |h| Node::Plain(host_text(&h))),
            ),
            ("headers", pairs(&self.headers)),
            (
                "vars",
                Node::Map(
                    self.vars
                        .iter()
                        .map(|(k, v)| (k.clone(), Node::Plain(host_text(v))))
                        .collect(),
                ),
            ),
            ("client", Node::Map(self.client.clone())),
            ("user_types", Node::Seq(vec![user_type])),
        ]);
        let root = match root {
            Node::Map(m) => Node::Map(m.into_iter().filter(|(_, v)| *v != Node::Null).collect()),
            other => other,
        };
        let mut text = doc::to_yaml(&self.comments, &root);
        text.push_str(
            "# load: { users: 10, spawn_rate: 2, run_time: 5m }   # or -u/-r/-t on the command line\n",
        );
        text
    }
}

/// The host (or a variable) as written: a `${VAR:-default}` stays unquoted (it is substituted before parsing;
/// quoting would keep the quotes' escapes out of it), anything else as a scalar.
fn host_text(h: &str) -> String {
    if h.starts_with("${") && h.ends_with('}') && !h.contains(['"', '\'', '#', '\n']) {
        h.to_owned()
    } else {
        doc::scalar(h)
    }
}

fn request(r: &Request) -> Node {
    let pairs = |p: &[(String, String)]| {
        Node::Map(p.iter().map(|(k, v)| (k.clone(), Node::str(v))).collect())
    };
    let method = if r.method.eq_ignore_ascii_case("GET") {
        Node::Null
    } else {
        Node::str(&r.method)
    };
    let body = match &r.body {
        None => None,
        Some(Body::Json(j)) => Some(("json", j.clone())),
        Some(Body::Form(f)) => Some(("form", pairs(f))),
        Some(Body::Text(t)) => Some(("body", Node::str(t))),
    };
    let mut entries = vec![
        ("method", method),
        ("path", Node::str(&r.path)),
        ("name", r.name.clone().map_or(Node::Null, Node::Str)),
        ("query", pairs(&r.query)),
        ("headers", pairs(&r.headers)),
    ];
    entries.extend(body);
    entries.push(("timeout", r.timeout.map_or(Node::Null, duration)));
    match Node::map(entries) {
        Node::Map(m) => Node::Map(
            m.into_iter()
                // `json: null` is a body; every other null is a key left out.
                .filter(|(k, v)| *v != Node::Null || k == "json")
                .collect(),
        ),
        other => other,
    }
}

/// A duration as the scenario writes it: `1500ms`, `2s`.
fn duration(d: Duration) -> Node {
    let ms = d.as_millis();
    Node::Plain(if ms.is_multiple_of(1000) && ms > 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    })
}

/// A URL split into its origin (`scheme://host[:port]`, userinfo kept), its path (`/` when
/// empty) and its raw query (without `?`), fragment dropped.
pub fn split_url(url: &str) -> Option<(String, String, Option<String>)> {
    let url = url.split('#').next().unwrap_or(url);
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty() || rest.is_empty() {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let origin = format!("{}://{}", scheme.to_ascii_lowercase(), &rest[..end]);
    let after = &rest[end..];
    let (path, query) = match after.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (after, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    Some((origin, path.to_owned(), query))
}

/// A raw query (`a=1&b=x+y`) as decoded pairs in order (`+` is a space, as browsers send
/// forms). `None` when a name repeats: a YAML map cannot say that, so the caller keeps the
/// query in the path.
pub fn query_pairs(raw: &str) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let decode = |s: &str| {
            String::from_utf8(loadlens_core::encoding::percent_decode(
                &s.replace('+', " "),
            ))
            .ok()
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if k.is_empty() || out.iter().any(|(seen, _)| *seen == k) {
            return None;
        }
        out.push((k, v));
    }
    Some(out)
}

/// The path and query of a request: the query as `query:` pairs when it can be, else kept in
/// the path as it was.
pub fn path_and_query(path: &str, query: Option<&str>) -> (String, Vec<(String, String)>) {
    match query.filter(|q| !q.is_empty()) {
        None => (doc::literal(path), Vec::new()),
        Some(q) => match query_pairs(q) {
            Some(pairs) => (
                doc::literal(path),
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, doc::literal(&v)))
                    .collect(),
            ),
            None => (doc::literal(&format!("{path}?{q}")), Vec::new()),
        },
    }
}

/// A body of `content_type` from its text: `json:` for JSON that parses, `form:` for a
/// URL-encoded form whose names are unique, else `body:` (and the caller keeps the
/// `Content-Type` header).
pub fn body_of(content_type: &str, text: &str) -> Body {
    let ct = content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence == "application/json" || essence.ends_with("+json") {
        if let Ok(node) = doc::read_json(text) {
            return Body::Json(doc::literal_json(node));
        }
    }
    if essence == "application/x-www-form-urlencoded" && !text.contains('\n') {
        if let Some(pairs) = query_pairs(text) {
            return Body::Form(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, doc::literal(&v)))
                    .collect(),
            );
        }
    }
    Body::Text(doc::literal(text))
}

/// Whether a body kind sets its own `Content-Type` (so a recorded one is redundant).
pub fn sets_content_type(body: &Body, content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match body {
        Body::Json(_) => essence == "application/json",
        Body::Form(_) => essence == "application/x-www-form-urlencoded",
        _ => false,
    }
}

/// A variable name (`[A-Za-z_][A-Za-z0-9_]*`) from any text: other characters become `_`.
pub fn var_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// The stem of an input path, for the scenario's default name.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty() && s != "-")
        .unwrap_or_else(|| "converted".to_owned())
}

/// Read an input file (`-`: stdin), naming it in the error.
pub fn read_input(path: &Path) -> Result<String, String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        return Ok(s);
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Draft {
        let get = |path: &str, extra: &[(&str, &str)]| Request {
            method: "GET".into(),
            path: path.into(),
            headers: [("Accept", "application/json")]
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        };
        Draft {
            name: "t".into(),
            host: Some("${TARGET_HOST:-http://127.0.0.1:9}".into()),
            user_type: "user".into(),
            tasks: vec![
                Task {
                    name: None,
                    tags: Vec::new(),
                    steps: vec![Step::Request(get("/a", &[("X-One", "1")]))],
                },
                Task {
                    name: Some("flow".into()),
                    tags: Vec::new(),
                    steps: vec![
                        Step::Request(get("/b", &[])),
                        Step::Think(Duration::from_millis(1500)),
                        Step::Request(Request {
                            method: "POST".into(),
                            body: Some(body_of("application/json", r#"{"z": "{{x}}", "a": 1}"#)),
                            ..get("/c", &[])
                        }),
                    ],
                },
            ],
            ..Draft::default()
        }
    }

    #[test]
    fn a_draft_passes_validate_and_hoists_shared_headers() {
        let mut d = sample();
        d.hoist_common_headers();
        assert_eq!(
            d.headers,
            [("Accept".to_owned(), "application/json".to_owned())]
        );
        let text = d.to_yaml();
        check(&text, "t.yaml", None).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(
            text.contains("host: ${TARGET_HOST:-http://127.0.0.1:9}\n"),
            "{text}"
        );
        assert!(text.contains("think: 1500ms"), "{text}");
        // The body's key order is the recorded one.
        assert!(
            text.find("z:").unwrap() < text.find("a: 1").unwrap(),
            "{text}"
        );
    }

    #[test]
    fn urls_and_queries_split_in_order() {
        assert_eq!(
            split_url("HTTP://h:8/p/q?b=2&a=1#frag"),
            Some(("http://h:8".into(), "/p/q".into(), Some("b=2&a=1".into())))
        );
        assert_eq!(
            split_url("https://h"),
            Some(("https://h".into(), "/".into(), None))
        );
        assert_eq!(split_url("nope"), None);
        assert_eq!(
            query_pairs("b=x+y&a=%C3%A9&c"),
            Some(vec![
                ("b".into(), "x y".into()),
                ("a".into(), "é".into()),
                ("c".into(), "".into())
            ])
        );
        assert_eq!(query_pairs("id=1&id=2"), None);
        assert_eq!(
            path_and_query("/s", Some("id=1&id=2")),
            ("/s?id=1&id=2".into(), vec![])
        );
        assert_eq!(var_name("pet-id"), "pet_id");
        assert_eq!(var_name("1x"), "_1x");
    }
}
