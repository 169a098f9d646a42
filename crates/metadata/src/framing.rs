//! The framing of the metadata files (the single-node store and the raft log): each record is
//! `length: u32 | crc32c: u32 | payload`, big endian, so that a torn or corrupt tail is found.

/// Bytes before each payload.
pub(crate) const FRAME_HEADER_BYTES: usize = 8;

/// Appends `payload` as one frame to `buffer`; `None` if it is too long to frame.
pub(crate) fn push_frame(payload: &[u8], buffer: &mut Vec<u8>) -> Option<()> {
    let length = u32::try_from(payload.len()).ok()?;
    buffer.extend_from_slice(&length.to_be_bytes());
    buffer.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    buffer.extend_from_slice(payload);
    Some(())
}

/// The intact payload of the frame at `position` and where the next one starts, or `None`
/// when the frame is incomplete or its checksum does not match.
pub(crate) fn next_frame(contents: &[u8], position: usize) -> Option<(&[u8], usize)> {
    let header = contents.get(position..position.checked_add(FRAME_HEADER_BYTES)?)?;
    let length = u32::from_be_bytes(header[0..4].try_into().ok()?) as usize;
    let checksum = u32::from_be_bytes(header[4..8].try_into().ok()?);
    let start = position + FRAME_HEADER_BYTES;
    let payload = contents.get(start..start.checked_add(length)?)?;
    (crc32c::crc32c(payload) == checksum).then_some((payload, start + length))
}
