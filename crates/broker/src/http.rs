//! The HTTP stack every endpoint shares: an `axum` router served over hyper's HTTP/1 connections
//! on a bound listener until the broker shuts down. `/metrics` is its first user; Connect's REST
//! API is meant to be the next, so nothing here knows what the router serves.
//!
//! The accept loop is ours rather than `axum::serve`'s so that each connection gets a deadline
//! for its request head and a bound on its buffer (hyper needs a timer for the first, and
//! `axum::serve` gives it none), and so that shutdown ends every connection, not only the
//! listener.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::shutdown::Shutdown;

/// How long a client gets to send a request's head (the request line and headers); one that
/// connects and sends nothing is closed after this long.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest buffer read for a connection, hence the largest request head; a scraper sends a few
/// hundred bytes. hyper answers a larger head with 431 and closes. 8 KiB is hyper's minimum.
const MAX_BUFFER_BYTES: usize = 8 * 1024;

/// After shutdown begins, how long answers already being written get before their connections
/// are dropped (a client that never finishes its request must not hold the broker up).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long to pause accepting after an accept error (such as running out of descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until shutdown, then lets answers in flight finish within
/// [`SHUTDOWN_GRACE`].
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: Shutdown) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "http accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.wait() => break,
        }
    }
    drop(listener);
    // Each connection bounds its own grace; this only collects them.
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until the client or the router closes it, or shutdown's grace ends.
async fn serve_connection(stream: TcpStream, router: Router, mut shutdown: Shutdown) {
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_HEAD_TIMEOUT)
        .max_buf_size(MAX_BUFFER_BYTES)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(error) = served {
                tracing::debug!(%error, "http connection ended with an error");
            }
            return;
        }
        _ = shutdown.wait() => {}
    }
    // Closes the connection at once if it is between requests, after the answer otherwise.
    connection.as_mut().graceful_shutdown();
    if tokio::time::timeout(SHUTDOWN_GRACE, connection)
        .await
        .is_err()
    {
        tracing::debug!("http answer still in flight at shutdown was dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A router answering `GET /` with a short body, served on port 0.
    async fn start() -> (
        std::net::SocketAddr,
        crate::shutdown::ShutdownTrigger,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        let router = Router::new().route("/", get(|| async { "hello\n" }));
        (
            address,
            trigger,
            tokio::spawn(serve(listener, router, shutdown)),
        )
    }

    /// Reads until the server closes; what was read.
    async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection")
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn a_client_that_never_sends_its_request_is_disconnected() {
        let (address, _trigger, _server) = start().await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(b"GET / HT").await.unwrap();
        let started = Instant::now();
        read_until_closed(&mut stream).await;
        let waited = started.elapsed();
        assert!(
            waited >= REQUEST_HEAD_TIMEOUT - Duration::from_millis(500),
            "closed after {waited:?}"
        );
    }

    #[tokio::test]
    async fn an_oversized_request_head_is_refused() {
        let (address, _trigger, _server) = start().await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        let padding = "x".repeat(2 * MAX_BUFFER_BYTES);
        let request = format!("GET / HTTP/1.1\r\nHost: test\r\nX-Padding: {padding}\r\n\r\n");
        // The server may close before it has read everything.
        let _ = stream.write_all(request.as_bytes()).await;
        let answer = read_until_closed(&mut stream).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_without_waiting_out_the_grace() {
        let (address, trigger, server) = start().await;
        let mut idle = TcpStream::connect(address).await.unwrap();
        let mut served = TcpStream::connect(address).await.unwrap();
        served
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 15];
        served.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK");
        let started = Instant::now();
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops")
            .unwrap();
        assert!(
            started.elapsed() < SHUTDOWN_GRACE,
            "{:?}",
            started.elapsed()
        );
        read_until_closed(&mut idle).await;
        read_until_closed(&mut served).await;
    }
}
