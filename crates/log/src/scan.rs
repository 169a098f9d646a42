//! Reading batch headers out of segment files with few system calls.
//!
//! Reads never go through the append path's state: they use positional reads (`pread`) on a
//! shared file handle, so several readers and the writer can use one `File` at once.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use cauce_protocol::batch::{self, BatchHeader, BATCH_HEADER_SIZE};

/// Bytes fetched per refill; enough for dozens of small batch headers per `pread`.
const DEFAULT_WINDOW_BYTES: usize = 16 * 1024;
/// Bytes hashed per step when checking the CRC of a batch larger than the window.
const CRC_CHUNK_BYTES: usize = 1024 * 1024;

/// A read-ahead window over `file[..end]`.
pub(crate) struct FileWindow<'a> {
    /// The segment file being read.
    file: &'a File,
    /// Logical end of the file: the committed segment size, not the OS file length.
    end: u64,
    /// File position of `buffer[0]`.
    buffer_start: u64,
    /// Bytes read ahead.
    buffer: Vec<u8>,
    /// How much to read ahead on a miss.
    window_bytes: usize,
}

impl<'a> FileWindow<'a> {
    pub(crate) fn new(file: &'a File, end: u64) -> FileWindow<'a> {
        FileWindow::with_window(file, end, DEFAULT_WINDOW_BYTES)
    }

    pub(crate) fn with_window(file: &'a File, end: u64, window_bytes: usize) -> FileWindow<'a> {
        FileWindow {
            file,
            end,
            buffer_start: 0,
            buffer: Vec::new(),
            window_bytes,
        }
    }

    /// Up to `length` bytes at `position` (fewer only at the logical end).
    pub(crate) fn read(&mut self, position: u64, length: usize) -> io::Result<&[u8]> {
        let available = self.end.saturating_sub(position) as usize;
        let length = length.min(available);
        let buffer_end = self.buffer_start + self.buffer.len() as u64;
        if position < self.buffer_start || position + length as u64 > buffer_end {
            let fetch = length.max(self.window_bytes).min(available);
            self.buffer.resize(fetch, 0);
            self.file.read_exact_at(&mut self.buffer, position)?;
            self.buffer_start = position;
        }
        let offset = (position - self.buffer_start) as usize;
        Ok(&self.buffer[offset..offset + length])
    }

    /// Header of the batch at `position`, or `None` when the bytes there do not hold a whole
    /// well-framed batch within the logical end.
    pub(crate) fn header_at(&mut self, position: u64) -> io::Result<Option<BatchHeader>> {
        let end = self.end;
        let bytes = self.read(position, BATCH_HEADER_SIZE)?;
        let Ok(header) = batch::parse_header(bytes) else {
            return Ok(None);
        };
        if position + header.total_size() as u64 > end {
            return Ok(None);
        }
        Ok(Some(header))
    }

    /// Whether the stored CRC of the batch at `position` matches its bytes.
    pub(crate) fn crc_matches(&mut self, position: u64, header: &BatchHeader) -> io::Result<bool> {
        let total_size = header.total_size();
        if total_size <= self.window_bytes.max(CRC_CHUNK_BYTES) {
            let bytes = self.read(position, total_size)?;
            return Ok(batch::compute_crc(bytes) == header.crc);
        }
        // Hash a huge batch in pieces instead of allocating it whole.
        let mut crc = 0u32;
        let mut chunk_start = position + batch::ATTRIBUTES_AT as u64;
        let batch_end = position + total_size as u64;
        while chunk_start < batch_end {
            let chunk_length = ((batch_end - chunk_start) as usize).min(CRC_CHUNK_BYTES);
            let bytes = self.read(chunk_start, chunk_length)?;
            crc = crc32c::crc32c_append(crc, bytes);
            chunk_start += chunk_length as u64;
        }
        Ok(crc == header.crc)
    }

    /// The whole batch at `position`, copied out.
    pub(crate) fn batch_bytes(
        &mut self,
        position: u64,
        header: &BatchHeader,
    ) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; header.total_size()];
        self.file.read_exact_at(&mut bytes, position)?;
        Ok(bytes)
    }
}

/// Walks batch headers from a position, stopping at the logical end or the first bad frame.
pub(crate) struct HeaderCursor<'a> {
    /// Read-ahead over the segment file.
    window: FileWindow<'a>,
    /// Position of the next batch.
    position: u64,
}

impl<'a> HeaderCursor<'a> {
    pub(crate) fn new(file: &'a File, start: u64, end: u64) -> HeaderCursor<'a> {
        HeaderCursor {
            window: FileWindow::new(file, end),
            position: start,
        }
    }

    /// The next batch as (position, header), or `None` at the end or at a malformed batch.
    pub(crate) fn next_batch(&mut self) -> io::Result<Option<(u64, BatchHeader)>> {
        let position = self.position;
        let Some(header) = self.window.header_at(position)? else {
            return Ok(None);
        };
        self.position += header.total_size() as u64;
        Ok(Some((position, header)))
    }

    /// Where the cursor stands: after the last batch returned.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Copies out the whole batch at `position` (a position this cursor returned).
    pub(crate) fn batch_bytes(
        &mut self,
        position: u64,
        header: &BatchHeader,
    ) -> io::Result<Vec<u8>> {
        self.window.batch_bytes(position, header)
    }
}
