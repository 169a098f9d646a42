//! One segment: a `.log` file of batches plus its `.index`, `.timeindex` and, once it holds
//! an abort marker, `.txnindex`.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::UNIX_EPOCH;

use cauce_protocol::batch::BatchHeader;

use crate::checkpoint::{io_error, offset_file_name, remove_if_present};
use crate::config::LogConfig;
use crate::index::{OffsetIndex, TimeIndex};
use crate::scan::{FileWindow, HeaderCursor};
use crate::txn_index::{txn_index_path, TxnIndex};
use crate::LogError;

/// Read-ahead used by recovery, which reads whole segments front to back.
const RECOVERY_WINDOW_BYTES: usize = 1024 * 1024;

/// How far past the log's end the active segment's file is grown at a time. An append inside
/// the file's length skips work an append that grows the file does: on Linux 6.18's ext4 each
/// growing append zeroes the rest of its page-cache folio, 23% of the broker's profile samples
/// under small produce batches (BENCHMARKS.md). The zeros past the log's end end recovery's
/// scan like any torn tail, and sealing the segment cuts them off.
const PREALLOCATE_BYTES: u64 = 4 * 1024 * 1024;

/// Appended bytes after which the segment asks the kernel to start writing them to disk
/// (without waiting). Left alone, dirty pages pile up to the kernel's background threshold
/// (10% of memory) and are then flushed in bursts that starve the broker of CPU and stall its
/// writes; started early they trickle out as they come.
const WRITEBACK_BYTES: u64 = 4 * 1024 * 1024;

/// Size of a page-cache page: writeback is started only for whole pages, never for the one
/// the next append writes into.
const PAGE_BYTES: u64 = 4096;

/// A contiguous range of the partition's offsets stored in one file.
#[derive(Debug)]
pub(crate) struct Segment {
    /// First offset this segment may hold; names its files.
    pub(crate) base_offset: i64,
    /// Path of the `.log` file, for deletion and errors.
    pub(crate) log_path: PathBuf,
    /// Shared handle so reads and group-commit fsyncs can proceed without the log's mutex.
    pub(crate) log_file: Arc<File>,
    /// Committed bytes; anything past it in the file is not part of the log.
    pub(crate) size_bytes: u64,
    /// The file's length: `size_bytes` plus the zeros grown ahead of appends.
    file_bytes: u64,
    /// Where the bytes not yet handed to writeback start.
    writeback_from: u64,
    /// Sparse offset → position map for fetches.
    pub(crate) offset_index: OffsetIndex,
    /// Sparse timestamp → offset map for ListOffsets.
    pub(crate) time_index: TimeIndex,
    /// The aborted transactions whose marker is in this segment.
    pub(crate) txn_index: TxnIndex,
    /// Offset after the last batch; equals `base_offset` while empty.
    pub(crate) next_offset: i64,
    /// Largest batch `maxTimestamp` in the segment; drives retention.ms and time lookups.
    pub(crate) max_timestamp: i64,
    /// Base offset of the batch holding `max_timestamp`.
    pub(crate) offset_of_max_timestamp: i64,
    /// Log bytes appended since the last offset-index entry; decides the next entry.
    bytes_since_last_index_entry: u64,
    /// `maxTimestamp` of the first batch; what segment.ms is measured from, as in Kafka.
    pub(crate) first_batch_max_timestamp: Option<i64>,
    /// When this process created or loaded the segment; segment.ms fallback without timestamps.
    pub(crate) created_at_ms: i64,
}

fn segment_paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(offset_file_name(base_offset, "log")),
        dir.join(offset_file_name(base_offset, "index")),
        dir.join(offset_file_name(base_offset, "timeindex")),
    )
}

fn open_log_file(path: &Path, truncate: bool) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
        .map_err(io_error("open segment", path))
}

impl Segment {
    /// A new empty segment starting at `base_offset`, replacing any files of that name.
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Segment, LogError> {
        let (log_path, index_path, time_index_path) = segment_paths(dir, base_offset);
        let log_file = Arc::new(open_log_file(&log_path, true)?);
        let txn_index_path = txn_index_path(dir, base_offset);
        remove_if_present(&txn_index_path)?;
        Ok(Segment {
            base_offset,
            log_path,
            log_file,
            size_bytes: 0,
            file_bytes: 0,
            writeback_from: 0,
            offset_index: OffsetIndex::create(&index_path)?,
            time_index: TimeIndex::create(&time_index_path)?,
            txn_index: TxnIndex::empty(txn_index_path),
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index_entry: 0,
            first_batch_max_timestamp: None,
            created_at_ms: now_ms,
        })
    }

    /// Opens an existing segment. With `force_recovery`, or when an index is missing or
    /// damaged, the log is scanned and checked, its torn tail cut off and the indexes rebuilt.
    /// Returns the segment and the bytes truncated from it.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        force_recovery: bool,
        now_ms: i64,
    ) -> Result<(Segment, u64), LogError> {
        let (log_path, index_path, time_index_path) = segment_paths(dir, base_offset);
        let log_file = Arc::new(open_log_file(&log_path, false)?);
        let file_size = log_file
            .metadata()
            .map_err(io_error("stat segment", &log_path))?
            .len();
        if !force_recovery {
            match Segment::load(&log_path, &log_file, base_offset, file_size, now_ms)? {
                Ok(mut segment) => {
                    segment.txn_index = TxnIndex::load(
                        txn_index_path(dir, base_offset),
                        base_offset,
                        segment.next_offset,
                    )?;
                    return Ok((segment, 0));
                }
                Err(reason) => tracing::warn!(
                    segment = %log_path.display(),
                    reason = %reason,
                    "rebuilding segment indexes from the log"
                ),
            }
        }
        let mut segment = Segment::create_fresh_indexes(
            log_path,
            log_file,
            base_offset,
            &index_path,
            &time_index_path,
            now_ms,
        )?;
        let truncated_bytes = segment.recover(config, file_size)?;
        // Entries of markers cut off with a torn tail go; the producer-state replay at open
        // adds back any abort of the kept part that the index missed.
        segment.txn_index = TxnIndex::load(
            txn_index_path(dir, base_offset),
            base_offset,
            segment.next_offset,
        )?;
        Ok((segment, truncated_bytes))
    }

    fn create_fresh_indexes(
        log_path: PathBuf,
        log_file: Arc<File>,
        base_offset: i64,
        index_path: &Path,
        time_index_path: &Path,
        now_ms: i64,
    ) -> Result<Segment, LogError> {
        Ok(Segment {
            base_offset,
            log_path,
            log_file,
            size_bytes: 0,
            file_bytes: 0,
            writeback_from: 0,
            offset_index: OffsetIndex::create(index_path)?,
            time_index: TimeIndex::create(time_index_path)?,
            // Loaded by the caller, which knows where the recovered log ends.
            txn_index: TxnIndex::empty(PathBuf::new()),
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index_entry: 0,
            first_batch_max_timestamp: None,
            created_at_ms: now_ms,
        })
    }

    /// Trusts the indexes after checking them and the log tail after the last index entry.
    /// `Ok(Err(reason))` asks for a rebuild.
    fn load(
        log_path: &Path,
        log_file: &Arc<File>,
        base_offset: i64,
        file_size: u64,
        now_ms: i64,
    ) -> Result<Result<Segment, String>, LogError> {
        let (_, index_path, time_index_path) = segment_paths(
            log_path
                .parent()
                .expect("segment files live in a directory"),
            base_offset,
        );
        let offset_index = match OffsetIndex::load(&index_path, file_size)? {
            Ok(index) => index,
            Err(reason) => return Ok(Err(reason)),
        };
        let time_index = match TimeIndex::load(&time_index_path)? {
            Ok(index) => index,
            Err(reason) => return Ok(Err(reason)),
        };
        let tail_start = offset_index
            .last()
            .map_or(0, |entry| u64::from(entry.position));
        let mut cursor = HeaderCursor::new(log_file, tail_start, file_size);
        let mut next_offset = base_offset;
        let mut tail_max_timestamp = (-1i64, base_offset);
        let mut first_in_tail = true;
        while let Some((_, header)) = cursor
            .next_batch()
            .map_err(io_error("read segment", log_path))?
        {
            if first_in_tail {
                if let Some(entry) = offset_index.last() {
                    if header.base_offset != base_offset + i64::from(entry.relative_offset) {
                        return Ok(Err(
                            "last offset index entry does not point at its batch".into()
                        ));
                    }
                }
                first_in_tail = false;
            }
            if header.base_offset < next_offset
                || header.last_offset_delta < 0
                || header.last_offset() - base_offset > i64::from(u32::MAX)
            {
                return Ok(Err("batch offsets in the log tail are out of order".into()));
            }
            if header.max_timestamp > tail_max_timestamp.0 {
                tail_max_timestamp = (header.max_timestamp, header.base_offset);
            }
            next_offset = header.next_offset();
        }
        if cursor.position() != file_size {
            return Ok(Err(format!(
                "log tail has a torn or malformed batch at byte {}",
                cursor.position()
            )));
        }
        if let Some(entry) = time_index.last() {
            if base_offset + i64::from(entry.relative_offset) >= next_offset {
                return Ok(Err("time index points past the end of the log".into()));
            }
        }
        let (mut max_timestamp, mut offset_of_max_timestamp) =
            time_index.last().map_or((-1, base_offset), |entry| {
                (
                    entry.timestamp,
                    base_offset + i64::from(entry.relative_offset),
                )
            });
        if tail_max_timestamp.0 > max_timestamp {
            (max_timestamp, offset_of_max_timestamp) = tail_max_timestamp;
        }
        let first_batch_max_timestamp = if file_size == 0 {
            None
        } else {
            FileWindow::new(log_file, file_size)
                .header_at(0)
                .map_err(io_error("read segment", log_path))?
                .map(|header| header.max_timestamp)
        };
        Ok(Ok(Segment {
            base_offset,
            log_path: log_path.to_path_buf(),
            log_file: Arc::clone(log_file),
            size_bytes: file_size,
            file_bytes: file_size,
            writeback_from: file_size,
            offset_index,
            time_index,
            // Loaded by the caller.
            txn_index: TxnIndex::empty(PathBuf::new()),
            next_offset,
            max_timestamp,
            offset_of_max_timestamp,
            bytes_since_last_index_entry: file_size - tail_start,
            first_batch_max_timestamp,
            created_at_ms: now_ms,
        }))
    }

    /// Scans the whole log with CRC checks from empty indexes, keeping every batch before the
    /// first torn or corrupt one and cutting the file there.
    fn recover(&mut self, config: &LogConfig, file_size: u64) -> Result<u64, LogError> {
        debug_assert_eq!(
            self.size_bytes, 0,
            "recovery starts from an empty segment state"
        );
        let log_file = Arc::clone(&self.log_file);
        let mut window = FileWindow::with_window(&log_file, file_size, RECOVERY_WINDOW_BYTES);
        let mut position = 0u64;
        let mut stop_reason = None;
        while position < file_size {
            let reading_error = io_error("read segment", &self.log_path);
            let Some(header) = window.header_at(position).map_err(reading_error)? else {
                let reading_error = io_error("read segment", &self.log_path);
                let rest = window.read(position, 64).map_err(reading_error)?;
                stop_reason = Some(if rest.iter().all(|byte| *byte == 0) {
                    "zeros: space grown ahead of appends, or a torn write"
                } else {
                    "torn or malformed batch"
                });
                break;
            };
            if header.base_offset < self.next_offset
                || header.last_offset_delta < 0
                || header.last_offset() - self.base_offset > i64::from(u32::MAX)
            {
                stop_reason = Some("batch offsets out of order");
                break;
            }
            let reading_error = io_error("read segment", &self.log_path);
            if !window
                .crc_matches(position, &header)
                .map_err(reading_error)?
            {
                stop_reason = Some("crc mismatch");
                break;
            }
            self.track_batch(position, &header, config)?;
            position += header.total_size() as u64;
            self.size_bytes = position;
        }
        let truncated_bytes = file_size - position;
        if truncated_bytes > 0 {
            self.log_file
                .set_len(position)
                .map_err(io_error("truncate segment", &self.log_path))?;
            tracing::info!(
                segment = %self.log_path.display(),
                valid_bytes = position,
                truncated_bytes,
                reason = stop_reason.unwrap_or("unknown"),
                "recovery truncated the log tail"
            );
        }
        self.size_bytes = position;
        self.file_bytes = position;
        self.writeback_from = position;
        Ok(truncated_bytes)
    }

    /// Offset relative to the base, as stored in the indexes.
    pub(crate) fn relative_offset(&self, offset: i64) -> u32 {
        debug_assert!(offset >= self.base_offset);
        (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Updates statistics and indexes for a batch now at `position` in the log file.
    fn track_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
        config: &LogConfig,
    ) -> Result<(), LogError> {
        debug_assert!(
            header.base_offset >= self.next_offset,
            "offsets must increase"
        );
        let index_due = self.bytes_since_last_index_entry >= u64::from(config.index_interval_bytes);
        if self.first_batch_max_timestamp.is_none() {
            self.first_batch_max_timestamp = Some(header.max_timestamp);
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        if index_due && position > 0 {
            self.offset_index
                .append(self.relative_offset(header.base_offset), position as u32)?;
            self.time_index.maybe_append(
                self.max_timestamp,
                self.relative_offset(self.offset_of_max_timestamp),
            )?;
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.total_size() as u64;
        self.next_offset = header.next_offset();
        Ok(())
    }

    /// Writes validated, offset-stamped batches at the end with one positional write, then
    /// indexes them. On a failed write the file is cut back so no partial batch remains.
    pub(crate) fn append(
        &mut self,
        bytes: &[u8],
        headers: &[BatchHeader],
        config: &LogConfig,
    ) -> Result<(), LogError> {
        let start = self.size_bytes;
        let end = start + bytes.len() as u64;
        // Never past segment.bytes, where the segment rolls anyway.
        let grown = (end + PREALLOCATE_BYTES).min(config.segment_bytes);
        // If the file cannot grow ahead, the write below grows it.
        if end > self.file_bytes && grown > end && self.log_file.set_len(grown).is_ok() {
            self.file_bytes = grown;
        }
        if let Err(error) = self.log_file.write_all_at(bytes, start) {
            if self.log_file.set_len(start).is_ok() {
                self.file_bytes = start;
            }
            return Err(io_error("append to segment", &self.log_path)(error));
        }
        self.file_bytes = self.file_bytes.max(end);
        let mut position = start;
        for header in headers {
            self.track_batch(position, header, config)?;
            position += header.total_size() as u64;
        }
        debug_assert_eq!(position, start + bytes.len() as u64);
        self.size_bytes = position;
        self.start_writeback();
        Ok(())
    }

    /// Hands the whole pages appended since the last call to the kernel's writeback once there
    /// are [`WRITEBACK_BYTES`] of them. It only starts the I/O, on the writeback thread so that
    /// the appender does not wait for the submission: durability still comes from the flush
    /// policy and replication, as before.
    fn start_writeback(&mut self) {
        let until = self.size_bytes / PAGE_BYTES * PAGE_BYTES;
        if until < self.writeback_from + WRITEBACK_BYTES {
            return;
        }
        writeback_thread().start(Arc::clone(&self.log_file), self.writeback_from..until);
        self.writeback_from = until;
    }

    /// Whether either index has reached `segment.index.bytes`.
    pub(crate) fn is_index_full(&self, config: &LogConfig) -> bool {
        self.offset_index.len() >= config.max_offset_index_entries()
            || self.time_index.len() >= config.max_time_index_entries()
    }

    /// The first batch whose last offset is at least `offset`, as (position, header).
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let start = if offset <= self.base_offset {
            0
        } else {
            self.offset_index.lookup(self.relative_offset(offset))
        };
        let mut cursor = HeaderCursor::new(&self.log_file, u64::from(start), self.size_bytes);
        while let Some((position, header)) = cursor
            .next_batch()
            .map_err(io_error("read segment", &self.log_path))?
        {
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
        }
        Ok(None)
    }

    /// Position to start scanning for records at or after `timestamp`.
    pub(crate) fn scan_start_for_timestamp(&self, timestamp: i64) -> u64 {
        match self.time_index.last_entry_before(timestamp) {
            Some(entry) => u64::from(self.offset_index.lookup(entry.relative_offset)),
            None => 0,
        }
    }

    /// Seals the segment when it stops being active: the zeros grown ahead cut off, a final
    /// time-index entry so that a later open knows its largest timestamp, then fsync of the log
    /// and both indexes.
    pub(crate) fn seal(&mut self) -> Result<(), LogError> {
        if self.file_bytes > self.size_bytes {
            self.log_file
                .set_len(self.size_bytes)
                .map_err(io_error("trim segment", &self.log_path))?;
            self.file_bytes = self.size_bytes;
        }
        if self.size_bytes > 0 {
            self.time_index.maybe_append(
                self.max_timestamp,
                self.relative_offset(self.offset_of_max_timestamp),
            )?;
        }
        self.sync_all()
    }

    pub(crate) fn sync_all(&self) -> Result<(), LogError> {
        self.log_file
            .sync_data()
            .map_err(io_error("sync segment", &self.log_path))?;
        self.offset_index.sync()?;
        self.time_index.sync()?;
        self.txn_index.sync()
    }

    /// Drops every batch holding an offset at or after `offset`, then rebuilds the indexes.
    pub(crate) fn truncate_to(&mut self, offset: i64, config: &LogConfig) -> Result<(), LogError> {
        let Some((position, _)) = self.find_batch(offset)? else {
            return Ok(());
        };
        self.log_file
            .set_len(position)
            .map_err(io_error("truncate segment", &self.log_path))?;
        let dir = self
            .log_path
            .parent()
            .expect("segment files live in a directory")
            .to_path_buf();
        let (_, index_path, time_index_path) = segment_paths(&dir, self.base_offset);
        let created_at_ms = self.created_at_ms;
        let mut txn_index = std::mem::replace(&mut self.txn_index, TxnIndex::empty(PathBuf::new()));
        txn_index.truncate_to(offset)?;
        *self = Segment::create_fresh_indexes(
            self.log_path.clone(),
            Arc::clone(&self.log_file),
            self.base_offset,
            &index_path,
            &time_index_path,
            created_at_ms,
        )?;
        let truncated_bytes = self.recover(config, position)?;
        debug_assert_eq!(
            truncated_bytes, 0,
            "the kept prefix was valid before truncation"
        );
        self.txn_index = txn_index;
        Ok(())
    }

    /// Timestamp that retention.ms compares against: the newest record, or the file's
    /// modification time when records carry no timestamps (as Kafka does).
    pub(crate) fn retention_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.log_file
            .metadata()
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|modified| modified.duration_since(UNIX_EPOCH).ok())
            .map_or(-1, |since_epoch| since_epoch.as_millis() as i64)
    }

    /// Removes the segment's files; open handles (in-flight reads) stay valid.
    pub(crate) fn delete_files(&self) -> Result<(), LogError> {
        let dir = self
            .log_path
            .parent()
            .expect("segment files live in a directory");
        delete_segment_files(dir, self.base_offset)
    }
}

/// A thread that starts writeback of file ranges it is sent, for every log of the process.
struct WritebackThread {
    ranges: mpsc::Sender<(Arc<File>, Range<u64>)>,
}

impl WritebackThread {
    /// Queues `range` of `file` for writeback; dropped if the thread is gone, in which case the
    /// kernel flushes it by itself.
    fn start(&self, file: Arc<File>, range: Range<u64>) {
        let _ = self.ranges.send((file, range));
    }
}

fn writeback_thread() -> &'static WritebackThread {
    static THREAD: OnceLock<WritebackThread> = OnceLock::new();
    THREAD.get_or_init(|| {
        let (sender, ranges) = mpsc::channel::<(Arc<File>, Range<u64>)>();
        let spawned = std::thread::Builder::new()
            .name("log-writeback".into())
            .spawn(move || {
                for (file, range) in ranges {
                    let (Ok(from), Ok(length)) = (
                        libc::off64_t::try_from(range.start),
                        libc::off64_t::try_from(range.end - range.start),
                    ) else {
                        continue;
                    };
                    // SAFETY: a plain syscall on a descriptor `file` keeps open; no memory is
                    // passed. A failure only means the kernel flushes the pages later itself.
                    let _ = unsafe {
                        libc::sync_file_range(
                            file.as_raw_fd(),
                            from,
                            length,
                            libc::SYNC_FILE_RANGE_WRITE,
                        )
                    };
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "no log writeback thread: the kernel flushes on its own");
        }
        WritebackThread { ranges: sender }
    })
}

/// Removes the `.log`, `.index`, `.timeindex` and `.txnindex` files of the segment at
/// `base_offset`.
pub(crate) fn delete_segment_files(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    let (log_path, index_path, time_index_path) = segment_paths(dir, base_offset);
    remove_if_present(&log_path)?;
    remove_if_present(&index_path)?;
    remove_if_present(&time_index_path)?;
    remove_if_present(&txn_index_path(dir, base_offset))
}
