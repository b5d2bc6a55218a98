//! Byte encodings loadlens needs in more than one crate and too little of to justify a
//! dependency: today standard base64, for HTTP basic-auth values (the dashboard's expected
//! `--web-auth` header, the OTLP exporter's endpoint credentials).

/// Standard base64 (RFC 4648, section 4) with padding. Written by hand: its uses are a few
/// header values built once, which do not justify a dependency.
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("ops:s3cret-pw", "b3BzOnMzY3JldC1wdw=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        // Every byte value, not only text.
        assert_eq!(base64(&[0x00, 0xff, 0xfe]), "AP/+");
    }
}
