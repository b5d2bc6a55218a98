//! Response body decompression (`gzip`, `deflate`, `br`), bounded against decompression bombs.

use std::io::Read;

use bytes::Bytes;

/// Largest decoded body accepted.
pub const MAX_DECODED: u64 = 64 * 1024 * 1024;

/// Decode `body` according to a `Content-Encoding` value. Unknown encodings are left as they are.
pub fn decode(encoding: &str, body: Bytes) -> Result<Bytes, String> {
    let enc = encoding.trim().to_ascii_lowercase();
    let mut out = Vec::with_capacity(body.len() * 4);
    let res = match enc.as_str() {
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&body[..])
            .take(MAX_DECODED + 1)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(&body[..])
            .take(MAX_DECODED + 1)
            .read_to_end(&mut out),
        "br" => brotli_decompressor::Decompressor::new(&body[..], 8192)
            .take(MAX_DECODED + 1)
            .read_to_end(&mut out),
        _ => return Ok(body),
    };
    match res {
        Ok(_) if out.len() as u64 > MAX_DECODED => Err(format!(
            "decoded {enc} body is larger than {} MiB",
            MAX_DECODED >> 20
        )),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(format!("invalid {enc} body: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_round_trip() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"hello hello hello").unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        assert_eq!(&decode("gzip", gz).unwrap()[..], b"hello hello hello");
    }

    #[test]
    fn brotli_known_vector() {
        // "hello" compressed with brotli quality 11.
        let br = Bytes::from_static(&[0x0b, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03]);
        assert_eq!(&decode("br", br).unwrap()[..], b"hello");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode("gzip", Bytes::from_static(b"not gzip")).is_err());
        assert_eq!(
            &decode("identity", Bytes::from_static(b"x")).unwrap()[..],
            b"x"
        );
    }
}
