//! The schema formats: parsing a schema into what compatibility is judged on, and the form
//! it is stored and compared in. Each format has its own module.

mod avro;
mod json;

use super::error::RegistryError;
use super::state::SchemaType;

/// The formats this registry accepts (`GET /schemas/types`).
pub const SUPPORTED: &[SchemaType] = &[SchemaType::Json, SchemaType::Avro];

/// A parsed schema.
pub enum Parsed {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
}

/// Parses `text` of `schema_type`, `references` being the texts of the schemas it refers to
/// (each reference's own references first). Returns the schema and its stored form: equal
/// schemas written differently (spacing, key order, a type spelled as an object) share one.
pub fn parse(
    schema_type: SchemaType,
    text: &str,
    references: &[String],
) -> Result<(Parsed, String), RegistryError> {
    match schema_type {
        SchemaType::Avro => avro::parse(text, references)
            .map(|(parsed, stored)| (Parsed::Avro(parsed), stored))
            .map_err(|e| {
                RegistryError::InvalidSchema(format!("Invalid schema {text}, details: {e}"))
            }),
        SchemaType::Json => json::parse(text)
            .map(|(parsed, stored)| (Parsed::Json(parsed), stored))
            .map_err(|e| {
                RegistryError::InvalidSchema(format!("Invalid schema {text}, details: {e}"))
            }),
        other => Err(RegistryError::InvalidSchema(format!(
            "Schema type {} is not supported by this registry yet",
            other.name()
        ))),
    }
}

/// Why data written with `writer` cannot be read with `reader`; empty when it can.
pub fn incompatibilities(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    match (reader, writer) {
        (Parsed::Avro(r), Parsed::Avro(w)) => avro::incompatibilities(r, w),
        (Parsed::Json(r), Parsed::Json(w)) => json::incompatibilities(r, w),
        // Versions of different types are refused before their schemas are compared.
        _ => vec!["Incompatible because of different schema type".to_owned()],
    }
}
