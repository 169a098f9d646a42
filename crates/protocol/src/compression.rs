//! The four Kafka codecs for the records section of a batch.
//!
//! Snappy needs care: Java clients (and librdkafka, for their sake) wrap snappy in the "xerial"
//! stream format — an 8-byte magic `\x82SNAPPY\0`, a version and a compatible-version i32, then
//! blocks, each a big-endian i32 length followed by a raw snappy block. Some clients send raw
//! snappy instead, so decompression accepts both; compression writes xerial, which every Kafka
//! client reads. LZ4 is the LZ4 frame format; gzip and zstd are their usual streams.

use std::io::{Read, Write};

use crate::batch::BatchError;

/// Header that opens a xerial-framed snappy stream.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
/// Magic plus version and compatible-version fields.
const XERIAL_HEADER_SIZE: usize = 16;
/// Uncompressed bytes per xerial block; the size the Java client uses.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

/// The codec of a batch, from attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Records stored as they are.
    #[default]
    None,
    /// gzip (RFC 1952) stream.
    Gzip,
    /// Snappy, xerial-framed or raw.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard frame.
    Zstd,
}

impl Compression {
    /// The codec for an attribute value 0..=4.
    pub fn from_id(codec_id: u8) -> Result<Compression, BatchError> {
        match codec_id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            _ => Err(BatchError::UnknownCompression { codec_id }),
        }
    }

    /// The attribute value of this codec.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

fn codec_error(codec: Compression, error: impl std::fmt::Display) -> BatchError {
    BatchError::corrupt(format!(
        "expected valid {codec:?} data, decoding failed: {error}"
    ))
}

/// How much larger than `max.message.bytes` a batch may grow when decompressed. Real data
/// rarely compresses better than 10:1; a bomb (a batch of compressed zeros) does 1000:1.
pub const MAX_INFLATION: usize = 32;

/// The broker-wide cap on a decompressed records section, whatever the topic allows.
pub const MAX_DECOMPRESSED_BYTES: usize = 128 * 1024 * 1024;

/// The most bytes a batch of a topic with `max_message_bytes` may decompress to: a multiple of
/// it, capped broker-wide, and never less than the limit itself.
pub fn decompression_limit(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_mul(MAX_INFLATION)
        .min(MAX_DECOMPRESSED_BYTES)
        .max(max_message_bytes)
}

/// The largest zstd window (as a power of two) accepted when decompressing at most `limit`
/// bytes: the limit rounded up, but never below 2^23, the window a streaming compressor picks
/// at levels up to 19 when it does not know the input's size (the Java client's level 3 picks
/// 2^21), and never above 2^27, where zstd's own decoder stops by default.
fn zstd_window_log_max(limit: usize) -> u32 {
    let covering = usize::BITS - limit.saturating_sub(1).leading_zeros();
    covering.clamp(23, 27)
}

fn too_large(codec: Compression, limit: usize) -> BatchError {
    BatchError::corrupt(format!(
        "expected {codec:?} data to decompress to at most {limit} bytes, it decompresses to more"
    ))
}

/// Decompresses a records section, refusing (as corrupt) one that would decompress to more
/// than `limit` bytes; no more than `limit` bytes are ever held.
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut output = Vec::with_capacity(data.len().saturating_mul(2).min(limit));
    // Reads at most one byte past the limit, which tells a stream that fits from one that
    // does not.
    let bound = (limit as u64).saturating_add(1);
    match codec {
        Compression::None => output.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .take(bound)
                .read_to_end(&mut output)
                .map_err(|error| codec_error(codec, error))?;
        }
        Compression::Snappy => return decompress_snappy(data, limit),
        Compression::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(data)
                .take(bound)
                .read_to_end(&mut output)
                .map_err(|error| codec_error(codec, error))?;
        }
        Compression::Zstd => {
            // A zstd frame names its own window, and the decoder allocates it: a few bytes of
            // header would otherwise make it take 128 MiB. The window is capped by the limit.
            zstd::stream::read::Decoder::new(data)
                .and_then(|mut decoder| {
                    decoder.window_log_max(zstd_window_log_max(limit))?;
                    decoder.take(bound).read_to_end(&mut output)
                })
                .map_err(|error| codec_error(codec, error))?;
        }
    }
    if output.len() > limit {
        return Err(too_large(codec, limit));
    }
    Ok(output)
}

/// Compresses a records section.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, BatchError> {
    // Writing into a Vec cannot fail for I/O reasons; errors here would be codec bugs.
    let encode_error = |error: std::io::Error| {
        BatchError::invalid(format!(
            "expected {codec:?} compression to succeed: {error}"
        ))
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).map_err(encode_error)?;
            encoder.finish().map_err(encode_error)
        }
        Compression::Snappy => compress_snappy_xerial(data),
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(data).map_err(encode_error)?;
            encoder
                .finish()
                .map_err(|error| encode_error(std::io::Error::other(error)))
        }
        Compression::Zstd => zstd::stream::encode_all(data, 3).map_err(encode_error),
    }
}

fn decompress_snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    if !data.starts_with(XERIAL_MAGIC) {
        // A raw block announces its decompressed length up front: checked before allocating.
        let length = snap::raw::decompress_len(data)
            .map_err(|error| codec_error(Compression::Snappy, error))?;
        if length > limit {
            return Err(too_large(Compression::Snappy, limit));
        }
        return snap::raw::Decoder::new()
            .decompress_vec(data)
            .map_err(|error| codec_error(Compression::Snappy, error));
    }
    if data.len() < XERIAL_HEADER_SIZE {
        return Err(codec_error(
            Compression::Snappy,
            "xerial header shorter than 16 bytes",
        ));
    }
    let mut decoder = snap::raw::Decoder::new();
    let mut output = Vec::with_capacity(data.len().saturating_mul(2).min(limit));
    let mut position = XERIAL_HEADER_SIZE;
    while position < data.len() {
        if data.len() - position < 4 {
            return Err(codec_error(
                Compression::Snappy,
                "truncated xerial block length",
            ));
        }
        let block_length =
            i32::from_be_bytes(data[position..position + 4].try_into().expect("four bytes"));
        position += 4;
        if block_length < 0 || block_length as usize > data.len() - position {
            return Err(codec_error(
                Compression::Snappy,
                format!("xerial block length {block_length} past the end of the data"),
            ));
        }
        let block = &data[position..position + block_length as usize];
        let decompressed_length = snap::raw::decompress_len(block)
            .map_err(|error| codec_error(Compression::Snappy, error))?;
        if decompressed_length > limit - output.len() {
            return Err(too_large(Compression::Snappy, limit));
        }
        let start = output.len();
        output.resize(start + decompressed_length, 0);
        decoder
            .decompress(block, &mut output[start..])
            .map_err(|error| codec_error(Compression::Snappy, error))?;
        position += block_length as usize;
    }
    Ok(output)
}

fn compress_snappy_xerial(data: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut encoder = snap::raw::Encoder::new();
    let mut output = Vec::with_capacity(XERIAL_HEADER_SIZE + data.len() / 2 + 64);
    output.extend_from_slice(XERIAL_MAGIC);
    // Version 1, compatible with version 1: what the xerial Java library writes.
    output.extend_from_slice(&1i32.to_be_bytes());
    output.extend_from_slice(&1i32.to_be_bytes());
    for block in data.chunks(XERIAL_BLOCK_SIZE) {
        let compressed = encoder.compress_vec(block).map_err(|error| {
            BatchError::invalid(format!("expected snappy compression to succeed: {error}"))
        })?;
        output.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
        output.extend_from_slice(&compressed);
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL_CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample_data() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|index| (index % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample_data();
        for codec in ALL_CODECS {
            let compressed = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &compressed, usize::MAX).unwrap(),
                data,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn every_codec_round_trips_empty_input() {
        for codec in ALL_CODECS {
            let compressed = compress(codec, &[]).unwrap();
            assert!(
                decompress(codec, &compressed, usize::MAX)
                    .unwrap()
                    .is_empty(),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn snappy_writes_xerial_framing() {
        let compressed = compress(Compression::Snappy, &sample_data()).unwrap();
        assert!(compressed.starts_with(XERIAL_MAGIC));
    }

    #[test]
    fn snappy_accepts_raw_blocks() {
        let data = sample_data();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, usize::MAX).unwrap(),
            data
        );
    }

    #[test]
    fn garbage_is_corrupt_for_every_codec() {
        let garbage = b"definitely not compressed data, no sir";
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(
                matches!(
                    decompress(codec, garbage, usize::MAX),
                    Err(BatchError::CorruptMessage { .. })
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn truncated_xerial_block_is_corrupt() {
        let compressed = compress(Compression::Snappy, &sample_data()).unwrap();
        let truncated = &compressed[..compressed.len() - 3];
        assert!(decompress(Compression::Snappy, truncated, usize::MAX).is_err());
    }

    #[test]
    fn codec_ids_round_trip_and_unknown_ids_fail() {
        for codec in ALL_CODECS {
            assert_eq!(Compression::from_id(codec.id()).unwrap(), codec);
        }
        assert_eq!(
            Compression::from_id(5),
            Err(BatchError::UnknownCompression { codec_id: 5 })
        );
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip_through_any_codec(
            data in proptest::collection::vec(any::<u8>(), 0..5_000),
            codec_index in 0usize..5,
        ) {
            let codec = ALL_CODECS[codec_index];
            let compressed = compress(codec, &data).unwrap();
            prop_assert_eq!(decompress(codec, &compressed, usize::MAX).unwrap(), data);
        }
    }

    #[test]
    fn a_compression_bomb_is_refused_at_the_limit() {
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let limit = 1024 * 1024;
        for codec in &ALL_CODECS[1..] {
            let bomb = compress(*codec, &zeros).unwrap();
            assert!(
                bomb.len() < 4 * 1024 * 1024,
                "{codec:?}: {} bytes",
                bomb.len()
            );
            let refused = decompress(*codec, &bomb, limit).unwrap_err();
            assert!(
                refused.to_string().contains("at most 1048576 bytes"),
                "{codec:?}: {refused}"
            );
            // Exactly at the limit is fine.
            let fits = compress(*codec, &zeros[..limit]).unwrap();
            assert_eq!(decompress(*codec, &fits, limit).unwrap().len(), limit);
        }
    }

    #[test]
    fn a_raw_snappy_block_announcing_gigabytes_is_refused_before_allocating() {
        // Varint 0xffff_ffff as the announced length, then a little literal.
        let lying = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, b'x'];
        assert!(decompress(Compression::Snappy, &lying, 1024 * 1024).is_err());
    }

    #[test]
    fn the_limit_is_a_multiple_of_max_message_bytes_capped_broker_wide() {
        assert_eq!(decompression_limit(1_000_000), 32_000_000);
        assert_eq!(decompression_limit(10_000_000), MAX_DECOMPRESSED_BYTES);
        assert_eq!(decompression_limit(500_000_000), 500_000_000);
    }

    /// Found by the record_batch fuzz target: a zstd frame header asking for an 80 MiB window
    /// made the decoder allocate it before any output. The window is now capped by the limit.
    #[test]
    fn a_zstd_frame_asking_for_a_window_beyond_the_limit_is_refused() {
        // Magic, then a frame header descriptor without content size and a window descriptor
        // of 2^26 (exponent 16 + 10), then a raw block of one byte: above the 2^23 allowed for
        // a 1 MiB limit.
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x80, 0x09, 0x00, 0x00, b'x'];
        assert!(decompress(Compression::Zstd, &frame, 1024 * 1024).is_err());
        assert_eq!(zstd_window_log_max(1024 * 1024), 23);
        assert_eq!(zstd_window_log_max(32_000_000), 25);
        assert_eq!(zstd_window_log_max(usize::MAX), 27);
        assert_eq!(zstd_window_log_max(0), 23);
        // Real data at the limit still decompresses.
        let data = vec![7u8; 1024 * 1024];
        let compressed = compress(Compression::Zstd, &data).unwrap();
        assert_eq!(
            decompress(Compression::Zstd, &compressed, 1024 * 1024).unwrap(),
            data
        );
    }
}
