//! Where decided records are committed: the [`RecordLog`] interface, and a single node's
//! [`LocalLog`].

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::command::{CommandOutcome, MetadataCommand};
use crate::image::MetadataImage;
use crate::record::MetadataRecord;
use crate::store::MetadataStore;
use crate::MetadataError;

/// Where the records the manager decides on are committed, and where the image comes from:
/// the node's own file ([`LocalLog`]: a single node, and tests) or the controller quorum.
///
/// The calls block; brokers make them off the reactor threads.
pub trait RecordLog: Send + Sync {
    /// The image after every committed record applied here.
    fn image(&self) -> Arc<MetadataImage>;
    /// Watches the image.
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;
    /// Whether this node is the active controller, the only one that decides changes.
    fn is_active(&self) -> bool;
    /// The controller term this node is active in; `None` when it is not the active
    /// controller. A node that loses and regains leadership does so in a new term.
    fn active_term(&self) -> Option<u64>;
    /// The active controller's node id, if one is known; `None` for a local log.
    fn active_controller(&self) -> Option<i32>;
    /// Appends records durably (committed by a majority of the quorum) and returns the image
    /// they lead to.
    fn commit(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, MetadataError>;
    /// Has the active controller execute `command`, and returns its outcome.
    fn forward(&self, command: &MetadataCommand) -> Result<CommandOutcome, MetadataError>;
}

/// A metadata log of this node alone: one file, and this node is always the active controller.
pub struct LocalLog {
    /// The durable file; the mutex orders appends.
    store: Mutex<MetadataStore>,
    /// The current image, replaced whole after each durable append.
    image: watch::Sender<Arc<MetadataImage>>,
}

impl LocalLog {
    /// Opens the log in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<LocalLog, MetadataError> {
        let (store, records) = MetadataStore::open(dir)?;
        let image = MetadataImage::default().apply(&records);
        Ok(LocalLog {
            store: Mutex::new(store),
            image: watch::Sender::new(Arc::new(image)),
        })
    }
}

impl RecordLog for LocalLog {
    fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.subscribe()
    }

    fn is_active(&self) -> bool {
        true
    }

    fn active_term(&self) -> Option<u64> {
        Some(0)
    }

    fn active_controller(&self) -> Option<i32> {
        None
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, MetadataError> {
        let mut store = self.store.lock();
        store.append(&records)?;
        let next = Arc::new(self.image().apply(&records));
        self.image.send_replace(next.clone());
        Ok(next)
    }

    fn forward(&self, _: &MetadataCommand) -> Result<CommandOutcome, MetadataError> {
        Err(MetadataError::NotController(
            "a local metadata log is always its own controller".into(),
        ))
    }
}
