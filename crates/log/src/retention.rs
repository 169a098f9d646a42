//! Moving the log start forward (DeleteRecords, retention) and cutting the end (truncation).
//!
//! The retention decision is a pure function over segment summaries, so it is tested without
//! files; `Log` only performs the deletions it returns.

use crate::checkpoint::write_log_start_offset;
use crate::log::{system_now_ms, Log};
use crate::segment::Segment;
use crate::LogError;

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes those segments held.
    pub deleted_bytes: u64,
    /// Log start offset after the pass.
    pub log_start_offset: i64,
}

/// The facts about a segment that retention looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    /// Bytes in the segment.
    pub size_bytes: u64,
    /// Newest timestamp in it (or its file time without timestamps).
    pub retention_timestamp: i64,
    /// Base offset of the following segment; everything in this one is below it.
    pub next_segment_base_offset: i64,
}

/// How many of the oldest segments to delete. `segments` excludes the active segment, which
/// is never deleted. A segment goes when it lies wholly below the log start offset, is older
/// than retention.ms, or the log without it is still at least retention.bytes; only a prefix
/// of the log is ever deleted.
pub(crate) fn segments_to_delete(
    segments: &[SegmentSummary],
    total_size_bytes: u64,
    log_start_offset: i64,
    retention_ms: i64,
    retention_bytes: i64,
    now_ms: i64,
) -> usize {
    let mut remaining_size = total_size_bytes;
    let mut count = 0;
    for segment in segments {
        let below_start = segment.next_segment_base_offset <= log_start_offset;
        let expired = retention_ms >= 0 && now_ms - segment.retention_timestamp > retention_ms;
        let oversized = retention_bytes >= 0
            && remaining_size.saturating_sub(segment.size_bytes) >= retention_bytes as u64
            && remaining_size > retention_bytes as u64;
        if !(below_start || expired || oversized) {
            break;
        }
        remaining_size -= segment.size_bytes;
        count += 1;
    }
    count
}

impl Log {
    /// Removes the `count` oldest segments (never the active one) and moves the log start to
    /// at least the new first segment's base, persisting it before deleting files.
    fn delete_oldest_segments(
        &mut self,
        count: usize,
        reason: &'static str,
    ) -> Result<RetentionOutcome, LogError> {
        debug_assert!(
            count < self.segments.len(),
            "the active segment is never deleted"
        );
        let removed: Vec<Segment> = self.segments.drain(..count).collect();
        let new_start = self.log_start_offset.max(self.segments[0].base_offset);
        if new_start != self.log_start_offset {
            self.log_start_offset = new_start;
            if self.epoch_cache.truncate_from_start(new_start) {
                self.epoch_cache.persist()?;
            }
        }
        write_log_start_offset(&self.dir, self.log_start_offset)?;
        self.producer_state.on_log_start(self.log_start_offset);
        let mut deleted_bytes = 0;
        for segment in &removed {
            segment.delete_files()?;
            deleted_bytes += segment.size_bytes;
            tracing::info!(
                dir = %self.dir.display(),
                base_offset = segment.base_offset,
                size = segment.size_bytes,
                reason,
                "segment deleted"
            );
        }
        self.size_bytes -= deleted_bytes;
        Ok(RetentionOutcome {
            deleted_segments: removed.len(),
            deleted_bytes,
            log_start_offset: self.log_start_offset,
        })
    }

    /// DeleteRecords: makes `offset` the log start offset (persisted) and deletes the segments
    /// wholly below it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        let log_end_offset = self.log_end_offset();
        if offset > log_end_offset || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        if self.epoch_cache.truncate_from_start(offset) {
            self.epoch_cache.persist()?;
        }
        write_log_start_offset(&self.dir, offset)?;
        self.producer_state.on_log_start(offset);
        let below = self.segments[..self.segments.len() - 1]
            .iter()
            .zip(&self.segments[1..])
            .take_while(|(_, next)| next.base_offset <= offset)
            .count();
        if below > 0 {
            self.delete_oldest_segments(below, "log start offset")?;
        }
        Ok(self.log_start_offset)
    }

    /// Applies retention.ms (newest timestamp of a segment), retention.bytes (total size) and
    /// the log start offset; never deletes the active segment. Time and size apply only with
    /// the `delete` cleanup policy.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        let summaries: Vec<SegmentSummary> = self.segments[..self.segments.len() - 1]
            .iter()
            .zip(&self.segments[1..])
            .map(|(segment, next)| SegmentSummary {
                size_bytes: segment.size_bytes,
                retention_timestamp: segment.retention_timestamp(),
                next_segment_base_offset: next.base_offset,
            })
            .collect();
        // A compact-only log keeps old segments (the cleaner shrinks them instead); only the
        // log start offset still removes what lies wholly below it.
        let (retention_ms, retention_bytes) = if self.config.cleanup_policy_delete {
            (self.config.retention_ms, self.config.retention_bytes)
        } else {
            (-1, -1)
        };
        let count = segments_to_delete(
            &summaries,
            self.size_bytes,
            self.log_start_offset,
            retention_ms,
            retention_bytes,
            now_ms,
        );
        if count == 0 {
            return Ok(RetentionOutcome {
                log_start_offset: self.log_start_offset,
                ..RetentionOutcome::default()
            });
        }
        self.delete_oldest_segments(count, "retention")
    }

    /// Removes every batch holding an offset ≥ `offset` (follower truncation). Below the log
    /// start, the log is emptied and restarts at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let log_end_offset = self.log_end_offset();
        if offset >= log_end_offset {
            return Ok(());
        }
        let now_ms = system_now_ms();
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset.max(0), now_ms);
        }
        while self.segments.len() > 1 && self.active_segment().base_offset > offset {
            let segment = self.segments.pop().expect("more than one segment");
            segment.delete_files()?;
            self.size_bytes -= segment.size_bytes;
        }
        let config = self.config.clone();
        let active = self
            .segments
            .last_mut()
            .expect("a log always has an active segment");
        let size_before = active.size_bytes;
        active.truncate_to(offset, &config)?;
        self.size_bytes -= size_before - active.size_bytes;
        self.after_truncation()?;
        tracing::info!(dir = %self.dir.display(), requested = offset, log_end_offset = self.log_end_offset(), "log truncated");
        Ok(())
    }

    /// Drops the whole log and starts it empty at `offset`: a follower whose leader no longer
    /// has the data this replica lacks.
    pub fn reset_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.truncate_fully_and_start_at(offset.max(0), system_now_ms())
    }

    fn truncate_fully_and_start_at(&mut self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        for segment in self.segments.drain(..) {
            segment.delete_files()?;
        }
        self.segments
            .push(Segment::create(&self.dir, offset, now_ms)?);
        self.size_bytes = 0;
        self.log_start_offset = offset;
        write_log_start_offset(&self.dir, offset)?;
        self.after_truncation()?;
        tracing::info!(dir = %self.dir.display(), offset, "log emptied and restarted");
        Ok(())
    }

    /// Brings derived state back in line with a shorter log.
    fn after_truncation(&mut self) -> Result<(), LogError> {
        let log_end_offset = self.log_end_offset();
        self.recovery_point = self.recovery_point.min(log_end_offset);
        if self.cleaner_checkpoint > log_end_offset {
            // Offsets past the cut will be written again and have not been cleaned.
            self.cleaner_checkpoint = log_end_offset;
            crate::cleaner_swap::write_cleaner_checkpoint(&self.dir, log_end_offset)?;
        }
        if self.epoch_cache.truncate_from_end(log_end_offset) {
            self.epoch_cache.persist()?;
        }
        // Producer state may describe removed batches: rebuild it from the log.
        let stale: Vec<i64> = self
            .snapshot_offsets
            .iter()
            .copied()
            .filter(|snapshot_offset| *snapshot_offset > log_end_offset)
            .collect();
        for snapshot_offset in stale {
            crate::checkpoint::remove_if_present(&self.dir.join(
                crate::checkpoint::offset_file_name(snapshot_offset, "snapshot"),
            ))?;
        }
        self.snapshot_offsets
            .retain(|snapshot_offset| *snapshot_offset <= log_end_offset);
        self.rebuild_producer_state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(
        size_bytes: u64,
        retention_timestamp: i64,
        next_segment_base_offset: i64,
    ) -> SegmentSummary {
        SegmentSummary {
            size_bytes,
            retention_timestamp,
            next_segment_base_offset,
        }
    }

    #[test]
    fn nothing_is_deleted_with_infinite_retention() {
        let segments = [summary(100, 0, 10), summary(100, 0, 20)];
        assert_eq!(segments_to_delete(&segments, 250, 0, -1, -1, 1_000_000), 0);
    }

    #[test]
    fn time_retention_deletes_only_an_expired_prefix() {
        let segments = [
            summary(100, 10, 10),
            summary(100, 5_000, 20),
            summary(100, 20, 30),
        ];
        assert_eq!(segments_to_delete(&segments, 350, 0, 1_000, -1, 5_500), 1);
    }

    #[test]
    fn size_retention_keeps_at_least_retention_bytes() {
        let segments = [
            summary(100, 0, 10),
            summary(100, 0, 20),
            summary(100, 0, 30),
        ];
        // 350 bytes in total (50 in the active segment), keep at least 120.
        assert_eq!(segments_to_delete(&segments, 350, 0, -1, 120, 0), 2);
        assert_eq!(segments_to_delete(&segments, 350, 0, -1, 350, 0), 0);
    }

    #[test]
    fn segments_below_log_start_are_deleted() {
        let segments = [summary(100, 0, 10), summary(100, 0, 20)];
        assert_eq!(segments_to_delete(&segments, 250, 15, -1, -1, 0), 1);
    }
}
