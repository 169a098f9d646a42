//! The HTTP stack every endpoint shares: an `axum` router served on a bound listener until the
//! broker shuts down. `/metrics` is its first user; Connect's REST API is meant to be the next,
//! so nothing here knows what the router serves.

use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// After shutdown begins, how long answers already being written get before the listener stops
/// waiting for them (a client that never finishes its request must not hold the broker up).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until shutdown, then lets answers in flight finish within
/// [`SHUTDOWN_GRACE`].
pub async fn serve(listener: TcpListener, router: Router, shutdown: Shutdown) {
    let mut graceful_signal = shutdown.clone();
    let mut deadline_signal = shutdown;
    let serving = axum::serve(listener, router).with_graceful_shutdown(async move {
        graceful_signal.wait().await;
    });
    let deadline = async move {
        deadline_signal.wait().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = serving => {
            if let Err(error) = served {
                tracing::warn!(%error, "http listener failed");
            }
        }
        _ = deadline => tracing::debug!("http answers still in flight at shutdown were dropped"),
    }
}
