//! Run identity: the run id and the tags every output carries. Tags come, in increasing
//! priority, from the environment (`DD_ENV`, `DD_SERVICE`, `DD_TAGS`, the commit of common CI
//! systems or `git rev-parse HEAD`), the scenario's `run.tags`, and `--tag key=value`.

use std::collections::BTreeMap;

/// Environment variables that carry the commit under test, in the order they are tried.
const SHA_VARS: [&str; 7] = [
    "GIT_SHA",
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "BUILDKITE_COMMIT",
    "CIRCLE_SHA1",
    "GIT_COMMIT",
    "BITBUCKET_COMMIT",
];

/// Tags found in the environment.
pub fn env_tags(get: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    // DD_TAGS: "team:payments,region:eu" or space separated, as the Datadog agent reads it.
    if let Some(dd) = get("DD_TAGS") {
        for t in dd.split([',', ' ']).filter(|t| !t.is_empty()) {
            if let Some((k, v)) = t.split_once(':') {
                tags.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    for (var, tag) in [
        ("DD_ENV", "env"),
        ("DD_SERVICE", "service"),
        ("LOADLENS_TEAM", "team"),
    ] {
        if let Some(v) = get(var).filter(|v| !v.is_empty()) {
            tags.insert(tag.to_owned(), v);
        }
    }
    if let Some(sha) = SHA_VARS
        .iter()
        .find_map(|v| get(v).filter(|s| !s.is_empty()))
    {
        tags.insert("git_sha".into(), sha);
    }
    tags
}

/// The commit of the repository in the working directory, if any.
pub fn git_head() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && sha.len() >= 7).then_some(sha)
}

/// Parse `key=value` (also `key:value`).
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| {
            format!(
                "tag `{s}` must look like key=value (--tag labels the run; to run only the tasks tagged `{s}`, use -T/--task-tags {s})"
            )
        })?;
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("tag `{s}` has an empty key"));
    }
    Ok((k.to_owned(), v.trim().to_owned()))
}

/// All tags: environment, then the scenario's, then the CLI's.
pub fn collect(
    scenario: &BTreeMap<String, String>,
    cli: &[String],
) -> Result<BTreeMap<String, String>, String> {
    let mut tags = env_tags(|k| std::env::var(k).ok());
    if !tags.contains_key("git_sha") {
        if let Some(sha) = git_head() {
            tags.insert("git_sha".into(), sha);
        }
    }
    tags.extend(scenario.iter().map(|(k, v)| (k.clone(), v.clone())));
    for t in cli {
        let (k, v) = parse_tag(t)?;
        tags.insert(k, v);
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_tags() {
        let env = |k: &str| {
            match k {
                "DD_ENV" => Some("staging"),
                "DD_SERVICE" => Some("checkout-api"),
                "DD_TAGS" => Some("team:payments, region:eu"),
                "GITHUB_SHA" => Some("abc1234"),
                "GIT_SHA" => Some(""),
                _ => None,
            }
            .map(str::to_owned)
        };
        let t = env_tags(env);
        assert_eq!(t["env"], "staging");
        assert_eq!(t["service"], "checkout-api");
        assert_eq!(t["team"], "payments");
        assert_eq!(t["region"], "eu");
        assert_eq!(t["git_sha"], "abc1234");
    }

    #[test]
    fn tag_syntax() {
        assert_eq!(
            parse_tag("env=prod").unwrap(),
            ("env".into(), "prod".into())
        );
        assert_eq!(
            parse_tag("env:prod").unwrap(),
            ("env".into(), "prod".into())
        );
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("=x").is_err());
    }
}
