//! Stopping the quorum's server tasks: one signal to stop, and a way to wait until all have.
//!
//! Every task holds a [`ShutdownListener`]. It watches the signal, and it holds a sender of a
//! channel nobody sends on: when every task has ended, every sender is gone, and the receiver
//! that [`Shutdown::stop`] waits on reports the channel closed.

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

/// The stop signal and the wait for the tasks that obey it.
pub(crate) struct Shutdown {
    /// Set to `true` once, to stop every task.
    signal: watch::Sender<bool>,
    /// Handed (cloned) to each task; taken when stopping so only the tasks' clones remain.
    running: Mutex<Option<mpsc::Sender<()>>>,
    /// Closes when the last task has ended.
    all_stopped: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

/// A task's view of the shutdown: it stops when told, and is waited for until dropped.
#[derive(Clone)]
pub(crate) struct ShutdownListener {
    /// Becomes `true` when the task must stop.
    signal: watch::Receiver<bool>,
    /// Never sent on; dropping it tells [`Shutdown::stop`] this task has ended.
    _running: mpsc::Sender<()>,
}

impl Shutdown {
    /// A shutdown nobody listens to yet.
    pub(crate) fn new() -> Shutdown {
        let (signal, _) = watch::channel(false);
        let (running, all_stopped) = mpsc::channel(1);
        Shutdown {
            signal,
            running: Mutex::new(Some(running)),
            all_stopped: tokio::sync::Mutex::new(all_stopped),
        }
    }

    /// A listener for a new task, or `None` once shutdown has begun.
    pub(crate) fn listener(&self) -> Option<ShutdownListener> {
        let running = self.running.lock().clone()?;
        Some(ShutdownListener {
            signal: self.signal.subscribe(),
            _running: running,
        })
    }

    /// Tells every task to stop and waits until all have.
    pub(crate) async fn stop(&self) {
        self.signal.send_replace(true);
        self.running.lock().take();
        let mut all_stopped = self.all_stopped.lock().await;
        while all_stopped.recv().await.is_some() {}
    }
}

impl ShutdownListener {
    /// Completes once the task must stop.
    pub(crate) async fn stopped(&mut self) {
        // An error means the `Shutdown` itself is gone, which also means stop.
        let _ = self.signal.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn stop_waits_for_every_listener_and_refuses_new_ones() {
        let shutdown = Shutdown::new();
        let mut listener = shutdown.listener().unwrap();
        let finished = Arc::new(AtomicBool::new(false));
        let task_finished = finished.clone();
        tokio::spawn(async move {
            listener.stopped().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            task_finished.store(true, Ordering::SeqCst);
        });
        tokio::time::timeout(Duration::from_secs(5), shutdown.stop())
            .await
            .unwrap();
        assert!(finished.load(Ordering::SeqCst));
        assert!(shutdown.listener().is_none());
    }
}
