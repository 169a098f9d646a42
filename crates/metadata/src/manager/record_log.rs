//! Where decided records are committed: the [`RecordLog`] interface, and a single node's
//! [`LocalLog`].

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
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
/// Committing and forwarding wait (for an fsync, for a majority of the quorum, for another
/// node) without blocking a thread: they return futures.
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
    fn commit(&self, records: Vec<MetadataRecord>) -> Committing<'_>;
    /// Has the active controller execute `command`, and returns its outcome.
    fn forward<'a>(&'a self, command: &'a MetadataCommand) -> Forwarding<'a>;
}

/// A commit under way: the image the records lead to, once they are durable.
pub type Committing<'a> = BoxFuture<'a, Result<Arc<MetadataImage>, MetadataError>>;
/// A command sent to the active controller: its outcome.
pub type Forwarding<'a> = BoxFuture<'a, Result<CommandOutcome, MetadataError>>;

/// A metadata log of this node alone: one file, and this node is always the active controller.
pub struct LocalLog {
    /// The durable file; the mutex orders appends, which run on a blocking thread.
    store: Arc<Mutex<MetadataStore>>,
    /// The current image, replaced whole after each durable append.
    image: watch::Sender<Arc<MetadataImage>>,
}

impl LocalLog {
    /// Opens the log in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<LocalLog, MetadataError> {
        let (store, records) = MetadataStore::open(dir)?;
        let image = MetadataImage::default().apply(&records);
        Ok(LocalLog {
            store: Arc::new(Mutex::new(store)),
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

    /// The append and its fsync run on a blocking thread; the image is published once they
    /// are done, even if the caller stopped waiting.
    fn commit(&self, records: Vec<MetadataRecord>) -> Committing<'_> {
        let store = self.store.clone();
        let image = self.image.clone();
        let appending = tokio::task::spawn_blocking(move || {
            let mut store = store.lock();
            store.append(&records)?;
            let next = Arc::new(image.borrow().apply(&records));
            image.send_replace(next.clone());
            Ok(next)
        });
        async move {
            appending.await.map_err(|error| {
                MetadataError::Io(std::io::Error::other(format!(
                    "metadata append failed: {error}"
                )))
            })?
        }
        .boxed()
    }

    fn forward<'a>(&'a self, _: &'a MetadataCommand) -> Forwarding<'a> {
        let refused = MetadataError::NotController(
            "a local metadata log is always its own controller".into(),
        );
        futures::future::ready(Err(refused)).boxed()
    }
}
