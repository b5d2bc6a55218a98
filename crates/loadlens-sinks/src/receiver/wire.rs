//! The protobuf wire format read in place: a message's fields, one at a time, their
//! length-delimited values borrowed from the body.
//!
//! Written by hand rather than decoded with the generated `opentelemetry-proto` messages:
//! those own every field (a `String` per attribute key and value, a `Vec` per id), and the
//! join reads a dozen fields of a span. Reading in place costs the receiver no allocation per
//! span and skips what it does not read (events, links, other attributes) by their lengths.

/// Why a body is not valid protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed(pub(super) &'static str);

/// One field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, a string or an embedded message.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// The value of a length-delimited field, or an error naming the wire type mismatch.
    pub(super) fn bytes(self) -> Result<&'a [u8], Malformed> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(Malformed("a length-delimited field has another wire type")),
        }
    }

    /// The value of a `string` field.
    pub(super) fn str(self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Malformed("a string is not valid UTF-8"))
    }

    /// The value of a `fixed64` field.
    pub(super) fn fixed64(self) -> Result<u64, Malformed> {
        match self {
            Value::Fixed64(v) => Ok(v),
            _ => Err(Malformed("a fixed64 field has another wire type")),
        }
    }

    /// The value of a varint field (`int32`, enums).
    pub(super) fn varint(self) -> Result<u64, Malformed> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(Malformed("a varint field has another wire type")),
        }
    }
}

/// The fields of one message, in the order they were written.
#[derive(Debug, Clone)]
pub(super) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Fields { buf }
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    break;
                }
                self.buf = &self.buf[i + 1..];
                return Ok(v);
            }
        }
        Err(Malformed("invalid varint"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(Malformed("a field runs past the end of its message"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), Malformed> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|&n| n != 0)
            .ok_or(Malformed("invalid field number"))?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().unwrap_or_default(),
            )),
            2 => {
                let n = usize::try_from(self.varint()?)
                    .map_err(|_| Malformed("a field runs past the end of its message"))?;
                Value::Bytes(self.take(n)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().unwrap_or_default(),
            )),
            // Groups (3, 4) are not used by OTLP; 6 and 7 do not exist.
            _ => return Err(Malformed("invalid wire type")),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let f = self.field();
        if f.is_err() {
            // Stop after the first error.
            self.buf = &[];
        }
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(b: &[u8]) -> Result<Vec<(u32, Value<'_>)>, Malformed> {
        Fields::new(b).collect()
    }

    #[test]
    fn reads_each_wire_type_and_refuses_what_is_not_protobuf() {
        let body = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 2, b'h', b'i', // 3: "hi"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        assert_eq!(
            fields(&body),
            Ok(vec![
                (1, Value::Varint(150)),
                (2, Value::Fixed64(1)),
                (3, Value::Bytes(b"hi")),
                (4, Value::Fixed32(2)),
            ])
        );
        assert_eq!(
            fields(&[0x1a, 5, b'h']),
            Err(Malformed("a field runs past the end of its message"))
        );
        assert_eq!(fields(&[0x08]), Err(Malformed("invalid varint")));
        assert_eq!(fields(&[0x0b]), Err(Malformed("invalid wire type")));
        assert_eq!(
            fields(&[0x00, 0x00]),
            Err(Malformed("invalid field number"))
        );
        assert_eq!(
            fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Ok(vec![(1, Value::Varint(u64::MAX))])
        );
        assert_eq!(
            fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Err(Malformed("invalid varint"))
        );
        assert_eq!(
            Value::Bytes(b"\xff").str(),
            Err(Malformed("a string is not valid UTF-8"))
        );
    }
}
