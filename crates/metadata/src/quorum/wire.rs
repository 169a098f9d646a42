//! The quorum's wire format: length-prefixed frames of a kind byte and a body.
//!
//! A frame is `length: u32 (big endian, counts what follows) | kind: u8 | body`. Raft messages
//! have JSON bodies; application messages carry the caller's bytes untouched. A connection
//! carries one request at a time: the client writes a request frame and reads one reply frame
//! (`Reply`, or `Failure` with a UTF-8 reason). Anything malformed closes the connection.

use std::io;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::types::{ImageSnapshot, SnapshotMeta, Vote};

/// The largest frame accepted, so a garbage length cannot make a peer allocate gigabytes.
/// Generous because a snapshot of a large cluster's metadata travels in one frame.
pub(crate) const MAX_FRAME_BYTES: u32 = 256 << 20;

/// Bytes of frame bodies held at once by this process, over all quorum connections. A body is
/// charged chunk by chunk as its bytes arrive, so that a peer announcing a large frame and
/// sending it slowly holds only what it really sent.
const FRAME_MEMORY_BYTES: usize = 1 << 30;

/// Bytes charged (and read) at a time.
const FRAME_CHUNK_BYTES: usize = 64 * 1024;

/// Once a frame's length has been read, the rest must arrive within this long: a peer cannot
/// hold a connection and its share of [`FRAME_MEMORY_BYTES`] by trickling bytes.
pub(crate) const FRAME_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

static FRAME_MEMORY: Semaphore = Semaphore::const_new(FRAME_MEMORY_BYTES);

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// A raft AppendEntries request (also the heartbeat).
    AppendEntries,
    /// A raft RequestVote request.
    Vote,
    /// A whole snapshot for a follower that is too far behind, as [`FullSnapshotRequest`].
    FullSnapshot,
    /// An application request, answered by the handler set with `Quorum::set_app_handler`.
    App,
    /// The answer to a request.
    Reply,
    /// The request could not be answered; the body says why.
    Failure,
}

impl FrameKind {
    /// The byte that stands for this kind on the wire.
    fn to_byte(self) -> u8 {
        match self {
            FrameKind::AppendEntries => 1,
            FrameKind::Vote => 2,
            FrameKind::FullSnapshot => 3,
            FrameKind::App => 4,
            FrameKind::Reply => 128,
            FrameKind::Failure => 129,
        }
    }

    /// The kind a byte stands for, if any.
    fn from_byte(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::AppendEntries),
            2 => Some(FrameKind::Vote),
            3 => Some(FrameKind::FullSnapshot),
            4 => Some(FrameKind::App),
            128 => Some(FrameKind::Reply),
            129 => Some(FrameKind::Failure),
            _ => None,
        }
    }
}

/// One message on the wire.
#[derive(Debug)]
pub(crate) struct Frame {
    /// What the body is.
    pub kind: FrameKind,
    /// The message itself.
    pub body: Vec<u8>,
    /// The body's share of [`FRAME_MEMORY_BYTES`], given back with the frame.
    pub _charged: Option<SemaphorePermit<'static>>,
}

/// The body of a [`FrameKind::FullSnapshot`] request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FullSnapshotRequest {
    /// The sending leader's vote, which the receiver checks before installing.
    pub vote: Vote,
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The image.
    pub snapshot: ImageSnapshot,
}

/// Reads one frame; `None` when the peer closed the connection between frames.
pub(crate) async fn read_frame<R>(reader: &mut R) -> io::Result<Option<Frame>>
where
    R: AsyncRead + Unpin,
{
    let mut length_bytes = [0u8; 4];
    match reader.read_exact(&mut length_bytes).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = u32::from_be_bytes(length_bytes);
    if length == 0 || length > MAX_FRAME_BYTES {
        return Err(invalid_data(format!(
            "frame of {length} bytes, expected 1 to {MAX_FRAME_BYTES}"
        )));
    }
    let body = read_body(reader, length as usize);
    match tokio::time::timeout(FRAME_READ_TIMEOUT, body).await {
        Ok(frame) => frame.map(Some),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("frame of {length} bytes not received within {FRAME_READ_TIMEOUT:?}"),
        )),
    }
}

/// The kind byte and the body of a frame of `length` bytes, charged to the process's frame
/// memory as they arrive.
async fn read_body<R>(reader: &mut R, length: usize) -> io::Result<Frame>
where
    R: AsyncRead + Unpin,
{
    let kind_byte = reader.read_u8().await?;
    let kind = FrameKind::from_byte(kind_byte)
        .ok_or_else(|| invalid_data(format!("unknown frame kind {kind_byte}")))?;
    let body_length = length - 1;
    let mut body = Vec::new();
    let mut charged: Option<SemaphorePermit<'static>> = None;
    while body.len() < body_length {
        let chunk = (body_length - body.len()).min(FRAME_CHUNK_BYTES);
        let permit = FRAME_MEMORY
            .acquire_many(chunk as u32)
            .await
            .map_err(|_| io::Error::other("frame memory closed"))?;
        match &mut charged {
            Some(held) => held.merge(permit),
            None => charged = Some(permit),
        }
        let read = reader.take(chunk as u64).read_to_end(&mut body).await?;
        if read < chunk {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
    }
    Ok(Frame {
        kind,
        body,
        _charged: charged,
    })
}

/// Writes one frame with a single write, so it does not wait on Nagle's algorithm.
pub(crate) async fn write_frame<W>(writer: &mut W, kind: FrameKind, body: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let length = u32::try_from(body.len() + 1)
        .ok()
        .filter(|length| *length <= MAX_FRAME_BYTES)
        .ok_or_else(|| invalid_data(format!("frame body of {} bytes is too large", body.len())))?;
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.push(kind.to_byte());
    frame.extend_from_slice(body);
    writer.write_all(&frame).await?;
    writer.flush().await
}

/// An `InvalidData` error with `message`.
pub(crate) fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buffer = Vec::new();
        write_frame(&mut buffer, FrameKind::App, b"hello")
            .await
            .unwrap();
        write_frame(&mut buffer, FrameKind::Reply, b"")
            .await
            .unwrap();
        let mut reader = buffer.as_slice();
        let first = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!(first.kind, FrameKind::App);
        assert_eq!(first.body, b"hello");
        let second = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!(second.kind, FrameKind::Reply);
        assert!(second.body.is_empty());
        assert!(read_frame(&mut reader).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn malformed_frames_are_errors() {
        let too_large = [0xff, 0xff, 0xff, 0xff, 1];
        let unknown_kind = [0, 0, 0, 1, 77];
        let truncated = [0, 0, 0, 9, 4, 1, 2];
        let empty = [0, 0, 0, 0];
        for bytes in [&too_large[..], &unknown_kind, &truncated, &empty] {
            let mut reader = bytes;
            assert!(read_frame(&mut reader).await.is_err(), "{bytes:?}");
        }
    }

    #[tokio::test]
    async fn a_frame_announcing_more_than_arrives_holds_only_what_arrived() {
        let mut bytes = (200u32 << 20).to_be_bytes().to_vec();
        bytes.push(4); // App
        bytes.extend([7u8; 100_000]);
        let mut reader = bytes.as_slice();
        assert!(read_frame(&mut reader).await.is_err());
        // Every byte charged for the partial body was given back.
        assert_eq!(FRAME_MEMORY.available_permits(), FRAME_MEMORY_BYTES);
    }
}
