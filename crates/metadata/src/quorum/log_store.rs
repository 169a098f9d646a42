//! openraft's log storage: entries in [`LogFile`], the vote and the committed pointer in files
//! of their own.
//!
//! Entries are also kept in memory, where readers (the replication tasks) find them without
//! touching the disk; the metadata log is small and purged after each snapshot, so this stays
//! small too. Every write is fsynced before openraft hears that it is done, and file work runs
//! on the blocking pool.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};
use parking_lot::{Mutex, RwLock};

use super::activity::ReplicaActivity;
use super::durable::{blocking, read_json, write_json};
use super::log_file::LogFile;
use super::types::{Entry, LogId, MetadataRaft, StorageError, Vote};

/// The vote's file inside the quorum directory.
const VOTE_FILE_NAME: &str = "vote.json";
/// The committed pointer's file inside the quorum directory.
const COMMITTED_FILE_NAME: &str = "committed.json";

/// Log entries by index, shared by the store and its readers.
type EntryCache = Arc<RwLock<BTreeMap<u64, Entry>>>;

/// The durable raft log, vote and committed pointer of this node.
pub(crate) struct LogStore {
    /// Every entry of the log, for readers.
    entries: EntryCache,
    /// The file the entries are written to; behind a mutex so blocking tasks can borrow it.
    file: Arc<Mutex<LogFile>>,
    /// The last purged entry; the log's start when every entry is gone.
    last_purged: Option<LogId>,
    /// The last saved vote, read back without touching the disk.
    vote: Option<Vote>,
    /// Where the vote file lives.
    vote_path: PathBuf,
    /// Where the committed pointer lives.
    committed_path: PathBuf,
    /// Told the log end after every change, for the leader's caught-up times.
    activity: Arc<ReplicaActivity>,
}

/// Reads entries for replication, from memory.
#[derive(Clone)]
pub(crate) struct LogReader {
    /// The store's entries.
    entries: EntryCache,
}

impl LogStore {
    /// Opens the log in `dir`, recovering from a crash; blocking.
    pub(crate) fn open(dir: &Path, activity: Arc<ReplicaActivity>) -> io::Result<LogStore> {
        let (file, recovered) = LogFile::open(dir)?;
        let vote_path = dir.join(VOTE_FILE_NAME);
        let vote = read_json(&vote_path)?;
        let entries: BTreeMap<u64, Entry> = recovered
            .entries
            .into_iter()
            .map(|entry| (entry.log_id.index, entry))
            .collect();
        tracing::info!(
            dir = %dir.display(),
            entries = entries.len(),
            last_purged = ?recovered.purged,
            "raft log opened"
        );
        let store = LogStore {
            entries: Arc::new(RwLock::new(entries)),
            file: Arc::new(Mutex::new(file)),
            last_purged: recovered.purged,
            vote,
            vote_path,
            committed_path: dir.join(COMMITTED_FILE_NAME),
            activity,
        };
        store.publish_log_end();
        Ok(store)
    }

    /// The id of the last entry, or of the last purged one when none is left.
    fn last_log_id(&self) -> Option<LogId> {
        let entries = self.entries.read();
        entries
            .values()
            .next_back()
            .map(|entry| entry.log_id)
            .or(self.last_purged)
    }

    /// Tells the activity tracker where the log ends now.
    fn publish_log_end(&self) {
        let end = self.last_log_id().map_or(0, |log_id| log_id.index + 1);
        self.activity.set_local_log_end(end);
    }

    /// Runs `work` on the log file off the reactor.
    async fn with_file<T, F>(&self, work: F) -> io::Result<T>
    where
        F: FnOnce(&mut LogFile) -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let file = self.file.clone();
        blocking(move || work(&mut file.lock())).await
    }
}

impl RaftLogReader<MetadataRaft> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let entries = self.entries.read();
        Ok(entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftLogReader<MetadataRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.get_log_reader().await.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<MetadataRaft> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<MetadataRaft>, StorageError> {
        Ok(LogState {
            last_purged_log_id: self.last_purged,
            last_log_id: self.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            entries: self.entries.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let path = self.vote_path.clone();
        let saved = *vote;
        blocking(move || write_json(&path, &saved))
            .await
            .map_err(|error| storage_error(ErrorSubject::Vote, ErrorVerb::Write, error))?;
        self.vote = Some(saved);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Lets a restarted node rebuild its image from its own log without waiting for a leader.
        let path = self.committed_path.clone();
        blocking(move || write_json(&path, &committed))
            .await
            .map_err(|error| storage_error(ErrorSubject::Store, ErrorVerb::Write, error))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let path = self.committed_path.clone();
        let committed: Option<Option<LogId>> = blocking(move || read_json(&path))
            .await
            .map_err(|error| storage_error(ErrorSubject::Store, ErrorVerb::Read, error))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<MetadataRaft>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        {
            let mut cache = self.entries.write();
            for entry in &entries {
                cache.insert(entry.log_id.index, entry.clone());
            }
        }
        self.publish_log_end();
        let result = self.with_file(move |file| file.append(&entries)).await;
        let error = result.as_ref().err().map(clone_io_error);
        callback.log_io_completed(result);
        match error {
            Some(error) => Err(storage_error(ErrorSubject::Logs, ErrorVerb::Write, error)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "raft log truncated");
        self.entries.write().split_off(&log_id.index);
        self.publish_log_end();
        self.with_file(move |file| file.truncate_from(log_id.index))
            .await
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, error))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "raft log purged");
        {
            let mut cache = self.entries.write();
            let kept = cache.split_off(&(log_id.index + 1));
            *cache = kept;
        }
        self.last_purged = Some(log_id);
        self.publish_log_end();
        self.with_file(move |file| file.purge_through(&log_id))
            .await
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, error))
    }
}

/// openraft's storage error for an i/o failure.
fn storage_error(subject: ErrorSubject<u64>, verb: ErrorVerb, error: io::Error) -> StorageError {
    StorageError::from_io_error(subject, verb, error)
}

/// A copy of an i/o error, which is not `Clone`, for reporting it twice.
fn clone_io_error(error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), error.to_string())
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    #[tokio::test]
    async fn the_vote_and_the_committed_pointer_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let activity = Arc::new(ReplicaActivity::default());
        let vote = Vote::new(3, 2);
        {
            let mut store = LogStore::open(dir.path(), activity.clone()).unwrap();
            assert_eq!(store.read_vote().await.unwrap(), None);
            store.save_vote(&vote).await.unwrap();
            store.save_committed(Some(entry(4).log_id)).await.unwrap();
        }
        let mut store = LogStore::open(dir.path(), activity).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), Some(entry(4).log_id));
    }

    #[tokio::test]
    async fn the_log_state_follows_truncate_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let activity = Arc::new(ReplicaActivity::default());
        let mut store = LogStore::open(dir.path(), activity.clone()).unwrap();
        let entries: Vec<Entry> = (0..5).map(entry).collect();
        {
            let mut cache = store.entries.write();
            cache.extend(
                entries
                    .iter()
                    .map(|entry| (entry.log_id.index, entry.clone())),
            );
        }
        store
            .with_file(move |file| file.append(&entries))
            .await
            .unwrap();
        store.truncate(entry(3).log_id).await.unwrap();
        assert_eq!(activity.local_log_end(), 3);
        store.purge(entry(1).log_id).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(1).log_id));
        assert_eq!(state.last_log_id, Some(entry(2).log_id));
        let mut reader = store.get_log_reader().await;
        let read = reader.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(read, vec![entry(2)]);

        store.purge(entry(2).log_id).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path(), activity).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(entry(2).log_id));
        assert_eq!(state.last_purged_log_id, Some(entry(2).log_id));
    }
}
