//! The cleaner's decisions, pure: whether a log is due, which segments a pass cleans, and
//! which adjacent segments merge into one cleaned segment.

use crate::config::LogConfig;

/// The facts about a sealed segment that decide whether and how far a log is cleaned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CleanerSegmentFacts {
    /// Bytes in the segment.
    pub size_bytes: u64,
    /// Base offset of the following segment: everything in this one is below it.
    pub next_segment_base_offset: i64,
    /// Largest batch max timestamp (-1 without timestamps); checked against min.compaction.lag.ms.
    pub max_timestamp: i64,
    /// Max timestamp of the first batch; checked against max.compaction.lag.ms.
    pub first_batch_timestamp: Option<i64>,
}

/// Why a log is due for cleaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DueReason {
    /// min.cleanable.dirty.ratio reached.
    DirtyRatio,
    /// A dirty record is older than max.compaction.lag.ms.
    MaxCompactionLag,
}

/// Which sealed segments a pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleaningPlan {
    /// Sealed segments `[0, first_dirty)` are clean.
    pub first_dirty: usize,
    /// Sealed segments `[0, cleanable_end)` are rewritten; `[first_dirty, cleanable_end)`
    /// feed the key map.
    pub cleanable_end: usize,
    /// What made the log due.
    pub reason: DueReason,
}

/// Decides whether the log is due and which segments to clean. `sealed` excludes the active
/// segment.
pub(crate) fn plan_cleaning(
    sealed: &[CleanerSegmentFacts],
    cleaner_checkpoint: i64,
    config: &LogConfig,
    now_ms: i64,
) -> Option<CleaningPlan> {
    if !config.cleanup_policy_compact {
        return None;
    }
    let first_dirty = sealed
        .iter()
        .take_while(|segment| segment.next_segment_base_offset <= cleaner_checkpoint)
        .count();
    let min_lag = config.min_compaction_lag_ms;
    let cleanable_end = first_dirty
        + sealed[first_dirty..]
            .iter()
            .take_while(|segment| {
                min_lag <= 0 || segment.max_timestamp <= now_ms.saturating_sub(min_lag)
            })
            .count();
    if cleanable_end == first_dirty {
        return None;
    }
    let clean_bytes: u64 = sealed[..first_dirty]
        .iter()
        .map(|segment| segment.size_bytes)
        .sum();
    let dirty_bytes: u64 = sealed[first_dirty..cleanable_end]
        .iter()
        .map(|segment| segment.size_bytes)
        .sum();
    let total_bytes = clean_bytes + dirty_bytes;
    let ratio = if total_bytes == 0 {
        0.0
    } else {
        dirty_bytes as f64 / total_bytes as f64
    };
    let earliest_dirty_timestamp = sealed[first_dirty..]
        .iter()
        .filter_map(|segment| segment.first_batch_timestamp)
        .filter(|timestamp| *timestamp > 0)
        .min();
    let reason = if dirty_bytes > 0 && ratio >= config.min_cleanable_dirty_ratio {
        DueReason::DirtyRatio
    } else if earliest_dirty_timestamp
        .is_some_and(|timestamp| now_ms.saturating_sub(timestamp) > config.max_compaction_lag_ms)
    {
        DueReason::MaxCompactionLag
    } else {
        return None;
    };
    Some(CleaningPlan {
        first_dirty,
        cleanable_end,
        reason,
    })
}

/// Size and index use of a segment, for deciding whether adjacent segments merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct GroupingFacts {
    /// Bytes in the log file.
    pub size_bytes: u64,
    /// Entries in its offset index.
    pub offset_index_entries: usize,
    /// Entries in its time index.
    pub time_index_entries: usize,
}

/// Whether a sealed segment (`next`, before cleaning: an upper bound of what it becomes) can
/// be cleaned into the cleaned segment written so far (`written`, whose base offset is
/// `group_base_offset`) without it outgrowing a segment: segment.bytes, offsets within an i32
/// of the base, indexes within segment.index.bytes.
pub(crate) fn fits_in_group(
    written: GroupingFacts,
    group_base_offset: i64,
    next: GroupingFacts,
    next_segment_base_offset: i64,
    config: &LogConfig,
) -> bool {
    // One entry spare for the time-index entry that sealing adds.
    let max_offset_entries = config.max_offset_index_entries().saturating_sub(1);
    let max_time_entries = config.max_time_index_entries().saturating_sub(1);
    written.size_bytes + next.size_bytes <= config.effective_segment_bytes()
        && written.offset_index_entries + next.offset_index_entries <= max_offset_entries
        && written.time_index_entries + next.time_index_entries <= max_time_entries
        && next_segment_base_offset - group_base_offset <= i64::from(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compacting() -> LogConfig {
        LogConfig {
            cleanup_policy_compact: true,
            cleanup_policy_delete: false,
            ..LogConfig::default()
        }
    }

    fn facts(
        size_bytes: u64,
        next_segment_base_offset: i64,
        timestamp: i64,
    ) -> CleanerSegmentFacts {
        CleanerSegmentFacts {
            size_bytes,
            next_segment_base_offset,
            max_timestamp: timestamp,
            first_batch_timestamp: Some(timestamp),
        }
    }

    #[test]
    fn delete_only_logs_are_never_planned() {
        let sealed = [facts(100, 10, 1)];
        assert_eq!(
            plan_cleaning(&sealed, 0, &LogConfig::default(), 1_000),
            None
        );
    }

    #[test]
    fn dirty_ratio_decides_when_lag_does_not() {
        let sealed = [facts(100, 10, 1), facts(100, 20, 1), facts(50, 30, 1)];
        let config = compacting();
        // Clean 200, dirty 50: 0.2 < 0.5.
        assert_eq!(plan_cleaning(&sealed, 20, &config, 1_000), None);
        // Clean 100, dirty 150: 0.6.
        let plan = plan_cleaning(&sealed, 10, &config, 1_000).unwrap();
        assert_eq!((plan.first_dirty, plan.cleanable_end), (1, 3));
        assert_eq!(plan.reason, DueReason::DirtyRatio);
    }

    #[test]
    fn checkpoint_inside_a_segment_counts_it_dirty() {
        let sealed = [facts(100, 10, 1), facts(100, 20, 1)];
        let plan = plan_cleaning(&sealed, 15, &compacting(), 1_000).unwrap();
        assert_eq!(plan.first_dirty, 1);
    }

    #[test]
    fn min_lag_stops_the_cleanable_range_at_the_first_young_segment() {
        let sealed = [
            facts(100, 10, 100),
            facts(100, 20, 950),
            facts(100, 30, 100),
        ];
        let config = LogConfig {
            min_compaction_lag_ms: 100,
            ..compacting()
        };
        let plan = plan_cleaning(&sealed, 0, &config, 1_000).unwrap();
        assert_eq!(plan.cleanable_end, 1);
        let all_young = [facts(100, 10, 950)];
        assert_eq!(plan_cleaning(&all_young, 0, &config, 1_000), None);
    }

    #[test]
    fn max_lag_forces_a_pass_below_the_ratio() {
        let sealed = [facts(1_000, 10, 100), facts(10, 20, 500)];
        let config = LogConfig {
            max_compaction_lag_ms: 300,
            ..compacting()
        };
        assert_eq!(plan_cleaning(&sealed, 10, &config, 700), None);
        let plan = plan_cleaning(&sealed, 10, &config, 900).unwrap();
        assert_eq!(plan.reason, DueReason::MaxCompactionLag);
    }

    #[test]
    fn merging_respects_segment_bytes_index_size_and_offset_span() {
        let facts = |size_bytes: u64, entries: usize| GroupingFacts {
            size_bytes,
            offset_index_entries: entries,
            time_index_entries: entries,
        };
        let config = LogConfig {
            segment_bytes: 1_000,
            segment_index_bytes: 12 * 10,
            ..compacting()
        };
        assert!(fits_in_group(facts(400, 1), 0, facts(600, 1), 20, &config));
        assert!(!fits_in_group(facts(401, 1), 0, facts(600, 1), 20, &config));
        assert!(!fits_in_group(facts(10, 5), 0, facts(10, 5), 20, &config));
        let beyond_i32 = i64::from(i32::MAX) + 1;
        assert!(!fits_in_group(
            facts(10, 1),
            0,
            facts(10, 1),
            beyond_i32,
            &config
        ));
        assert!(fits_in_group(
            facts(10, 1),
            1,
            facts(10, 1),
            beyond_i32,
            &config
        ));
    }
}
