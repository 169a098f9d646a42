//! A bounds-checked reader of Kafka's classic big-endian primitives, for the few formats the
//! schema crate does not cover (legacy Produce, `__consumer_offsets` and `__transaction_state`
//! records). Every method
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

    /// A byte.
    pub fn i8(&mut self) -> Option<i8> {
        self.take(1).map(|bytes| bytes[0] as i8)
    }

    /// An unsigned varint of at most 32 bits (the lengths and counts of flexible versions).
    pub fn uvarint(&mut self) -> Option<u32> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            let bits = u32::from(byte & 0x7f);
            if shift == 28 && bits > 0x0f {
                return None;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
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

    #[test]
    fn uvarints_up_to_32_bits_and_no_longer() {
        let mut reader = WireReader::new(&[0x00, 0x7f, 0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(reader.uvarint(), Some(0));
        assert_eq!(reader.uvarint(), Some(127));
        assert_eq!(reader.uvarint(), Some(128));
        assert_eq!(reader.uvarint(), Some(u32::MAX));
        assert!(reader.is_empty());
        assert_eq!(
            WireReader::new(&[0xff, 0xff, 0xff, 0xff, 0x1f]).uvarint(),
            None
        );
        assert_eq!(WireReader::new(&[0x80, 0x80]).uvarint(), None);
    }
}
