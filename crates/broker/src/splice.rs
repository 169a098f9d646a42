//! Response frames in parts, so that Fetch does not copy record bytes into its response.
//!
//! A fetch reads record batches from segment files into [`Bytes`]; encoding the response with
//! `kafka-protocol` would copy each of them again into the frame. [`SplicingBuf`] is the buffer
//! the encoder writes into instead: it copies the fields the encoder writes, and when the
//! encoder puts one of the record sets it was told about (recognised by address and length, in
//! encoding order), it keeps a reference to those bytes as a part of its own. The connection
//! writer then sends the parts one after the other.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use cauce_protocol::kafka::protocol::buf::ByteBufMut;

/// An encoding buffer that keeps the announced record sets by reference.
pub struct SplicingBuf {
    /// Finished parts, in order.
    parts: Vec<Bytes>,
    /// The bytes written since the last spliced record set.
    current: BytesMut,
    /// Bytes in `parts`.
    finished_len: usize,
    /// Record sets still to come, in the order the encoder will put them.
    expected: VecDeque<Bytes>,
}

impl SplicingBuf {
    /// A buffer that will splice `record_sets` (empty ones are ignored) when the encoder puts
    /// them, in this order.
    pub fn new(record_sets: impl IntoIterator<Item = Bytes>) -> SplicingBuf {
        SplicingBuf {
            parts: Vec::new(),
            current: BytesMut::with_capacity(256),
            finished_len: 0,
            expected: record_sets
                .into_iter()
                .filter(|records| !records.is_empty())
                .collect(),
        }
    }

    /// The parts written; their concatenation is the encoding.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        if !self.current.is_empty() {
            self.parts.push(self.current.freeze());
        }
        self.parts
    }

    /// Whether `source` is the next announced record set itself, not a copy of it.
    fn is_next_record_set(&self, source: &[u8]) -> bool {
        self.expected.front().is_some_and(|next| {
            std::ptr::eq(next.as_ptr(), source.as_ptr()) && next.len() == source.len()
        })
    }
}

// SAFETY: every method forwards to the `BytesMut` holding the bytes written since the last
// splice, which upholds `BufMut`'s contract; `put_slice` only adds whole finished parts.
unsafe impl BufMut for SplicingBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, count: usize) {
        // SAFETY: the caller initialised `count` bytes of `chunk_mut()`, which is `current`'s.
        unsafe { self.current.advance_mut(count) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, source: &[u8]) {
        if self.is_next_record_set(source) {
            if let Some(records) = self.expected.pop_front() {
                let written = self.current.split().freeze();
                self.finished_len += written.len() + records.len();
                self.parts.push(written);
                self.parts.push(records);
                return;
            }
        }
        self.current.extend_from_slice(source);
    }
}

impl ByteBufMut for SplicingBuf {
    fn offset(&self) -> usize {
        self.finished_len + self.current.len()
    }

    /// Gaps are used by record-batch encoding, never by message encoding; only positions
    /// after the last splice can be reached.
    fn seek(&mut self, offset: usize) {
        let local = offset.saturating_sub(self.finished_len);
        self.current.resize(local, 0);
    }

    fn range(&mut self, range: Range<usize>) -> &mut [u8] {
        let start = range.start.saturating_sub(self.finished_len);
        let end = range.end.saturating_sub(self.finished_len);
        &mut self.current[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cauce_protocol::kafka::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use cauce_protocol::kafka::messages::{FetchResponse, TopicName};
    use cauce_protocol::kafka::protocol::{Encodable, StrBytes};

    fn response(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(index, records)| {
                PartitionData::default()
                    .with_partition_index(index as i32)
                    .with_records(Some(records.clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(partitions)])
    }

    #[test]
    fn parts_concatenate_to_the_plain_encoding_and_share_the_record_bytes() {
        let records = vec![
            Bytes::from(vec![7u8; 1000]),
            Bytes::new(),
            Bytes::from(vec![9u8; 3000]),
        ];
        let response = response(&records);
        for version in [4, 11, 12, 16] {
            let mut plain = BytesMut::new();
            response.encode(&mut plain, version).unwrap();
            let mut splicing = SplicingBuf::new(records.clone());
            response.encode(&mut splicing, version).unwrap();
            let parts = splicing.into_parts();
            assert_eq!(parts.concat(), plain.to_vec(), "version {version}");
            for spliced in [&records[0], &records[2]] {
                assert!(
                    parts.iter().any(|part| part.as_ptr() == spliced.as_ptr()),
                    "version {version}: record set was copied"
                );
            }
        }
    }

    #[test]
    fn equal_bytes_elsewhere_are_copied_not_spliced() {
        let records = Bytes::from(b"abcdef".to_vec());
        let mut buf = SplicingBuf::new([records.clone()]);
        buf.put_slice(b"abcdef");
        assert_eq!(
            buf.expected.len(),
            1,
            "a copy with the same content is not the record set"
        );
        buf.put_slice(&records);
        assert!(buf.expected.is_empty());
        assert_eq!(buf.into_parts().concat(), b"abcdefabcdef".to_vec());
    }
}
