//! Leader epoch → start offset, for OffsetForLeaderEpoch (KIP-101) and follower truncation.
//!
//! Stored in `leader-epoch-checkpoint` as text, like Kafka's: a version line `0`, a count line,
//! then one `epoch start_offset` line per epoch.

use std::path::{Path, PathBuf};

use crate::checkpoint::{read_optional, write_atomically};
use crate::LogError;

/// Name of the checkpoint file in the partition directory.
pub(crate) const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// The first offset written under one leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// First offset appended in that epoch.
    pub start_offset: i64,
}

/// Epochs in increasing order of both epoch and start offset.
#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    /// Partition directory holding the checkpoint.
    dir: PathBuf,
    /// Entries, increasing in epoch and start offset.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint. The flag is false when it was missing or damaged, meaning the
    /// caller must rebuild the cache from batch headers.
    pub(crate) fn load(dir: &Path) -> Result<(LeaderEpochCache, bool), LogError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let mut cache = LeaderEpochCache {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        };
        let Some(contents) = read_optional(&path)? else {
            return Ok((cache, false));
        };
        match parse_checkpoint(&String::from_utf8_lossy(&contents)) {
            Some(entries) => {
                cache.entries = entries;
                Ok((cache, true))
            }
            None => {
                tracing::warn!(path = %path.display(), "rebuilding damaged leader epoch checkpoint");
                Ok((cache, false))
            }
        }
    }

    pub(crate) fn persist(&self) -> Result<(), LogError> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
        }
        write_atomically(&self.dir, LEADER_EPOCH_CHECKPOINT_FILE, text.as_bytes())
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than the latest epoch.
    /// Returns whether anything changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        if let Some(latest) = self.entries.last() {
            if epoch <= latest.epoch {
                return false;
            }
            debug_assert!(start_offset >= latest.start_offset);
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Forgets epochs that start at or after `end_offset` (the log was truncated there).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Drops epochs wholly before `start_offset`; the epoch covering it now starts there.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covering = self
            .entries
            .partition_point(|entry| entry.start_offset <= start_offset);
        if covering == 0 {
            return false;
        }
        let changed = covering > 1 || self.entries[0].start_offset != start_offset;
        self.entries.drain(..covering - 1);
        self.entries[0].start_offset = start_offset;
        changed
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `requested_epoch` and the offset
    /// where the next higher epoch starts, or `log_end_offset` for the latest epoch. `None`
    /// stands for Kafka's undefined epoch and offset.
    pub(crate) fn end_offset_for(
        &self,
        requested_epoch: i32,
        log_end_offset: i64,
    ) -> Option<(i32, i64)> {
        if requested_epoch < 0 {
            return None;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return Some((requested_epoch, log_end_offset));
        }
        let higher_index = self
            .entries
            .partition_point(|entry| entry.epoch <= requested_epoch);
        let higher = self.entries.get(higher_index)?;
        if higher_index == 0 {
            // Older than anything we know: the data was removed; restart from the first epoch.
            return Some((requested_epoch, higher.start_offset));
        }
        Some((self.entries[higher_index - 1].epoch, higher.start_offset))
    }
}

fn parse_checkpoint(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let (epoch, start_offset) = lines.next()?.split_once(' ')?;
        let entry = EpochEntry {
            epoch: epoch.parse().ok()?,
            start_offset: start_offset.trim().parse().ok()?,
        };
        if let Some(previous) = entries.last() {
            if entry.epoch <= previous.epoch || entry.start_offset < previous.start_offset {
                return None;
            }
        }
        entries.push(entry);
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let (mut cache, _) = LeaderEpochCache::load(dir.path()).unwrap();
        for &(epoch, start_offset) in entries {
            assert!(cache.assign(epoch, start_offset));
        }
        (dir, cache)
    }

    #[test]
    fn end_offset_follows_kip_101() {
        let (_dir, cache) = cache_with(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(cache.end_offset_for(5, 30), Some((5, 30)));
        assert_eq!(cache.end_offset_for(3, 30), Some((3, 20)));
        assert_eq!(cache.end_offset_for(4, 30), Some((3, 20)));
        assert_eq!(cache.end_offset_for(2, 30), Some((1, 10)));
        assert_eq!(cache.end_offset_for(0, 30), Some((0, 0)));
        assert_eq!(cache.end_offset_for(6, 30), None);
        assert_eq!(cache.end_offset_for(-1, 30), None);
    }

    #[test]
    fn truncation_from_both_ends() {
        let (_dir, mut cache) = cache_with(&[(1, 0), (3, 10), (5, 20)]);
        assert!(cache.truncate_from_end(20));
        assert_eq!(cache.latest_epoch(), Some(3));
        assert!(cache.truncate_from_start(15));
        assert_eq!(
            cache.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 15
            }]
        );
    }

    #[test]
    fn checkpoint_round_trips() {
        let (dir, cache) = cache_with(&[(1, 0), (3, 10)]);
        cache.persist().unwrap();
        let (loaded, trusted) = LeaderEpochCache::load(dir.path()).unwrap();
        assert!(trusted);
        assert_eq!(loaded.entries(), cache.entries());
    }
}
