//! A bounds-checked reader of Kafka's classic big-endian primitives, for the few formats the
//! schema crate does not cover (legacy Produce, `__consumer_offsets` records). Every method
//! returns `None` on short input instead of panicking.

/// Reads primitives from the front of a byte slice.
pub struct WireReader<'a> {
    /// What is left to read.
    rest: &'a [u8],
}

impl<'a> WireReader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> WireReader<'a> {
        WireReader { rest: bytes }
    }

    /// The next `count` bytes.
    pub fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.rest.len() < count {
            return None;
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Some(taken)
    }

    /// A big-endian `i16`.
    pub fn i16(&mut self) -> Option<i16> {
        self.take(2)
            .map(|bytes| i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// A big-endian `i32`.
    pub fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|bytes| i32::from_be_bytes(bytes.try_into().expect("four bytes")))
    }

    /// A big-endian `i64`.
    pub fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .map(|bytes| i64::from_be_bytes(bytes.try_into().expect("eight bytes")))
    }

    /// A string with an `i16` length; a negative length is null (`Some(None)`).
    pub fn nullable_string_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let length = self.i16()?;
        if length < 0 {
            return Some(None);
        }
        self.take(length as usize).map(Some)
    }

    /// Bytes with an `i32` length; a negative length is null (`Some(None)`).
    pub fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let length = self.i32()?;
        if length < 0 {
            return Some(None);
        }
        self.take(length as usize).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_none_not_a_panic() {
        let mut reader = WireReader::new(&[0, 2, b'h', b'i', 0xff, 0xff, 0, 0]);
        assert_eq!(reader.nullable_string_bytes(), Some(Some(&b"hi"[..])));
        assert_eq!(reader.nullable_string_bytes(), Some(None));
        assert_eq!(reader.i32(), None);
        assert_eq!(reader.i16(), Some(0));
    }
}
