//! DescribeLogDirs (KIP-113, KIP-827): where this broker keeps partitions and how big they are.
//!
//! A Cauce broker has one log dir, its data dir, so the answer always holds exactly one result.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use cauce_protocol::kafka::messages::describe_log_dirs_request::DescribableLogDirTopic;
use cauce_protocol::kafka::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use cauce_protocol::kafka::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::{text, Context, Reply};
use crate::partition::Partition;

/// What Kafka reports for TotalBytes and UsableBytes when it does not know them.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

/// The size of the file system holding `dir` and the bytes still available to the broker
/// there (KIP-827), or unknown if it cannot be asked.
fn volume_bytes(dir: &std::path::Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES);
    };
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stats` is written by statvfs before it is read,
    // which only happens when it returned 0.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return (UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES);
        }
        stats.assume_init()
    };
    let fragment = stats.f_frsize as i64;
    let total = (stats.f_blocks as i64).saturating_mul(fragment);
    let usable = (stats.f_bavail as i64).saturating_mul(fragment);
    (total, usable)
}

/// The lag Kafka reports for a partition's current (not "future") log: it is
/// `max(high watermark - log end offset, 0)`, which is always 0 since the high watermark never
/// passes the log end. Only a future log, being moved by AlterReplicaLogDirs, has a real lag,
/// and Cauce has no such logs.
const CURRENT_LOG_OFFSET_LAG: i64 = 0;

/// Describes the data dir and the hosted partitions the request asks about: all of them when
/// its topics are null, otherwise those it names that live here (others are left out, as Kafka
/// does). Reading log sizes takes each log's lock, so this runs off the reactor.
pub fn describe_log_dirs(context: Context, request: DescribeLogDirsRequest) -> Reply {
    context.respond_blocking(move |context| {
        let partitions = requested_partitions(context, request.topics.as_deref());
        let (total, usable) = volume_bytes(&context.broker.config.data_dir);
        let result = DescribeLogDirsResult::default()
            .with_log_dir(text(log_dir_path(&context.broker.config.data_dir)))
            .with_topics(describe_topics(&partitions))
            .with_total_bytes(total)
            .with_usable_bytes(usable);
        DescribeLogDirsResponse::default().with_results(vec![result])
    })
}

/// The hosted partitions the request names, or every hosted one when it names none (null).
fn requested_partitions(
    context: &Context,
    topics: Option<&[DescribableLogDirTopic]>,
) -> Vec<Arc<Partition>> {
    let hosted = context.broker.replicas.all();
    let Some(topics) = topics else {
        return hosted;
    };
    let wanted: HashSet<(&str, i32)> = topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|&index| (topic.topic.as_str(), index))
        })
        .collect();
    hosted
        .into_iter()
        .filter(|partition| wanted.contains(&(partition.topic.as_str(), partition.index)))
        .collect()
}

/// Groups partitions by topic, both in name and index order so that answers are stable.
fn describe_topics(partitions: &[Arc<Partition>]) -> Vec<DescribeLogDirsTopic> {
    let mut by_topic: BTreeMap<&str, Vec<&Partition>> = BTreeMap::new();
    for partition in partitions {
        by_topic
            .entry(partition.topic.as_str())
            .or_default()
            .push(partition);
    }
    by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|partition| partition.index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(text(name)))
                .with_partitions(partitions.into_iter().map(describe_partition).collect())
        })
        .collect()
}

/// One partition's size on disk, read under its log lock.
fn describe_partition(partition: &Partition) -> DescribeLogDirsPartition {
    let size_bytes = partition.with_log(|log| log.size_bytes());
    DescribeLogDirsPartition::default()
        .with_partition_index(partition.index)
        .with_partition_size(i64::try_from(size_bytes).unwrap_or(i64::MAX))
        .with_offset_lag(CURRENT_LOG_OFFSET_LAG)
        .with_is_future_key(false)
}

/// The absolute path of the data dir, as Kafka reports a log dir; resolved through symlinks
/// when it can be, made absolute against the working directory otherwise.
fn log_dir_path(data_dir: &Path) -> String {
    std::fs::canonicalize(data_dir)
        .or_else(|_| std::path::absolute(data_dir))
        .unwrap_or_else(|_| data_dir.to_path_buf())
        .display()
        .to_string()
}
