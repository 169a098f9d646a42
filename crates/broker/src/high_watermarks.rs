//! The high-watermark checkpoint (Kafka's `replication-offset-checkpoint`): every hosted
//! partition's high watermark, written to the data dir every
//! `replica.high.watermark.checkpoint.interval.ms` and at shutdown. A restarted broker starts
//! each partition there (never past its log end) instead of at 0, so as a leader it serves what
//! was committed before it stopped without waiting for its followers to fetch again.
//!
//! The file is text: a version line, the number of entries, then one line per partition:
//! `<topic> <partition> <high watermark> <topic id>`. Topic names cannot hold spaces. The topic
//! id keeps a checkpoint of a deleted topic from applying to a new one of the same name.

use std::collections::HashMap;
use std::path::Path;

use cauce_log::LogError;
use uuid::Uuid;

/// The checkpoint's file name in the data dir.
pub const FILE_NAME: &str = "replication-offset-checkpoint";
const VERSION: &str = "0";

/// High watermarks by (topic, partition), each with its topic's id.
pub type HighWatermarks = HashMap<(String, i32), (Uuid, i64)>;

/// Replaces the checkpoint in `data_dir` with `entries`, atomically.
pub fn write(data_dir: &Path, entries: &HighWatermarks) -> Result<(), LogError> {
    let mut lines: Vec<String> = entries
        .iter()
        .map(|((topic, partition), (topic_id, high_watermark))| {
            format!("{topic} {partition} {high_watermark} {topic_id}\n")
        })
        .collect();
    lines.sort_unstable();
    let text = format!("{VERSION}\n{}\n{}", lines.len(), lines.concat());
    cauce_log::write_atomically(data_dir, FILE_NAME, text.as_bytes())
}

/// Reads the checkpoint in `data_dir`; a missing one is empty, and a damaged one is ignored
/// with a warning (partitions then start at 0, as without it).
pub fn read(data_dir: &Path) -> HighWatermarks {
    let path = data_dir.join(FILE_NAME);
    let contents = match cauce_log::read_optional(&path) {
        Ok(Some(contents)) => contents,
        Ok(None) => return HighWatermarks::new(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the high-watermark checkpoint");
            return HighWatermarks::new();
        }
    };
    parse(&String::from_utf8_lossy(&contents)).unwrap_or_else(|| {
        tracing::warn!(path = %path.display(), "ignoring a damaged high-watermark checkpoint");
        HighWatermarks::new()
    })
}

fn parse(text: &str) -> Option<HighWatermarks> {
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    // The count is checked against the entries read below; it sizes nothing before that.
    let mut entries = HighWatermarks::with_capacity(count.min(1 << 16));
    for line in lines {
        let mut fields = line.split(' ');
        let topic = fields.next()?.to_string();
        let partition = fields.next()?.parse().ok()?;
        let high_watermark = fields.next()?.parse().ok()?;
        let topic_id = fields.next()?.parse().ok()?;
        if fields.next().is_some() {
            return None;
        }
        entries.insert((topic, partition), (topic_id, high_watermark));
    }
    (entries.len() == count).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_damage_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty());
        let entries = HighWatermarks::from([
            (("orders".to_string(), 0), (Uuid::new_v4(), 120)),
            (("orders".to_string(), 1), (Uuid::new_v4(), 0)),
            (("__consumer_offsets".to_string(), 7), (Uuid::new_v4(), 3)),
        ]);
        write(dir.path(), &entries).unwrap();
        assert_eq!(read(dir.path()), entries);
        // A count that does not match, or a short line, is damage.
        for damaged in ["0\n2\norders 0 5 x\n", "0\n2\norders 0 5\n", "1\n0\n"] {
            std::fs::write(dir.path().join(FILE_NAME), damaged).unwrap();
            assert!(read(dir.path()).is_empty(), "{damaged:?}");
        }
    }

    #[test]
    fn a_checkpoint_announcing_more_entries_than_memory_reads_as_damaged() {
        let text = format!(
            "{VERSION}\n99999999999999\ntopic 0 5 {}\n",
            uuid::Uuid::nil()
        );
        assert!(parse(&text).is_none());
    }
}
