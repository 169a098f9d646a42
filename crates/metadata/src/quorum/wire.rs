//! The quorum's wire format: length-prefixed frames of a kind byte and a body, cut and written
//! by [`FrameCodec`] over `tokio_util`'s `Framed`.
//!
//! A frame is `length: u32 (big endian, counts what follows) | kind: u8 | body`. Raft messages
//! have JSON bodies; application messages carry the caller's bytes untouched. A connection
//! carries one request at a time: the client writes a request frame and reads one reply frame
//! (`Reply`, or `Failure` with a UTF-8 reason). Anything malformed closes the connection.
//!
//! The codec hands a frame's body out in chunks rather than whole, so that [`read_frame`] can
//! charge each chunk to the process's frame memory (waiting when it is spent) before the next
//! one is read: a peer announcing a large frame holds only what it really sent.
//! `LengthDelimitedCodec` would do the cutting, but it reserves a frame's whole announced
//! length as soon as the head arrives and yields only whole frames, so the memory charge (and
//! the fuzz target's 64 MiB allocation limit) could not hold for frames up to
//! [`MAX_FRAME_BYTES`].

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use futures::{SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWrite;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::codec::{Decoder, Encoder, Framed};

use super::types::{ImageSnapshot, SnapshotMeta, Vote};

/// The largest frame accepted, so a garbage length cannot make a peer allocate gigabytes.
/// Generous because a snapshot of a large cluster's metadata travels in one frame.
pub(crate) const MAX_FRAME_BYTES: u32 = 256 << 20;

/// Bytes of frame bodies held at once by this process, over all quorum connections. A body is
/// charged chunk by chunk as its bytes arrive, so that a peer announcing a large frame and
/// sending it slowly holds only what it really sent.
const FRAME_MEMORY_BYTES: usize = 1 << 30;

/// Bytes charged (and decoded) at a time.
const FRAME_CHUNK_BYTES: usize = 64 * 1024;

/// Largest write buffer a connection keeps between frames; see [`write_frame`].
const RETAINED_WRITE_BUFFER_BYTES: usize = FRAME_CHUNK_BYTES;

/// Bytes before a frame's body: the length and the kind byte.
const FRAME_HEAD_BYTES: usize = 5;

/// Once a frame's head has been read, the rest must arrive within this long: a peer cannot
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

/// One message on the wire, as [`read_frame`] returns it.
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

/// A frame to write: borrowed, since the encoder copies it into the write buffer anyway.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutgoingFrame<'body> {
    /// What the body is.
    pub kind: FrameKind,
    /// The message itself.
    pub body: &'body [u8],
}

/// What [`FrameCodec`] decodes: a frame's head, then its body in chunks.
#[derive(Debug)]
pub(crate) enum FramePiece {
    /// A frame starts; `body_length` bytes of body follow, in [`FramePiece::Chunk`]s.
    Head {
        /// What the body is.
        kind: FrameKind,
        /// Bytes of body still to come.
        body_length: usize,
    },
    /// The next bytes of the body: [`FRAME_CHUNK_BYTES`], or what is left if less.
    Chunk(BytesMut),
}

/// Where the decoder is within the current frame.
#[derive(Debug, Clone, Copy, Default)]
enum DecodeState {
    /// Between frames: the next bytes are a head.
    #[default]
    Head,
    /// Inside a body with this many bytes still to come.
    Body {
        /// Bytes of body not yet handed out.
        remaining: usize,
    },
}

/// The quorum's frame codec: checks a head's length against [`MAX_FRAME_BYTES`] and its kind
/// before any of the body is read, and never reserves more buffer than one chunk.
#[derive(Debug, Default)]
pub(crate) struct FrameCodec {
    /// Where the decoder is within the current frame.
    state: DecodeState,
}

impl Decoder for FrameCodec {
    type Item = FramePiece;
    type Error = io::Error;

    fn decode(&mut self, source: &mut BytesMut) -> io::Result<Option<FramePiece>> {
        match self.state {
            DecodeState::Head => {
                if source.len() < 4 {
                    return Ok(None);
                }
                let length = u32::from_be_bytes([source[0], source[1], source[2], source[3]]);
                if length == 0 || length > MAX_FRAME_BYTES {
                    return Err(invalid_data(format!(
                        "frame of {length} bytes, expected 1 to {MAX_FRAME_BYTES}"
                    )));
                }
                if source.len() < FRAME_HEAD_BYTES {
                    return Ok(None);
                }
                let kind_byte = source[4];
                let kind = FrameKind::from_byte(kind_byte)
                    .ok_or_else(|| invalid_data(format!("unknown frame kind {kind_byte}")))?;
                source.advance(FRAME_HEAD_BYTES);
                let body_length = length as usize - 1;
                if body_length > 0 {
                    self.state = DecodeState::Body {
                        remaining: body_length,
                    };
                }
                Ok(Some(FramePiece::Head { kind, body_length }))
            }
            DecodeState::Body { remaining } => {
                let wanted = remaining.min(FRAME_CHUNK_BYTES);
                if source.len() < wanted {
                    source.reserve(wanted - source.len());
                    return Ok(None);
                }
                let chunk = source.split_to(wanted);
                self.state = match remaining - wanted {
                    0 => DecodeState::Head,
                    remaining => DecodeState::Body { remaining },
                };
                Ok(Some(FramePiece::Chunk(chunk)))
            }
        }
    }
}

impl Encoder<OutgoingFrame<'_>> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, frame: OutgoingFrame<'_>, destination: &mut BytesMut) -> io::Result<()> {
        let length = u32::try_from(frame.body.len() + 1)
            .ok()
            .filter(|length| *length <= MAX_FRAME_BYTES)
            .ok_or_else(|| {
                invalid_data(format!(
                    "frame body of {} bytes is too large",
                    frame.body.len()
                ))
            })?;
        destination.reserve(FRAME_HEAD_BYTES + frame.body.len());
        destination.put_u32(length);
        destination.put_u8(frame.kind.to_byte());
        destination.put_slice(frame.body);
        Ok(())
    }
}

/// Reads one frame from a [`FrameCodec`] stream; `None` when the peer closed the connection
/// between frames.
pub(crate) async fn read_frame<Pieces>(pieces: &mut Pieces) -> io::Result<Option<Frame>>
where
    Pieces: Stream<Item = io::Result<FramePiece>> + Unpin,
{
    let (kind, body_length) = match pieces.next().await.transpose()? {
        None => return Ok(None),
        Some(FramePiece::Head { kind, body_length }) => (kind, body_length),
        Some(FramePiece::Chunk(_)) => {
            return Err(invalid_data("a body chunk outside a frame".to_string()))
        }
    };
    let body = read_body(pieces, body_length);
    match tokio::time::timeout(FRAME_READ_TIMEOUT, body).await {
        Ok(body) => body.map(|(body, charged)| {
            Some(Frame {
                kind,
                body,
                _charged: charged,
            })
        }),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "frame of {} bytes not received within {FRAME_READ_TIMEOUT:?}",
                body_length + 1
            ),
        )),
    }
}

/// A body of `body_length` bytes, each chunk charged to the process's frame memory before it
/// is asked for.
async fn read_body<Pieces>(
    pieces: &mut Pieces,
    body_length: usize,
) -> io::Result<(Vec<u8>, Option<SemaphorePermit<'static>>)>
where
    Pieces: Stream<Item = io::Result<FramePiece>> + Unpin,
{
    let mut body = Vec::new();
    let mut charged: Option<SemaphorePermit<'static>> = None;
    while body.len() < body_length {
        let chunk_length = (body_length - body.len()).min(FRAME_CHUNK_BYTES);
        let permit = FRAME_MEMORY
            .acquire_many(chunk_length as u32)
            .await
            .map_err(|_| io::Error::other("frame memory closed"))?;
        match &mut charged {
            Some(held) => held.merge(permit),
            None => charged = Some(permit),
        }
        match pieces.next().await.transpose()? {
            Some(FramePiece::Chunk(chunk)) => {
                debug_assert_eq!(chunk.len(), chunk_length, "the codec cuts chunks alike");
                body.extend_from_slice(&chunk);
            }
            Some(FramePiece::Head { .. }) => {
                return Err(invalid_data("a frame head inside a body".to_string()))
            }
            None => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        }
    }
    Ok((body, charged))
}

/// Writes one frame and flushes it, so it does not wait in the write buffer. A frame larger
/// than [`RETAINED_WRITE_BUFFER_BYTES`] leaves the buffer it grew behind, so that a connection
/// kept for the next call does not hold on to the largest frame it ever sent (a snapshot).
pub(crate) async fn write_frame<Socket>(
    frames: &mut Framed<Socket, FrameCodec>,
    kind: FrameKind,
    body: &[u8],
) -> io::Result<()>
where
    Socket: AsyncWrite + Unpin,
{
    let sent = frames.send(OutgoingFrame { kind, body }).await;
    if body.len() > RETAINED_WRITE_BUFFER_BYTES {
        *frames.write_buffer_mut() = BytesMut::new();
    }
    sent
}

/// An `InvalidData` error with `message`.
pub(crate) fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio_util::codec::FramedRead;

    /// Frames read from `bytes` as a peer's socket would deliver them.
    fn frames_of(bytes: &[u8]) -> FramedRead<&[u8], FrameCodec> {
        FramedRead::new(bytes, FrameCodec::default())
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut writer = Framed::new(Vec::new(), FrameCodec::default());
        let large_body = vec![9u8; 3 * FRAME_CHUNK_BYTES + 7];
        write_frame(&mut writer, FrameKind::App, b"hello")
            .await
            .unwrap();
        write_frame(&mut writer, FrameKind::Reply, b"")
            .await
            .unwrap();
        write_frame(&mut writer, FrameKind::Vote, &large_body)
            .await
            .unwrap();
        assert!(
            writer.write_buffer().capacity() <= RETAINED_WRITE_BUFFER_BYTES,
            "the large frame's buffer is not kept"
        );
        let buffer = writer.into_inner();
        assert_eq!(
            &buffer[..10],
            &[0, 0, 0, 6, 4, b'h', b'e', b'l', b'l', b'o']
        );
        let mut reader = frames_of(&buffer);
        let first = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!(first.kind, FrameKind::App);
        assert_eq!(first.body, b"hello");
        let second = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!(second.kind, FrameKind::Reply);
        assert!(second.body.is_empty());
        let third = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!(third.kind, FrameKind::Vote);
        assert_eq!(third.body, large_body);
        assert!(read_frame(&mut reader).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn malformed_frames_are_errors() {
        let too_large = [0xff, 0xff, 0xff, 0xff, 1];
        let unknown_kind = [0, 0, 0, 1, 77];
        let truncated = [0, 0, 0, 9, 4, 1, 2];
        let empty = [0, 0, 0, 0];
        for bytes in [&too_large[..], &unknown_kind, &truncated, &empty] {
            let mut reader = frames_of(bytes);
            assert!(read_frame(&mut reader).await.is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn an_announced_length_reserves_at_most_one_chunk() {
        let mut codec = FrameCodec::default();
        // Just under MAX_FRAME_BYTES, so the head is accepted.
        let mut source = BytesMut::from(&[0x0f, 0xff, 0xff, 0xff, 4, 1, 2][..]);
        let head = codec.decode(&mut source).unwrap();
        assert!(
            matches!(head, Some(FramePiece::Head { kind: FrameKind::App, body_length }) if body_length == (MAX_FRAME_BYTES - 2) as usize),
            "{head:?}"
        );
        assert!(codec.decode(&mut source).unwrap().is_none());
        assert!(
            source.capacity() <= FRAME_CHUNK_BYTES,
            "{}",
            source.capacity()
        );
    }

    #[tokio::test]
    async fn a_frame_announcing_more_than_arrives_holds_only_what_arrived() {
        let mut bytes = (200u32 << 20).to_be_bytes().to_vec();
        bytes.push(4); // App
        bytes.extend([7u8; 100_000]);
        let mut reader = frames_of(&bytes);
        assert!(read_frame(&mut reader).await.is_err());
        // Every byte charged for the partial body was given back.
        assert_eq!(FRAME_MEMORY.available_permits(), FRAME_MEMORY_BYTES);
    }
}
