//! Reads: fetch by offset, lookup by timestamp, the largest timestamp.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;

use bytes::Bytes;
use cauce_protocol::records;

use crate::checkpoint::io_error;
use crate::log::Log;
use crate::scan::HeaderCursor;
use crate::segment::Segment;
use crate::LogError;

/// A byte range of one segment file holding whole batches, to be read without the log's mutex.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    /// The segment file; stays readable even if the segment is deleted meanwhile.
    pub file: Arc<File>,
    /// Where the first batch starts.
    pub position: u64,
    /// Bytes to read; 0 when there is nothing to return.
    pub length: usize,
}

impl ReadSlice {
    /// Reads the range with positional reads (no shared cursor, no lock needed), straight into
    /// a fresh buffer: zeroing it first would cost as much as the read itself.
    pub fn read_bytes(&self) -> std::io::Result<Bytes> {
        let mut bytes: Vec<u8> = Vec::with_capacity(self.length);
        while bytes.len() < self.length {
            let filled = bytes.len();
            let spare = &mut bytes.spare_capacity_mut()[..self.length - filled];
            let position = libc::off_t::try_from(self.position + filled as u64)
                .map_err(|_| std::io::Error::other("read position out of range"))?;
            // SAFETY: `pread` writes at most `spare.len()` bytes into `spare`, memory owned by
            // `bytes` that nothing else refers to; the fd is open for as long as `self.file`.
            let read = unsafe {
                libc::pread(
                    self.file.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    position,
                )
            };
            match read {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                read if read < 0 => {
                    let error = std::io::Error::last_os_error();
                    if error.kind() != std::io::ErrorKind::Interrupted {
                        return Err(error);
                    }
                }
                // SAFETY: `pread` initialised the `read` bytes after the first `filled`.
                read => unsafe { bytes.set_len(filled + read as usize) },
            }
        }
        Ok(Bytes::from(bytes))
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }
}

impl Log {
    /// Index of the segment that would hold `offset`: the last with base offset ≤ `offset`.
    pub(crate) fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|segment| segment.base_offset <= offset)
            .saturating_sub(1)
    }

    fn empty_slice(&self) -> ReadSlice {
        let active = self.active_segment();
        ReadSlice {
            file: Arc::clone(&active.log_file),
            position: active.size_bytes,
            length: 0,
        }
    }

    /// Fetch read with Kafka's semantics: whole batches starting with the one holding
    /// `fetch_offset`, stopping before a batch whose base offset is ≥ `upper_bound_offset`
    /// and before exceeding `max_bytes` — except that the first batch is always returned whole
    /// (KIP-74). A read covers one segment; the next fetch continues in the next.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        upper_bound_offset: i64,
    ) -> Result<ReadSlice, LogError> {
        let log_end_offset = self.log_end_offset();
        if fetch_offset < self.log_start_offset || fetch_offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                requested: fetch_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            });
        }
        if fetch_offset == log_end_offset || fetch_offset >= upper_bound_offset {
            return Ok(self.empty_slice());
        }
        for segment in &self.segments[self.segment_index_for(fetch_offset)..] {
            let Some((position, first_header)) = segment.find_batch(fetch_offset)? else {
                // The offset fell in a gap at the end of this segment; continue in the next.
                continue;
            };
            if first_header.base_offset >= upper_bound_offset {
                return Ok(self.empty_slice());
            }
            let first_end = position + first_header.total_size() as u64;
            let end =
                whole_batches_end(segment, first_end, position, max_bytes, upper_bound_offset)?;
            return Ok(ReadSlice {
                file: Arc::clone(&segment.log_file),
                position,
                length: (end - position) as usize,
            });
        }
        Ok(self.empty_slice())
    }

    /// ListOffsets by timestamp: the first record (at or after the log start) with a
    /// timestamp ≥ `timestamp_ms`, as (offset, timestamp, leader epoch of its batch).
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64, i32)>, LogError> {
        for segment in &self.segments {
            if segment.max_timestamp < timestamp_ms || segment.next_offset <= self.log_start_offset
            {
                continue;
            }
            let start = segment.scan_start_for_timestamp(timestamp_ms);
            let mut cursor = HeaderCursor::new(&segment.log_file, start, segment.size_bytes);
            while let Some((position, header)) = cursor
                .next_batch()
                .map_err(io_error("read segment", &segment.log_path))?
            {
                if header.max_timestamp < timestamp_ms
                    || header.last_offset() < self.log_start_offset
                {
                    continue;
                }
                let bytes = cursor
                    .batch_bytes(position, &header)
                    .map_err(io_error("read segment", &segment.log_path))?;
                let (header, record_iter) =
                    records::records(&bytes, self.config.max_decompressed_bytes())?;
                for record in record_iter {
                    let record = record?;
                    let offset = record.offset(&header);
                    let record_timestamp = record.timestamp(&header);
                    if offset >= self.log_start_offset && record_timestamp >= timestamp_ms {
                        return Ok(Some((
                            offset,
                            record_timestamp,
                            header.partition_leader_epoch,
                        )));
                    }
                }
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the largest record timestamp and the offset of the first
    /// record carrying it. `None` for an empty log or one without timestamps.
    pub fn max_timestamp_and_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<&Segment> = None;
        for segment in &self.segments {
            if segment.size_bytes == 0 || segment.next_offset <= self.log_start_offset {
                continue;
            }
            if best.is_none_or(|best| segment.max_timestamp > best.max_timestamp) {
                best = Some(segment);
            }
        }
        let Some(segment) = best.filter(|segment| segment.max_timestamp >= 0) else {
            return Ok(None);
        };
        let Some((position, header)) = segment.find_batch(segment.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        debug_assert_eq!(header.max_timestamp, segment.max_timestamp);
        let mut bytes = vec![0u8; header.total_size()];
        segment
            .log_file
            .read_exact_at(&mut bytes, position)
            .map_err(io_error("read segment", &segment.log_path))?;
        let (header, record_iter) = records::records(&bytes, self.config.max_decompressed_bytes())?;
        for record in record_iter {
            let record = record?;
            if record.timestamp(&header) == header.max_timestamp {
                return Ok(Some((header.max_timestamp, record.offset(&header))));
            }
        }
        // A batch whose maxTimestamp no record carries: report its last offset.
        Ok(Some((header.max_timestamp, header.last_offset())))
    }
}

/// End of the run of whole batches after the first one (which ends at `first_end`) that
/// fits in `max_bytes` counted from `start` and stays below `upper_bound_offset`.
fn whole_batches_end(
    segment: &Segment,
    first_end: u64,
    start: u64,
    max_bytes: usize,
    upper_bound_offset: i64,
) -> Result<u64, LogError> {
    let mut end = first_end;
    let mut cursor = HeaderCursor::new(&segment.log_file, first_end, segment.size_bytes);
    while let Some((position, header)) = cursor
        .next_batch()
        .map_err(io_error("read segment", &segment.log_path))?
    {
        let batch_end = position + header.total_size() as u64;
        if header.base_offset >= upper_bound_offset || batch_end - start > max_bytes as u64 {
            break;
        }
        end = batch_end;
    }
    Ok(end)
}
