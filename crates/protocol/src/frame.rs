//! Kafka frames: a big-endian `i32` size followed by that many bytes.

use thiserror::Error;

/// Bytes in the size prefix of every request and response.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// Why a frame's size prefix was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The prefix is negative, which no client sends.
    #[error("request size {0} is negative")]
    NegativeSize(i32),
    /// The prefix is above `socket.request.max.bytes`.
    #[error("request size {size} is above socket.request.max.bytes {max}")]
    TooLarge { size: i32, max: usize },
    /// The prefix is too small to hold even a request header.
    #[error("request size {0} is too small for a request header")]
    TooSmall(i32),
}

/// The smallest request: api key (2), api version (2), correlation id (4), client id length (2).
pub const MIN_REQUEST_BYTES: i32 = 10;

/// Checks a request's size prefix against the configured maximum and returns the body length.
pub fn check_request_size(
    prefix: [u8; SIZE_PREFIX_BYTES],
    max: usize,
) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    if size < MIN_REQUEST_BYTES {
        return Err(FrameError::TooSmall(size));
    }
    if size as usize > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(size as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_oversized_prefixes_are_refused() {
        assert_eq!(
            check_request_size((-5i32).to_be_bytes(), 100),
            Err(FrameError::NegativeSize(-5))
        );
        assert_eq!(
            check_request_size(101i32.to_be_bytes(), 100),
            Err(FrameError::TooLarge {
                size: 101,
                max: 100
            })
        );
        assert_eq!(
            check_request_size(3i32.to_be_bytes(), 100),
            Err(FrameError::TooSmall(3))
        );
        assert_eq!(check_request_size(100i32.to_be_bytes(), 100), Ok(100));
    }
}
