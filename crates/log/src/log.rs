//! [`Log`]: opening with recovery, appending, rolling, flushing and closing.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cauce_protocol::batch::{self, BatchHeader};
use cauce_protocol::control::{build_marker, parse_control, ControlRecord, EndTxnMarker};

use crate::checkpoint::{
    clean_shutdown_path, io_error, offset_file_name, parse_offset_file_name, read_log_start_offset,
    read_optional, remove_if_present, sync_directory, write_atomically, write_log_start_offset,
    CLEAN_SHUTDOWN_FILE, TEMPORARY_SUFFIX,
};
use crate::config::{LogConfig, TimestampType};
use crate::epoch_cache::LeaderEpochCache;
use crate::producer_state::{
    check_marker, check_sequence, CompletedTxn, ProducerEntry, ProducerStateManager,
    SequenceVerdict,
};
use crate::scan::HeaderCursor;
use crate::segment::{delete_segment_files, Segment};
use crate::txn_index::AbortedTxn;
use crate::LogError;

/// Producer snapshots kept on disk; older ones are deleted on roll.
const SNAPSHOTS_TO_KEEP: usize = 2;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record appended (or of the original batch for a duplicate).
    pub base_offset: i64,
    /// Offset of the last record appended (or of the original batch for a duplicate).
    pub last_offset: i64,
    /// Broker time stamped on the batches with LogAppendTime, else -1 (as the Produce response wants).
    pub log_append_time: i64,
    /// Log start offset after the append, for the Produce response.
    pub log_start_offset: i64,
    /// A retried idempotent batch: nothing was written.
    pub duplicate: bool,
    /// `flush.messages` unflushed messages reached: the caller should flush.
    pub needs_flush: bool,
}

/// Files to fsync for a group commit, taken under the log's mutex and synced without it.
#[derive(Debug, Clone)]
pub struct FlushHandle {
    /// Segment files holding data not yet synced.
    pub files: Vec<Arc<File>>,
    /// Every offset below this is durable once `sync` returns; pass it to [`Log::mark_flushed`].
    pub up_to_offset: i64,
}

impl FlushHandle {
    /// `fdatasync` of every file in the handle.
    pub fn sync(&self) -> std::io::Result<()> {
        for file in &self.files {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// A partition's log: segments in offset order, the last one active.
#[derive(Debug)]
pub struct Log {
    /// The partition directory.
    pub(crate) dir: PathBuf,
    /// Current settings; replaced by `set_config`.
    pub(crate) config: LogConfig,
    /// Segments in increasing base offset order; never empty; the last takes appends.
    pub(crate) segments: Vec<Segment>,
    /// First offset visible to consumers; moved by DeleteRecords and retention.
    pub(crate) log_start_offset: i64,
    /// Sum of segment sizes, kept so `size_bytes` and retention need no walk.
    pub(crate) size_bytes: u64,
    /// Idempotent producers' sequence state.
    pub(crate) producer_state: ProducerStateManager,
    /// Offsets at which producer snapshots exist, increasing.
    pub(crate) snapshot_offsets: Vec<i64>,
    /// Leader epoch → start offset.
    pub(crate) epoch_cache: LeaderEpochCache,
    /// Offsets below this are known to be fsynced.
    pub(crate) recovery_point: i64,
    /// When the oldest unflushed append happened, for flush.ms.
    pub(crate) unflushed_since_ms: Option<i64>,
    /// Offsets below this have been compacted (Kafka's cleaner checkpoint); the dirty section
    /// starts here.
    pub(crate) cleaner_checkpoint: i64,
    /// The high watermark the partition last reported, applied again to producer state that is
    /// rebuilt after a truncation; 0 until reported.
    pub(crate) high_watermark: i64,
}

pub(crate) fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| since_epoch.as_millis() as i64)
}

/// What `open` found in the directory.
#[derive(Default)]
struct DirectoryInventory {
    /// Base offsets of `.log` files, increasing.
    segment_bases: Vec<i64>,
    /// Offsets of producer snapshots, increasing.
    snapshot_offsets: Vec<i64>,
}

fn take_inventory(dir: &Path) -> Result<DirectoryInventory, LogError> {
    let mut inventory = DirectoryInventory::default();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TEMPORARY_SUFFIX) {
            // An atomic write that never reached its rename.
            remove_if_present(&entry.path())?;
            continue;
        }
        match parse_offset_file_name(&name) {
            Some((offset, "log")) => inventory.segment_bases.push(offset),
            Some((offset, "snapshot")) => inventory.snapshot_offsets.push(offset),
            Some((offset, "index" | "timeindex" | "txnindex")) => {
                index_files.push((offset, entry.path()))
            }
            _ => {}
        }
    }
    inventory.segment_bases.sort_unstable();
    inventory.snapshot_offsets.sort_unstable();
    for (offset, path) in index_files {
        if inventory.segment_bases.binary_search(&offset).is_err() {
            // Left behind by a deletion interrupted between files.
            remove_if_present(&path)?;
        }
    }
    Ok(inventory)
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering after an unclean shutdown.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let now_ms = system_now_ms();
        let clean_marker = clean_shutdown_path(dir);
        let clean_shutdown = clean_marker.exists();
        // Before the inventory: a compaction swap interrupted by a crash is finished first.
        crate::cleaner_swap::recover_interrupted_swap(dir)?;
        let inventory = take_inventory(dir)?;

        let mut segments = Vec::with_capacity(inventory.segment_bases.len().max(1));
        for (index, &base_offset) in inventory.segment_bases.iter().enumerate() {
            let is_active = index + 1 == inventory.segment_bases.len();
            let (segment, truncated_bytes) = Segment::open(
                dir,
                base_offset,
                &config,
                is_active && !clean_shutdown,
                now_ms,
            )?;
            segments.push(segment);
            if truncated_bytes > 0 && !is_active {
                // Offsets after a cut in the middle of the log would leave a hole; drop them.
                for &later_base in &inventory.segment_bases[index + 1..] {
                    tracing::warn!(dir = %dir.display(), base_offset = later_base, "deleting segment after a corrupt one");
                    delete_segment_files(dir, later_base)?;
                }
                break;
            }
        }

        let checkpointed_start = read_log_start_offset(dir)?;
        if segments.is_empty() {
            segments.push(Segment::create(
                dir,
                checkpointed_start.unwrap_or(0).max(0),
                now_ms,
            )?);
        }
        let mut log_start_offset = checkpointed_start
            .unwrap_or(i64::MIN)
            .max(segments[0].base_offset);
        let recovered_end = segments.last().expect("at least one segment").next_offset;
        if log_start_offset > recovered_end {
            // Recovery lost data the start offset had already moved past: start afresh there.
            tracing::warn!(dir = %dir.display(), log_start_offset, recovered_end, "log start offset beyond recovered end, starting empty");
            for segment in &segments {
                segment.delete_files()?;
            }
            segments = vec![Segment::create(dir, log_start_offset, now_ms)?];
        }
        log_start_offset = log_start_offset.max(segments[0].base_offset);
        if clean_shutdown {
            remove_if_present(&clean_marker)?;
        }
        sync_directory(dir)?;

        let size_bytes = segments.iter().map(|segment| segment.size_bytes).sum();
        let (epoch_cache, epochs_trusted) = LeaderEpochCache::load(dir)?;
        let log_end_offset = segments.last().expect("at least one segment").next_offset;
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            size_bytes,
            producer_state: ProducerStateManager::default(),
            snapshot_offsets: Vec::new(),
            epoch_cache,
            recovery_point: log_end_offset,
            unflushed_since_ms: None,
            cleaner_checkpoint: crate::cleaner_swap::read_cleaner_checkpoint(dir)?
                .unwrap_or(0)
                .min(log_end_offset),
            high_watermark: 0,
        };
        log.load_producer_state(inventory.snapshot_offsets, epochs_trusted)?;
        log.epoch_cache.truncate_from_end(log_end_offset);
        log.epoch_cache.truncate_from_start(log_start_offset);
        log.epoch_cache.persist()?;
        if checkpointed_start != Some(log_start_offset) {
            write_log_start_offset(dir, log_start_offset)?;
        }
        tracing::info!(
            dir = %dir.display(),
            log_start_offset,
            log_end_offset,
            segments = log.segments.len(),
            clean_shutdown,
            "log opened"
        );
        Ok(log)
    }

    /// Loads the newest usable producer snapshot at or below the log end and replays the
    /// batch headers after it (also re-learning any leader epochs they carry). Without a
    /// trusted epoch checkpoint every header is replayed, so the epochs are complete.
    fn load_producer_state(
        &mut self,
        snapshot_offsets: Vec<i64>,
        epochs_trusted: bool,
    ) -> Result<(), LogError> {
        let log_end_offset = self.log_end_offset();
        let mut replay_from = self.segments[0].base_offset;
        let mut loaded = !epochs_trusted;
        for &offset in snapshot_offsets.iter().rev() {
            let path = self.dir.join(offset_file_name(offset, "snapshot"));
            if offset > log_end_offset || loaded {
                if offset > log_end_offset {
                    // Describes data the log no longer has.
                    remove_if_present(&path)?;
                    continue;
                }
                self.snapshot_offsets.push(offset);
                continue;
            }
            let Some(contents) = read_optional(&path)? else {
                continue;
            };
            match ProducerStateManager::decode_snapshot(&contents) {
                Ok(state) => {
                    self.producer_state = state;
                    replay_from = offset.max(replay_from);
                    self.snapshot_offsets.push(offset);
                    loaded = true;
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), reason = %reason, "ignoring damaged producer snapshot");
                    remove_if_present(&path)?;
                }
            }
        }
        self.snapshot_offsets.sort_unstable();
        for index in 0..self.segments.len() {
            let segment = &self.segments[index];
            if segment.next_offset <= replay_from {
                continue;
            }
            let start = if replay_from > segment.base_offset {
                segment
                    .offset_index
                    .lookup(segment.relative_offset(replay_from))
            } else {
                0
            };
            let (log_file, log_path, size) = (
                Arc::clone(&segment.log_file),
                segment.log_path.clone(),
                segment.size_bytes,
            );
            let mut cursor = HeaderCursor::new(&log_file, u64::from(start), size);
            while let Some((position, header)) = cursor
                .next_batch()
                .map_err(io_error("read segment", &log_path))?
            {
                if header.base_offset < replay_from {
                    continue;
                }
                let marker = if header.is_control() && header.has_producer_id() {
                    let bytes = cursor
                        .batch_bytes(position, &header)
                        .map_err(io_error("read segment", &log_path))?;
                    end_txn_marker(&header, &bytes)
                } else {
                    None
                };
                self.apply_to_producer_state(&header, marker.as_ref())?;
                self.epoch_cache
                    .assign(header.partition_leader_epoch, header.base_offset);
            }
        }
        Ok(())
    }

    /// Applies a written batch to the producer state, and records the transaction it aborts
    /// (if it is an ABORT marker) in the index of the segment holding the marker, unless that
    /// index already has it (a batch replayed at open).
    fn apply_to_producer_state(
        &mut self,
        header: &BatchHeader,
        marker: Option<&EndTxnMarker>,
    ) -> Result<(), LogError> {
        let Some(completed) = self.producer_state.apply(header, marker) else {
            return Ok(());
        };
        if completed.aborted {
            self.record_abort(completed)?;
        }
        Ok(())
    }

    fn record_abort(&mut self, completed: CompletedTxn) -> Result<(), LogError> {
        // As Kafka: the LSO right after the abort, from the transactions still open.
        let last_stable_offset = self
            .producer_state
            .first_ongoing_offset()
            .unwrap_or(completed.last_offset + 1);
        let index = self.segment_index_for(completed.last_offset);
        let txn_index = &mut self.segments[index].txn_index;
        if txn_index
            .last_marker_offset()
            .is_some_and(|last| last >= completed.last_offset)
        {
            return Ok(());
        }
        txn_index.append(AbortedTxn {
            producer_id: completed.producer_id,
            first_offset: completed.first_offset,
            last_offset: completed.last_offset,
            last_stable_offset,
        })
    }

    /// Rebuilds producer state from the newest snapshot at or below the log end (after a
    /// truncation made the in-memory state describe removed batches).
    pub(crate) fn rebuild_producer_state(&mut self) -> Result<(), LogError> {
        self.producer_state = ProducerStateManager::default();
        let snapshot_offsets = std::mem::take(&mut self.snapshot_offsets);
        self.load_producer_state(snapshot_offsets, true)?;
        self.high_watermark = self.high_watermark.min(self.log_end_offset());
        self.producer_state.on_high_watermark(self.high_watermark);
        Ok(())
    }

    pub(crate) fn active_segment(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_segment_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    /// Validates, stamps and appends a produce request's batches.
    ///
    /// Nothing is written if any batch is invalid or out of sequence. `records` is rewritten in
    /// place (base offsets, leader epoch, LogAppendTime) and written with one positional write,
    /// so it is in the page cache — and survives a kill -9 of the process — on return.
    pub fn append(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, LogError> {
        let headers = batch::validate_batches(records, self.config.max_message_bytes as usize)?;
        if let Some(control) = headers.iter().find(|header| header.is_control()) {
            // Markers come from a transaction coordinator, never in a producer's request.
            return Err(LogError::Batch(batch::BatchError::InvalidRecord {
                reason: format!(
                    "a client cannot write control batches (batch at offset {})",
                    control.base_offset
                ),
            }));
        }
        if self.config.cleanup_policy_compact {
            check_keys(records, self.config.max_decompressed_bytes())?;
        }
        let segment_bytes = self.config.effective_segment_bytes();
        if records.len() as u64 > segment_bytes {
            return Err(LogError::RecordSetTooLarge {
                size: records.len(),
                segment_bytes,
            });
        }
        let stamp_log_append_time =
            self.config.message_timestamp_type == TimestampType::LogAppendTime;
        let first_offset = self.log_end_offset();
        let mut next_offset = first_offset;
        let mut staged_producers: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut stamped_headers = Vec::with_capacity(headers.len());
        for header in &headers {
            if !stamp_log_append_time {
                self.check_timestamps(header, now_ms)?;
            }
            let mut stamped = *header;
            stamped.base_offset = next_offset;
            stamped.partition_leader_epoch = leader_epoch;
            if stamp_log_append_time {
                stamped.max_timestamp = now_ms;
            }
            if header.has_producer_id() {
                let current = staged_producers
                    .get(&header.producer_id)
                    .or_else(|| self.producer_state.get(header.producer_id));
                match check_sequence(current, header)? {
                    SequenceVerdict::Duplicate(original) => {
                        tracing::debug!(
                            dir = %self.dir.display(),
                            producer_id = header.producer_id,
                            base_sequence = header.base_sequence,
                            base_offset = original.base_offset,
                            "duplicate idempotent batch not appended"
                        );
                        return Ok(AppendOutcome {
                            base_offset: original.base_offset,
                            last_offset: original.last_offset,
                            log_append_time: -1,
                            log_start_offset: self.log_start_offset,
                            duplicate: true,
                            needs_flush: false,
                        });
                    }
                    SequenceVerdict::Append => {
                        let staged = ProducerStateManager::staged_entry(current, &stamped);
                        staged_producers.insert(header.producer_id, staged);
                    }
                }
            }
            next_offset = stamped.next_offset();
            stamped_headers.push(stamped);
        }

        let mut position = 0usize;
        for stamped in &stamped_headers {
            let batch_bytes = &mut records[position..position + stamped.total_size()];
            batch::set_base_offset(batch_bytes, stamped.base_offset);
            batch::set_partition_leader_epoch(batch_bytes, leader_epoch);
            if stamp_log_append_time {
                batch::set_log_append_time(batch_bytes, now_ms)?;
            }
            position += stamped.total_size();
        }
        debug_assert_eq!(position, records.len());

        let last_offset = next_offset - 1;
        let needs_flush = self.write_batches(records, &stamped_headers, now_ms)?;
        Ok(AppendOutcome {
            base_offset: first_offset,
            last_offset,
            log_append_time: if stamp_log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            duplicate: false,
            needs_flush,
        })
    }

    /// Appends batches fetched from the partition's leader as they are: their offsets and
    /// leader epochs were assigned there, so they must start at this log's end and follow
    /// each other. Timestamps and sequences were checked by the leader; producer state and the
    /// leader-epoch cache follow the batches, so that this replica can lead in turn.
    pub fn append_replicated(
        &mut self,
        records: &mut [u8],
        now_ms: i64,
    ) -> Result<AppendOutcome, LogError> {
        let headers = batch::validate_batches(records, usize::MAX)?;
        let first_offset = self.log_end_offset();
        let mut next_offset = first_offset;
        for header in &headers {
            if header.base_offset != next_offset {
                return Err(LogError::ReplicaOffsetMismatch {
                    expected: next_offset,
                    found: header.base_offset,
                });
            }
            next_offset = header.next_offset();
        }
        if headers.is_empty() {
            return Ok(AppendOutcome {
                base_offset: first_offset,
                last_offset: first_offset - 1,
                log_append_time: -1,
                log_start_offset: self.log_start_offset,
                duplicate: false,
                needs_flush: false,
            });
        }
        let needs_flush = self.write_batches(records, &headers, now_ms)?;
        Ok(AppendOutcome {
            base_offset: first_offset,
            last_offset: next_offset - 1,
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
            needs_flush,
        })
    }

    /// Appends the marker that ends (commits or aborts) the producer's transaction in this
    /// partition, as the leader does when its transaction coordinator asks (WriteTxnMarkers).
    /// Refused for an older producer epoch (INVALID_PRODUCER_EPOCH) or an older coordinator
    /// than the producer's last (TRANSACTION_COORDINATOR_FENCED). A producer with no open
    /// transaction here still gets the marker, which only moves its epochs.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, LogError> {
        check_marker(
            self.producer_state.get(producer_id),
            producer_id,
            producer_epoch,
            &marker,
        )?;
        let mut bytes = build_marker(producer_id, producer_epoch, marker, now_ms);
        let offset = self.log_end_offset();
        batch::set_base_offset(&mut bytes, offset);
        batch::set_partition_leader_epoch(&mut bytes, leader_epoch);
        let header = batch::parse_header(&bytes)?;
        let needs_flush = self.write_batches(&bytes, &[header], now_ms)?;
        Ok(AppendOutcome {
            base_offset: offset,
            last_offset: offset,
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
            needs_flush,
        })
    }

    /// Writes validated batches with their final offsets at the log end: rolls if due,
    /// records their leader epochs, appends to the active segment, applies them to the
    /// producer state (and the aborts among them to the transaction index).
    /// Returns whether `flush.messages` is now due.
    fn write_batches(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<bool, LogError> {
        let last_offset = headers
            .last()
            .map_or(self.log_end_offset() - 1, |last| last.next_offset() - 1);
        self.maybe_roll(records.len() as u64, last_offset, now_ms)?;
        let mut epochs_changed = false;
        for header in headers {
            epochs_changed |= self
                .epoch_cache
                .assign(header.partition_leader_epoch, header.base_offset);
        }
        if epochs_changed {
            // Persisted before the data so the checkpoint always covers what is on disk.
            self.epoch_cache.persist()?;
        }
        let config = self.config.clone();
        self.active_segment_mut()
            .append(records, headers, &config)?;
        self.size_bytes += records.len() as u64;
        let mut position = 0;
        for header in headers {
            let bytes = &records[position..position + header.total_size()];
            position += header.total_size();
            let marker = if header.is_control() && header.has_producer_id() {
                end_txn_marker(header, bytes)
            } else {
                None
            };
            self.apply_to_producer_state(header, marker.as_ref())?;
        }
        self.unflushed_since_ms.get_or_insert(now_ms);
        let unflushed_messages = (self.log_end_offset() - self.recovery_point).max(0) as u64;
        Ok(unflushed_messages >= self.config.flush_messages)
    }

    /// Kafka's `message.timestamp.{before,after}.max.ms` for CreateTime batches. The batch
    /// header gives the first record's timestamp and the largest one, which bound the
    /// records from both sides unless a producer writes them out of order.
    fn check_timestamps(&self, header: &batch::BatchHeader, now_ms: i64) -> Result<(), LogError> {
        let before_limit = self.config.message_timestamp_before_max_ms;
        let after_limit = self.config.message_timestamp_after_max_ms;
        let earliest = header.base_timestamp.min(header.max_timestamp);
        if now_ms.saturating_sub(earliest) > before_limit {
            return Err(LogError::InvalidTimestamp {
                timestamp: earliest,
                now_ms,
                reason: "further in the past",
                limit_ms: before_limit,
            });
        }
        if header.max_timestamp.saturating_sub(now_ms) > after_limit {
            return Err(LogError::InvalidTimestamp {
                timestamp: header.max_timestamp,
                now_ms,
                reason: "further in the future",
                limit_ms: after_limit,
            });
        }
        Ok(())
    }

    fn maybe_roll(
        &mut self,
        incoming_bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let active = self.active_segment();
        if active.size_bytes == 0 {
            return Ok(());
        }
        let rolling_timestamp = active
            .first_batch_max_timestamp
            .filter(|timestamp| *timestamp >= 0)
            .unwrap_or(active.created_at_ms);
        let reason = if active.size_bytes + incoming_bytes > self.config.effective_segment_bytes() {
            "segment.bytes"
        } else if now_ms - rolling_timestamp > self.config.segment_ms {
            "segment.ms"
        } else if active.is_index_full(&self.config) {
            "segment.index.bytes"
        } else if last_offset - active.base_offset > i64::from(i32::MAX) {
            "relative offset overflow"
        } else {
            return Ok(());
        };
        self.roll_segment(now_ms, reason)
    }

    /// Starts a new active segment at the log end if the current one holds data.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self.active_segment().size_bytes == 0 {
            return Ok(());
        }
        self.roll_segment(now_ms, "requested")
    }

    fn roll_segment(&mut self, now_ms: i64, reason: &'static str) -> Result<(), LogError> {
        let new_base_offset = self.log_end_offset();
        let previous_base_offset = self.active_segment().base_offset;
        let previous_size = self.active_segment().size_bytes;
        // The old segment becomes immutable: its indexes are final and everything is durable,
        // so recovery after a crash only ever needs to look at the active segment.
        self.active_segment_mut().seal()?;
        self.write_producer_snapshot(new_base_offset)?;
        let segment = Segment::create(&self.dir, new_base_offset, now_ms)?;
        sync_directory(&self.dir)?;
        self.segments.push(segment);
        self.mark_flushed(new_base_offset);
        tracing::info!(
            dir = %self.dir.display(),
            previous_base_offset,
            previous_size,
            base_offset = new_base_offset,
            reason,
            "segment rolled"
        );
        Ok(())
    }

    pub(crate) fn write_producer_snapshot(&mut self, offset: i64) -> Result<(), LogError> {
        let name = offset_file_name(offset, "snapshot");
        write_atomically(&self.dir, &name, &self.producer_state.encode_snapshot())?;
        if let Err(index) = self.snapshot_offsets.binary_search(&offset) {
            self.snapshot_offsets.insert(index, offset);
        }
        while self.snapshot_offsets.len() > SNAPSHOTS_TO_KEEP {
            let oldest = self.snapshot_offsets.remove(0);
            remove_if_present(&self.dir.join(offset_file_name(oldest, "snapshot")))?;
        }
        Ok(())
    }

    /// First offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active_segment().next_offset
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments
            .iter()
            .map(|segment| segment.base_offset)
            .collect()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Current settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the settings; they apply from the next append or retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Every producer the log knows, by producer id (DescribeProducers).
    pub fn producers(&self) -> Vec<(i64, ProducerEntry)> {
        self.producer_state.all()
    }

    /// What the log knows about an idempotent producer.
    pub fn producer_state(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producer_state.get(producer_id)
    }

    /// The first offset a `read_committed` reader may not pass whatever the high watermark:
    /// the start of the earliest transaction still open or whose marker is not yet known to
    /// be replicated (Kafka's first unstable offset), never below the log start.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producer_state
            .first_unstable_offset()
            .map(|offset| offset.max(self.log_start_offset))
    }

    /// The last stable offset for a high watermark: where `read_committed` reads stop.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset()
            .map_or(high_watermark, |unstable| unstable.min(high_watermark))
    }

    /// Tells the log where the high watermark is, so that transactions whose marker every
    /// in-sync replica holds stop holding back the last stable offset.
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        self.high_watermark = high_watermark;
        self.producer_state.on_high_watermark(high_watermark);
    }

    /// The aborted transactions a `read_committed` fetch of `[fetch_offset, upper_bound)` must
    /// report, in marker order: those with a record in the range, from the index of the
    /// segment holding `fetch_offset` onwards (Kafka's `collectAbortedTransactions`).
    pub fn aborted_transactions(&self, fetch_offset: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        let mut aborted = Vec::new();
        for segment in &self.segments[self.segment_index_for(fetch_offset)..] {
            if !segment
                .txn_index
                .collect(fetch_offset, upper_bound, &mut aborted)
            {
                break;
            }
        }
        aborted
    }

    /// Latest leader epoch appended, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epoch_cache.latest_epoch()
    }

    /// Leader epochs and their start offsets, oldest first.
    pub fn leader_epochs(&self) -> Vec<crate::EpochEntry> {
        self.epoch_cache.entries().to_vec()
    }

    /// OffsetForLeaderEpoch (KIP-101): the largest epoch at or below `epoch` and its end
    /// offset (where the next epoch starts, or the log end for the latest). `None` is
    /// Kafka's undefined epoch/offset.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epoch_cache
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// Messages appended since the last flush (offsets, as Kafka counts them).
    pub fn unflushed_messages(&self) -> i64 {
        (self.log_end_offset() - self.recovery_point).max(0)
    }

    /// When the oldest unflushed append happened, so a background task can honour flush.ms.
    pub fn unflushed_since_ms(&self) -> Option<i64> {
        self.unflushed_since_ms
    }

    /// Files to fsync for everything appended so far. Sync them without holding the log's
    /// mutex, then call [`Log::mark_flushed`] with `up_to_offset`.
    pub fn flush_handle(&self) -> FlushHandle {
        // Rolled segments were synced when they rolled, so only the active one can be dirty.
        FlushHandle {
            files: vec![Arc::clone(&self.active_segment().log_file)],
            up_to_offset: self.log_end_offset(),
        }
    }

    /// Records that offsets below `offset` are durable.
    pub fn mark_flushed(&mut self, offset: i64) {
        let offset = offset.min(self.log_end_offset());
        if offset > self.recovery_point {
            self.recovery_point = offset;
        }
        if self.recovery_point >= self.log_end_offset() {
            self.unflushed_since_ms = None;
        }
    }

    /// fsync of everything appended so far.
    pub fn flush(&mut self) -> Result<(), LogError> {
        let handle = self.flush_handle();
        let active_path = self.active_segment().log_path.clone();
        handle
            .sync()
            .map_err(io_error("sync segment", &active_path))?;
        self.mark_flushed(handle.up_to_offset);
        Ok(())
    }

    /// Flushes, snapshots producer state and marks the shutdown clean so the next open skips
    /// recovery.
    pub fn close(mut self) -> Result<(), LogError> {
        self.close_in_place()
    }

    /// [`Log::close`] for a log shared behind a lock: the caller must not append afterwards.
    pub fn close_in_place(&mut self) -> Result<(), LogError> {
        self.active_segment_mut().seal()?;
        let log_end_offset = self.log_end_offset();
        self.write_producer_snapshot(log_end_offset)?;
        self.epoch_cache.persist()?;
        write_log_start_offset(&self.dir, self.log_start_offset)?;
        write_atomically(&self.dir, CLEAN_SHUTDOWN_FILE, b"")?;
        tracing::info!(
            dir = %self.dir.display(),
            log_start_offset = self.log_start_offset,
            log_end_offset,
            "log closed cleanly"
        );
        Ok(())
    }
}

/// Checks that every record of every non-control batch has a key, as a compacted topic needs
/// (the one append check that reads inside batches, and only for these topics); a batch that
/// cannot be read (corrupt, or decompressing to more than `max_decompressed` bytes) is refused
/// too.
fn check_keys(records: &[u8], max_decompressed: usize) -> Result<(), LogError> {
    for batch in batch::BatchIter::new(records).filter(|batch| !batch.header.is_control()) {
        let refused = |reason: String| LogError::KeylessRecord {
            base_offset: batch.header.base_offset,
            reason,
        };
        let (_, mut iterator) = cauce_protocol::records::records(batch.bytes, max_decompressed)
            .map_err(|error| refused(format!("batch cannot be read: {error}")))?;
        if iterator.any(|record| record.map_or(true, |record| record.key.is_none())) {
            return Err(refused(
                "compacted topic cannot accept a record without a key".into(),
            ));
        }
    }
    Ok(())
}

/// The transaction marker in a control batch, if it is one. A control record that does not
/// parse ends nothing: the broker wrote or replicated it, so this is damage, and is logged.
fn end_txn_marker(header: &BatchHeader, bytes: &[u8]) -> Option<EndTxnMarker> {
    match parse_control(bytes) {
        Ok((_, ControlRecord::EndTxn(marker))) => Some(marker),
        Ok((_, ControlRecord::Other(_))) => None,
        Err(error) => {
            tracing::warn!(offset = header.base_offset, %error, "unreadable control record ends no transaction");
            None
        }
    }
}
