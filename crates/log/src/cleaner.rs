//! Log compaction (`cleanup.policy=compact`), after Kafka's log cleaner.
//!
//! # What is cleaned
//! Only sealed segments; the active segment is never touched and offsets never change. The
//! *clean* section is the run of segments wholly below the cleaner checkpoint
//! (`cleaner-offset-checkpoint`), the *dirty* section the sealed segments after it. Dirty
//! segments are *cleanable* up to the first one holding a record younger than
//! `min.compaction.lag.ms` (by batch max timestamp). A log is due when cleanable dirty bytes
//! are at least `min.cleanable.dirty.ratio` of clean + cleanable bytes, or when the first batch
//! of some dirty sealed segment is older than `max.compaction.lag.ms`.
//!
//! A pass maps every key of the cleanable dirty section to its highest offset, then rewrites
//! every segment from the log start to the cleanable end keeping a keyed record only if no
//! later record of its key is in the map. The clean section was deduplicated by earlier passes
//! (by induction on the checkpoint), so this keeps exactly the last record of each key.
//! Records without a key and control batches are kept. A batch that loses records is rebuilt
//! with the same base offset, `lastOffsetDelta`, producer fields, leader epoch, attributes and
//! codec; a batch that loses none is copied byte for byte; a batch that loses all is dropped,
//! except an idempotent producer's last batch in the cleaned range, which stays as an empty
//! batch (as in Kafka) so that rebuilding producer state from the log still finds the
//! producer's epoch and last sequence.
//!
//! # Tombstones
//! A tombstone (null value) that is the latest record of its key is removed once it is in the
//! clean section — it has survived a previous pass, which removed the older values of its key —
//! *and* its batch's max timestamp is older than `now - delete.retention.ms`. Kafka measures
//! from the last modification of the cleaned segment instead; the batch timestamp is simpler
//! and never earlier than the tombstone's append for LogAppendTime topics.
//!
//! # Concurrency
//! [`Log::compaction_job`] (cheap, under the log's lock) snapshots the segments to clean;
//! [`CompactionJob::run`] reads them through their shared file handles and writes the cleaned
//! segments into its own `cleaned-<n>/` directory without any lock;
//! [`Log::install_compaction`] (under the lock) checks that the segments are still the ones
//! the job read and swaps the files. Reads that hold a handle of a replaced file keep reading
//! it. Two jobs on one log waste work (the second install finds its segments replaced and
//! discards its result) but cannot damage it.
//!
//! # Crash safety
//! The cleaned files (`cleaned-<n>/<base>.{log,index,timeindex}`) are fsynced before the
//! swap starts. The swap's commit point is the atomic write of `cleaner-swap`, which names the
//! job's directory and lists each cleaned segment's base offset and the base offsets of the
//! segments it replaces. Then the
//! replaced segments' files are deleted, the cleaned files renamed over the segment of the
//! same base offset (indexes first, the log last), and `cleaner-swap` removed. At open, a
//! `cleaner-swap` file means the swap is finished (every step is idempotent: deletions of
//! what is gone, renames of what is still in the job's directory); without it, nothing of the
//! old segments was touched and the job directories are simply deleted. While a swap file is
//! present (an install failed on an I/O error), no new job starts: reopening the log finishes
//! the swap.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cauce_protocol::batch::{self, BatchHeader};
use cauce_protocol::records::{self, Record};

use crate::checkpoint::{
    io_error, offset_file_name, remove_if_present, sync_directory, write_atomically,
};
use crate::cleaner_plan::{fits_in_group, plan_cleaning, CleanerSegmentFacts, GroupingFacts};
use crate::cleaner_swap::{
    apply_swap, encode_swap, remove_cleaned_dir, write_cleaner_checkpoint, CleanedSegment,
    CLEANED_DIR_PREFIX, SWAP_FILE,
};
use crate::config::LogConfig;
use crate::log::Log;
use crate::scan::HeaderCursor;
use crate::segment::Segment;
use crate::txn_index::AbortedTxn;
use crate::LogError;

/// Numbers the jobs' directories within this process.
static NEXT_JOB_NUMBER: AtomicU64 = AtomicU64::new(0);
/// Retained batches buffered before one write to the cleaned segment.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// A sealed segment as a job saw it; also how install recognises it is still there unchanged.
#[derive(Debug, Clone)]
struct SegmentSnapshot {
    /// The segment's base offset.
    base_offset: i64,
    /// Path, for errors.
    log_path: PathBuf,
    /// The open file: stays readable if the segment is deleted meanwhile, and identifies it.
    log_file: Arc<File>,
    /// Its size when snapshotted; sealed segments never grow.
    size_bytes: u64,
    /// Base offset of the segment after it; bounds its offsets.
    next_segment_base_offset: i64,
    /// Size and index entries, for merging.
    grouping: GroupingFacts,
    /// The aborted transactions whose marker is in the segment; markers are kept, so the
    /// cleaned segment holding them carries their entries.
    aborted: Vec<AbortedTxn>,
}

impl GroupingFacts {
    fn of(segment: &Segment) -> GroupingFacts {
        GroupingFacts {
            size_bytes: segment.size_bytes,
            offset_index_entries: segment.offset_index.len(),
            time_index_entries: segment.time_index.len(),
        }
    }
}

impl SegmentSnapshot {
    fn of(segment: &Segment, next_segment_base_offset: i64) -> SegmentSnapshot {
        SegmentSnapshot {
            base_offset: segment.base_offset,
            log_path: segment.log_path.clone(),
            log_file: Arc::clone(&segment.log_file),
            size_bytes: segment.size_bytes,
            next_segment_base_offset,
            grouping: GroupingFacts::of(segment),
            aborted: segment.txn_index.entries().to_vec(),
        }
    }

    fn is(&self, segment: &Segment) -> bool {
        self.base_offset == segment.base_offset
            && self.size_bytes == segment.size_bytes
            && Arc::ptr_eq(&self.log_file, &segment.log_file)
    }
}

/// The expensive part of a cleaning pass, detached from the log: run it without the lock.
#[derive(Debug)]
pub struct CompactionJob {
    /// The partition directory.
    dir: PathBuf,
    /// Name of this job's directory (under `dir`) for the cleaned segments.
    cleaned_dir_name: String,
    /// Settings when the job was made.
    config: LogConfig,
    /// The clock for tombstone expiry.
    now_ms: i64,
    /// Segments to rewrite, in offset order, starting with the log's first segment.
    segments: Vec<SegmentSnapshot>,
    /// `segments[..first_dirty]` are clean; the rest feed the key map.
    first_dirty: usize,
    /// Base offset of the first segment not cleaned: the next cleaner checkpoint.
    cleanable_end_offset: i64,
    /// The aborted transactions with records in the segments: their records never supersede
    /// another of the same key (a read_committed reader never saw them).
    aborted: Vec<AbortedTxn>,
}

/// What [`CompactionJob::run`] wrote; hand it to [`Log::install_compaction`].
#[derive(Debug)]
pub struct CompactedSegments {
    /// The partition directory the job belongs to.
    dir: PathBuf,
    /// Name of the job's directory (under `dir`) holding the cleaned segments.
    pub(crate) cleaned_dir_name: String,
    /// The segments the job read, to check they are still in the log unchanged.
    replaced: Vec<SegmentSnapshot>,
    /// The cleaned segments, in offset order.
    pub(crate) cleaned: Vec<CleanedSegment>,
    /// The cleaner checkpoint once installed.
    cleanable_end_offset: i64,
    /// Counters so far (the install adds whether it happened).
    stats: CompactionOutcome,
}

/// What a cleaning pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionOutcome {
    /// False when the log changed under the job (retention, DeleteRecords, truncation) and
    /// its result was thrown away.
    pub installed: bool,
    /// Segments read and replaced.
    pub segments_before: usize,
    /// Cleaned segments written in their place (adjacent small segments are merged).
    pub segments_after: usize,
    /// Bytes of the replaced segments.
    pub bytes_before: u64,
    /// Bytes of the cleaned segments.
    pub bytes_after: u64,
    /// Records removed, tombstones included.
    pub records_removed: u64,
    /// Tombstones removed because they outlived delete.retention.ms.
    pub tombstones_removed: u64,
    /// Batches dropped because no record of theirs was kept.
    pub batches_removed: u64,
    /// Offsets below this are clean after the pass (the cleaner checkpoint).
    pub cleaned_up_to_offset: i64,
}

impl Log {
    /// A cleaning pass to run if the log is due (see the `cleaner` module docs), or `None`.
    /// Cheap: it only snapshots segment handles; call it under the log's lock.
    pub fn compaction_job(&self, now_ms: i64) -> Option<CompactionJob> {
        // Nothing at or past the first unstable offset is cleaned: an open transaction (or one
        // whose marker is not yet replicated) may still be aborted.
        let stable_segments = match self.first_unstable_offset() {
            Some(unstable) => self.segments[1..]
                .iter()
                .take_while(|next| next.base_offset <= unstable)
                .count(),
            None => self.segments.len() - 1,
        };
        let sealed = &self.segments[..stable_segments];
        let next_bases = self.segments[1..].iter().map(|segment| segment.base_offset);
        let facts: Vec<CleanerSegmentFacts> = sealed
            .iter()
            .zip(next_bases)
            .map(|(segment, next_segment_base_offset)| CleanerSegmentFacts {
                size_bytes: segment.size_bytes,
                next_segment_base_offset,
                max_timestamp: segment.max_timestamp,
                first_batch_timestamp: segment.first_batch_max_timestamp,
            })
            .collect();
        let plan = plan_cleaning(&facts, self.cleaner_checkpoint, &self.config, now_ms)?;
        if self.dir.join(SWAP_FILE).exists() {
            // An install failed half-way; only a reopen may finish it.
            tracing::warn!(dir = %self.dir.display(), "compaction swap pending, not cleaning until the log is reopened");
            return None;
        }
        let cleanable = &sealed[..plan.cleanable_end];
        tracing::debug!(
            dir = %self.dir.display(),
            reason = ?plan.reason,
            first_dirty = plan.first_dirty,
            cleanable_end = plan.cleanable_end,
            "log due for compaction"
        );
        let job_number = NEXT_JOB_NUMBER.fetch_add(1, Ordering::Relaxed);
        Some(CompactionJob {
            dir: self.dir.clone(),
            cleaned_dir_name: format!("{CLEANED_DIR_PREFIX}{job_number}"),
            config: self.config.clone(),
            now_ms,
            segments: cleanable
                .iter()
                .zip(&self.segments[1..])
                .map(|(segment, next)| SegmentSnapshot::of(segment, next.base_offset))
                .collect(),
            first_dirty: plan.first_dirty,
            cleanable_end_offset: self.segments[plan.cleanable_end].base_offset,
            aborted: self.aborted_transactions(
                self.segments[0].base_offset,
                self.segments[plan.cleanable_end].base_offset,
            ),
        })
    }

    /// Offsets below this have been compacted.
    pub fn cleaner_checkpoint(&self) -> i64 {
        self.cleaner_checkpoint
    }

    /// Swaps in what a job wrote, if the segments it read are still in the log unchanged
    /// (otherwise its files are deleted and `installed` is false). Renames and a few fsyncs;
    /// call it under the log's lock.
    pub fn install_compaction(
        &mut self,
        compacted: CompactedSegments,
    ) -> Result<CompactionOutcome, LogError> {
        debug_assert_eq!(compacted.dir, self.dir, "a job belongs to its own log");
        let cleaned_dir = self.dir.join(&compacted.cleaned_dir_name);
        let files_present = compacted.cleaned.iter().all(|cleaned| {
            cleaned_dir
                .join(offset_file_name(cleaned.base_offset, "log"))
                .exists()
        });
        let start = compacted
            .replaced
            .first()
            .and_then(|first| {
                self.segments
                    .iter()
                    .position(|segment| segment.base_offset == first.base_offset)
            })
            .filter(|_| files_present)
            .filter(|&start| {
                let end = start + compacted.replaced.len();
                // The active segment is never replaced.
                end < self.segments.len()
                    && compacted
                        .replaced
                        .iter()
                        .zip(&self.segments[start..end])
                        .all(|(snapshot, segment)| snapshot.is(segment))
            });
        let Some(start) = start else {
            tracing::info!(dir = %self.dir.display(), "log changed during compaction, result discarded");
            remove_cleaned_dir(&cleaned_dir)?;
            return Ok(CompactionOutcome {
                installed: false,
                cleaned_up_to_offset: self.cleaner_checkpoint,
                ..compacted.stats
            });
        };

        let swap = encode_swap(&compacted.cleaned_dir_name, &compacted.cleaned);
        write_atomically(&self.dir, SWAP_FILE, &swap)?;
        apply_swap(&self.dir, &compacted.cleaned_dir_name, &compacted.cleaned)?;
        let now_ms = crate::log::system_now_ms();
        let mut new_segments = Vec::with_capacity(compacted.cleaned.len());
        for cleaned in &compacted.cleaned {
            let (segment, truncated_bytes) =
                Segment::open(&self.dir, cleaned.base_offset, &self.config, false, now_ms)?;
            debug_assert_eq!(truncated_bytes, 0, "a cleaned segment is whole");
            new_segments.push(segment);
        }
        remove_if_present(&self.dir.join(SWAP_FILE))?;
        sync_directory(&self.dir)?;
        let end = start + compacted.replaced.len();
        let new_bytes: u64 = new_segments.iter().map(|segment| segment.size_bytes).sum();
        let old_bytes: u64 = self.segments[start..end]
            .iter()
            .map(|segment| segment.size_bytes)
            .sum();
        self.segments.splice(start..end, new_segments);
        self.size_bytes = self.size_bytes - old_bytes + new_bytes;
        self.cleaner_checkpoint = compacted.cleanable_end_offset;
        write_cleaner_checkpoint(&self.dir, self.cleaner_checkpoint)?;
        remove_cleaned_dir(&cleaned_dir)?;
        let outcome = CompactionOutcome {
            installed: true,
            cleaned_up_to_offset: self.cleaner_checkpoint,
            ..compacted.stats
        };
        tracing::info!(
            dir = %self.dir.display(),
            segments_before = outcome.segments_before,
            segments_after = outcome.segments_after,
            bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after,
            records_removed = outcome.records_removed,
            cleaned_up_to_offset = outcome.cleaned_up_to_offset,
            "log compacted"
        );
        Ok(outcome)
    }

    /// Makes, runs and installs a job at once (tests, tools); `None` when the log is not due.
    pub fn compact_now(&mut self, now_ms: i64) -> Result<Option<CompactionOutcome>, LogError> {
        let Some(job) = self.compaction_job(now_ms) else {
            return Ok(None);
        };
        let compacted = job.run()?;
        self.install_compaction(compacted).map(Some)
    }
}

/// Retained batches waiting for one write to the cleaned segment.
#[derive(Default)]
struct BatchBuffer {
    /// Concatenated batches.
    bytes: Vec<u8>,
    /// Their headers, as `Segment::append` wants them.
    headers: Vec<BatchHeader>,
}

impl BatchBuffer {
    fn push(&mut self, batch_bytes: &[u8]) -> Result<(), LogError> {
        self.headers.push(batch::parse_header(batch_bytes)?);
        self.bytes.extend_from_slice(batch_bytes);
        Ok(())
    }

    fn write_to(&mut self, segment: &mut Segment, config: &LogConfig) -> Result<(), LogError> {
        if !self.bytes.is_empty() {
            segment.append(&self.bytes, &self.headers, config)?;
            self.bytes.clear();
            self.headers.clear();
        }
        Ok(())
    }
}

/// Writes what is buffered, seals (final time-index entry, fsync) and returns the size.
fn finish_output(
    mut segment: Segment,
    buffer: &mut BatchBuffer,
    config: &LogConfig,
) -> Result<u64, LogError> {
    buffer.write_to(&mut segment, config)?;
    segment.seal()?;
    Ok(segment.size_bytes)
}

/// Per-batch decision of the cleaning pass.
enum BatchVerdict {
    /// Copy the batch as it is.
    KeepWhole,
    /// Write this rebuilt batch instead.
    Rebuilt(Vec<u8>),
    /// Leave the batch out.
    Drop,
}

/// What the first pass learns: the latest offset of each dirty key, and where each producer's
/// last batch in the cleaned range is.
#[derive(Debug, Default)]
struct OffsetMap {
    /// Key → highest offset in the dirty section.
    latest_offset_by_key: HashMap<Vec<u8>, i64>,
    /// Producer id → base offset of its last batch in the cleaned range.
    last_batch_by_producer: HashMap<i64, i64>,
}

impl CompactionJob {
    /// Reads the segments, builds the key map and writes the cleaned segments into
    /// the job's own directory, fsynced. Takes no lock; the log may be appended to, read, even have these
    /// segments deleted meanwhile.
    pub fn run(self) -> Result<CompactedSegments, LogError> {
        let cleaned_dir = self.dir.join(&self.cleaned_dir_name);
        remove_cleaned_dir(&cleaned_dir)?;
        fs::create_dir_all(&cleaned_dir).map_err(io_error("create directory", &cleaned_dir))?;
        let map = self.build_offset_map()?;
        let mut stats = CompactionOutcome {
            segments_before: self.segments.len(),
            ..CompactionOutcome::default()
        };
        let mut cleaned = Vec::new();
        let mut output: Option<(Segment, CleanedSegment)> = None;
        let mut buffer = BatchBuffer::default();
        for (segment_index, segment) in self.segments.iter().enumerate() {
            let merges = output.as_ref().is_some_and(|(written, group)| {
                fits_in_group(
                    GroupingFacts::of(written),
                    group.base_offset,
                    segment.grouping,
                    segment.next_segment_base_offset,
                    &self.config,
                )
            });
            if !merges {
                if let Some((written, group)) = output.take() {
                    stats.bytes_after += finish_output(written, &mut buffer, &self.config)?;
                    cleaned.push(group);
                }
                let written = Segment::create(&cleaned_dir, segment.base_offset, self.now_ms)?;
                let group = CleanedSegment {
                    base_offset: segment.base_offset,
                    replaced_base_offsets: Vec::new(),
                };
                output = Some((written, group));
            }
            let (written, group) = output.as_mut().expect("an output segment is open");
            group.replaced_base_offsets.push(segment.base_offset);
            for aborted in &segment.aborted {
                written.txn_index.append(*aborted)?;
            }
            stats.bytes_before += segment.size_bytes;
            let in_clean_section = segment_index < self.first_dirty;
            let mut cursor = HeaderCursor::new(&segment.log_file, 0, segment.size_bytes);
            while let Some((position, header)) = cursor
                .next_batch()
                .map_err(io_error("read segment", &segment.log_path))?
            {
                let bytes = cursor
                    .batch_bytes(position, &header)
                    .map_err(io_error("read segment", &segment.log_path))?;
                let kept =
                    match self.clean_batch(&header, &bytes, in_clean_section, &map, &mut stats) {
                        BatchVerdict::KeepWhole => bytes,
                        BatchVerdict::Rebuilt(rebuilt) => rebuilt,
                        BatchVerdict::Drop => {
                            stats.batches_removed += 1;
                            continue;
                        }
                    };
                buffer.push(&kept)?;
                if buffer.bytes.len() >= WRITE_BUFFER_BYTES {
                    buffer.write_to(written, &self.config)?;
                }
            }
            // Merging decisions need the written size of what is already cleaned.
            buffer.write_to(written, &self.config)?;
        }
        if let Some((written, group)) = output.take() {
            stats.bytes_after += finish_output(written, &mut buffer, &self.config)?;
            cleaned.push(group);
        }
        stats.segments_after = cleaned.len();
        sync_directory(&cleaned_dir)?;
        Ok(CompactedSegments {
            dir: self.dir,
            cleaned_dir_name: self.cleaned_dir_name,
            replaced: self.segments,
            cleaned,
            cleanable_end_offset: self.cleanable_end_offset,
            stats,
        })
    }

    /// First pass: producers' last batches over the whole range (headers only), and the
    /// latest offset of every key in the dirty section.
    fn build_offset_map(&self) -> Result<OffsetMap, LogError> {
        let mut map = OffsetMap::default();
        for (segment_index, segment) in self.segments.iter().enumerate() {
            let dirty = segment_index >= self.first_dirty;
            let mut cursor = HeaderCursor::new(&segment.log_file, 0, segment.size_bytes);
            while let Some((position, header)) = cursor
                .next_batch()
                .map_err(io_error("read segment", &segment.log_path))?
            {
                if header.has_producer_id() {
                    map.last_batch_by_producer
                        .insert(header.producer_id, header.base_offset);
                }
                if !dirty || header.is_control() || self.is_aborted(&header) {
                    continue;
                }
                let bytes = cursor
                    .batch_bytes(position, &header)
                    .map_err(io_error("read segment", &segment.log_path))?;
                let decoded = match records::decode_batch(
                    &bytes,
                    self.config.max_decompressed_bytes(),
                ) {
                    Ok((_, decoded)) => decoded,
                    Err(error) => {
                        // Kept whole by the cleaning pass; its keys just do not supersede.
                        tracing::warn!(segment = %segment.log_path.display(), base_offset = header.base_offset, %error, "batch does not decode, compaction keeps it as is");
                        continue;
                    }
                };
                for record in decoded {
                    // An offset outside the batch (a producer's made-up delta) supersedes
                    // nothing: it could otherwise hide the newest record of its key.
                    if !(0..=header.last_offset_delta).contains(&record.offset_delta) {
                        continue;
                    }
                    if let Some(key) = &record.key {
                        let offset = record.offset(&header);
                        match map.latest_offset_by_key.get_mut(&key[..]) {
                            Some(latest) => *latest = (*latest).max(offset),
                            None => {
                                map.latest_offset_by_key.insert(key.to_vec(), offset);
                            }
                        }
                    }
                }
            }
        }
        Ok(map)
    }

    /// Whether the batch belongs to a transaction that was aborted.
    fn is_aborted(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && self.aborted.iter().any(|aborted| {
                aborted.producer_id == header.producer_id
                    && aborted.first_offset <= header.base_offset
                    && header.base_offset < aborted.last_offset
            })
    }

    /// Second pass, one batch: which of its records survive.
    fn clean_batch(
        &self,
        header: &BatchHeader,
        bytes: &[u8],
        in_clean_section: bool,
        map: &OffsetMap,
        stats: &mut CompactionOutcome,
    ) -> BatchVerdict {
        if header.is_control() {
            return BatchVerdict::KeepWhole;
        }
        let decoded = match records::decode_batch(bytes, self.config.max_decompressed_bytes()) {
            Ok((_, decoded)) => decoded,
            Err(_) => return BatchVerdict::KeepWhole,
        };
        let tombstone_horizon = self.now_ms.saturating_sub(self.config.delete_retention_ms);
        let tombstones_expired = in_clean_section && header.max_timestamp < tombstone_horizon;
        let original_count = decoded.len();
        let mut retained: Vec<Record> = Vec::with_capacity(original_count);
        for record in decoded {
            let Some(key) = &record.key else {
                // Compacted topics refuse unkeyed records; any that got in are kept.
                retained.push(record);
                continue;
            };
            let offset = record.offset(header);
            let superseded = map
                .latest_offset_by_key
                .get(&key[..])
                .is_some_and(|latest| *latest > offset);
            if superseded {
                continue;
            }
            if record.value.is_none() && tombstones_expired {
                stats.tombstones_removed += 1;
                continue;
            }
            retained.push(record);
        }
        stats.records_removed += (original_count - retained.len()) as u64;
        // An idempotent producer's last batch stays, emptied if need be, to carry its state.
        let keep_empty = header.has_producer_id()
            && map.last_batch_by_producer.get(&header.producer_id) == Some(&header.base_offset);
        if retained.is_empty() && !keep_empty {
            return BatchVerdict::Drop;
        }
        if retained.len() == original_count {
            return BatchVerdict::KeepWhole;
        }
        match records::rebuild_batch(header, &retained) {
            Ok(rebuilt) => BatchVerdict::Rebuilt(rebuilt),
            Err(error) => {
                tracing::warn!(base_offset = header.base_offset, %error, "batch could not be rebuilt, compaction keeps it as is");
                BatchVerdict::KeepWhole
            }
        }
    }
}
