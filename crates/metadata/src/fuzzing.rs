//! Entry points for the fuzz targets in `fuzz/`: the metadata decoders that read bytes from
//! peers and from disk, reached the way the quorum and the store reach them. Not an API.

use std::sync::OnceLock;

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// Reads quorum frames from `bytes` as a connection from a peer would, until the bytes end or
/// a frame is refused.
pub fn quorum_frames(bytes: &[u8]) {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    });
    runtime.block_on(async {
        let codec = crate::quorum::wire::FrameCodec::default();
        let mut frames = tokio_util::codec::FramedRead::new(bytes, codec);
        while let Ok(Some(frame)) = crate::quorum::wire::read_frame(&mut frames).await {
            assert!(frame.body.len() <= bytes.len());
        }
    });
}

/// Decodes each line of `bytes` as a metadata record (as the store and the raft log hold them,
/// past their checksums) and applies those that decode, in order, to an empty image: whatever
/// the records say, applying them must not panic.
pub fn metadata_records(bytes: &[u8]) {
    let records: Vec<MetadataRecord> = bytes
        .split(|byte| *byte == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect();
    let image = MetadataImage::default().apply(&records);
    let _ = image.to_records();
}
