//! Templates: `{{ expression }}` in paths, query values, headers and bodies, compiled once into
//! parts so that rendering is a walk over literals and slot reads.
//!
//! Expressions: a variable (`token`, a feeder field `users.email`), `vu_id`, `iteration`, or a
//! function: `uuid()`, `random_int(a, b)`, `random_choice(a, b, …)`, `random_string(n)`,
//! `now_unix()`, `now_unix_ms()`, `counter(name)` (a run-wide counter). Variables resolve to
//! per-VU slots first, then to run-wide (global) slots; which names exist is decided when the
//! plan is compiled, so a typo is caught by `loadlens validate`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

mod error;
pub use error::{CompileError, RenderError, UnsetEnv};

/// Where a variable lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Per-VU slot index.
    Vu(usize),
    /// Run-wide slot index.
    Global(usize),
}

/// Built-in functions.
#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    /// Random UUID v4.
    Uuid,
    /// Uniform integer in `[a, b]`.
    RandomInt(i64, i64),
    /// One of the arguments.
    RandomChoice(Vec<String>),
    /// `n` random alphanumeric characters.
    RandomString(usize),
    /// Seconds since the Unix epoch.
    NowUnix,
    /// Milliseconds since the Unix epoch.
    NowUnixMs,
    /// Next value of a run-wide counter (index into the counters).
    Counter(usize),
    /// The VU's number.
    VuId,
    /// The VU's iteration number.
    Iteration,
}

/// One compiled piece.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(Slot, String),
    Func(Func),
    /// The inner template, JSON-escaped and quoted.
    Quoted(Template),
    /// The inner template as raw JSON when it renders a number, boolean, null, object or
    /// array; quoted otherwise. Used for JSON string values that are one whole expression.
    Smart(Template),
    /// The inner template, percent-encoded (query values).
    Encoded(Template, crate::encoding::Set),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// Resolves names while compiling.
pub trait Names {
    /// The slot of a variable, or `None` if no such variable is defined.
    fn slot(&mut self, name: &str) -> Option<Slot>;
    /// The index of a run-wide counter, created on first use.
    fn counter(&mut self, name: &str) -> usize;
}

/// Run-wide state shared by every VU: global variables and counters.
#[derive(Debug, Default)]
pub struct Globals {
    /// Global variable values.
    pub vars: RwLock<Vec<Option<String>>>,
    /// Counters: how many values each gave in this process.
    pub counters: Vec<AtomicU64>,
    /// This process's segment (from 0) and the number of segments: `counter()` gives the
    /// values `index+1, index+1+count, …`, so that they stay unique across the segments of a
    /// run (0 segments counts as 1).
    segment: (u64, u64),
}

impl Globals {
    /// Globals with `vars` slots and `counters` counters.
    pub fn new(vars: usize, counters: usize) -> Self {
        Globals {
            vars: RwLock::new(vec![None; vars]),
            counters: (0..counters).map(|_| AtomicU64::new(0)).collect(),
            segment: (0, 1),
        }
    }

    /// The same globals for segment `index` (from 0) of `count`.
    pub fn segment(mut self, index: u64, count: u64) -> Self {
        self.segment = (index, count.max(1));
        self
    }

    /// The next value of counter `i`: 1, 2, 3… in a whole run; in segment `index` of `count`,
    /// the whole run's values `index+1, index+1+count, …`.
    fn next_counter(&self, i: usize) -> u64 {
        let (index, count) = (self.segment.0, self.segment.1.max(1));
        self.counters.get(i).map_or(0, |c| {
            c.fetch_add(1, Ordering::Relaxed)
                .saturating_mul(count)
                .saturating_add(index + 1)
        })
    }
}

/// What rendering reads.
pub struct Ctx<'a> {
    /// The VU's variables.
    pub vars: &'a [Option<String>],
    /// Run-wide state.
    pub globals: &'a Globals,
    /// VU number.
    pub vu_id: u64,
    /// Iteration number of the VU.
    pub iteration: u64,
    /// The VU's random stream.
    pub rng: &'a mut fastrand::Rng,
}

impl Template {
    /// A template that is only `text`.
    pub fn literal(text: impl Into<String>) -> Self {
        let text = text.into();
        Template {
            parts: if text.is_empty() {
                vec![]
            } else {
                vec![Part::Lit(text)]
            },
        }
    }

    /// Compile `text`; errors name the expression and what was expected.
    pub fn compile(text: &str, names: &mut dyn Names) -> Result<Template, CompileError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| CompileError::Unclosed {
                text: text.to_owned(),
            })?;
            let expr = after[..close].trim();
            parts.push(compile_expr(expr, names)?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// True when the template has no expression: it renders the same text every time.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| match p {
            Part::Lit(_) => true,
            Part::Quoted(t) | Part::Smart(t) | Part::Encoded(t, _) => t.is_static(),
            _ => false,
        })
    }

    /// Wrap: render quoted as a JSON string.
    pub fn quoted(self) -> Template {
        Template {
            parts: vec![Part::Quoted(self)],
        }
    }

    /// Wrap: raw JSON if the value looks like JSON, else quoted.
    pub fn smart(self) -> Template {
        Template {
            parts: vec![Part::Smart(self)],
        }
    }

    /// Wrap: percent-encoded as a query component.
    pub fn encoded(self) -> Template {
        self.encoded_as(crate::encoding::Set::Component)
    }

    /// Wrap: percent-encoded for `set` (a query component, a form field, a path segment).
    pub fn encoded_as(self, set: crate::encoding::Set) -> Template {
        Template {
            parts: vec![Part::Encoded(self, set)],
        }
    }

    /// Append another template.
    pub fn push(&mut self, other: Template) {
        self.parts.extend(other.parts);
    }

    /// Append literal text.
    pub fn push_str(&mut self, s: &str) {
        if let Some(Part::Lit(last)) = self.parts.last_mut() {
            last.push_str(s);
        } else if !s.is_empty() {
            self.parts.push(Part::Lit(s.to_owned()));
        }
    }

    /// Names of the variables the template reads.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Var(_, n) => out.push(n.as_str()),
                Part::Quoted(t) | Part::Smart(t) | Part::Encoded(t, _) => out.extend(t.variables()),
                _ => {}
            }
        }
        out
    }

    /// Render into `out`. A variable without a value is an error naming it.
    pub fn render(&self, ctx: &mut Ctx<'_>, out: &mut String) -> Result<(), RenderError> {
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(slot, name) => {
                    let missing = || RenderError::Unset { name: name.clone() };
                    match slot {
                        Slot::Vu(i) => out.push_str(
                            ctx.vars
                                .get(*i)
                                .and_then(|v| v.as_deref())
                                .ok_or_else(missing)?,
                        ),
                        Slot::Global(i) => {
                            let g = ctx.globals.vars.read().unwrap_or_else(|p| p.into_inner());
                            out.push_str(g.get(*i).and_then(|v| v.as_deref()).ok_or_else(missing)?);
                        }
                    }
                }
                Part::Func(f) => render_func(f, ctx, out),
                Part::Quoted(t) => {
                    let mut inner = String::new();
                    t.render(ctx, &mut inner)?;
                    push_json_string(out, &inner);
                }
                Part::Smart(t) => {
                    let mut inner = String::new();
                    t.render(ctx, &mut inner)?;
                    if looks_like_json(&inner) {
                        out.push_str(&inner);
                    } else {
                        push_json_string(out, &inner);
                    }
                }
                Part::Encoded(t, set) => {
                    let mut inner = String::new();
                    t.render(ctx, &mut inner)?;
                    out.push_str(&crate::encoding::encode(&inner, *set));
                }
            }
        }
        Ok(())
    }

    /// Render to a new string.
    pub fn render_string(&self, ctx: &mut Ctx<'_>) -> Result<String, RenderError> {
        let mut s = String::new();
        self.render(ctx, &mut s)?;
        Ok(s)
    }

    /// The text of a static template.
    pub fn static_text(&self) -> Option<String> {
        if !self.is_static() {
            return None;
        }
        let globals = Globals::default();
        let mut rng = fastrand::Rng::with_seed(0);
        let mut ctx = Ctx {
            vars: &[],
            globals: &globals,
            vu_id: 0,
            iteration: 0,
            rng: &mut rng,
        };
        self.render_string(&mut ctx).ok()
    }
}

fn looks_like_json(s: &str) -> bool {
    let t = s.trim();
    if matches!(t, "true" | "false" | "null") {
        return true;
    }
    if t.starts_with('{') || t.starts_with('[') {
        return serde_json::from_str::<serde_json::Value>(t).is_ok();
    }
    // A JSON number: no leading `+`, no leading zeros (a zip code like `01234` stays a string).
    let leading_zero = t.len() > 1 && t.starts_with('0') && !t.starts_with("0.");
    !t.is_empty()
        && !t.starts_with('+')
        && !leading_zero
        && t.parse::<f64>().is_ok_and(f64::is_finite)
}

fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::String(s.to_owned()).to_string());
}

fn render_func(f: &Func, ctx: &mut Ctx<'_>, out: &mut String) {
    use std::fmt::Write;
    match f {
        Func::Uuid => {
            let a = ctx.rng.u128(..);
            // Version 4, variant 1.
            let v = (a & !(0xF000u128 << 64) | (0x4000u128 << 64)) & !(0xC000u128 << 48)
                | (0x8000u128 << 48);
            let h = format!("{v:032x}");
            let _ = write!(
                out,
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            );
        }
        Func::RandomInt(a, b) => {
            let _ = write!(out, "{}", ctx.rng.i64(*a..=*b));
        }
        Func::RandomChoice(list) => {
            if !list.is_empty() {
                out.push_str(&list[ctx.rng.usize(..list.len())]);
            }
        }
        Func::RandomString(n) => {
            for _ in 0..*n {
                out.push(ctx.rng.alphanumeric());
            }
        }
        Func::NowUnix | Func::NowUnixMs => {
            let d = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let v = if *f == Func::NowUnix {
                d.as_secs() as u128
            } else {
                d.as_millis()
            };
            let _ = write!(out, "{v}");
        }
        Func::Counter(i) => {
            let v = ctx.globals.next_counter(*i);
            let _ = write!(out, "{v}");
        }
        Func::VuId => {
            let _ = write!(out, "{}", ctx.vu_id);
        }
        Func::Iteration => {
            let _ = write!(out, "{}", ctx.iteration);
        }
    }
}

fn compile_expr(expr: &str, names: &mut dyn Names) -> Result<Part, CompileError> {
    if expr.is_empty() {
        return Err(CompileError::Empty);
    }
    let Some((fun, args)) = expr.strip_suffix(')').and_then(|e| e.split_once('(')) else {
        return match expr {
            "vu_id" => Ok(Part::Func(Func::VuId)),
            "iteration" => Ok(Part::Func(Func::Iteration)),
            name if is_name(name) => names
                .slot(name)
                .map(|s| Part::Var(s, name.to_owned()))
                .ok_or_else(|| CompileError::UnknownVariable {
                    name: name.to_owned(),
                    expr: expr.to_owned(),
                }),
            _ => Err(CompileError::InvalidExpression {
                expr: expr.to_owned(),
            }),
        };
    };
    let args: Vec<String> = split_args(args);
    let fun = fun.trim();
    let int = |s: &str| {
        s.parse::<i64>().map_err(|_| CompileError::NotInteger {
            function: fun.to_owned(),
            argument: s.to_owned(),
        })
    };
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(CompileError::Arity {
                function: fun.to_owned(),
                expected: n,
                got: args.len(),
            })
        }
    };
    Ok(Part::Func(match fun {
        "uuid" => {
            arity(0)?;
            Func::Uuid
        }
        "random_int" => {
            arity(2)?;
            let (a, b) = (int(&args[0])?, int(&args[1])?);
            if a > b {
                return Err(CompileError::EmptyRange { min: a, max: b });
            }
            Func::RandomInt(a, b)
        }
        "random_choice" => {
            if args.is_empty() {
                return Err(CompileError::NoChoices);
            }
            Func::RandomChoice(args)
        }
        "random_string" => {
            arity(1)?;
            Func::RandomString(int(&args[0])?.clamp(0, 1 << 20) as usize)
        }
        "now_unix" => {
            arity(0)?;
            Func::NowUnix
        }
        "now_unix_ms" => {
            arity(0)?;
            Func::NowUnixMs
        }
        "counter" => {
            arity(1)?;
            Func::Counter(names.counter(&args[0]))
        }
        "vu_id" => Func::VuId,
        "iteration" => Func::Iteration,
        other => {
            return Err(CompileError::UnknownFunction {
                function: other.to_owned(),
            })
        }
    }))
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Split `a, 'b c', "d"` into `["a", "b c", "d"]`.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, ',') => {
                out.push(std::mem::take(&mut cur).trim().to_owned());
                any = false;
            }
            (None, c) => {
                cur.push(c);
                if !c.is_whitespace() {
                    any = true;
                }
            }
        }
    }
    if any || !out.is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// Substitute `${VAR}` and `${VAR:-default}` from the environment in scenario text, keeping
/// line numbers. A variable that is unset and has no default is an error at its position.
pub fn substitute_env(
    text: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<String, UnsetEnv> {
    let mut out = Output::default();
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let in_comment = out.in_comment;
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out.text);
        };
        let body = &after[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if in_comment || !is_name(name) {
            out.push_str(&rest[i..i + 2 + end + 1]);
        } else {
            match get(name)
                .filter(|v| !v.is_empty())
                .or_else(|| default.map(str::to_owned))
            {
                Some(v) => out.push_str(&v.replace('\n', " ")),
                None => {
                    return Err(UnsetEnv {
                        offset: offset + i,
                        name: name.to_owned(),
                    })
                }
            }
        }
        offset += i + 2 + end + 1;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out.text)
}

/// The substituted text, and whether its last line is inside a `#` comment so far. Kept as it
/// grows, not found by re-reading the line at each `${`: that was quadratic on a long line.
struct Output {
    text: String,
    in_comment: bool,
    /// The last character is a line start or whitespace (where a `#` starts a comment).
    after_space: bool,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            text: String::new(),
            in_comment: false,
            after_space: true,
        }
    }
}

impl Output {
    fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            if c == '\n' {
                self.in_comment = false;
                self.after_space = true;
            } else {
                self.in_comment |= c == '#' && self.after_space;
                self.after_space = c.is_whitespace();
            }
        }
        self.text.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct TestNames(HashMap<String, Slot>, Vec<String>);
    impl Names for TestNames {
        fn slot(&mut self, name: &str) -> Option<Slot> {
            self.0.get(name).copied()
        }
        fn counter(&mut self, name: &str) -> usize {
            if let Some(i) = self.1.iter().position(|n| n == name) {
                return i;
            }
            self.1.push(name.to_owned());
            self.1.len() - 1
        }
    }

    fn names() -> TestNames {
        let mut n = TestNames::default();
        n.0.insert("sku".into(), Slot::Vu(0));
        n.0.insert("users.email".into(), Slot::Vu(1));
        n.0.insert("shared".into(), Slot::Global(0));
        n
    }

    fn render(
        t: &Template,
        vars: &[Option<String>],
        globals: &Globals,
    ) -> Result<String, RenderError> {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut ctx = Ctx {
            vars,
            globals,
            vu_id: 7,
            iteration: 3,
            rng: &mut rng,
        };
        t.render_string(&mut ctx)
    }

    #[test]
    fn variables_functions_and_literals() {
        let mut n = names();
        let t = Template::compile(
            "/api/products/{{ sku }}?u={{users.email}}&vu={{ vu_id }}-{{iteration}}",
            &mut n,
        )
        .unwrap();
        assert!(!t.is_static());
        let g = Globals::new(1, 0);
        let out = render(&t, &[Some("sku_1".into()), Some("a@b.c".into())], &g).unwrap();
        assert_eq!(out, "/api/products/sku_1?u=a@b.c&vu=7-3");
        assert_eq!(t.variables(), vec!["sku", "users.email"]);
        assert!(Template::compile("/static", &mut n).unwrap().is_static());
    }

    #[test]
    fn missing_value_names_the_variable() {
        let mut n = names();
        let t = Template::compile("Bearer {{ sku }}", &mut n).unwrap();
        let e = render(&t, &[None, None], &Globals::new(1, 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("variable `sku` has no value"), "{e}");
    }

    #[test]
    fn compile_errors_are_variants_with_the_messages_users_know() {
        let mut n = names();
        let mut e = |t: &str| Template::compile(t, &mut n).unwrap_err();
        assert_eq!(
            e("{{ sku").to_string(),
            "unclosed `{{` in `{{ sku`: expected `}}`"
        );
        assert_eq!(e("{{ }}"), CompileError::Empty);
        assert_eq!(e("{{ }}").to_string(), "empty expression `{{ }}`");
        assert_eq!(
            e("{{ tokn }}").to_string(),
            "unknown variable `tokn` in `{{ tokn }}`: define it with a capture, a loop, `vars:` or a data feeder"
        );
        assert_eq!(
            e("{{ a b }}").to_string(),
            "invalid expression `{{ a b }}`: expected a variable name or a function call such as `uuid()`"
        );
        assert_eq!(
            e("{{ uuid(1) }}"),
            CompileError::Arity {
                function: "uuid".into(),
                expected: 0,
                got: 1
            }
        );
        assert_eq!(
            e("{{ uuid(1) }}").to_string(),
            "`uuid` takes 0 argument(s), got 1"
        );
        assert_eq!(
            e("{{ random_int(a, 2) }}").to_string(),
            "`random_int` expects integer arguments, got `a`"
        );
        assert_eq!(
            e("{{ random_int(5, 1) }}").to_string(),
            "random_int(5, 1): the minimum is larger than the maximum"
        );
        assert_eq!(
            e("{{ nope() }}").to_string(),
            "unknown function `nope`: expected uuid, random_int, random_choice, random_string, now_unix, now_unix_ms or counter"
        );
    }

    #[test]
    fn compile_errors_are_specific() {
        let mut n = names();
        let e = Template::compile("{{ tokn }}", &mut n)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variable `tokn`"), "{e}");
        assert!(Template::compile("{{ nope() }}", &mut n)
            .unwrap_err()
            .to_string()
            .contains("unknown function `nope`"));
        assert!(Template::compile("{{ random_int(5, 1) }}", &mut n)
            .unwrap_err()
            .to_string()
            .contains("larger"));
        assert!(Template::compile("{{ sku", &mut n)
            .unwrap_err()
            .to_string()
            .contains("unclosed"));
    }

    #[test]
    fn builtins() {
        let mut n = names();
        let g = Globals::new(1, 1);
        let t = Template::compile("{{ uuid() }}|{{ random_int(1, 3) }}|{{ random_choice(a, 'b c') }}|{{ random_string(6) }}|{{ counter(orders) }}|{{ counter(orders) }}", &mut n).unwrap();
        let out = render(&t, &[], &g).unwrap();
        let p: Vec<&str> = out.split('|').collect();
        assert_eq!(p[0].len(), 36);
        assert_eq!(&p[0][14..15], "4", "uuid v4: {}", p[0]);
        assert!(["1", "2", "3"].contains(&p[1]));
        assert!(["a", "b c"].contains(&p[2]));
        assert_eq!(p[3].len(), 6);
        assert_eq!((p[4], p[5]), ("1", "2"));
        let now = Template::compile("{{ now_unix() }}", &mut n).unwrap();
        assert!(render(&now, &[], &g).unwrap().parse::<u64>().unwrap() > 1_700_000_000);
    }

    #[test]
    fn counter_values_stay_unique_across_the_segments_of_a_run() {
        let mut n = names();
        let t = Template::compile("{{ counter(orders) }}", &mut n).unwrap();
        for segments in 1..=5u64 {
            let mut seen = std::collections::BTreeSet::new();
            for index in 0..segments {
                let g = Globals::new(1, 1).segment(index, segments);
                // Segments run unequal numbers of iterations.
                for _ in 0..(10 + index * 3) {
                    let v: u64 = render(&t, &[], &g).unwrap().parse().unwrap();
                    assert!(seen.insert(v), "{v} twice with {segments} segments");
                }
            }
            // Equal progress gives 1..=k·N with no gap: the whole run's values.
            let mut dense = std::collections::BTreeSet::new();
            for index in 0..segments {
                let g = Globals::new(1, 1).segment(index, segments);
                for _ in 0..7 {
                    dense.insert(render(&t, &[], &g).unwrap().parse::<u64>().unwrap());
                }
            }
            assert_eq!(dense, (1..=7 * segments).collect());
        }
    }

    #[test]
    fn json_and_query_wrappers() {
        let mut n = names();
        let g = Globals::new(1, 0);
        let q = Template::compile("{{ sku }}", &mut n).unwrap().quoted();
        assert_eq!(render(&q, &[Some("a\"b".into())], &g).unwrap(), r#""a\"b""#);
        let s = Template::compile("{{ sku }}", &mut n).unwrap().smart();
        assert_eq!(render(&s, &[Some("42".into())], &g).unwrap(), "42");
        assert_eq!(render(&s, &[Some("x".into())], &g).unwrap(), "\"x\"");
        assert_eq!(render(&s, &[Some("007".into())], &g).unwrap(), "\"007\"");
        let e = Template::compile("{{ sku }}", &mut n).unwrap().encoded();
        assert_eq!(
            render(&e, &[Some("running shoes&x".into())], &g).unwrap(),
            "running%20shoes%26x"
        );
        let gl = Template::compile("{{ shared }}", &mut n).unwrap();
        *g.vars.write().unwrap() = vec![Some("tok".into())];
        assert_eq!(render(&gl, &[], &g).unwrap(), "tok");
    }

    #[test]
    fn environment_substitution_keeps_lines() {
        let env = |k: &str| (k == "HOST").then(|| "http://h:1".to_owned());
        let out =
            substitute_env("host: ${HOST}\nuser: ${USER_X:-perf}\n# ${IGNORED}\n", env).unwrap();
        assert_eq!(out, "host: http://h:1\nuser: perf\n# ${IGNORED}\n");
        let e = substitute_env("a: 1\nb: ${MISSING}\n", env).unwrap_err();
        let (pos, msg) = (e.offset, e.to_string());
        assert_eq!(pos, 8);
        assert!(msg.contains("`MISSING` is not set"), "{msg}");
    }
}
