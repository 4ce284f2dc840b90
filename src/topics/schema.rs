//! The field encodings of Kafka's coordinator record schemas (`OffsetCommitValue`,
//! `TransactionLogValue`, ...), over `kafka-protocol`'s primitive types: one reader and one
//! writer that know whether the schema version is flexible (compact strings and arrays,
//! tagged fields) or not, so each record's codec reads as its JSON definition does. Written
//! over `bytes` directly: `kafka-protocol`'s primitive `Encoder`/`Decoder` types are private
//! to that crate.
//!
//! A coordinator record's key and value both start with a big-endian `i16`: the key's is the
//! record type (the schema's `apiKey`, Kafka's `CoordinatorRecordType`), the value's is the
//! value schema's version. `MessageUtil.toCoordinatorTypePrefixedBytes` and
//! `toVersionPrefixedBytes` write them.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why a record could not be read: it names the field or the version.
pub type SchemaError = String;

/// Reads the fields of one schema version from a record's bytes.
pub struct FieldReader {
    buf: Bytes,
    flexible: bool,
}

impl FieldReader {
    pub fn new(buf: Bytes, flexible: bool) -> FieldReader {
        FieldReader { buf, flexible }
    }

    /// The `i16` in front of a key (its record type) or value (its version), and the rest.
    pub fn prefixed(bytes: &Bytes) -> Result<(i16, Bytes), SchemaError> {
        if bytes.len() < 2 {
            return Err("record shorter than its type or version".into());
        }
        let mut rest = bytes.clone();
        let prefix = rest.get_i16();
        Ok((prefix, rest))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<Bytes, SchemaError> {
        if self.buf.len() < n {
            return Err(format!("{what}: record ends early"));
        }
        Ok(self.buf.split_to(n))
    }

    pub fn i8(&mut self, what: &str) -> Result<i8, SchemaError> {
        Ok(self.take(1, what)?.get_i8())
    }

    pub fn i16(&mut self, what: &str) -> Result<i16, SchemaError> {
        Ok(self.take(2, what)?.get_i16())
    }

    pub fn i32(&mut self, what: &str) -> Result<i32, SchemaError> {
        Ok(self.take(4, what)?.get_i32())
    }

    pub fn i64(&mut self, what: &str) -> Result<i64, SchemaError> {
        Ok(self.take(8, what)?.get_i64())
    }

    /// An unsigned varint (the protocol's `UnsignedVarInt`), at most five bytes.
    pub fn uvarint(&mut self, what: &str) -> Result<u32, SchemaError> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1, what)?[0];
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("{what}: varint longer than five bytes"))
    }

    /// The length of a string (`i16` when not flexible) or byte field (`i32`); `None` when
    /// null.
    fn length(&mut self, what: &str, bytes: bool) -> Result<Option<usize>, SchemaError> {
        let len = if self.flexible {
            i64::from(self.uvarint(what)?) - 1
        } else if bytes {
            i64::from(self.i32(what)?)
        } else {
            i64::from(self.i16(what)?)
        };
        Ok(usize::try_from(len).ok())
    }

    pub fn uuid(&mut self, what: &str) -> Result<uuid::Uuid, SchemaError> {
        let raw: [u8; 16] = self.take(16, what)?[..]
            .try_into()
            .map_err(|_| format!("{what}: not 16 bytes"))?;
        Ok(uuid::Uuid::from_bytes(raw))
    }

    pub fn string(&mut self, what: &str) -> Result<String, SchemaError> {
        self.nullable_string(what)?
            .ok_or_else(|| format!("{what}: null where a string is required"))
    }

    pub fn nullable_string(&mut self, what: &str) -> Result<Option<String>, SchemaError> {
        let Some(len) = self.length(what, false)? else {
            return Ok(None);
        };
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| format!("{what}: not UTF-8"))
    }

    pub fn bytes(&mut self, what: &str) -> Result<Bytes, SchemaError> {
        let len = self
            .length(what, true)?
            .ok_or_else(|| format!("{what}: null where bytes are required"))?;
        self.take(len, what)
    }

    /// An array's length; `None` for a null array.
    pub fn array_len(&mut self, what: &str) -> Result<Option<usize>, SchemaError> {
        let len = if self.flexible {
            i64::from(self.uvarint(what)?) - 1
        } else {
            i64::from(self.i32(what)?)
        };
        if len < 0 {
            return Ok(None);
        }
        // Every element takes at least one byte: a length past the rest is corrupt.
        if len as usize > self.buf.len() {
            return Err(format!(
                "{what}: {len} elements in {} bytes",
                self.buf.len()
            ));
        }
        Ok(Some(len as usize))
    }

    /// The tagged fields closing a flexible struct, as (tag, bytes); none in older versions.
    pub fn tagged_fields(&mut self) -> Result<Vec<(u32, Bytes)>, SchemaError> {
        if !self.flexible {
            return Ok(Vec::new());
        }
        let count = self.uvarint("tagged fields")?;
        let mut fields = Vec::new();
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tag size")?;
            fields.push((tag, self.take(size as usize, "tagged field")?));
        }
        Ok(fields)
    }

    /// Ok when every byte was read: anything left means the record is not this schema.
    pub fn finish(self, what: &str) -> Result<(), SchemaError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes after the {what}", self.buf.len()))
        }
    }
}

/// Writes the fields of one schema version.
pub struct FieldWriter {
    buf: BytesMut,
    flexible: bool,
}

impl FieldWriter {
    /// A record starting with its `i16` type (keys) or version (values).
    pub fn prefixed(prefix: i16, flexible: bool) -> FieldWriter {
        let mut writer = FieldWriter {
            buf: BytesMut::new(),
            flexible,
        };
        writer.i16(prefix);
        writer
    }

    /// A tagged field's own bytes, always in the non-prefixed fixed form.
    pub fn tag_body() -> FieldWriter {
        FieldWriter {
            buf: BytesMut::new(),
            flexible: true,
        }
    }

    pub fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    pub fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    pub fn uuid(&mut self, v: uuid::Uuid) {
        self.buf.put_slice(v.as_bytes());
    }

    pub fn string(&mut self, v: &str) {
        self.nullable_string(Some(v));
    }

    /// Strings longer than an `i16` length cannot come here: the request limits bound
    /// group, topic, member and transactional ids far below it.
    pub fn nullable_string(&mut self, v: Option<&str>) {
        match (self.flexible, v) {
            (true, Some(s)) => {
                self.uvarint(s.len() as u32 + 1);
                self.buf.put_slice(s.as_bytes());
            }
            (true, None) => self.uvarint(0),
            (false, Some(s)) => {
                self.i16(s.len() as i16);
                self.buf.put_slice(s.as_bytes());
            }
            (false, None) => self.i16(-1),
        }
    }

    pub fn bytes(&mut self, v: &[u8]) {
        if self.flexible {
            self.uvarint(v.len() as u32 + 1);
        } else {
            self.i32(v.len() as i32);
        }
        self.buf.put_slice(v);
    }

    /// An array's length; `None` writes a null array.
    pub fn array_len(&mut self, len: Option<usize>) {
        match (self.flexible, len) {
            (true, Some(n)) => self.uvarint(n as u32 + 1),
            (true, None) => self.uvarint(0),
            (false, Some(n)) => self.i32(n as i32),
            (false, None) => self.i32(-1),
        }
    }

    /// The tagged fields closing a flexible struct, in ascending tag order; nothing in
    /// older versions.
    pub fn tagged_fields(&mut self, fields: &[(u32, Bytes)]) {
        if !self.flexible {
            return;
        }
        self.uvarint(fields.len() as u32);
        for (tag, body) in fields {
            self.uvarint(*tag);
            self.uvarint(body.len() as u32);
            self.buf.put_slice(body);
        }
    }

    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// The Kafka 4.4 fixture of the codec tests (protocol-tests/fixtures/internal-records/make.py
/// says how it was made).
#[cfg(test)]
pub fn kafka_records(topic: &str) -> Vec<(Bytes, Option<Bytes>)> {
    fixture_records(
        include_str!("../../protocol-tests/fixtures/internal-records/kafka-4.4.json"),
        topic,
    )
}

/// The records of the KIP-848 consumer groups' fixture (`make.py --consumer-groups`).
#[cfg(test)]
pub fn kafka_consumer_group_records() -> Vec<(Bytes, Option<Bytes>)> {
    fixture_records(
        include_str!("../../protocol-tests/fixtures/internal-records/kafka-4.4-consumer.json"),
        "__consumer_offsets",
    )
}

/// The records Kafka 4.4 wrote for a streams group (`make.py --streams-groups`).
#[cfg(test)]
pub fn kafka_streams_group_records() -> Vec<(Bytes, Option<Bytes>)> {
    fixture_records(
        include_str!("../../protocol-tests/fixtures/internal-records/kafka-4.4-streams.json"),
        "__consumer_offsets",
    )
}

#[cfg(test)]
fn fixture_records(text: &str, topic: &str) -> Vec<(Bytes, Option<Bytes>)> {
    let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
    let hex = |s: &str| {
        Bytes::from(
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>(),
        )
    };
    fixture[topic]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                hex(r["key"].as_str().unwrap()),
                r["value"].as_str().map(hex),
            )
        })
        .collect()
}
