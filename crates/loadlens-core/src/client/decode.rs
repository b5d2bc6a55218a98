//! Response bodies as they arrive: decoded (`gzip`, `deflate`, `br`) frame by frame, counted,
//! and kept only when checks or captures need them, never beyond the client's `max_body_size`.
//!
//! Nothing here holds a whole body that is not kept: an endless body, or a decompression bomb,
//! costs a decoder's window and one frame at a time, and a kept body costs at most the limit
//! (the decoder stops as soon as its output passes it).

use std::io::{self, Write};

use bytes::Bytes;

/// Where decoded body bytes go: counted always, kept up to a limit when asked.
#[derive(Debug)]
pub struct BodySink {
    /// The kept bytes; `None` when the body is only counted.
    kept: Option<Vec<u8>>,
    /// Decoded bytes seen so far (kept or not).
    len: u64,
    /// Most bytes kept.
    limit: u64,
    /// The limit was passed: the decoder's write error came from here, not from the data.
    over: bool,
}

impl BodySink {
    /// A sink that keeps up to `limit` bytes when `keep`, and otherwise only counts. `expected`
    /// (a `Content-Length`) sizes the buffer once when it is within the limit.
    pub fn new(keep: bool, limit: u64, expected: Option<u64>) -> Self {
        let kept = keep.then(|| {
            let cap = expected.filter(|n| *n <= limit).unwrap_or(0);
            // At most 1 MiB up front: a lying Content-Length must not allocate the limit.
            Vec::with_capacity(cap.min(1 << 20) as usize)
        });
        BodySink {
            kept,
            len: 0,
            limit,
            over: false,
        }
    }

    /// Decoded bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }
}

impl Write for BodySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(kept) = &mut self.kept {
            if self.len + buf.len() as u64 > self.limit {
                self.over = true;
                return Err(io::Error::other("body larger than the limit"));
            }
            let need = kept.len() + buf.len();
            if need > kept.capacity() {
                // Double, but never past the limit: a body at the limit costs the limit.
                let cap = (kept.capacity() * 2).max(need).min(self.limit as usize);
                kept.reserve_exact(cap - kept.len());
            }
            kept.extend_from_slice(buf);
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a body could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// A kept body passed the limit (in bytes).
    TooLarge(u64),
    /// The encoded data is invalid; the message says how.
    Invalid(String),
}

/// The encodings decoded.
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    /// `gzip`, `x-gzip`.
    Gzip,
    /// `deflate`.
    Deflate,
    /// `br`.
    Brotli,
}

/// A streaming decoder for one `Content-Encoding`, writing into a [`BodySink`].
pub enum Decoder {
    /// No encoding, `identity`, or one we do not decode (passed through as it is).
    Identity(BodySink),
    /// An encoded body whose first byte has not come: an empty body (a `HEAD` or `304`
    /// response with `Content-Encoding`) is no stream to check, and costs no decoder.
    Pending(Codec, BodySink),
    /// `gzip`, `x-gzip` (several members allowed).
    Gzip(Box<flate2::write::MultiGzDecoder<BodySink>>),
    /// `deflate` (zlib-wrapped, as RFC 9110 says).
    Deflate(Box<flate2::write::ZlibDecoder<BodySink>>),
    /// `br`.
    Brotli(Box<brotli_decompressor::DecompressorWriter<BodySink>>),
}

impl Decoder {
    /// A decoder for `encoding` (`None`: the body is taken as it is).
    pub fn new(encoding: Option<&str>, sink: BodySink) -> Self {
        let enc = encoding.map(|e| e.trim().to_ascii_lowercase());
        match enc.as_deref() {
            Some("gzip" | "x-gzip") => Decoder::Pending(Codec::Gzip, sink),
            Some("deflate") => Decoder::Pending(Codec::Deflate, sink),
            Some("br") => Decoder::Pending(Codec::Brotli, sink),
            _ => Decoder::Identity(sink),
        }
    }

    /// Start the decoder of a pending body.
    fn start(codec: Codec, sink: BodySink) -> Self {
        match codec {
            Codec::Gzip => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(sink))),
            Codec::Deflate => Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(sink))),
            Codec::Brotli => Decoder::Brotli(Box::new(
                brotli_decompressor::DecompressorWriter::new(sink, 8192),
            )),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Decoder::Identity(_) => "identity",
            Decoder::Pending(Codec::Gzip, _) => "gzip",
            Decoder::Pending(Codec::Deflate, _) => "deflate",
            Decoder::Pending(Codec::Brotli, _) => "br",
            Decoder::Gzip(_) => "gzip",
            Decoder::Deflate(_) => "deflate",
            Decoder::Brotli(_) => "br",
        }
    }

    fn sink(&self) -> &BodySink {
        match self {
            Decoder::Identity(s) | Decoder::Pending(_, s) => s,
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::Deflate(d) => d.get_ref(),
            Decoder::Brotli(d) => d.get_ref(),
        }
    }

    /// Whether output can be larger than input (a compressed body).
    pub fn expands(&self) -> bool {
        !matches!(self, Decoder::Identity(_))
    }

    /// Decoded bytes so far.
    pub fn decoded_len(&self) -> u64 {
        self.sink().len()
    }

    /// Feed one frame of the body as it came off the wire.
    pub fn push(&mut self, data: &[u8]) -> Result<(), BodyError> {
        if data.is_empty() {
            return Ok(());
        }
        if let Decoder::Pending(codec, _) = self {
            let codec = *codec;
            let placeholder = Decoder::Identity(BodySink::new(false, 0, None));
            if let Decoder::Pending(_, sink) = std::mem::replace(self, placeholder) {
                *self = Decoder::start(codec, sink);
            }
        }
        let res = match self {
            Decoder::Identity(s) | Decoder::Pending(_, s) => s.write_all(data),
            Decoder::Gzip(d) => d.write_all(data),
            Decoder::Deflate(d) => d.write_all(data),
            Decoder::Brotli(d) => d.write_all(data),
        };
        res.map_err(|e| self.error(&e))
    }

    /// The body is complete: check that the encoded stream ended properly, and return the
    /// kept bytes (empty when the body was only counted) with the decoded length.
    pub fn finish(mut self) -> Result<(Bytes, u64), BodyError> {
        // Finishing flushes the decoder's last output, which may still pass the limit.
        let res = match &mut self {
            Decoder::Identity(_) | Decoder::Pending(..) => Ok(()),
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Deflate(d) => d.try_finish(),
            Decoder::Brotli(d) => d.close(),
        };
        res.map_err(|e| self.error(&e))?;
        let counted = || BodySink::new(false, 0, None);
        let sink = match self {
            Decoder::Identity(s) | Decoder::Pending(_, s) => s,
            Decoder::Gzip(mut d) => std::mem::replace(d.get_mut(), counted()),
            Decoder::Deflate(mut d) => std::mem::replace(d.get_mut(), counted()),
            Decoder::Brotli(mut d) => std::mem::replace(d.get_mut(), counted()),
        };
        Ok((sink.kept.map(Bytes::from).unwrap_or_default(), sink.len))
    }

    fn error(&self, e: &io::Error) -> BodyError {
        let sink = self.sink();
        if sink.over {
            BodyError::TooLarge(sink.limit)
        } else {
            BodyError::Invalid(format!("invalid {} body: {e}", self.name()))
        }
    }
}

/// A byte size as people write it: `4 MiB`, `512 KiB`, `100 B`.
pub fn format_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// A byte size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// A unit other than B, KB/KiB, MB/MiB, GB/GiB.
    #[error("invalid size `{text}`: expected bytes or a number with KiB, MiB or GiB, e.g. `4MiB`")]
    Unit {
        /// The size as written.
        text: String,
    },
    /// No number before the unit.
    #[error("invalid size `{text}`: expected a number such as `4MiB` or `65536`")]
    NotANumber {
        /// The size as written.
        text: String,
    },
    /// Less than a byte or more than a PiB.
    #[error("invalid size `{text}`: expected at least 1 byte and at most 1 PiB")]
    OutOfRange {
        /// The size as written.
        text: String,
    },
}

/// Parse a byte size: a number of bytes, or a number with a unit `B`, `KB`/`KiB`, `MB`/`MiB`,
/// `GB`/`GiB` (case-insensitive; `KB` and `KiB` both mean 1024, as in most load tools).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(SizeError::Unit {
                text: text.to_owned(),
            })
        }
    };
    let n: f64 = num.parse().map_err(|_| SizeError::NotANumber {
        text: text.to_owned(),
    })?;
    let bytes = n * mult as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes <= (1u64 << 50) as f64) {
        return Err(SizeError::OutOfRange {
            text: text.to_owned(),
        });
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn decode(encoding: &str, body: &[u8], limit: u64) -> Result<(Bytes, u64), BodyError> {
        let mut d = Decoder::new(Some(encoding), BodySink::new(true, limit, None));
        // Frame by frame, as bodies arrive.
        for chunk in body.chunks(7) {
            d.push(chunk)?;
        }
        d.finish()
    }

    #[test]
    fn gzip_round_trip_in_small_frames() {
        let (body, len) = decode("gzip", &gzip(b"hello hello hello"), 1 << 20).unwrap();
        assert_eq!(&body[..], b"hello hello hello");
        assert_eq!(len, 17);
    }

    #[test]
    fn an_empty_encoded_body_is_empty_not_invalid() {
        // HEAD and 304 responses carry Content-Encoding and no body.
        for enc in ["gzip", "deflate", "br"] {
            let d = Decoder::new(Some(enc), BodySink::new(true, 100, None));
            assert_eq!(d.finish(), Ok((Bytes::new(), 0)), "{enc}");
        }
    }

    #[test]
    fn brotli_known_vector() {
        // "hello" compressed with brotli quality 11.
        let br = [0x0b, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03];
        assert_eq!(&decode("br", &br, 100).unwrap().0[..], b"hello");
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert!(matches!(
            decode("gzip", b"not gzip", 100),
            Err(BodyError::Invalid(_))
        ));
        let gz = gzip(&[b'a'; 1000]);
        assert!(matches!(
            decode("gzip", &gz[..gz.len() / 2], 1 << 20),
            Err(BodyError::Invalid(_))
        ));
        assert_eq!(&decode("identity", b"x", 100).unwrap().0[..], b"x");
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_only_counting_keeps_nothing() {
        // 64 MiB of zeros compress to ~64 KiB.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 128 << 10, "{}", bomb.len());
        assert_eq!(
            decode("gzip", &bomb, 1 << 20),
            Err(BodyError::TooLarge(1 << 20))
        );

        let mut d = Decoder::new(Some("gzip"), BodySink::new(false, 1 << 20, None));
        for chunk in bomb.chunks(16 << 10) {
            d.push(chunk).unwrap();
        }
        let (kept, len) = d.finish().unwrap();
        assert!(kept.is_empty());
        assert_eq!(
            len,
            64 << 20,
            "a body that is not kept is still counted, decoded"
        );
    }

    #[test]
    fn identity_bodies_are_limited_only_when_kept() {
        assert_eq!(
            decode("identity", &[1; 101], 100),
            Err(BodyError::TooLarge(100))
        );
        assert_eq!(decode("identity", &[1; 100], 100).unwrap().1, 100);
        let mut d = Decoder::new(None, BodySink::new(false, 100, None));
        d.push(&[1; 1000]).unwrap();
        assert_eq!(d.finish().unwrap().1, 1000);
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("4 mb"), Ok(4 << 20));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        for bad in ["", "0", "-1", "4 lots", "MiB", "1e400", "2000000TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(4 << 20), "4 MiB");
        assert_eq!(format_size(1536), "1536 B");
        assert_eq!(format_size(64 << 10), "64 KiB");
    }
}
