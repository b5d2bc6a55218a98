//! `loadlens convert har`: a HAR file (HTTP Archive 1.2, as browsers' DevTools and Playwright
//! save it) into one flow: the recorded requests in order, with the recorded gaps between them
//! as think times.
//!
//! What a replay should not repeat is left out, and the header comment says how much of each:
//! static assets (images, styles, scripts, fonts, media: by extension, response type or
//! DevTools' resource type; `--keep-static`, `--include`), other origins than the first page's
//! (analytics, CDNs: `--origin`, `--all-origins`), CORS preflights, responses served from the
//! browser's cache, and the headers a client sets itself or that tie the recording to one
//! browser and one session (cookies — each virtual user keeps its own jar, filled by the
//! responses — hop-by-hop and HTTP/2 pseudo headers, `sec-ch-*`/`sec-fetch-*`, `User-Agent`,
//! conditional requests; `--keep-header`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::{body_of, doc, path_and_query, sets_content_type, split_url, Body, Common, Draft};
use super::{Request, Step, Task};

/// `loadlens convert har`.
#[derive(Args, Debug, Clone, Default)]
pub struct HarArgs {
    /// The HAR file (`-`: stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Leave out the requests whose URL matches REGEX (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub exclude: Vec<String>,
    /// Keep only the requests whose URL matches REGEX (repeatable); a match is kept even when
    /// it is a static asset.
    #[arg(long, value_name = "REGEX")]
    pub include: Vec<String>,
    /// Keep static assets (images, styles, scripts, fonts, media), left out by default.
    #[arg(long)]
    pub keep_static: bool,
    /// Keep only the requests to this origin (`https://shop.example.com`; repeatable).
    /// Default: the origin of the first page.
    #[arg(long, value_name = "ORIGIN", conflicts_with = "all_origins")]
    pub origin: Vec<String>,
    /// Keep the requests to every origin (third parties too).
    #[arg(long)]
    pub all_origins: bool,
    /// The scenario's `host:` instead of the first kept origin (its requests become paths
    /// relative to it; `run -H` overrides it again).
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,
    /// Keep a header that is left out by default (`User-Agent`, `Cookie`, …; repeatable).
    #[arg(long, value_name = "NAME")]
    pub keep_header: Vec<String>,
    /// Leave out one more header (repeatable).
    #[arg(long, value_name = "NAME")]
    pub drop_header: Vec<String>,
    /// No think times.
    #[arg(long)]
    pub no_think: bool,
    /// Shorter recorded gaps are not think times.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = crate::cli::duration)]
    pub min_think: Duration,
    /// Longer recorded gaps are cut to this (default: none).
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration)]
    pub max_think: Option<Duration>,
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
}

#[derive(Deserialize)]
struct Har {
    log: Log,
}

#[derive(Deserialize)]
struct Log {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "startedDateTime")]
    started: String,
    #[serde(default)]
    time: Option<f64>,
    request: HarRequest,
    #[serde(default)]
    response: Option<HarResponse>,
    #[serde(rename = "_resourceType", default)]
    resource_type: Option<String>,
    #[serde(rename = "_fromCache", default)]
    from_cache: Option<String>,
}

#[derive(Deserialize)]
struct HarRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(rename = "postData", default)]
    post_data: Option<PostData>,
}

#[derive(Deserialize)]
struct NameValue {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct PostData {
    #[serde(rename = "mimeType", default)]
    mime_type: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    params: Vec<NameValue>,
}

#[derive(Deserialize)]
struct HarResponse {
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(rename = "mimeType", default)]
    mime_type: Option<String>,
}

/// Headers a replay must not copy: set by the client itself, hop-by-hop, tied to the recorded
/// session or browser, or conditional on the recording's cache.
const DROPPED: &[&str] = &[
    "cookie",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "accept-encoding",
    "user-agent",
    "upgrade-insecure-requests",
    "priority",
    "dnt",
    "sec-gpc",
    "purpose",
    "sec-purpose",
    "if-none-match",
    "if-modified-since",
    "x-client-data",
];
const DROPPED_PREFIXES: &[&str] = &[":", "sec-ch-", "sec-fetch-", "sec-websocket-"];

/// Paths of static assets, by extension.
const STATIC_PATH: &str = r"(?i)\.(css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|bmp|tiff?|woff2?|ttf|otf|eot|mp4|webm|ogg|mp3|wav|m4a)$";

/// Convert the HAR file of `args`.
pub fn convert(args: &HarArgs) -> Result<Draft, String> {
    let text = super::read_input(&args.file)?;
    let file = args.file.display().to_string();
    let har: Har = serde_json::from_str(&text)
        .map_err(|e| format!("{file}:{}:{}: not a HAR file: {e}", e.line(), e.column()))?;
    let name = args
        .common
        .name
        .clone()
        .unwrap_or_else(|| super::stem(&args.file));
    to_draft(har.log.entries, args, &file, name)
}

fn regexes(list: &[String], flag: &str) -> Result<Vec<regex_lite::Regex>, String> {
    list.iter()
        .map(|r| regex_lite::Regex::new(r).map_err(|e| format!("{flag} {r}: {e}")))
        .collect()
}

/// `scheme://host[:port]`, lowercased, without a default port.
fn normalize_origin(o: &str) -> String {
    let o = o.trim_end_matches('/').to_ascii_lowercase();
    o.strip_suffix(":80")
        .filter(|b| b.starts_with("http://"))
        .or_else(|| o.strip_suffix(":443").filter(|b| b.starts_with("https://")))
        .map_or(o.clone(), str::to_owned)
}

fn is_static(path: &str, entry: &Entry, ext: &regex_lite::Regex) -> bool {
    let mime = entry
        .response
        .as_ref()
        .and_then(|r| r.content.as_ref())
        .and_then(|c| c.mime_type.as_deref())
        .unwrap_or("")
        .to_ascii_lowercase();
    let by_mime = [
        "image/",
        "font/",
        "video/",
        "audio/",
        "text/css",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/font-",
    ]
    .iter()
    .any(|p| mime.starts_with(p));
    let by_type = matches!(
        entry.resource_type.as_deref(),
        Some("image" | "stylesheet" | "script" | "font" | "media" | "manifest")
    );
    ext.is_match(path) || by_mime || by_type
}

/// Milliseconds since the epoch of an ISO 8601 time (`2024-05-01T10:00:00.123Z`, or with an
/// offset such as `+02:00`, as Firefox writes).
pub fn millis(t: &str) -> Option<f64> {
    let t = t.trim();
    let (base, offset_min) = if let Some(b) = t.strip_suffix(['Z', 'z']) {
        (b, 0i64)
    } else {
        let time_at = t.find('T')?;
        let sign_at = t[time_at..].rfind(['+', '-']).map(|i| i + time_at)?;
        let (h, m) = t[sign_at + 1..]
            .split_once(':')
            .unwrap_or((&t[sign_at + 1..], "0"));
        let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
        let sign = if t.as_bytes()[sign_at] == b'-' { -1 } else { 1 };
        (&t[..sign_at], sign * minutes)
    };
    let at = humantime::parse_rfc3339_weak(base).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0;
    Some(ms - (offset_min * 60_000) as f64)
}

fn to_draft(
    entries: Vec<Entry>,
    args: &HarArgs,
    file: &str,
    name: String,
) -> Result<Draft, String> {
    let exclude = regexes(&args.exclude, "--exclude")?;
    let include = regexes(&args.include, "--include")?;
    let ext = regex_lite::Regex::new(STATIC_PATH).expect("a valid pattern");
    let total = entries.len();
    let mut entries: Vec<(f64, Entry)> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            millis(&e.started).map(|t| (t, e)).ok_or_else(|| {
                format!("{file}: log.entries[{i}].startedDateTime: not an ISO 8601 time")
            })
        })
        .collect::<Result<_, _>>()?;
    // HAR's entries are in start order; sort anyway (stable), some tools append out of order.
    entries.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Origins: the first page's (a document, else the first request), unless told otherwise.
    let web: Vec<&(f64, Entry)> = entries
        .iter()
        .filter(|(_, e)| {
            e.request.url.starts_with("http://") || e.request.url.starts_with("https://")
        })
        .collect();
    let first_page = web
        .iter()
        .find(|(_, e)| {
            e.resource_type.as_deref() == Some("document")
                || e.response
                    .as_ref()
                    .and_then(|r| r.content.as_ref())
                    .and_then(|c| c.mime_type.as_deref())
                    .is_some_and(|m| m.starts_with("text/html"))
        })
        .or(web.first())
        .and_then(|(_, e)| split_url(&e.request.url))
        .map(|(o, _, _)| normalize_origin(&o));
    let origins: Vec<String> = if args.origin.is_empty() {
        first_page.iter().cloned().collect()
    } else {
        args.origin.iter().map(|o| normalize_origin(o)).collect()
    };

    let mut left = Left::default();
    let mut kept: Vec<(f64, f64, Request, String)> = Vec::new();
    for (start, e) in &entries {
        let url = &e.request.url;
        let Some((origin, path, query)) = split_url(url).filter(|_| url.starts_with("http")) else {
            left.other_schemes += 1;
            continue;
        };
        let origin = normalize_origin(&origin);
        let included = include.iter().any(|r| r.is_match(url));
        if !include.is_empty() && !included {
            left.not_included += 1;
            continue;
        }
        if exclude.iter().any(|r| r.is_match(url)) {
            left.excluded += 1;
            continue;
        }
        if !args.all_origins && !origins.contains(&origin) {
            if !left.origins.contains(&origin) {
                left.origins.push(origin.clone());
            }
            left.other_origins += 1;
            continue;
        }
        if !args.keep_static && !included && is_static(&path, e, &ext) {
            left.statics += 1;
            continue;
        }
        let header = |n: &str| {
            e.request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(n))
                .and_then(|h| h.value.clone())
        };
        if e.request.method.eq_ignore_ascii_case("OPTIONS")
            && header("access-control-request-method").is_some()
        {
            left.preflights += 1;
            continue;
        }
        if e.from_cache.as_deref().is_some_and(|c| !c.is_empty()) {
            left.cached += 1;
            continue;
        }
        kept.push((
            *start,
            e.time.unwrap_or(0.0).max(0.0),
            request(e, args, &path, query.as_deref())?,
            origin,
        ));
    }
    if kept.is_empty() {
        return Err(format!(
            "{file}: no request left to convert out of {total} entries ({}){}",
            left.describe(),
            if left.statics > 0 {
                "; --keep-static keeps static assets"
            } else {
                ""
            }
        ));
    }

    // The host: --host, else the first kept origin; requests to that origin become relative.
    let main_origin = kept[0].3.clone();
    let host = args
        .host
        .clone()
        .map(|h| h.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| main_origin.clone());
    let mut steps = Vec::new();
    let mut prev_end: Option<f64> = None;
    let mut think_total = Duration::ZERO;
    // With --host, the recorded origin in Origin and Referer follows it (servers that check
    // them against their own name, for CSRF, would refuse the recorded one).
    let new_origin = args
        .host
        .as_deref()
        .and_then(split_url)
        .map(|(o, _, _)| o)
        .filter(|o| *o != main_origin);
    for (start, took, mut req, origin) in kept {
        if origin != main_origin {
            req.path = format!("{}{}", doc::literal(&origin), req.path);
        }
        if let Some(new) = &new_origin {
            for (k, v) in &mut req.headers {
                if (k.eq_ignore_ascii_case("origin") || k.eq_ignore_ascii_case("referer"))
                    && v.to_ascii_lowercase().starts_with(&main_origin)
                {
                    *v = format!("{}{}", doc::literal(new), &v[main_origin.len()..]);
                }
            }
        }
        if let (Some(end), false) = (prev_end, args.no_think) {
            let gap = Duration::from_millis((start - end).max(0.0).round() as u64);
            let gap = args.max_think.map_or(gap, |m| gap.min(m));
            if gap >= args.min_think && !gap.is_zero() {
                think_total += gap;
                steps.push(Step::Think(gap));
            }
        }
        prev_end = Some(prev_end.map_or(start + took, |p: f64| p.max(start + took)));
        steps.push(Step::Request(req));
    }
    let empty_bodies = entries
        .iter()
        .filter(|(_, e)| {
            e.request
                .post_data
                .as_ref()
                .is_some_and(|p| p.text.as_deref() == Some("") && p.params.is_empty())
        })
        .count();
    let mut draft = Draft {
        name: name.clone(),
        host: Some(host),
        user_type: "browser".into(),
        tasks: vec![Task {
            name: Some(name),
            tags: Vec::new(),
            steps,
        }],
        ..Draft::default()
    };
    draft.hoist_common_headers();
    let n = draft.requests();
    draft.comments.push(format!(
        "Converted from {file} by `loadlens convert har`: {n} of its {total} requests, in the recorded order."
    ));
    if left.total() > 0 {
        draft
            .comments
            .push(format!("Left out: {}.", left.describe()));
    }
    if !left.origins.is_empty() {
        draft.comments.push(format!(
            "Other origins left out: {} (--origin URL or --all-origins keeps them).",
            left.origins.join(", ")
        ));
    }
    draft.comments.push(if args.no_think {
        "No think times (--no-think).".to_owned()
    } else {
        format!(
            "Think times: the recorded gaps of {} or more between requests ({:.1} s in all; --min-think, --max-think, --no-think).",
            humantime::format_duration(args.min_think),
            think_total.as_secs_f64()
        )
    });
    draft.comments.push("Headers left out: cookies (each virtual user keeps its own, from the responses), hop-by-hop and HTTP/2 pseudo headers, User-Agent, sec-ch-*/sec-fetch-*, conditional ones (--keep-header NAME keeps one).".into());
    if empty_bodies > 0 {
        draft.notes.push(format!("{empty_bodies} recorded request bodies are empty in the HAR (saved without content?): they are sent empty; record with content to keep them"));
    }
    if draft.requests_with_auth() {
        draft.notes.push("a recorded Authorization header is replayed as it was: a token that expires must be captured from its login response instead (`capture:` in the README)".into());
    }
    Ok(draft)
}

impl Draft {
    fn requests_with_auth(&self) -> bool {
        self.headers
            .iter()
            .chain(
                self.tasks
                    .iter()
                    .flat_map(|t| &t.steps)
                    .flat_map(|s| match s {
                        Step::Request(r) => r.headers.as_slice(),
                        Step::Think(_) => &[],
                    }),
            )
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    }
}

/// One kept entry as a request.
fn request(e: &Entry, args: &HarArgs, path: &str, query: Option<&str>) -> Result<Request, String> {
    let keep = |n: &str| args.keep_header.iter().any(|k| k.eq_ignore_ascii_case(n));
    let mut headers: Vec<(String, String)> = Vec::new();
    for h in &e.request.headers {
        let lower = h.name.to_ascii_lowercase();
        let dropped = DROPPED.contains(&lower.as_str())
            || DROPPED_PREFIXES.iter().any(|p| lower.starts_with(p))
            || args
                .drop_header
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&lower));
        // Browsers send some headers twice in HAR (HTTP/1 and the pseudo view): keep the first.
        if (dropped && !keep(&lower))
            || headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(&h.name))
        {
            continue;
        }
        headers.push((
            h.name.clone(),
            doc::literal(h.value.as_deref().unwrap_or("")),
        ));
    }
    let body = e.request.post_data.as_ref().and_then(|p| {
        let ct = if p.mime_type.is_empty() {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        } else {
            p.mime_type.clone()
        };
        match &p.text {
            Some(t) => Some(body_of(&ct, t)),
            None if !p.params.is_empty() => Some(Body::Form(
                p.params
                    .iter()
                    .map(|nv| {
                        (
                            nv.name.clone(),
                            doc::literal(nv.value.as_deref().unwrap_or("")),
                        )
                    })
                    .collect(),
            )),
            None => None,
        }
    });
    if let Some(b) = &body {
        headers
            .retain(|(k, v)| !(k.eq_ignore_ascii_case("content-type") && sets_content_type(b, v)));
    }
    let (path, query) = path_and_query(path, query);
    Ok(Request {
        method: e.request.method.to_ascii_uppercase(),
        path,
        query,
        headers,
        body,
        ..Request::default()
    })
}

/// What was left out, counted.
#[derive(Default)]
struct Left {
    statics: usize,
    other_origins: usize,
    origins: Vec<String>,
    excluded: usize,
    not_included: usize,
    preflights: usize,
    cached: usize,
    other_schemes: usize,
}

impl Left {
    fn total(&self) -> usize {
        self.statics
            + self.other_origins
            + self.excluded
            + self.not_included
            + self.preflights
            + self.cached
            + self.other_schemes
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.statics, "static assets (--keep-static keeps them)"),
            (self.other_origins, "to other origins"),
            (self.excluded, "matching --exclude"),
            (self.not_included, "not matching --include"),
            (self.preflights, "CORS preflights"),
            (self.cached, "served from the browser's cache"),
            (self.other_schemes, "not http(s) (data:, blob:, ws:, …)"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests;
