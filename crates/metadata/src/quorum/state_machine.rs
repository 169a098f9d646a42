//! openraft's state machine: committed proposals applied to the metadata image, and snapshots
//! of that image.
//!
//! The image lives in memory and is published through a watch channel after every batch of
//! applied entries. It is not written to disk on apply: a restarted node rebuilds it from the
//! last snapshot plus the committed entries of its log (openraft replays them at start, from the
//! persisted committed pointer). A snapshot is the image as records (`MetadataImage::to_records`)
//! with the log id and membership it covers, in one file replaced atomically.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::durable::{blocking, read_json, write_json};
use super::types::{
    Entry, ImageSnapshot, LogId, MetadataRaft, Snapshot, SnapshotMeta, StorageError,
    StoredMembership,
};
use crate::image::MetadataImage;

/// The snapshot's file inside the quorum directory.
const SNAPSHOT_FILE_NAME: &str = "snapshot.json";

/// A snapshot as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    /// What it covers.
    meta: SnapshotMeta,
    /// The image it holds.
    data: ImageSnapshot,
}

impl StoredSnapshot {
    /// The snapshot in openraft's form.
    fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(self.data.clone()),
        }
    }
}

/// The latest snapshot, shared by the state machine and the builders it hands out.
struct SnapshotFile {
    /// Where it is kept.
    path: PathBuf,
    /// Held while the file is written, so two saves (a build and an install) do not race.
    writing: Mutex<()>,
    /// The latest snapshot saved; locked only briefly, so readers never wait for a write.
    current: Mutex<Option<Arc<StoredSnapshot>>>,
}

impl SnapshotFile {
    /// Saves `snapshot` unless a newer one is already saved; blocking.
    fn save(&self, snapshot: StoredSnapshot) -> std::io::Result<()> {
        let _writing = self.writing.lock();
        let newer_saved = self
            .current()
            .is_some_and(|saved| saved.meta.last_log_id > snapshot.meta.last_log_id);
        if newer_saved {
            return Ok(());
        }
        write_json(&self.path, &snapshot)?;
        *self.current.lock() = Some(Arc::new(snapshot));
        Ok(())
    }

    /// The latest snapshot.
    fn current(&self) -> Option<Arc<StoredSnapshot>> {
        self.current.lock().clone()
    }
}

/// The metadata image as openraft's state machine.
pub(crate) struct StateMachine {
    /// The image after the last applied entry.
    image: Arc<MetadataImage>,
    /// The last applied entry.
    last_applied: Option<LogId>,
    /// The membership of the last applied membership entry.
    last_membership: StoredMembership,
    /// Publishes every new image to `Quorum::image` and its subscribers.
    publisher: watch::Sender<Arc<MetadataImage>>,
    /// The latest snapshot, on disk and in memory.
    snapshots: Arc<SnapshotFile>,
}

impl StateMachine {
    /// Opens the state machine at the last snapshot in `dir`, or empty; blocking.
    ///
    /// Returns it with a receiver of the images it will publish.
    pub(crate) fn open(
        dir: &Path,
    ) -> std::io::Result<(StateMachine, watch::Receiver<Arc<MetadataImage>>)> {
        let path = dir.join(SNAPSHOT_FILE_NAME);
        let stored: Option<StoredSnapshot> = read_json(&path)?;
        let (image, last_applied, last_membership) = match &stored {
            Some(stored) => (
                restore_image(&stored.data),
                stored.meta.last_log_id,
                stored.meta.last_membership.clone(),
            ),
            None => Default::default(),
        };
        let image = Arc::new(image);
        let (publisher, images) = watch::channel(image.clone());
        let snapshots = Arc::new(SnapshotFile {
            path,
            writing: Mutex::new(()),
            current: Mutex::new(stored.map(Arc::new)),
        });
        let state_machine = StateMachine {
            image,
            last_applied,
            last_membership,
            publisher,
            snapshots,
        };
        Ok((state_machine, images))
    }

    /// Replaces the image and tells subscribers.
    fn publish(&mut self, image: Arc<MetadataImage>) {
        self.image = image.clone();
        self.publisher.send_replace(image);
    }
}

/// Builds a snapshot of the image as it was when the builder was made.
pub(crate) struct SnapshotBuilder {
    /// The image to snapshot.
    image: Arc<MetadataImage>,
    /// The last entry the image includes.
    last_applied: Option<LogId>,
    /// The membership at that entry.
    last_membership: StoredMembership,
    /// Where the snapshot goes.
    snapshots: Arc<SnapshotFile>,
}

impl RaftSnapshotBuilder<MetadataRaft> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.last_membership.clone(),
                snapshot_id: snapshot_id(self.last_applied),
            },
            data: ImageSnapshot {
                records_applied: self.image.records_applied,
                records: self.image.to_records(),
            },
        };
        let snapshot = stored.to_snapshot();
        let snapshots = self.snapshots.clone();
        blocking(move || snapshots.save(stored))
            .await
            .map_err(|error| snapshot_error(&snapshot.meta, ErrorVerb::Write, error))?;
        tracing::info!(last_log_id = ?snapshot.meta.last_log_id, "metadata snapshot built");
        Ok(snapshot)
    }
}

impl RaftStateMachine<MetadataRaft> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // The batch's records in log order, applied at once: one new image per batch.
        let mut records = Vec::new();
        let mut replies = Vec::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(proposal) => records.extend(proposal),
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership)
                }
            }
            self.last_applied = Some(entry.log_id);
            replies.push(());
        }
        if !records.is_empty() {
            self.publish(Arc::new(self.image.apply(&records)));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            image: self.image.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<ImageSnapshot>, StorageError> {
        // Snapshots arrive whole (`Raft::install_full_snapshot`); this is never filled.
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<ImageSnapshot>,
    ) -> Result<(), StorageError> {
        let image = Arc::new(restore_image(&snapshot));
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: *snapshot,
        };
        let snapshots = self.snapshots.clone();
        blocking(move || snapshots.save(stored))
            .await
            .map_err(|error| snapshot_error(meta, ErrorVerb::Write, error))?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.publish(image);
        tracing::info!(last_log_id = ?meta.last_log_id, "metadata snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.snapshots.current().map(|stored| stored.to_snapshot()))
    }
}

/// The image a snapshot holds.
fn restore_image(snapshot: &ImageSnapshot) -> MetadataImage {
    let mut image = MetadataImage::default().apply(&snapshot.records);
    image.records_applied = snapshot.records_applied;
    image
}

/// A snapshot id unique to this build: the entry it covers and the time it was made.
fn snapshot_id(last_applied: Option<LogId>) -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    match last_applied {
        Some(log_id) => format!("{}-{}-{micros}", log_id.leader_id, log_id.index),
        None => format!("empty-{micros}"),
    }
}

/// openraft's storage error for a failed snapshot write.
fn snapshot_error(meta: &SnapshotMeta, verb: ErrorVerb, error: std::io::Error) -> StorageError {
    StorageError::from_io_error(ErrorSubject::Snapshot(Some(meta.signature())), verb, error)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{BasicNode, CommittedLeaderId, Membership};

    use super::*;
    use crate::record::MetadataRecord;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn proposal(index: u64, records: Vec<MetadataRecord>) -> Entry {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(records),
        }
    }

    fn cluster(cluster_id: &str) -> MetadataRecord {
        MetadataRecord::Cluster {
            cluster_id: cluster_id.to_string(),
        }
    }

    fn membership() -> Membership<u64, BasicNode> {
        let nodes = BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))]);
        Membership::new(vec![BTreeSet::from([1])], nodes)
    }

    #[tokio::test]
    async fn applied_proposals_are_published_and_a_snapshot_restores_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut state_machine, mut images) = StateMachine::open(dir.path()).unwrap();
        let membership_entry = Entry {
            log_id: log_id(0),
            payload: EntryPayload::Membership(membership()),
        };
        let entries = vec![
            membership_entry,
            proposal(1, vec![cluster("a")]),
            proposal(2, vec![cluster("b"), cluster("c")]),
        ];
        state_machine.apply(entries).await.unwrap();
        assert!(images.has_changed().unwrap());
        let image = images.borrow_and_update().clone();
        assert_eq!(image.cluster_id, "c");
        assert_eq!(image.records_applied, 3);

        let mut builder = state_machine.get_snapshot_builder().await;
        let snapshot = builder.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(2)));

        let (mut reopened, images) = StateMachine::open(dir.path()).unwrap();
        assert_eq!(*images.borrow().clone(), *image);
        let (last_applied, last_membership) = reopened.applied_state().await.unwrap();
        assert_eq!(last_applied, Some(log_id(2)));
        assert_eq!(last_membership.log_id(), &Some(log_id(0)));
    }

    #[tokio::test]
    async fn an_installed_snapshot_replaces_the_image() {
        let source_dir = tempfile::tempdir().unwrap();
        let (mut source, _) = StateMachine::open(source_dir.path()).unwrap();
        source
            .apply(vec![proposal(5, vec![cluster("from-leader")])])
            .await
            .unwrap();
        let snapshot = source
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let (mut state_machine, images) = StateMachine::open(dir.path()).unwrap();
        state_machine
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(images.borrow().cluster_id, "from-leader");
        let current = state_machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(log_id(5)));
    }
}
