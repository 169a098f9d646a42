//! Graceful shutdown: one signal, watched by the listener and every connection.

use tokio::sync::watch;

/// Tells tasks to stop taking new work.
#[derive(Clone)]
pub struct Shutdown {
    /// `true` once shutdown has begun.
    receiver: watch::Receiver<bool>,
}

/// Starts a shutdown.
pub struct ShutdownTrigger {
    /// Flipped to `true` to start the shutdown.
    sender: watch::Sender<bool>,
}

/// A connected trigger and signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    /// Begins the shutdown; idempotent.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Shutdown {
    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once shutdown begins.
    pub async fn wait(&mut self) {
        let _ = self.receiver.wait_for(|triggered| *triggered).await;
    }
}
