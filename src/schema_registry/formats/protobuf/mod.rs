//! Protobuf: a schema is one `.proto` file, sent as text or (as confluent-kafka's Python
//! serializer does) as a base64 `FileDescriptorProto`. `protox` compiles it with its imports:
//! the registered schemas its references name, by import path, and the well-known types
//! (`google/protobuf/*.proto`), which resolve without being registered as in Confluent's.
//! The stored form is the text rendered back from the descriptor ([`render`]), so one schema
//! written two ways (spacing, comments, relative or absolute type names, text or
//! descriptor) answers one id; `?format=serialized` gives the descriptor back in base64.
//! Compatibility follows Confluent's `SchemaDiff` ([`diff`]).

mod diff;
mod render;

use std::collections::HashMap;

use base64::Engine;
use prost::Message;
use prost_reflect::FileDescriptor;
use prost_types::FileDescriptorProto;
use protox::file::{File, FileResolver, GoogleFileResolver};

pub use diff::incompatibilities;

/// The name the schema itself compiles under, as Confluent's serializers call it.
const MAIN: &str = "default";

/// A compiled schema: its file, within a pool holding everything it imports.
pub struct ProtoSchema {
    file: FileDescriptor,
}

/// Compiles `text` with `references` (import path, schema text) and returns it with its
/// stored form.
pub fn parse(text: &str, references: &[(String, String)]) -> Result<(ProtoSchema, String), String> {
    let (main, from_text) = open(MAIN, text)?;
    let schema = compile(main, references)?;
    let original = schema.file.file_descriptor_proto();
    // The rendered text must compile back to the same descriptor; where it does not (an
    // option this renderer does not write, a group), a schema sent as text is kept as sent.
    let rendered = render::render(original);
    let same = rendered.as_ref().is_ok_and(|r| {
        open(MAIN, r)
            .and_then(|(f, _)| compile(f, references))
            .is_ok_and(|again| {
                comparable(again.file.file_descriptor_proto()) == comparable(original)
            })
    });
    let stored = match (rendered, from_text) {
        (Ok(rendered), _) if same => rendered,
        (_, true) => text.to_owned(),
        (Ok(rendered), false) => {
            tracing::warn!("schema registry: a Protobuf descriptor rendered to text lost detail");
            rendered
        }
        (Err(e), false) => return Err(e),
    };
    Ok((schema, stored))
}

/// The schema's descriptor in base64, as `?format=serialized` answers.
pub fn serialized(schema: &ProtoSchema) -> String {
    let mut proto = schema.file.file_descriptor_proto().clone();
    proto.source_code_info = None;
    base64::engine::general_purpose::STANDARD.encode(proto.encode_to_vec())
}

/// Reads `text` as `.proto` source or, failing that, as a base64 `FileDescriptorProto`;
/// says which. The source's parse error is the one reported when neither reads.
fn open(name: &str, text: &str) -> Result<(File, bool), String> {
    let source_error = match File::from_source(name, text) {
        Ok(file) => return Ok((file, true)),
        Err(e) => e,
    };
    let descriptor = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| FileDescriptorProto::decode(bytes.as_slice()).ok())
        .filter(|d| d.name.is_some() || !d.message_type.is_empty() || !d.enum_type.is_empty());
    match descriptor {
        Some(mut descriptor) => {
            descriptor.name = Some(name.to_owned());
            descriptor.source_code_info = None;
            Ok((File::from_file_descriptor_proto(descriptor), false))
        }
        None => Err(describe(&source_error)),
    }
}

/// The compiler's message, with the line and column it points at (`3:12: ...`) and the file
/// when it is not the schema itself.
fn describe(error: &protox::Error) -> String {
    use miette::Diagnostic;
    let mut out = error.to_string();
    let span = error.labels().and_then(|mut labels| labels.next());
    if let (Some(source), Some(label)) = (error.source_code(), span) {
        if let Ok(at) = source.read_span(label.inner(), 0, 0) {
            out = format!("{}:{}: {out}", at.line() + 1, at.column() + 1);
        }
    }
    match error.file() {
        Some(file) if file != MAIN => format!("{file}: {out}"),
        _ => out,
    }
}

struct Resolver {
    main: File,
    references: HashMap<String, String>,
    google: GoogleFileResolver,
}

impl FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == MAIN {
            return Ok(self.main.clone());
        }
        match self.references.get(name) {
            Some(text) => open(name, text)
                .map(|(file, _)| file)
                .map_err(|e| protox::Error::new(std::io::Error::other(format!("{name}: {e}")))),
            None => self.google.open_file(name),
        }
    }
}

fn compile(main: File, references: &[(String, String)]) -> Result<ProtoSchema, String> {
    let resolver = Resolver {
        main,
        references: references.iter().cloned().collect(),
        google: GoogleFileResolver::new(),
    };
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_source_info(false);
    compiler.open_file(MAIN).map_err(|e| describe(&e))?;
    let file = compiler
        .descriptor_pool()
        .get_file_by_name(MAIN)
        .ok_or_else(|| "the schema did not compile to a file".to_owned())?;
    Ok(ProtoSchema { file })
}

/// A descriptor without what does not change the schema: its name, and `json_name`s equal
/// to the one protobuf derives from the field name.
fn comparable(file: &FileDescriptorProto) -> FileDescriptorProto {
    fn strip(message: &mut prost_types::DescriptorProto) {
        for field in message.field.iter_mut().chain(message.extension.iter_mut()) {
            if field.json_name.as_deref() == Some(&render::json_name(field.name())) {
                field.json_name = None;
            }
        }
        message.nested_type.iter_mut().for_each(strip);
    }
    let mut file = file.clone();
    file.name = None;
    file.source_code_info = None;
    if file.syntax.as_deref() == Some("proto2") {
        file.syntax = None;
    }
    file.message_type.iter_mut().for_each(strip);
    for field in &mut file.extension {
        if field.json_name.as_deref() == Some(&render::json_name(field.name())) {
            field.json_name = None;
        }
    }
    file
}

#[cfg(test)]
mod tests;
