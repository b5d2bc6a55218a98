//! A linear pre-scan for flow nesting (`[[[[…` or `{a: {a: …`) before the YAML parser sees the
//! text. The parser (libyaml) re-checks every open flow level for each token it reads, so a file
//! of 100,000 nested brackets took tens of seconds to be rejected by serde's recursion limit.
//! Real scenarios nest a few levels; anything near [`MAX_FLOW_DEPTH`] is generated or hostile.

/// Deepest flow nesting accepted before parsing. Far above what serde accepts anyway (128
/// levels in all): the scan only has to keep the parser's work small, and a high limit keeps
/// brackets that the scan cannot tell from text (inside block scalars) from being refused.
pub(crate) const MAX_FLOW_DEPTH: usize = 1000;

/// The byte offset of the first `[` or `{` opened deeper than [`MAX_FLOW_DEPTH`], if any.
///
/// Quoted scalars and comments are skipped; a quote only opens a scalar where a node can
/// start (so the apostrophe in `it's` does not hide the brackets after it).
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    // The last byte that was not a space or tab on this line, or None at a line start.
    let mut last: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let node_start = matches!(last, None | Some(b':' | b'-' | b'[' | b'{' | b',' | b'?'))
            && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'[' | b'{' | b','));
        match b {
            b'\n' => last = None,
            b' ' | b'\t' | b'\r' => {}
            b'#' if i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\'' | b'"' if node_start => {
                i += 1;
                while i < bytes.len() && bytes[i] != b {
                    // In double quotes a backslash escapes the next character.
                    i += usize::from(b == b'"' && bytes[i] == b'\\') + 1;
                }
                last = Some(b);
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(i);
                }
                last = Some(b);
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                last = Some(b);
            }
            _ => last = Some(b),
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_bracket_too_deep_and_skips_quotes_and_comments() {
        let deep = format!("a: {}1{}", "[".repeat(1001), "]".repeat(1001));
        assert_eq!(too_deep(&deep), Some(3 + 1000));
        let ok = format!("a: {}1{}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(too_deep(&ok), None);
        let quoted = format!(
            "a: '{}'\nb: \"\\\"{}\"\n# {}",
            "[".repeat(2000),
            "{".repeat(2000),
            "[".repeat(2000)
        );
        assert_eq!(too_deep(&quoted), None);
        // An apostrophe inside a plain scalar is text, not a quote.
        let apostrophe = format!("a: it's\nb: {}", "{a: ".repeat(1001));
        assert_eq!(too_deep(&apostrophe), Some(11 + 4 * 1000));
    }
}
