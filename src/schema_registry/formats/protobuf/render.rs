//! Renders a compiled `FileDescriptorProto` as `.proto` text: the stored (canonical) form of
//! a Protobuf schema. Declarations keep their order (a record's message indexes point into
//! it); type names are written fully qualified (`.pkg.Msg`), maps as `map<K, V>`, proto3
//! `optional` without its synthetic oneof. Options: the standard ones of files, messages,
//! fields, enums and methods that schemas use; others are caught by the caller's check that
//! the text compiles back to the same descriptor.

use std::fmt::Write;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto,
};

/// The largest field number, written `max` in ranges.
const MAX_FIELD: i32 = 536_870_911;

pub fn render(file: &FileDescriptorProto) -> Result<String, String> {
    let syntax = match file.syntax() {
        "" | "proto2" => "proto2",
        "proto3" => "proto3",
        other => return Err(format!("syntax \"{other}\" is not supported")),
    };
    let mut out = format!("syntax = \"{syntax}\";\n");
    if let Some(package) = &file.package {
        let _ = writeln!(out, "package {package};");
    }
    for (i, import) in file.dependency.iter().enumerate() {
        let kind = if file.public_dependency.contains(&(i as i32)) {
            "public "
        } else if file.weak_dependency.contains(&(i as i32)) {
            "weak "
        } else {
            ""
        };
        let _ = writeln!(out, "import {kind}\"{}\";", escape(import));
    }
    if let Some(o) = &file.options {
        let mut options = Vec::new();
        for (name, value) in [
            ("java_package", &o.java_package),
            ("java_outer_classname", &o.java_outer_classname),
            ("go_package", &o.go_package),
            ("objc_class_prefix", &o.objc_class_prefix),
            ("csharp_namespace", &o.csharp_namespace),
            ("swift_prefix", &o.swift_prefix),
            ("php_class_prefix", &o.php_class_prefix),
            ("php_namespace", &o.php_namespace),
            ("php_metadata_namespace", &o.php_metadata_namespace),
            ("ruby_package", &o.ruby_package),
        ] {
            if let Some(v) = value {
                options.push(format!("{name} = \"{}\"", escape(v)));
            }
        }
        for (name, value) in [
            ("java_multiple_files", o.java_multiple_files),
            ("java_string_check_utf8", o.java_string_check_utf8),
            ("cc_generic_services", o.cc_generic_services),
            ("java_generic_services", o.java_generic_services),
            ("py_generic_services", o.py_generic_services),
            ("deprecated", o.deprecated),
            ("cc_enable_arenas", o.cc_enable_arenas),
        ] {
            if let Some(v) = value {
                options.push(format!("{name} = {v}"));
            }
        }
        if o.optimize_for.is_some() {
            options.push(format!("optimize_for = {}", o.optimize_for().as_str_name()));
        }
        for option in options {
            let _ = writeln!(out, "option {option};");
        }
    }
    let syntax3 = syntax == "proto3";
    for message in &file.message_type {
        out.push('\n');
        render_message(&mut out, message, 0, syntax3)?;
    }
    for e in &file.enum_type {
        out.push('\n');
        render_enum(&mut out, e, 0);
    }
    for service in &file.service {
        out.push('\n');
        render_service(&mut out, service);
    }
    render_extensions(&mut out, &file.extension, 0, syntax3)?;
    Ok(out)
}

fn indent(out: &mut String, depth: usize) {
    out.push_str(&"  ".repeat(depth));
}

fn render_message(
    out: &mut String,
    message: &DescriptorProto,
    depth: usize,
    syntax3: bool,
) -> Result<(), String> {
    indent(out, depth);
    let _ = writeln!(out, "message {} {{", message.name());
    let inner = depth + 1;
    if let Some(o) = &message.options {
        if let Some(v) = o.deprecated {
            indent(out, inner);
            let _ = writeln!(out, "option deprecated = {v};");
        }
        if let Some(v) = o.message_set_wire_format {
            indent(out, inner);
            let _ = writeln!(out, "option message_set_wire_format = {v};");
        }
    }
    // Real oneofs are written where their first field stands; proto3 `optional` fields
    // stand alone.
    let mut written = vec![false; message.oneof_decl.len()];
    for field in &message.field {
        match field.oneof_index {
            Some(i) if !field.proto3_optional() => {
                let i = i as usize;
                if written.get(i).copied().unwrap_or(true) {
                    continue;
                }
                written[i] = true;
                indent(out, inner);
                let _ = writeln!(out, "oneof {} {{", message.oneof_decl[i].name());
                for member in message
                    .field
                    .iter()
                    .filter(|f| f.oneof_index == Some(i as i32))
                {
                    render_field(out, member, message, inner + 1, syntax3, true)?;
                }
                indent(out, inner);
                out.push_str("}\n");
            }
            _ => render_field(out, field, message, inner, syntax3, false)?,
        }
    }
    let ranges = |out: &mut String, keyword: &str, ranges: Vec<(i32, i32)>| {
        if ranges.is_empty() {
            return;
        }
        let parts: Vec<String> = ranges
            .into_iter()
            .map(|(start, end)| match (start, end - 1) {
                (s, e) if s == e => s.to_string(),
                (s, MAX_FIELD) => format!("{s} to max"),
                (s, e) => format!("{s} to {e}"),
            })
            .collect();
        indent(out, inner);
        let _ = writeln!(out, "{keyword} {};", parts.join(", "));
    };
    ranges(
        out,
        "extensions",
        message
            .extension_range
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect(),
    );
    ranges(
        out,
        "reserved",
        message
            .reserved_range
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect(),
    );
    if !message.reserved_name.is_empty() {
        let names: Vec<String> = message
            .reserved_name
            .iter()
            .map(|n| format!("\"{}\"", escape(n)))
            .collect();
        indent(out, inner);
        let _ = writeln!(out, "reserved {};", names.join(", "));
    }
    for nested in &message.nested_type {
        if !is_map_entry(nested) {
            render_message(out, nested, inner, syntax3)?;
        }
    }
    for e in &message.enum_type {
        render_enum(out, e, inner);
    }
    render_extensions(out, &message.extension, inner, syntax3)?;
    indent(out, depth);
    out.push_str("}\n");
    Ok(())
}

fn is_map_entry(message: &DescriptorProto) -> bool {
    message.options.as_ref().is_some_and(|o| o.map_entry())
}

/// The scalar type's keyword, or the (qualified) name of a message or enum.
fn type_name(field: &FieldDescriptorProto) -> Result<String, String> {
    match field.r#type() {
        Type::Message | Type::Enum => Ok(field.type_name().to_owned()),
        Type::Group => Err("groups are not supported".to_owned()),
        scalar => Ok(scalar
            .as_str_name()
            .trim_start_matches("TYPE_")
            .to_ascii_lowercase()),
    }
}

fn render_field(
    out: &mut String,
    field: &FieldDescriptorProto,
    parent: &DescriptorProto,
    depth: usize,
    syntax3: bool,
    in_oneof: bool,
) -> Result<(), String> {
    indent(out, depth);
    let entry = parent
        .nested_type
        .iter()
        .find(|n| is_map_entry(n) && field.type_name().ends_with(&format!(".{}", n.name())));
    let declared = match (field.label(), entry) {
        (Label::Repeated, Some(entry)) if entry.field.len() == 2 => format!(
            "map<{}, {}>",
            type_name(&entry.field[0])?,
            type_name(&entry.field[1])?
        ),
        (label, _) => {
            let label = match label {
                _ if in_oneof => "",
                Label::Repeated => "repeated ",
                Label::Required => "required ",
                Label::Optional if field.proto3_optional() || !syntax3 => "optional ",
                Label::Optional => "",
            };
            format!("{label}{}", type_name(field)?)
        }
    };
    let _ = write!(out, "{declared} {} = {}", field.name(), field.number());
    let mut options = Vec::new();
    if let Some(default) = &field.default_value {
        options.push(match field.r#type() {
            Type::String => format!("default = \"{}\"", escape(default)),
            Type::Bytes => format!("default = \"{default}\""),
            _ => format!("default = {default}"),
        });
    }
    if let Some(json) = &field.json_name {
        if *json != json_name(field.name()) {
            options.push(format!("json_name = \"{}\"", escape(json)));
        }
    }
    if let Some(o) = &field.options {
        for (name, value) in [
            ("packed", o.packed),
            ("lazy", o.lazy),
            ("deprecated", o.deprecated),
            ("weak", o.weak),
        ] {
            if let Some(v) = value {
                options.push(format!("{name} = {v}"));
            }
        }
        if o.ctype.is_some() {
            options.push(format!("ctype = {}", o.ctype().as_str_name()));
        }
        if o.jstype.is_some() {
            options.push(format!("jstype = {}", o.jstype().as_str_name()));
        }
    }
    if !options.is_empty() {
        let _ = write!(out, " [{}]", options.join(", "));
    }
    out.push_str(";\n");
    Ok(())
}

fn render_enum(out: &mut String, e: &EnumDescriptorProto, depth: usize) {
    indent(out, depth);
    let _ = writeln!(out, "enum {} {{", e.name());
    let inner = depth + 1;
    if let Some(o) = &e.options {
        for (name, value) in [("allow_alias", o.allow_alias), ("deprecated", o.deprecated)] {
            if let Some(v) = value {
                indent(out, inner);
                let _ = writeln!(out, "option {name} = {v};");
            }
        }
    }
    for value in &e.value {
        indent(out, inner);
        let deprecated = value.options.as_ref().and_then(|o| o.deprecated);
        match deprecated {
            Some(v) => {
                let _ = writeln!(
                    out,
                    "{} = {} [deprecated = {v}];",
                    value.name(),
                    value.number()
                );
            }
            None => {
                let _ = writeln!(out, "{} = {};", value.name(), value.number());
            }
        }
    }
    // Enum reserved ranges include their end.
    let mut reserved: Vec<String> = e
        .reserved_range
        .iter()
        .map(|r| match (r.start(), r.end()) {
            (s, e) if s == e => s.to_string(),
            (s, i32::MAX) => format!("{s} to max"),
            (s, e) => format!("{s} to {e}"),
        })
        .collect();
    if !reserved.is_empty() {
        indent(out, inner);
        let _ = writeln!(out, "reserved {};", reserved.join(", "));
    }
    reserved = e
        .reserved_name
        .iter()
        .map(|n| format!("\"{}\"", escape(n)))
        .collect();
    if !reserved.is_empty() {
        indent(out, inner);
        let _ = writeln!(out, "reserved {};", reserved.join(", "));
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn render_service(out: &mut String, service: &ServiceDescriptorProto) {
    let _ = writeln!(out, "service {} {{", service.name());
    for method in &service.method {
        let stream = |yes: bool| if yes { "stream " } else { "" };
        let _ = write!(
            out,
            "  rpc {} ({}{}) returns ({}{})",
            method.name(),
            stream(method.client_streaming()),
            method.input_type(),
            stream(method.server_streaming()),
            method.output_type()
        );
        match method.options.as_ref().and_then(|o| o.deprecated) {
            Some(v) => {
                let _ = writeln!(out, " {{\n    option deprecated = {v};\n  }}");
            }
            None => out.push_str(";\n"),
        }
    }
    out.push_str("}\n");
}

/// `extend` blocks, one per extended message in the order they first appear.
fn render_extensions(
    out: &mut String,
    fields: &[FieldDescriptorProto],
    depth: usize,
    syntax3: bool,
) -> Result<(), String> {
    let mut extendees: Vec<&str> = Vec::new();
    for field in fields {
        if !extendees.contains(&field.extendee()) {
            extendees.push(field.extendee());
        }
    }
    let none = DescriptorProto::default();
    for extendee in extendees {
        indent(out, depth);
        let _ = writeln!(out, "extend {extendee} {{");
        for field in fields.iter().filter(|f| f.extendee() == extendee) {
            render_field(out, field, &none, depth + 1, syntax3, false)?;
        }
        indent(out, depth);
        out.push_str("}\n");
    }
    Ok(())
}

/// The JSON name protobuf gives a field by default: underscores dropped, the letter after
/// each made upper case.
pub fn json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A string literal's content: quotes, backslashes and non-printable bytes escaped (a
/// `bytes` default arrives already C-escaped and is written as it came).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
