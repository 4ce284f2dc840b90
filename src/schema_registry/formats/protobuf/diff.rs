//! Compatibility of two Protobuf schemas by Confluent's `SchemaDiff` rules: every change
//! between the original (the writer's) and the update (the reader's) is classified, and
//! the update is compatible when every change is of a compatible kind. Fields are matched
//! by number; a field's kind (scalar, message, map) may not change, a scalar only within its
//! wire-compatible group (int32/uint32/int64/uint64/bool and enums; sint32/sint64;
//! fixed32/sfixed32; fixed64/sfixed64; string/bytes), a message type only keep its name
//! (the messages of imported files compared in turn); required fields may be neither added
//! nor removed; a oneof may not take more than one existing field, nor one existing field
//! besides fields of another oneof; messages may not be removed; the package may not change.

use std::collections::{BTreeSet, HashMap, HashSet};

use prost_reflect::{Cardinality, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use super::{ProtoSchema, MAIN};

/// `Difference.Type` names that Confluent counts as compatible.
const COMPATIBLE: &[&str] = &[
    "MESSAGE_ADDED",
    "MESSAGE_MOVED",
    "ENUM_ADDED",
    "ENUM_REMOVED",
    "ENUM_CONST_ADDED",
    "ENUM_CONST_CHANGED",
    "ENUM_CONST_REMOVED",
    "FIELD_ADDED",
    "FIELD_REMOVED",
    "FIELD_NAME_CHANGED",
    "FIELD_STRING_OR_BYTES_LABEL_CHANGED",
    "ONEOF_ADDED",
    "ONEOF_REMOVED",
    "ONEOF_FIELD_ADDED",
];

/// Why data written with `writer` cannot be read with `reader`, in Confluent's words.
pub fn incompatibilities(reader: &ProtoSchema, writer: &ProtoSchema) -> Vec<String> {
    differences(writer, reader)
        .into_iter()
        .filter(|(kind, _)| !COMPATIBLE.contains(kind))
        .map(|(kind, path)| format!("Difference{{fullPath='{path}', type={kind}}}"))
        .collect()
}

/// Every change from `original` to `update`: its kind and where (`#/Message/field number`).
pub fn differences(original: &ProtoSchema, update: &ProtoSchema) -> Vec<(&'static str, String)> {
    let mut ctx = Context::default();
    let (o, u) = (&original.file, &update.file);
    if o.package_name() != u.package_name() {
        ctx.add("PACKAGE_CHANGED");
    }
    ctx.types(
        o.messages().collect(),
        o.enums().collect(),
        u.messages().collect(),
        u.enums().collect(),
    );
    ctx.found
}

#[derive(Default)]
struct Context {
    path: Vec<String>,
    /// Messages being compared further up, so recursive types end.
    open: HashSet<String>,
    found: Vec<(&'static str, String)>,
}

/// What a field holds, for comparing kinds.
enum Held {
    Scalar(&'static str),
    Map(Box<Held>, Box<Held>),
    Message(MessageDescriptor),
}

impl Context {
    fn add(&mut self, kind: &'static str) {
        self.found
            .push((kind, format!("#/{}", self.path.join("/"))));
    }

    fn at<T>(&mut self, step: impl ToString, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(step.to_string());
        let out = f(self);
        self.path.pop();
        out
    }

    fn types(
        &mut self,
        om: Vec<MessageDescriptor>,
        oe: Vec<EnumDescriptor>,
        um: Vec<MessageDescriptor>,
        ue: Vec<EnumDescriptor>,
    ) {
        // Map entries are not declared in the text: they are neither counted nor compared.
        let index = |ms: Vec<MessageDescriptor>| -> HashMap<String, (usize, MessageDescriptor)> {
            ms.into_iter()
                .filter(|m| !m.is_map_entry())
                .enumerate()
                .map(|(i, m)| (m.name().to_owned(), (i, m)))
                .collect()
        };
        let (om, um) = (index(om), index(um));
        let names: BTreeSet<&String> = om.keys().chain(um.keys()).collect();
        for name in names {
            self.at(name, |ctx| match (om.get(name), um.get(name)) {
                (Some(_), None) => ctx.add("MESSAGE_REMOVED"),
                (None, Some(_)) => ctx.add("MESSAGE_ADDED"),
                (Some((oi, o)), Some((ui, u))) => {
                    ctx.message(o, u);
                    if oi != ui {
                        ctx.add("MESSAGE_MOVED");
                    }
                }
                (None, None) => {}
            });
        }
        let by_name = |es: Vec<EnumDescriptor>| -> HashMap<String, EnumDescriptor> {
            es.into_iter().map(|e| (e.name().to_owned(), e)).collect()
        };
        let (oe, ue) = (by_name(oe), by_name(ue));
        let names: BTreeSet<&String> = oe.keys().chain(ue.keys()).collect();
        for name in names {
            self.at(name, |ctx| match (oe.get(name), ue.get(name)) {
                (Some(_), None) => ctx.add("ENUM_REMOVED"),
                (None, Some(_)) => ctx.add("ENUM_ADDED"),
                (Some(o), Some(u)) => ctx.enumeration(o, u),
                (None, None) => {}
            });
        }
    }

    fn enumeration(&mut self, o: &EnumDescriptor, u: &EnumDescriptor) {
        let by_number = |e: &EnumDescriptor| -> HashMap<i32, String> {
            e.values()
                .map(|v| (v.number(), v.name().to_owned()))
                .collect()
        };
        let (ov, uv) = (by_number(o), by_number(u));
        let numbers: BTreeSet<&i32> = ov.keys().chain(uv.keys()).collect();
        for n in numbers {
            self.at(n, |ctx| match (ov.get(n), uv.get(n)) {
                (Some(_), None) => ctx.add("ENUM_CONST_REMOVED"),
                (None, Some(_)) => ctx.add("ENUM_CONST_ADDED"),
                (Some(a), Some(b)) if a != b => ctx.add("ENUM_CONST_CHANGED"),
                _ => {}
            });
        }
    }

    fn message(&mut self, o: &MessageDescriptor, u: &MessageDescriptor) {
        if self.open.insert(o.full_name().to_owned()) {
            self.fields(o, u);
            self.open.remove(o.full_name());
        }
        self.types(
            o.child_messages().collect(),
            o.child_enums().collect(),
            u.child_messages().collect(),
            u.child_enums().collect(),
        );
    }

    fn fields(&mut self, o: &MessageDescriptor, u: &MessageDescriptor) {
        // A proto3 `optional` field's synthetic oneof is no oneof in the text.
        let oneof_of = |f: &FieldDescriptor| {
            f.containing_oneof()
                .filter(|one| !one.is_synthetic())
                .map(|one| one.name().to_owned())
        };
        let all = |m: &MessageDescriptor| -> HashMap<u32, (FieldDescriptor, Option<String>)> {
            m.fields()
                .map(|f| {
                    let oneof = oneof_of(&f);
                    (f.number(), (f, oneof))
                })
                .collect()
        };
        let (o_all, u_all) = (all(o), all(u));
        let top = |fields: &HashMap<u32, (FieldDescriptor, Option<String>)>| -> HashMap<u32, FieldDescriptor> {
            fields
                .iter()
                .filter(|(_, (_, oneof))| oneof.is_none())
                .map(|(n, (f, _))| (*n, f.clone()))
                .collect()
        };
        let (mut o_top, u_top) = (top(&o_all), top(&u_all));
        let oneofs = |m: &MessageDescriptor| -> Vec<(String, Vec<FieldDescriptor>)> {
            m.oneofs()
                .filter(|one| !one.is_synthetic())
                .map(|one| (one.name().to_owned(), one.fields().collect()))
                .collect()
        };
        let (o_oneofs, u_oneofs) = (oneofs(o), oneofs(u));
        for (name, fields) in &u_oneofs {
            self.at(name, |ctx| {
                let mut moved = 0;
                let mut existing = 0;
                for f in fields {
                    if o_top.remove(&f.number()).is_some() {
                        moved += 1;
                    } else if o_all.get(&f.number()).is_some_and(|(_, one)| one.is_some()) {
                        existing += 1;
                    }
                }
                if moved > 1 {
                    ctx.add("MULTIPLE_FIELDS_MOVED_TO_ONEOF");
                } else if moved == 1 && existing > 0 {
                    ctx.add("FIELD_MOVED_TO_EXISTING_ONEOF");
                }
            });
        }
        let names: BTreeSet<&String> = o_oneofs.iter().chain(&u_oneofs).map(|(n, _)| n).collect();
        for name in names {
            let find = |list: &Vec<(String, Vec<FieldDescriptor>)>| {
                list.iter().find(|(n, _)| n == name).map(|(_, f)| f.clone())
            };
            self.at(name, |ctx| match (find(&o_oneofs), find(&u_oneofs)) {
                (Some(_), None) => ctx.add("ONEOF_REMOVED"),
                (None, Some(_)) => ctx.add("ONEOF_ADDED"),
                (Some(of), Some(uf)) => ctx.oneof(&of, &uf, &u_all),
                (None, None) => {}
            });
        }
        let numbers: BTreeSet<&u32> = o_top.keys().chain(u_top.keys()).collect();
        for n in numbers {
            self.at(n, |ctx| match (o_top.get(n), u_top.get(n)) {
                (Some(f), None) if f.cardinality() == Cardinality::Required => {
                    ctx.add("REQUIRED_FIELD_REMOVED")
                }
                (Some(_), None) => ctx.add("FIELD_REMOVED"),
                (None, Some(f)) if f.cardinality() == Cardinality::Required => {
                    ctx.add("REQUIRED_FIELD_ADDED")
                }
                (None, Some(_)) => ctx.add("FIELD_ADDED"),
                (Some(a), Some(b)) => ctx.field(a, b),
                (None, None) => {}
            });
        }
        // Fields that moved into, out of or between oneofs keep their content checked.
        let common: BTreeSet<&u32> = o_all.keys().filter(|n| u_all.contains_key(n)).collect();
        for n in common {
            let ((a, a_one), (b, b_one)) = (&o_all[n], &u_all[n]);
            if a_one == b_one {
                continue;
            }
            self.at(n, |ctx| ctx.field(a, b));
        }
    }

    fn oneof(
        &mut self,
        o: &[FieldDescriptor],
        u: &[FieldDescriptor],
        u_all: &HashMap<u32, (FieldDescriptor, Option<String>)>,
    ) {
        let by_number = |fs: &[FieldDescriptor]| -> HashMap<u32, FieldDescriptor> {
            fs.iter().map(|f| (f.number(), f.clone())).collect()
        };
        let (ob, ub) = (by_number(o), by_number(u));
        let numbers: BTreeSet<&u32> = ob.keys().chain(ub.keys()).collect();
        for n in numbers {
            self.at(n, |ctx| match (ob.get(n), ub.get(n)) {
                // A field that left the oneof for elsewhere in the message was moved.
                (Some(_), None) if !u_all.contains_key(n) => ctx.add("ONEOF_FIELD_REMOVED"),
                (None, Some(_)) => ctx.add("ONEOF_FIELD_ADDED"),
                (Some(a), Some(b)) => ctx.field(a, b),
                _ => {}
            });
        }
    }

    fn field(&mut self, o: &FieldDescriptor, u: &FieldDescriptor) {
        if o.name() != u.name() {
            self.add("FIELD_NAME_CHANGED");
        }
        self.held(held(o), held(u));
    }

    fn held(&mut self, o: Held, u: Held) {
        match (o, u) {
            (Held::Scalar(a), Held::Scalar(b)) => {
                if a != b {
                    self.add("FIELD_SCALAR_KIND_CHANGED");
                }
            }
            (Held::Map(ok, ov), Held::Map(uk, uv)) => {
                self.held(*ok, *uk);
                self.held(*ov, *uv);
            }
            (Held::Message(a), Held::Message(b)) => self.message_types(&a, &b),
            _ => self.add("FIELD_KIND_CHANGED"),
        }
    }

    /// Message types must keep their name within their package; those of imported files
    /// (whose versions may differ) are compared in turn, the schemas' own ones already are.
    fn message_types(&mut self, o: &MessageDescriptor, u: &MessageDescriptor) {
        let local = |m: &MessageDescriptor| {
            let package = m.package_name();
            let full = m.full_name();
            match full.strip_prefix(package).and_then(|r| r.strip_prefix('.')) {
                Some(rest) if !package.is_empty() => rest.to_owned(),
                _ => full.to_owned(),
            }
        };
        let name = local(o);
        if name != local(u) {
            return self.add("FIELD_NAMED_TYPE_CHANGED");
        }
        if o.parent_file().name() == MAIN && u.parent_file().name() == MAIN {
            return;
        }
        let mut sub = Context {
            path: name.split('.').map(str::to_owned).collect(),
            open: std::mem::take(&mut self.open),
            found: Vec::new(),
        };
        sub.message(o, u);
        self.open = sub.open;
        let compatible = sub.found.iter().all(|(kind, _)| COMPATIBLE.contains(kind));
        self.found.extend(sub.found);
        if !compatible {
            self.add("FIELD_NAMED_TYPE_CHANGED");
        }
    }
}

fn held(field: &FieldDescriptor) -> Held {
    match field.kind() {
        Kind::Message(m) if m.is_map_entry() => Held::Map(
            Box::new(held(&m.map_entry_key_field())),
            Box::new(held(&m.map_entry_value_field())),
        ),
        Kind::Message(m) => Held::Message(m),
        // Scalars by the groups that read each other's encoding; enums read as varints.
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => {
            Held::Scalar("number")
        }
        Kind::Sint32 | Kind::Sint64 => Held::Scalar("signed"),
        Kind::String | Kind::Bytes => Held::Scalar("string or bytes"),
        Kind::Fixed32 | Kind::Sfixed32 => Held::Scalar("fixed32"),
        Kind::Fixed64 | Kind::Sfixed64 => Held::Scalar("fixed64"),
        Kind::Float => Held::Scalar("float"),
        Kind::Double => Held::Scalar("double"),
    }
}
