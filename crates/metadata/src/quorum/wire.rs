//! The quorum's wire format: length-prefixed frames of a kind byte and a body.
//!
//! A frame is `length: u32 (big endian, counts what follows) | kind: u8 | body`. Raft messages
//! have JSON bodies; application messages carry the caller's bytes untouched. A connection
//! carries one request at a time: the client writes a request frame and reads one reply frame
//! (`Reply`, or `Failure` with a UTF-8 reason). Anything malformed closes the connection.

use std::io;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::types::{ImageSnapshot, SnapshotMeta, Vote};

/// The largest frame accepted, so a garbage length cannot make a peer allocate gigabytes.
/// Generous because a snapshot of a large cluster's metadata travels in one frame.
pub(crate) const MAX_FRAME_BYTES: u32 = 256 << 20;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// What the body is.
    pub kind: FrameKind,
    /// The message itself.
    pub body: Vec<u8>,
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
    let kind_byte = reader.read_u8().await?;
    let kind = FrameKind::from_byte(kind_byte)
        .ok_or_else(|| invalid_data(format!("unknown frame kind {kind_byte}")))?;
    // Grown as bytes arrive rather than allocated up front, so a lying length costs nothing.
    let body_length = u64::from(length - 1);
    let mut body = Vec::new();
    reader.take(body_length).read_to_end(&mut body).await?;
    if body.len() as u64 != body_length {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    Ok(Some(Frame { kind, body }))
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
}
