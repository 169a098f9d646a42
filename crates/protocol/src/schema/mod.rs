//! Bounds checking of Kafka messages before `kafka-protocol` decodes them.
//!
//! The crate's decoders size every array with `Vec::with_capacity(n)` for the count `n` read off
//! the wire, before decoding a single element, so a 19-byte request that claims 2^31 topics
//! makes the process abort on a failed allocation (which no error handling can catch).
//! [`decode`] therefore walks the bytes first, with the layout of the struct to decode, and
//! refuses every count and length that the bytes really there cannot hold, allocating nothing;
//! only then does it run the decoder.
//!
//! The layouts (`generated.rs`) are read off the crate's own decoders by
//! `scripts/gen-protocol-schema.py`, so the walk follows exactly the fields, versions and
//! encodings that the decoder will read: every API and version the crate knows, requests,
//! responses, headers and the embedded messages (consumer protocol, KRaft records).

#[rustfmt::skip]
mod generated;

use bytes::Bytes;
use kafka_protocol::protocol::Decodable;
use thiserror::Error;

use generated::{REQUESTS, REQUEST_HEADER, RESPONSES, RESPONSE_HEADER, STRUCTS};

/// Why a message was refused before (or while) decoding it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    /// No layout is known for the message at this version.
    #[error("{message} has no version {version}")]
    UnknownVersion {
        /// The message's name.
        message: &'static str,
        /// The version asked for.
        version: i16,
    },
    /// No layout is known for the message at all.
    #[error("no wire layout known for {0}")]
    UnknownMessage(String),
    /// A count or length is impossible for the bytes that follow, or the bytes end early.
    #[error("malformed {message} v{version} at byte {offset}: {reason}")]
    Malformed {
        /// The (innermost) struct being read.
        message: &'static str,
        /// Its version.
        version: i16,
        /// Where in the message the problem was found.
        offset: usize,
        /// What was expected and what was found.
        reason: String,
    },
    /// The bounds were fine but the decoder still refused the bytes (a null where none is
    /// allowed, an unknown tag at this version, ...).
    #[error("{message} v{version} did not decode: {reason}")]
    Decode {
        /// The message's name.
        message: &'static str,
        /// Its version.
        version: i16,
        /// The decoder's reason.
        reason: String,
    },
}

/// The wire layout of one struct at all its versions.
#[derive(Debug)]
pub(crate) struct StructSchema {
    /// `module::Type` in `kafka-protocol`'s messages, e.g. `metadata_request::MetadataRequest`.
    pub(crate) name: &'static str,
    /// Versions the decoder accepts, inclusive.
    pub(crate) versions: (i16, i16),
    /// Versions that end with tagged fields, inclusive; `None` for none.
    pub(crate) flexible: Option<(i16, i16)>,
    /// The fields in wire order, each present at its versions only.
    pub(crate) fields: &'static [Field],
    /// The tagged fields the decoder knows.
    pub(crate) tagged: &'static [Tagged],
}

/// A field present at `versions` (inclusive).
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) versions: (i16, i16),
    pub(crate) ty: Ty,
}

/// A tagged field the decoder reads, at `versions` (inclusive).
#[derive(Debug)]
pub(crate) struct Tagged {
    pub(crate) tag: u32,
    pub(crate) versions: (i16, i16),
    pub(crate) ty: Ty,
}

/// A field's wire type; structs by index in [`STRUCTS`].
#[derive(Debug)]
pub(crate) enum Ty {
    Bool,
    Int8,
    Int16,
    UInt16,
    Int32,
    Int64,
    Float64,
    Uuid,
    /// Int16 length (-1 for null), then bytes.
    String,
    /// Unsigned varint length + 1 (0 for null), then bytes.
    CompactString,
    /// Int32 length (-1 for null), then bytes.
    Bytes,
    /// Unsigned varint length + 1 (0 for null), then bytes.
    CompactBytes,
    Struct(usize),
    /// Int8 1, then the struct; any other marker (-1 on the wire) is null.
    OptionStruct(usize),
    /// Int32 count (-1 for null), then the elements.
    Array(&'static Ty),
    /// Unsigned varint count + 1 (0 for null), then the elements.
    CompactArray(&'static Ty),
}

fn within((low, high): (i16, i16), version: i16) -> bool {
    low <= version && version <= high
}

/// Checks a request body (after its header) of `api_key` at `version`; returns the bytes the
/// decoder will read.
pub fn check_request(api_key: i16, version: i16, body: &[u8]) -> Result<usize, SchemaError> {
    let index = lookup(&REQUESTS, api_key, "request")?;
    check_struct(index, version, body)
}

/// Checks a response body (after its header) of `api_key` at `version`.
pub fn check_response(api_key: i16, version: i16, body: &[u8]) -> Result<usize, SchemaError> {
    let index = lookup(&RESPONSES, api_key, "response")?;
    check_struct(index, version, body)
}

/// Checks a request header at `header_version`.
pub fn check_request_header(header_version: i16, bytes: &[u8]) -> Result<usize, SchemaError> {
    check_struct(REQUEST_HEADER, header_version, bytes)
}

/// Checks a response header at `header_version`.
pub fn check_response_header(header_version: i16, bytes: &[u8]) -> Result<usize, SchemaError> {
    check_struct(RESPONSE_HEADER, header_version, bytes)
}

/// Decodes a `T` from untrusted bytes at `version`: checks every length against the bytes
/// there first, then runs `kafka-protocol`'s decoder, leaving `bytes` after what it read.
pub fn decode<T: Decodable>(bytes: &mut Bytes, version: i16) -> Result<T, SchemaError> {
    let index = index_of::<T>()?;
    check_struct(index, version, bytes)?;
    T::decode(bytes, version).map_err(|error| SchemaError::Decode {
        message: STRUCTS[index].name,
        version,
        reason: error.to_string(),
    })
}

/// The layout of `T`, found by its type name (`kafka_protocol::messages::module::Type`).
fn index_of<T>() -> Result<usize, SchemaError> {
    let full = std::any::type_name::<T>();
    let mut segments = full.rsplit("::");
    let (Some(type_name), Some(module)) = (segments.next(), segments.next()) else {
        return Err(SchemaError::UnknownMessage(full.to_string()));
    };
    // The table is sorted by (module, type): found on every decode without building a string.
    STRUCTS
        .binary_search_by(|schema| {
            let (schema_module, schema_type) = schema.name.split_once("::").unwrap_or_default();
            (schema_module, schema_type).cmp(&(module, type_name))
        })
        .map_err(|_| SchemaError::UnknownMessage(full.to_string()))
}

fn lookup(table: &[(i16, usize)], api_key: i16, kind: &str) -> Result<usize, SchemaError> {
    table
        .binary_search_by_key(&api_key, |(key, _)| *key)
        .map(|position| table[position].1)
        .map_err(|_| SchemaError::UnknownMessage(format!("{kind} for api key {api_key}")))
}

fn check_struct(index: usize, version: i16, bytes: &[u8]) -> Result<usize, SchemaError> {
    let mut walker = Walker { bytes, offset: 0 };
    walker.walk_struct(index, version)?;
    Ok(walker.offset)
}

/// Reads through a message without keeping anything of it.
struct Walker<'a> {
    /// The whole message.
    bytes: &'a [u8],
    /// How far the walk has read.
    offset: usize,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn malformed(&self, index: usize, version: i16, reason: String) -> SchemaError {
        SchemaError::Malformed {
            message: STRUCTS[index].name,
            version,
            offset: self.offset,
            reason,
        }
    }

    fn take(&mut self, count: usize, index: usize, version: i16) -> Result<&[u8], SchemaError> {
        if count > self.remaining() {
            return Err(self.malformed(
                index,
                version,
                format!("expected {count} more bytes, found {}", self.remaining()),
            ));
        }
        let taken = &self.bytes[self.offset..self.offset + count];
        self.offset += count;
        Ok(taken)
    }

    fn int16(&mut self, index: usize, version: i16) -> Result<i16, SchemaError> {
        let bytes = self.take(2, index, version)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn int32(&mut self, index: usize, version: i16) -> Result<i32, SchemaError> {
        let bytes = self.take(4, index, version)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Kafka's unsigned varint: at most five bytes, seven bits each.
    fn unsigned_varint(&mut self, index: usize, version: i16) -> Result<u32, SchemaError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1, index, version)?[0];
            value |= u32::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed(index, version, "unsigned varint longer than 5 bytes".into()))
    }

    /// A length or count that may be null: `Ok(None)` for null, else checked to be
    /// non-negative.
    fn length(
        &mut self,
        compact: bool,
        wide: bool,
        index: usize,
        version: i16,
    ) -> Result<Option<usize>, SchemaError> {
        let raw: i64 = if compact {
            i64::from(self.unsigned_varint(index, version)?) - 1
        } else if wide {
            i64::from(self.int32(index, version)?)
        } else {
            i64::from(self.int16(index, version)?)
        };
        match raw {
            -1 => Ok(None),
            length if length < -1 => Err(self.malformed(
                index,
                version,
                format!("expected a length of -1 or more, found {length}"),
            )),
            length => Ok(Some(length as usize)),
        }
    }

    fn walk_struct(&mut self, index: usize, version: i16) -> Result<(), SchemaError> {
        let schema = &STRUCTS[index];
        if !within(schema.versions, version) {
            return Err(SchemaError::UnknownVersion {
                message: schema.name,
                version,
            });
        }
        for field in schema.fields {
            if within(field.versions, version) {
                self.walk(&field.ty, index, version)?;
            }
        }
        if !schema.flexible.is_some_and(|range| within(range, version)) {
            return Ok(());
        }
        let count = self.unsigned_varint(index, version)?;
        for _ in 0..count {
            let tag = self.unsigned_varint(index, version)?;
            let size = self.unsigned_varint(index, version)? as usize;
            if size > self.remaining() {
                return Err(self.malformed(
                    index,
                    version,
                    format!(
                        "tagged field {tag} of {size} bytes, {} left",
                        self.remaining()
                    ),
                ));
            }
            let Some(known) = schema.tagged.iter().find(|tagged| tagged.tag == tag) else {
                self.offset += size;
                continue;
            };
            if !within(known.versions, version) {
                return Err(self.malformed(index, version, format!("tag {tag} is not valid here")));
            }
            let start = self.offset;
            self.walk(&known.ty, index, version)?;
            if self.offset - start != size {
                return Err(self.malformed(
                    index,
                    version,
                    format!(
                        "tagged field {tag} announced {size} bytes, its value took {}",
                        self.offset - start
                    ),
                ));
            }
        }
        Ok(())
    }

    fn walk(&mut self, ty: &Ty, owner: usize, version: i16) -> Result<(), SchemaError> {
        match ty {
            Ty::Bool | Ty::Int8 => self.take(1, owner, version).map(drop),
            Ty::Int16 | Ty::UInt16 => self.take(2, owner, version).map(drop),
            Ty::Int32 => self.take(4, owner, version).map(drop),
            Ty::Int64 | Ty::Float64 => self.take(8, owner, version).map(drop),
            Ty::Uuid => self.take(16, owner, version).map(drop),
            Ty::String | Ty::CompactString | Ty::Bytes | Ty::CompactBytes => {
                let compact = matches!(ty, Ty::CompactString | Ty::CompactBytes);
                let wide = matches!(ty, Ty::Bytes);
                if let Some(length) = self.length(compact, wide, owner, version)? {
                    self.take(length, owner, version)?;
                }
                Ok(())
            }
            Ty::Struct(index) => self.walk_struct(*index, version),
            Ty::OptionStruct(index) => {
                // As the decoder reads it: 1 is a struct, any other marker is null.
                if self.take(1, owner, version)?[0] != 1 {
                    return Ok(());
                }
                self.walk_struct(*index, version)
            }
            Ty::Array(element) | Ty::CompactArray(element) => {
                let compact = matches!(ty, Ty::CompactArray(_));
                let Some(count) = self.length(compact, true, owner, version)? else {
                    return Ok(());
                };
                // Refused before a single element is read: the decoder reserves room for
                // `count` elements as soon as it has read the count.
                let smallest = min_size(element, version).max(1);
                if count > self.remaining() / smallest {
                    return Err(self.malformed(
                        owner,
                        version,
                        format!(
                            "array of {count} elements of at least {smallest} bytes each, {} bytes left",
                            self.remaining()
                        ),
                    ));
                }
                for _ in 0..count {
                    self.walk(element, owner, version)?;
                }
                Ok(())
            }
        }
    }
}

/// The fewest bytes a value of `ty` takes on the wire at `version`.
fn min_size(ty: &Ty, version: i16) -> usize {
    match ty {
        Ty::Bool | Ty::Int8 | Ty::CompactString | Ty::CompactBytes | Ty::CompactArray(_) => 1,
        Ty::OptionStruct(_) => 1,
        Ty::Int16 | Ty::UInt16 | Ty::String => 2,
        Ty::Int32 | Ty::Bytes | Ty::Array(_) => 4,
        Ty::Int64 | Ty::Float64 => 8,
        Ty::Uuid => 16,
        Ty::Struct(index) => {
            let schema = &STRUCTS[*index];
            let fields: usize = schema
                .fields
                .iter()
                .filter(|field| within(field.versions, version))
                .map(|field| min_size(&field.ty, version))
                .sum();
            let tagged = usize::from(schema.flexible.is_some_and(|range| within(range, version)));
            fields + tagged
        }
    }
}

#[cfg(test)]
mod tests;
