//! One client connection: frames in, handlers in arrival order, responses out in that order.
//!
//! A reader task parses frames and runs handlers; a writer task awaits the replies in order and
//! writes them. The bounded channel between them caps the requests in flight per connection,
//! so a client that pipelines faster than the broker answers stops being read.
//!
//! Each reply travels with its API key and the time its frame was parsed, so that the writer
//! can record the request's latency once the response is written.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use cauce_protocol::frame::{check_request_size, SIZE_PREFIX_BYTES};
use cauce_protocol::request::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::handlers::{dispatch, Client, Reply};
use crate::metrics::RequestTiming;
use crate::shutdown::Shutdown;
use crate::Broker;

const SOCKET_BUFFER_BYTES: usize = 64 * 1024;

/// A reply on its way to the writer.
struct Outgoing {
    /// The handler's answer.
    reply: Reply,
    /// The request's API key, for the request metrics; `None` for a request that did not parse.
    api_key: Option<i16>,
    /// When the request's frame was parsed, for its latency.
    received: Instant,
}

/// Serves one connection until the client closes it, it misbehaves, or the broker shuts down.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    address: SocketAddr,
    mut shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let _open = broker.metrics.connection_opened();
    let (read_half, write_half) = stream.into_split();
    let (replies, pending) = mpsc::channel(broker.config.max_in_flight_requests_per_connection);
    let writer = tokio::spawn(write_replies(broker.clone(), write_half, pending, address));
    let client = Client { address };
    let mut reader = BufReader::with_capacity(SOCKET_BUFFER_BYTES, read_half);
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, broker.config.socket_request_max_bytes) => frame,
            _ = shutdown.wait() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(reason) => {
                tracing::warn!(client = %address, %reason, "closing connection");
                break;
            }
        };
        let received = Instant::now();
        let (reply, api_key) = match Request::parse(frame.freeze()) {
            Ok(request) => {
                let api_key = request.header.request_api_key;
                (dispatch(&broker, request, &client), Some(api_key))
            }
            Err(error) => (Reply::Close(error.to_string()), None),
        };
        let closing = matches!(reply, Reply::Close(_));
        let outgoing = Outgoing {
            reply,
            api_key,
            received,
        };
        if replies.send(outgoing).await.is_err() || closing {
            break;
        }
    }
    // Answer what was already accepted, then close.
    drop(replies);
    let _ = writer.await;
}

/// Reads one frame; `None` at a clean end of stream between frames.
async fn read_frame(
    reader: &mut BufReader<OwnedReadHalf>,
    max_bytes: usize,
) -> Result<Option<BytesMut>, String> {
    let mut prefix = [0u8; SIZE_PREFIX_BYTES];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(format!("read failed: {error}")),
    }
    let size = check_request_size(prefix, max_bytes).map_err(|error| error.to_string())?;
    // Read into uninitialised capacity: zeroing a large produce request first costs a pass
    // over its bytes.
    let mut frame = BytesMut::with_capacity(size);
    let mut body = (&mut *reader).take(size as u64);
    while frame.len() < size {
        match body.read_buf(&mut frame).await {
            Ok(0) => {
                let got = frame.len();
                return Err(format!(
                    "request truncated: expected {size} bytes, got {got}"
                ));
            }
            Ok(_) => {}
            Err(error) => {
                return Err(format!("request truncated: expected {size} bytes: {error}"));
            }
        }
    }
    Ok(Some(frame))
}

async fn write_replies(
    broker: Arc<Broker>,
    write_half: OwnedWriteHalf,
    mut pending: mpsc::Receiver<Outgoing>,
    address: SocketAddr,
) {
    let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES, write_half);
    while let Some(outgoing) = pending.recv().await {
        let turn = Instant::now();
        let mut reply = outgoing.reply;
        // A deferred reply may itself resolve to any reply kind.
        while let Reply::Later(future) = reply {
            reply = future.await;
        }
        let answered = Instant::now();
        match reply {
            Reply::Ready(frame) => {
                if let Err(error) = writer.write_all(&frame).await {
                    tracing::debug!(client = %address, %error, "write failed");
                    return;
                }
            }
            Reply::Spliced(parts) => {
                // Parts at least as large as the buffer go straight to the socket, uncopied.
                for part in parts {
                    if let Err(error) = writer.write_all(&part).await {
                        tracing::debug!(client = %address, %error, "write failed");
                        return;
                    }
                }
            }
            Reply::Nothing | Reply::Later(_) => {}
            Reply::Close(reason) => {
                tracing::warn!(client = %address, %reason, "closing connection");
                break;
            }
        }
        // Answered (written to the buffer, or deliberately not at all).
        if let Some(api_key) = outgoing.api_key {
            let timing = RequestTiming {
                total: outgoing.received.elapsed(),
                queued: turn.saturating_duration_since(outgoing.received),
                waited: answered - turn,
            };
            broker.metrics.record_request(api_key, timing);
        }
        if pending.is_empty() && writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}
