//! The schema formats: parsing a schema into what compatibility is judged on, and the form
//! it is stored and compared in. Each format has its own module.

mod avro;
mod json;
mod protobuf;

use super::error::RegistryError;
use super::state::SchemaType;

/// The formats this registry accepts (`GET /schemas/types`).
pub const SUPPORTED: &[SchemaType] = &[SchemaType::Json, SchemaType::Protobuf, SchemaType::Avro];

/// A parsed schema.
pub enum Parsed {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
    Protobuf(protobuf::ProtoSchema),
}

/// Parses `text` of `schema_type`, `references` being the schemas it refers to, each as the
/// name it is referred to by and its text (each reference's own references first). Returns the schema and its stored form: equal
/// schemas written differently (spacing, key order, a type spelled as an object) share one.
pub fn parse(
    schema_type: SchemaType,
    text: &str,
    references: &[(String, String)],
) -> Result<(Parsed, String), RegistryError> {
    match schema_type {
        SchemaType::Avro => {
            let texts: Vec<String> = references.iter().map(|(_, t)| t.clone()).collect();
            avro::parse(text, &texts)
                .map(|(parsed, stored)| (Parsed::Avro(parsed), stored))
                .map_err(|e| {
                    RegistryError::InvalidSchema(format!("Invalid schema {text}, details: {e}"))
                })
        }
        SchemaType::Json => json::parse(text)
            .map(|(parsed, stored)| (Parsed::Json(parsed), stored))
            .map_err(|e| {
                RegistryError::InvalidSchema(format!("Invalid schema {text}, details: {e}"))
            }),
        SchemaType::Protobuf => protobuf::parse(text, references)
            .map(|(parsed, stored)| (Parsed::Protobuf(parsed), stored))
            .map_err(|e| {
                RegistryError::InvalidSchema(format!("Invalid schema {text}, details: {e}"))
            }),
    }
}

/// Why data written with `writer` cannot be read with `reader`; empty when it can.
pub fn incompatibilities(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    match (reader, writer) {
        (Parsed::Avro(r), Parsed::Avro(w)) => avro::incompatibilities(r, w),
        (Parsed::Json(r), Parsed::Json(w)) => json::incompatibilities(r, w),
        (Parsed::Protobuf(r), Parsed::Protobuf(w)) => protobuf::incompatibilities(r, w),
        // Versions of different types are refused before their schemas are compared.
        _ => vec!["Incompatible because of different schema type".to_owned()],
    }
}

/// The schema in `?format=serialized`: a Protobuf schema's descriptor in base64 (what
/// confluent-kafka's Python deserializer asks for); `None` for formats without one.
pub fn serialized(parsed: &Parsed) -> Option<String> {
    match parsed {
        Parsed::Protobuf(p) => Some(protobuf::serialized(p)),
        _ => None,
    }
}
