//! One client connection: frames in, handlers in arrival order, responses out in that order.
//!
//! A reader task parses frames and runs handlers; a writer task awaits the replies in order and
//! writes them. The bounded channel between them caps the requests in flight per connection,
//! so a client that pipelines faster than the broker answers stops being read.
//!
//! Each reply travels with its API key and the time its frame was parsed, so that the writer
//! can record the request's latency once the response is written.
//!
//! The writer does not copy responses into a buffer: it keeps the frames (and a fetch's
//! record sets, see [`crate::splice`]) and sends what has been answered with one vectored write
//! once no further reply is queued, or sooner if a deferred reply is still waiting.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cauce_protocol::frame::{check_request_size, SIZE_PREFIX_BYTES};
use cauce_protocol::request::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::handlers::{dispatch, Client, Reply};
use crate::limits::{ConnectionSlot, RequestBytes, RequestMemory, FIRST_CHUNK_BYTES};
use crate::metrics::RequestTiming;
use crate::shutdown::Shutdown;
use crate::Broker;

const SOCKET_BUFFER_BYTES: usize = 64 * 1024;
/// Answered bytes at which the writer sends even though more replies are queued.
const OUTPUT_FLUSH_BYTES: usize = 1024 * 1024;
/// Slices per vectored write, below the kernel's limit (`IOV_MAX`, 1024 on Linux).
const MAX_WRITE_SLICES: usize = 512;

/// A reply on its way to the writer.
struct Outgoing {
    /// The handler's answer.
    reply: Reply,
    /// The request's API key, for the request metrics; `None` for a request that did not parse.
    api_key: Option<i16>,
    /// When the request's frame was parsed, for its latency.
    received: Instant,
    /// The request's bytes in `queued.max.request.bytes`, given back once it is answered.
    _charged: RequestBytes,
}

/// Serves one connection until the client closes it, it misbehaves, or the broker shuts down.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    address: SocketAddr,
    _slot: ConnectionSlot,
    mut shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let _open = broker.metrics.connection_opened();
    let (read_half, write_half) = stream.into_split();
    let (replies, pending) = mpsc::channel(broker.config.max_in_flight_requests_per_connection);
    let writer = tokio::spawn(write_replies(broker.clone(), write_half, pending, address));
    let client = Client { address };
    let mut reader = BufReader::with_capacity(SOCKET_BUFFER_BYTES, read_half);
    let limits = FrameLimits::of(&broker);
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, &limits) => frame,
            _ = shutdown.wait() => break,
        };
        let (frame, charged) = match frame {
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
            _charged: charged,
        };
        if replies.send(outgoing).await.is_err() || closing {
            break;
        }
    }
    // Answer what was already accepted, then close.
    drop(replies);
    let _ = writer.await;
}

/// What a connection may make the broker hold and wait for while it reads a frame.
struct FrameLimits {
    /// `socket.request.max.bytes`.
    max_bytes: usize,
    /// The pool shared by all connections (`queued.max.request.bytes`).
    memory: RequestMemory,
    /// `connections.max.idle.ms`: the longest wait for the next frame to start.
    idle: Duration,
    /// `socket.request.read.timeout.ms`: the longest a started frame may take to arrive.
    read_timeout: Duration,
}

impl FrameLimits {
    fn of(broker: &Broker) -> FrameLimits {
        FrameLimits {
            max_bytes: broker.config.socket_request_max_bytes,
            memory: broker.request_memory.clone(),
            idle: Duration::from_millis(broker.config.connections_max_idle_ms),
            read_timeout: Duration::from_millis(broker.config.socket_request_read_timeout_ms),
        }
    }
}

/// Reads one frame, charging its bytes to the request pool before reading them; `None` at a
/// clean end of stream between frames.
async fn read_frame(
    reader: &mut BufReader<OwnedReadHalf>,
    limits: &FrameLimits,
) -> Result<Option<(BytesMut, RequestBytes)>, String> {
    let mut prefix = [0u8; SIZE_PREFIX_BYTES];
    match tokio::time::timeout(limits.idle, reader.read_exact(&mut prefix)).await {
        Err(_) => {
            return Err(format!(
                "no request for {:?} (connections.max.idle.ms)",
                limits.idle
            ))
        }
        Ok(Ok(_)) => {}
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(error)) => return Err(format!("read failed: {error}")),
    }
    let size = check_request_size(prefix, limits.max_bytes).map_err(|error| error.to_string())?;
    // Charged as it arrives: a first chunk now, then twice as much each time the charged part
    // is full. A peer holds at most twice what it really sent (plus the first chunk), so one
    // that announces a large frame and sends it slowly holds little of the pool, and nothing is
    // allocated for bytes that have not come. Waiting for the pool counts against the frame's
    // deadline: frames that fill the pool and wait for each other give up rather than hang.
    let mut charged = RequestBytes::none();
    let mut charged_up_to = size.min(FIRST_CHUNK_BYTES);
    let deadline = Instant::now() + limits.read_timeout;
    let first = tokio::time::timeout_at(
        deadline.into(),
        limits.memory.charge(&mut charged, charged_up_to),
    );
    if first.await.is_err() {
        return Err(format!(
            "no room for a request of {size} bytes within {:?}",
            limits.read_timeout
        ));
    }
    let mut frame = BytesMut::with_capacity(charged_up_to);
    while frame.len() < size {
        if frame.len() == charged_up_to {
            let next = size.min(charged_up_to.saturating_mul(2));
            let more = limits.memory.charge(&mut charged, next - charged_up_to);
            if tokio::time::timeout_at(deadline.into(), more)
                .await
                .is_err()
            {
                return Err(format!(
                    "no room for the rest of a request of {size} bytes within {:?}",
                    limits.read_timeout
                ));
            }
            frame.reserve(next - frame.len());
            charged_up_to = next;
        }
        // Never more than what is charged: the reader's own buffer may hold the next bytes.
        let mut charged_part = (&mut *reader).take((charged_up_to - frame.len()) as u64);
        let read =
            tokio::time::timeout_at(deadline.into(), charged_part.read_buf(&mut frame)).await;
        match read {
            Err(_) => {
                return Err(format!(
                    "request of {size} bytes not received within {:?} (socket.request.read.timeout.ms): {} bytes came",
                    limits.read_timeout,
                    frame.len()
                ))
            }
            Ok(Ok(0)) => {
                let got = frame.len();
                return Err(format!(
                    "request truncated: expected {size} bytes, got {got}"
                ));
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                return Err(format!("request truncated: expected {size} bytes: {error}"));
            }
        }
    }
    Ok(Some((frame, charged)))
}

async fn write_replies(
    broker: Arc<Broker>,
    mut socket: OwnedWriteHalf,
    mut pending: mpsc::Receiver<Outgoing>,
    address: SocketAddr,
) {
    let mut out = Output::default();
    while let Some(outgoing) = pending.recv().await {
        let turn = Instant::now();
        let mut reply = outgoing.reply;
        // A deferred reply may itself resolve to any reply kind. If it is not ready yet, send
        // what is already answered rather than hold it back behind the wait.
        while let Reply::Later(mut future) = reply {
            reply = match futures::poll!(future.as_mut()) {
                Poll::Ready(reply) => reply,
                Poll::Pending => {
                    if let Err(error) = out.send(&mut socket).await {
                        tracing::debug!(client = %address, %error, "write failed");
                        return;
                    }
                    future.await
                }
            };
        }
        let answered = Instant::now();
        match reply {
            Reply::Ready(frame) => out.push(frame),
            Reply::Spliced(parts) => parts.into_iter().for_each(|part| out.push(part)),
            Reply::Nothing | Reply::Later(_) => {}
            Reply::Close(reason) => {
                tracing::warn!(client = %address, %reason, "closing connection");
                break;
            }
        }
        // Answered (queued for the socket, or deliberately not at all).
        if let Some(api_key) = outgoing.api_key {
            let timing = RequestTiming {
                total: outgoing.received.elapsed(),
                queued: turn.saturating_duration_since(outgoing.received),
                waited: answered - turn,
            };
            broker.metrics.record_request(api_key, timing);
        }
        if pending.is_empty() || out.is_full() {
            if let Err(error) = out.send(&mut socket).await {
                tracing::debug!(client = %address, %error, "write failed");
                return;
            }
        }
    }
    let _ = out.send(&mut socket).await;
    let _ = socket.shutdown().await;
}

/// Responses waiting to be written, kept as the frames and parts the handlers made: one
/// vectored write sends them all without copying them into a buffer first.
#[derive(Default)]
struct Output {
    /// Frames and frame parts, in order.
    parts: Vec<Bytes>,
    /// Bytes in `parts`.
    bytes: usize,
}

impl Output {
    fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.bytes += part.len();
            self.parts.push(part);
        }
    }

    /// Whether enough is waiting that it should go out before more is added.
    fn is_full(&self) -> bool {
        self.bytes >= OUTPUT_FLUSH_BYTES || self.parts.len() >= MAX_WRITE_SLICES
    }

    /// Writes everything waiting.
    async fn send(&mut self, socket: &mut OwnedWriteHalf) -> std::io::Result<()> {
        let mut unsent = &self.parts[..];
        let mut offset = 0; // bytes of `unsent[0]` already written
        while let Some(first) = unsent.first() {
            let mut slices: Vec<IoSlice<'_>> =
                Vec::with_capacity(unsent.len().min(MAX_WRITE_SLICES));
            slices.push(IoSlice::new(&first[offset..]));
            slices.extend(
                unsent[1..]
                    .iter()
                    .take(MAX_WRITE_SLICES - 1)
                    .map(|part| IoSlice::new(part)),
            );
            let mut written = socket.write_vectored(&slices).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            // Step over the parts written whole, then into the first one left.
            written += offset;
            while let Some(part) = unsent.first() {
                if written < part.len() {
                    break;
                }
                written -= part.len();
                unsent = &unsent[1..];
            }
            offset = written;
        }
        self.parts.clear();
        self.bytes = 0;
        Ok(())
    }
}
