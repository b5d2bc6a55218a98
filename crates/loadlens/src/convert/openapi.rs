//! `loadlens convert openapi`: an OpenAPI 3.0 or 3.1 document (JSON or YAML) into one task per
//! operation, named by its `operationId` (else `METHOD /path`) and tagged with its tags (so
//! `-T pet` runs one group).
//!
//! - Path parameters become variables: `/pet/{petId}` is requested as `/pet/{{ petId }}`
//!   (statistics name `/pet/{petId}`), with `vars: { petId: "1" }` from the parameter's
//!   example, default or enum, or a value of its type — edit them, or feed them from a CSV.
//! - Required query and header parameters (and those with an example) are sent with their
//!   example values.
//! - Bodies: the media type's `example`/`examples`, else one generated from the schema
//!   (`$ref`s within the document followed, cycles cut, `allOf` merged, the first of
//!   `oneOf`/`anyOf`, `readOnly` properties left out); JSON as `json:`, URL-encoded forms as
//!   `form:`. Multipart bodies are left out (noted).
//! - Security: an API key or bearer token goes where the scheme says, from a variable that
//!   reads the environment (`${API_KEY:-CHANGE_ME}`), never a value from the document.
//! - `host:` is `servers[0]` (its variables at their defaults); `--host` replaces it.
//!
//! The document is walked as a plain tree ([`Node`]) rather than typed with an OpenAPI crate:
//! the few fields used here are the same in 3.0 and 3.1, and a tree keeps the document's
//! order, which the scenario follows.

use std::path::PathBuf;

use clap::Args;

use super::doc::{self, Node};
use super::{var_name, Body, Common, Draft, Request, Step, Task};

/// `loadlens convert openapi`.
#[derive(Args, Debug, Clone, Default)]
pub struct OpenApiArgs {
    /// The OpenAPI 3 document (JSON or YAML; `-`: stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The server URL to test instead of `servers[0]` (e.g. `http://127.0.0.1:8080/v2`).
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,
    /// Only the operations with one of these tags (repeatable).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Convert the document of `args`.
pub fn convert(args: &OpenApiArgs) -> Result<Draft, String> {
    let text = super::read_input(&args.file)?;
    let file = args.file.display().to_string();
    let root = if text.trim_start().starts_with('{') {
        doc::read_json(&text)
    } else {
        doc::read_yaml(&text)
    }
    .map_err(|e| format!("{file}: {e}"))?;
    let name = args
        .common
        .name
        .clone()
        .unwrap_or_else(|| super::stem(&args.file));
    to_draft(&root, args, &file, name)
}

/// Follow `$ref`s (`#/components/…`) within the document.
fn resolve<'a>(root: &'a Node, mut node: &'a Node) -> Result<&'a Node, String> {
    for _ in 0..32 {
        let Some(r) = node.get("$ref").and_then(Node::as_str) else {
            return Ok(node);
        };
        node = pointer(root, r)?;
    }
    Err("`$ref`s refer to each other in a loop".into())
}

fn pointer<'a>(root: &'a Node, r: &str) -> Result<&'a Node, String> {
    let Some(path) = r.strip_prefix('#') else {
        return Err(format!(
            "`$ref: {r}` points outside the document (only `#/…` is followed)"
        ));
    };
    let mut node = root;
    for seg in path.split('/').skip(1) {
        let seg = String::from_utf8_lossy(&loadlens_core::encoding::percent_decode(seg))
            .replace("~1", "/")
            .replace("~0", "~");
        node = match node {
            Node::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => node.get(&seg),
        }
        .ok_or_else(|| format!("`$ref: {r}`: no `{seg}` in the document"))?;
    }
    Ok(node)
}

struct Ctx<'a> {
    root: &'a Node,
    notes: Vec<String>,
    vars: Vec<(String, String)>,
}

impl Ctx<'_> {
    /// A variable named after `name`, holding `value` unless one of that name holds another
    /// value already (then `name_2`, …).
    fn var(&mut self, name: &str, value: String) -> String {
        let base = var_name(name);
        let mut candidate = base.clone();
        for i in 2.. {
            match self.vars.iter().find(|(k, _)| *k == candidate) {
                None => {
                    self.vars.push((candidate.clone(), value));
                    return candidate;
                }
                Some((_, v)) if *v == value => return candidate,
                Some(_) => candidate = format!("{base}_{i}"),
            }
        }
        unreachable!("an unused name is found")
    }
}

fn to_draft(root: &Node, args: &OpenApiArgs, file: &str, name: String) -> Result<Draft, String> {
    let version = match (root.get("openapi").and_then(Node::as_str), root.get("swagger")) {
        (Some(v), _) if v.starts_with("3.") => v.to_owned(),
        (Some(v), _) => return Err(format!("{file}: openapi: {v}: only OpenAPI 3.0 and 3.1 are read")),
        (None, Some(_)) => {
            return Err(format!("{file}: a Swagger 2.0 document: convert it to OpenAPI 3 first (for example with the swagger2openapi tool), then run this again"))
        }
        (None, None) => return Err(format!("{file}: not an OpenAPI document: no `openapi:` field at the top")),
    };
    let mut ctx = Ctx {
        root,
        notes: Vec::new(),
        vars: Vec::new(),
    };

    // The server: --host or servers[0], its variables at their defaults.
    let server = match &args.host {
        Some(h) => Some(h.clone()),
        None => root
            .get("servers")
            .and_then(|s| s.items().first())
            .map(|s| {
                let mut url = s
                    .get("url")
                    .and_then(Node::as_str)
                    .unwrap_or("/")
                    .to_owned();
                for (k, v) in s.get("variables").map(Node::entries).unwrap_or_default() {
                    if let Some(d) = v.get("default").and_then(Node::as_str) {
                        url = url.replace(&format!("{{{k}}}"), d);
                    }
                }
                url
            }),
    };
    let (host, base) = match server.as_deref().map(|s| s.trim_end_matches('/')) {
        Some(s) if s.contains("://") => {
            let (origin, path, _) =
                super::split_url(s).ok_or_else(|| format!("invalid server URL `{s}`"))?;
            (origin, path.trim_end_matches('/').to_owned())
        }
        other => {
            ctx.notes.push(format!(
                "the document gives no absolute server URL{}: host is ${{TARGET_HOST:-http://localhost:8080}}; set TARGET_HOST, pass --host, or -H when running",
                other.map_or(String::new(), |s| format!(" (`{s}`)"))
            ));
            (
                "${TARGET_HOST:-http://localhost:8080}".to_owned(),
                other.unwrap_or("").to_owned(),
            )
        }
    };

    let mut tasks = Vec::new();
    let mut skipped_tag = 0;
    for (path, item) in root.get("paths").map(Node::entries).unwrap_or_default() {
        let item = resolve(root, item).map_err(|e| format!("{file}: paths.{path}: {e}"))?;
        for (method, op) in item
            .entries()
            .iter()
            .filter(|(m, _)| METHODS.contains(&m.as_str()))
        {
            let tags: Vec<String> = op
                .get("tags")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect();
            if !args.tag.is_empty() && !tags.iter().any(|t| args.tag.contains(t)) {
                skipped_tag += 1;
                continue;
            }
            let at = format!("paths.{path}.{method}");
            let request = operation(&mut ctx, item, op, method, path, &base)
                .map_err(|e| format!("{file}: {at}: {e}"))?;
            let task_name = op.get("operationId").and_then(Node::as_str).map_or_else(
                || format!("{} {path}", method.to_ascii_uppercase()),
                str::to_owned,
            );
            tasks.push(Task {
                name: Some(task_name),
                tags,
                steps: vec![Step::Request(request)],
            });
        }
    }
    if tasks.is_empty() {
        return Err(format!(
            "{file}: no operation to convert{}",
            if skipped_tag > 0 {
                format!(" ({skipped_tag} without the tags {:?})", args.tag)
            } else {
                String::new()
            }
        ));
    }
    let title = root
        .get("info")
        .and_then(|i| i.get("title"))
        .and_then(Node::as_str)
        .unwrap_or("");
    let mut comments = vec![format!(
        "Converted from {file} ({title}, OpenAPI {version}) by `loadlens convert openapi`: one task per operation, {} in all.",
        tasks.len()
    )];
    if !ctx.vars.is_empty() {
        comments.push("Path parameters and credentials are variables (vars:): edit them, set the environment variables named there, or feed them from a CSV (data: in the README).".into());
    }
    let mut notes = ctx.notes;
    notes.dedup();
    Ok(Draft {
        comments,
        notes,
        name,
        host: Some(host),
        vars: ctx.vars,
        user_type: "api".into(),
        tasks,
        ..Draft::default()
    })
}

/// One operation as a request.
fn operation(
    ctx: &mut Ctx<'_>,
    item: &Node,
    op: &Node,
    method: &str,
    path: &str,
    base: &str,
) -> Result<Request, String> {
    let root = ctx.root;
    // Path-level parameters, overridden by the operation's of the same name and place.
    let mut params: Vec<&Node> = Vec::new();
    for p in item
        .get("parameters")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .chain(op.get("parameters").map(Node::items).unwrap_or_default())
    {
        let p = resolve(root, p)?;
        let key = |n: &Node| {
            (
                n.get("name").and_then(Node::as_str).map(str::to_owned),
                n.get("in").and_then(Node::as_str).map(str::to_owned),
            )
        };
        params.retain(|q| key(q) != key(p));
        params.push(p);
    }
    let mut template = doc::literal(&format!("{base}{path}"));
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut has_path_params = false;
    for p in params {
        let (Some(name), Some(place)) = (
            p.get("name").and_then(Node::as_str),
            p.get("in").and_then(Node::as_str),
        ) else {
            continue;
        };
        let required = p.get("required") == Some(&Node::Bool(true));
        let explicit = param_example(root, p);
        let value = || {
            explicit.clone().unwrap_or_else(|| {
                text_of(&example(
                    root,
                    p.get("schema").unwrap_or(&Node::Null),
                    0,
                    &mut Vec::new(),
                ))
            })
        };
        match place {
            "path" => {
                // Sent in the path as is: encoded here, once.
                let var = ctx.var(name, loadlens_core::encoding::encode_component(&value()));
                has_path_params = true;
                template = template.replace(&format!("{{{name}}}"), &format!("{{{{ {var} }}}}"));
            }
            "query" if required || explicit.is_some() => {
                query.push((name.to_owned(), doc::literal(&value())))
            }
            // OpenAPI ignores Accept, Content-Type and Authorization as header parameters.
            "header"
                if (required || explicit.is_some())
                    && !["accept", "content-type", "authorization"]
                        .contains(&name.to_ascii_lowercase().as_str()) =>
            {
                headers.push((name.to_owned(), doc::literal(&value())));
            }
            "cookie" if required => ctx.notes.push(format!(
                "cookie parameter `{name}` is not sent: add it as a `Cookie` header"
            )),
            _ => {}
        }
    }
    // Path templates the document forgot to declare as parameters.
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        let slot = format!("{{{name}}}");
        if !name.is_empty() && template.contains(&slot) {
            let var = ctx.var(name, "1".into());
            has_path_params = true;
            template = template.replace(&slot, &format!("{{{{ {var} }}}}"));
            ctx.notes.push(format!(
                "path parameter `{name}` of {path} is not declared: it is the variable `{var}` = 1"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if item.get("servers").is_some() || op.get("servers").is_some() {
        ctx.notes.push(format!(
            "{path}: its own `servers:` are not followed; its requests go to the scenario's host"
        ));
    }
    security(ctx, op, &mut query, &mut headers);
    let body = match op.get("requestBody") {
        Some(b) => request_body(ctx, resolve(root, b)?, &mut headers)?,
        None => None,
    };
    Ok(Request {
        method: method.to_ascii_uppercase(),
        path: template,
        name: has_path_params.then(|| format!("{base}{path}")),
        query,
        headers,
        body,
        ..Request::default()
    })
}

/// The first security requirement of the operation (or the document), where its scheme says.
fn security(
    ctx: &mut Ctx<'_>,
    op: &Node,
    query: &mut Vec<(String, String)>,
    headers: &mut Vec<(String, String)>,
) {
    let root = ctx.root;
    let Some(requirement) = op
        .get("security")
        .or_else(|| root.get("security"))
        .and_then(|s| s.items().first())
    else {
        return;
    };
    let Some((scheme_name, _)) = requirement.entries().first() else {
        return;
    };
    let Some(scheme) = root
        .get("components")
        .and_then(|c| c.get("securitySchemes"))
        .and_then(|s| s.get(scheme_name))
        .and_then(|s| resolve(root, s).ok())
    else {
        return;
    };
    let env = |v: &str| format!("${{{}:-CHANGE_ME}}", v.to_ascii_uppercase());
    match (
        scheme.get("type").and_then(Node::as_str),
        scheme
            .get("scheme")
            .and_then(Node::as_str)
            .map(str::to_ascii_lowercase),
    ) {
        (Some("apiKey"), _) => {
            let (Some(name), Some(place)) = (
                scheme.get("name").and_then(Node::as_str),
                scheme.get("in").and_then(Node::as_str),
            ) else {
                return;
            };
            let var = ctx.var(scheme_name, env(&var_name(scheme_name)));
            match place {
                "header" => headers.push((name.to_owned(), format!("{{{{ {var} }}}}"))),
                "query" => query.push((name.to_owned(), format!("{{{{ {var} }}}}"))),
                _ => ctx.notes.push(format!("security scheme `{scheme_name}` (an API key in a cookie) is not sent: add a `Cookie` header")),
            }
        }
        (Some("http"), Some(s)) if s == "basic" => {
            let var = ctx.var("basic_auth", env("BASIC_AUTH"));
            headers.push(("Authorization".into(), format!("Basic {{{{ {var} }}}}")));
        }
        (Some("http" | "oauth2" | "openIdConnect"), _) => {
            let var = ctx.var("token", env("API_TOKEN"));
            headers.push(("Authorization".into(), format!("Bearer {{{{ {var} }}}}")));
        }
        _ => {}
    }
}

/// The body of a `requestBody`: JSON, else a URL-encoded form, else text.
fn request_body(
    ctx: &mut Ctx<'_>,
    body: &Node,
    headers: &mut Vec<(String, String)>,
) -> Result<Option<Body>, String> {
    let root = ctx.root;
    let content = body.get("content").map(Node::entries).unwrap_or_default();
    let pick =
        |want: &dyn Fn(&str) -> bool| content.iter().find(|(t, _)| want(&t.to_ascii_lowercase()));
    let json = |t: &str| {
        let e = t.split(';').next().unwrap_or("").trim();
        e == "application/json" || e.ends_with("+json")
    };
    let chosen = pick(&json)
        .or_else(|| pick(&|t: &str| t.starts_with("application/x-www-form-urlencoded")))
        .or_else(|| pick(&|t: &str| t.starts_with("text/") || t.contains("xml")));
    let Some((media_type, media)) = chosen else {
        if let Some((t, _)) = content.first() {
            ctx.notes.push(format!("a `{t}` request body is left out (loadlens sends JSON, forms and text): add `body_file:` by hand"));
        }
        return Ok(None);
    };
    let media = resolve(root, media)?;
    let explicit = media.get("example").cloned().or_else(|| {
        media
            .get("examples")
            .and_then(|e| e.entries().first())
            .and_then(|(_, ex)| resolve(root, ex).ok())
            .and_then(|ex| ex.get("value").cloned())
    });
    let value = match explicit {
        Some(v) => v,
        None => example(
            root,
            media.get("schema").unwrap_or(&Node::Null),
            0,
            &mut Vec::new(),
        ),
    };
    let lower = media_type.to_ascii_lowercase();
    Ok(Some(if json(&lower) {
        if lower.split(';').next().unwrap_or("").trim() != "application/json" {
            headers.push(("Content-Type".into(), media_type.clone()));
        }
        Body::Json(doc::literal_json(value))
    } else if lower.starts_with("application/x-www-form-urlencoded") {
        Body::Form(
            value
                .entries()
                .iter()
                .map(|(k, v)| (k.clone(), doc::literal(&text_of(v))))
                .collect(),
        )
    } else {
        headers.push(("Content-Type".into(), media_type.clone()));
        Body::Text(doc::literal(&text_of(&value)))
    }))
}

/// A parameter's own example (`example`, the first of `examples`, or its schema's example,
/// default or first enum value), as text.
fn param_example(root: &Node, p: &Node) -> Option<String> {
    let own = p.get("example").cloned().or_else(|| {
        p.get("examples")
            .and_then(|e| e.entries().first())
            .and_then(|(_, ex)| resolve(root, ex).ok())
            .and_then(|ex| ex.get("value").cloned())
    });
    let schema = p.get("schema").and_then(|s| resolve(root, s).ok());
    own.or_else(|| schema.and_then(explicit_value))
        .map(|v| text_of(&v))
}

/// A schema's own example, default, const or first enum value.
fn explicit_value(schema: &Node) -> Option<Node> {
    schema
        .get("example")
        .cloned()
        .or_else(|| {
            schema
                .get("examples")
                .and_then(|e| e.items().first())
                .cloned()
        })
        .or_else(|| schema.get("default").cloned())
        .or_else(|| schema.get("const").cloned())
        .or_else(|| schema.get("enum").and_then(|e| e.items().first()).cloned())
}

/// A value as the text of a path, query or form value: arrays by their first item, objects as
/// JSON.
fn text_of(v: &Node) -> String {
    match v {
        Node::Null => String::new(),
        Node::Seq(items) => items.first().map(text_of).unwrap_or_default(),
        Node::Map(_) => json_text(v),
        other => other.as_str().unwrap_or_default().to_owned(),
    }
}

fn json_text(v: &Node) -> String {
    match v {
        Node::Null => "null".into(),
        Node::Bool(b) => b.to_string(),
        Node::Num(n) | Node::Plain(n) => n.clone(),
        Node::Str(s) => serde_json::to_string(s).unwrap_or_default(),
        Node::Seq(items) => format!(
            "[{}]",
            items.iter().map(json_text).collect::<Vec<_>>().join(",")
        ),
        Node::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!(
                    "{}:{}",
                    serde_json::to_string(k).unwrap_or_default(),
                    json_text(v)
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// A value for `schema`: its example if it has one, else one built from its type. `refs` holds
/// the `$ref`s being expanded, so a recursive schema (a tree of categories) stops.
fn example(root: &Node, schema: &Node, depth: usize, refs: &mut Vec<String>) -> Node {
    if depth > 12 {
        return Node::Null;
    }
    if let Some(r) = schema.get("$ref").and_then(Node::as_str) {
        if refs.iter().any(|seen| seen == r) {
            return Node::Null;
        }
        let Ok(target) = pointer(root, r) else {
            return Node::Null;
        };
        refs.push(r.to_owned());
        let v = example(root, target, depth + 1, refs);
        refs.pop();
        return v;
    }
    if let Some(v) = explicit_value(schema) {
        return v;
    }
    if let Some(all) = schema.get("allOf") {
        let mut merged = Vec::new();
        for part in all.items() {
            if let Node::Map(m) = example(root, part, depth + 1, refs) {
                for (k, v) in m {
                    merged.retain(|(seen, _): &(String, Node)| *seen != k);
                    merged.push((k, v));
                }
            }
        }
        return Node::Map(merged);
    }
    if let Some(first) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(|o| o.items().first())
    {
        return example(root, first, depth + 1, refs);
    }
    // 3.1 writes `type: [string, "null"]`.
    let ty = match schema.get("type") {
        Some(Node::Seq(types)) => types
            .iter()
            .filter_map(Node::as_str)
            .find(|t| *t != "null")
            .map(str::to_owned),
        Some(t) => t.as_str().map(str::to_owned),
        None if schema.get("properties").is_some() => Some("object".into()),
        None if schema.get("items").is_some() => Some("array".into()),
        None => None,
    };
    let number = |fallback: &str| {
        schema
            .get("minimum")
            .and_then(Node::as_str)
            .map_or_else(|| Node::Num(fallback.into()), |m| Node::Num(m.into()))
    };
    match ty.as_deref() {
        Some("object") => Node::Map(
            schema
                .get("properties")
                .map(Node::entries)
                .unwrap_or_default()
                .iter()
                .filter(|(_, p)| {
                    let p = resolve(root, p).unwrap_or(p);
                    p.get("readOnly") != Some(&Node::Bool(true))
                })
                .map(|(k, p)| (k.clone(), example(root, p, depth + 1, refs)))
                .collect(),
        ),
        Some("array") => {
            let item = example(
                root,
                schema.get("items").unwrap_or(&Node::Null),
                depth + 1,
                refs,
            );
            Node::Seq(if item == Node::Null {
                Vec::new()
            } else {
                vec![item]
            })
        }
        Some("integer") => number("1"),
        Some("number") => number("1.5"),
        Some("boolean") => Node::Bool(true),
        Some("string") => Node::str(match schema.get("format").and_then(Node::as_str) {
            Some("date-time") => "2024-01-01T00:00:00Z",
            Some("date") => "2024-01-01",
            Some("time") => "12:00:00",
            Some("email") => "user@example.com",
            Some("uuid") => "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            Some("uri" | "url") => "https://example.com/",
            Some("hostname") => "example.com",
            Some("ipv4") => "192.0.2.1",
            Some("password") => "secret",
            Some("byte") => "ZXhhbXBsZQ==",
            _ => "string",
        }),
        _ => Node::Null,
    }
}

#[cfg(test)]
mod tests;
