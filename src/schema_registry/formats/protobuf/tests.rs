use super::diff::differences;
use super::*;

fn schema(text: &str) -> ProtoSchema {
    parse(text, &[]).unwrap().0
}

/// The kinds of change from `original` to `update`, and whether Confluent accepts them.
fn changes(original: &str, update: &str) -> (Vec<&'static str>, bool) {
    let (o, u) = (schema(original), schema(update));
    let kinds = differences(&o, &u).into_iter().map(|(k, _)| k).collect();
    (kinds, incompatibilities(&u, &o).is_empty())
}

fn msg(body: &str) -> String {
    format!("syntax = \"proto3\";\npackage p;\nmessage M {{\n{body}\n}}\n")
}

#[test]
fn text_and_descriptor_share_one_stored_form() {
    let text = "syntax = \"proto3\";\npackage   p;\n// a comment\nmessage M { string a = 1; N n = 2; map<string, int64> m = 3; optional int32 o = 4;\n oneof pick { string x = 5; bytes y = 6; } message N { repeated E e = 1; } enum E { ZERO = 0; ONE = 1; } }\n";
    let (parsed, stored) = parse(text, &[]).unwrap();
    assert!(stored.contains("map<string, int64> m = 3;"), "{stored}");
    assert!(stored.contains("optional int32 o = 4;"), "{stored}");
    assert!(stored.contains(".p.M.N n = 2;"), "{stored}");
    // The stored text is a fixed point, and the descriptor in base64 stores the same.
    assert_eq!(parse(&stored, &[]).unwrap().1, stored);
    assert_eq!(parse(&serialized(&parsed), &[]).unwrap().1, stored);
}

#[test]
fn options_reserved_and_proto2_survive_rendering() {
    let text = r#"syntax = "proto2";
package q;
option java_package = "com.example";
option optimize_for = SPEED;
message M {
  required string a = 1 [default = "x\"y"];
  optional int32 b = 2 [deprecated = true, json_name = "bee"];
  repeated int32 c = 3 [packed = true];
  extensions 100 to max;
  reserved 5, 8 to 10;
  reserved "old";
}
enum E { option allow_alias = true; A = 0; B = 0; reserved 3 to 4; }
service S { rpc Get (M) returns (stream M); }
extend M { optional string note = 100; }
"#;
    let (_, stored) = parse(text, &[]).unwrap();
    let again = parse(&stored, &[]).unwrap();
    assert_eq!(again.1, stored);
    assert!(stored.contains("reserved 5, 8 to 10;"), "{stored}");
    assert!(stored.contains("json_name = \"bee\""), "{stored}");
    assert!(stored.contains("extensions 100 to max;"), "{stored}");
}

#[test]
fn invalid_schemas_and_imports() {
    assert!(parse("syntax = \"proto3\"; message M { strin a = 1; }", &[]).is_err());
    assert!(parse("message {", &[]).is_err());
    let missing = parse("syntax = \"proto3\"; import \"other.proto\";", &[]);
    assert!(missing.is_err());
    // Well-known types resolve without being registered.
    let wkt = "syntax = \"proto3\"; import \"google/protobuf/timestamp.proto\"; message M { google.protobuf.Timestamp t = 1; }";
    assert!(parse(wkt, &[]).is_ok());
    // A reference by its import path.
    let other = (
        "other.proto".to_owned(),
        "syntax = \"proto3\"; package o; message O { int32 v = 1; }".to_owned(),
    );
    let text = "syntax = \"proto3\"; import \"other.proto\"; message M { o.O o = 1; }";
    assert!(parse(text, std::slice::from_ref(&other)).is_ok());
}

#[test]
fn fields_added_removed_renamed_are_compatible() {
    let v1 = msg("string a = 1; int32 b = 2;");
    assert_eq!(
        changes(&v1, &msg("string a = 1; int32 b = 2; int64 c = 3;")),
        (vec!["FIELD_ADDED"], true)
    );
    assert_eq!(
        changes(&v1, &msg("string a = 1;")),
        (vec!["FIELD_REMOVED"], true)
    );
    assert_eq!(
        changes(&v1, &msg("string z = 1; int32 b = 2;")),
        (vec!["FIELD_NAME_CHANGED"], true)
    );
}

#[test]
fn scalar_groups() {
    let v1 = msg("int32 a = 1;");
    for same in ["uint32", "int64", "uint64", "bool"] {
        assert!(changes(&v1, &msg(&format!("{same} a = 1;"))).1, "{same}");
    }
    for other in ["sint32", "fixed32", "string", "double", "float", "sfixed64"] {
        assert_eq!(
            changes(&v1, &msg(&format!("{other} a = 1;"))),
            (vec!["FIELD_SCALAR_KIND_CHANGED"], false),
            "{other}"
        );
    }
    assert!(changes(&msg("string a = 1;"), &msg("bytes a = 1;")).1);
    assert!(changes(&msg("sint32 a = 1;"), &msg("sint64 a = 1;")).1);
    assert!(changes(&msg("fixed32 a = 1;"), &msg("sfixed32 a = 1;")).1);
    assert!(changes(&msg("fixed64 a = 1;"), &msg("sfixed64 a = 1;")).1);
    // An enum reads as a varint number.
    assert!(changes(&msg("int32 a = 1;"), &msg("E a = 1; enum E { Z = 0; }")).1);
}

#[test]
fn kinds_named_types_and_maps() {
    let with_n = |ty: &str| {
        msg(&format!(
            "{ty} a = 1; message N {{ int32 v = 1; }} message K {{ int32 v = 1; }}"
        ))
    };
    assert_eq!(
        changes(&with_n("int32"), &with_n("N")),
        (vec!["FIELD_KIND_CHANGED"], false)
    );
    assert_eq!(
        changes(&with_n("N"), &with_n("K")),
        (vec!["FIELD_NAMED_TYPE_CHANGED"], false)
    );
    assert_eq!(
        changes(
            &msg("map<string, int32> a = 1;"),
            &msg("map<string, string> a = 1;")
        ),
        (vec!["FIELD_SCALAR_KIND_CHANGED"], false)
    );
    assert!(
        changes(
            &msg("map<string, int32> a = 1;"),
            &msg("map<string, int64> a = 1;")
        )
        .1
    );
    assert_eq!(
        changes(
            &msg("map<string, int32> a = 1;"),
            &msg("repeated int32 a = 1;")
        ),
        (vec!["FIELD_KIND_CHANGED"], false)
    );
}

#[test]
fn messages_package_and_required() {
    let two = "syntax = \"proto3\";\npackage p;\nmessage A { int32 v = 1; }\nmessage B { int32 v = 1; }\n";
    let one = "syntax = \"proto3\";\npackage p;\nmessage A { int32 v = 1; }\n";
    let swapped = "syntax = \"proto3\";\npackage p;\nmessage B { int32 v = 1; }\nmessage A { int32 v = 1; }\n";
    assert_eq!(changes(two, one), (vec!["MESSAGE_REMOVED"], false));
    assert_eq!(changes(one, two), (vec!["MESSAGE_ADDED"], true));
    assert_eq!(
        changes(two, swapped),
        (vec!["MESSAGE_MOVED", "MESSAGE_MOVED"], true)
    );
    assert_eq!(
        changes(one, &one.replace("package p", "package q")),
        (vec!["PACKAGE_CHANGED"], false)
    );
    let p2 = |body: &str| format!("syntax = \"proto2\";\nmessage M {{ {body} }}");
    assert_eq!(
        changes(
            &p2("optional int32 a = 1;"),
            &p2("optional int32 a = 1; required int32 b = 2;")
        ),
        (vec!["REQUIRED_FIELD_ADDED"], false)
    );
    assert_eq!(
        changes(
            &p2("optional int32 a = 1; required int32 b = 2;"),
            &p2("optional int32 a = 1;")
        ),
        (vec!["REQUIRED_FIELD_REMOVED"], false)
    );
}

#[test]
fn oneofs() {
    let flat = msg("string a = 1; string b = 2;");
    assert_eq!(
        changes(&flat, &msg("oneof o { string a = 1; } string b = 2;")),
        (vec!["ONEOF_ADDED"], true)
    );
    assert_eq!(
        changes(&flat, &msg("oneof o { string a = 1; string b = 2; }")),
        (vec!["MULTIPLE_FIELDS_MOVED_TO_ONEOF", "ONEOF_ADDED"], false)
    );
    let one = msg("string a = 1; oneof o { string b = 2; }");
    assert_eq!(
        changes(&one, &msg("oneof o { string a = 1; string b = 2; }")),
        (
            vec!["FIELD_MOVED_TO_EXISTING_ONEOF", "ONEOF_FIELD_ADDED"],
            false
        )
    );
    assert_eq!(
        changes(
            &one,
            &msg("string a = 1; oneof o { string b = 2; int32 c = 3; }")
        ),
        (vec!["ONEOF_FIELD_ADDED"], true)
    );
    let two = msg("oneof o { string a = 1; string b = 2; }");
    assert_eq!(
        changes(&two, &msg("oneof o { string a = 1; }")),
        (vec!["ONEOF_FIELD_REMOVED"], false)
    );
    // Out of the oneof but still there: moved, not removed.
    assert!(changes(&two, &msg("string b = 2; oneof o { string a = 1; }")).1);
    // proto3 `optional` is no oneof.
    assert!(changes(&msg("string a = 1;"), &msg("optional string a = 1;")).1);
}

#[test]
fn enums_change_compatibly_and_messages_nest() {
    let e = |body: &str| format!("syntax = \"proto3\";\nenum E {{ {body} }}\n");
    assert_eq!(
        changes(&e("A = 0; B = 1;"), &e("A = 0;")),
        (vec!["ENUM_CONST_REMOVED"], true)
    );
    assert_eq!(
        changes(&e("A = 0;"), &e("A = 0; B = 1;")),
        (vec!["ENUM_CONST_ADDED"], true)
    );
    assert_eq!(
        changes(&e("A = 0;"), &e("Z = 0;")),
        (vec!["ENUM_CONST_CHANGED"], true)
    );
    let nested = |ty: &str| msg(&format!("N n = 1; message N {{ {ty} v = 1; }}"));
    let (o, u) = (schema(&nested("int32")), schema(&nested("string")));
    assert_eq!(
        incompatibilities(&u, &o),
        vec!["Difference{fullPath='#/M/N/1', type=FIELD_SCALAR_KIND_CHANGED}"]
    );
}

#[test]
fn imported_messages_are_compared_by_content() {
    let other = |ty: &str| {
        vec![(
            "o.proto".to_owned(),
            format!("syntax = \"proto3\"; package o; message O {{ {ty} v = 1; }}"),
        )]
    };
    let text = "syntax = \"proto3\"; import \"o.proto\"; message M { o.O o = 1; }";
    let old = parse(text, &other("int32")).unwrap().0;
    let same = parse(text, &other("int64")).unwrap().0;
    let changed = parse(text, &other("string")).unwrap().0;
    assert!(incompatibilities(&same, &old).is_empty());
    let found = incompatibilities(&changed, &old);
    assert_eq!(
        found,
        vec![
            "Difference{fullPath='#/O/1', type=FIELD_SCALAR_KIND_CHANGED}",
            "Difference{fullPath='#/M/1', type=FIELD_NAMED_TYPE_CHANGED}",
        ]
    );
}

#[test]
fn recursive_messages_end() {
    let tree = msg("repeated M children = 1; string v = 2;");
    assert_eq!(changes(&tree, &tree), (vec![], true));
}

#[test]
fn what_the_renderer_does_not_write_is_kept_as_sent() {
    let group =
        "syntax = \"proto2\";\nmessage M {\n  optional group G = 1 { optional int32 v = 2; }\n}\n";
    assert_eq!(parse(group, &[]).unwrap().1, group);
    let custom = "syntax = \"proto3\";\nimport \"google/protobuf/descriptor.proto\";\nextend google.protobuf.FieldOptions { string tag = 50000; }\nmessage M { string a = 1 [(tag) = \"x\"]; }\n";
    assert_eq!(parse(custom, &[]).unwrap().1, custom);
}

#[test]
fn errors_say_where() {
    let err = parse(
        "syntax = \"proto3\";\nmessage M {\n  strin a = 1;\n}\n",
        &[],
    )
    .err()
    .unwrap();
    assert!(err.starts_with("3:3: "), "{err}");
    let err = parse("syntax = \"proto3\";\nmessage M { string a = ; }\n", &[])
        .err()
        .unwrap();
    assert!(err.starts_with("2:24: "), "{err}");
}
