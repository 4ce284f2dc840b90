//! A response as a tree of named fields, read back from its pretty `Debug` text, so any
//! `kafka-protocol` message can be normalised and compared field by field without a
//! hand-written walker per message type.

use std::fmt::Debug;

/// One value of a response. Struct type names are dropped: both sides are the same type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Any scalar, as `Debug` prints it (`3`, `"name"`, `None`, `Some("x")`, `b"..."`).
    Leaf(String),
    Seq(Vec<Node>),
    /// Struct fields, or map entries, in printed order.
    Fields(Vec<(String, Node)>),
}

impl Node {
    pub fn of<T: Debug>(value: &T) -> Node {
        let text = format!("{value:#?}");
        let mut lines = text.lines().map(str::trim).peekable();
        let first = lines.next().unwrap_or("");
        parse_value(first, &mut lines)
    }

    pub fn leaf(text: impl Into<String>) -> Node {
        Node::Leaf(text.into())
    }

    pub fn field(&self, name: &str) -> Option<&Node> {
        match self {
            Node::Fields(fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_leaf(&self) -> Option<&str> {
        match self {
            Node::Leaf(s) => Some(s),
            _ => None,
        }
    }

    /// One line, for reports and allow-list entries; long values are cut.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        self.write_compact(&mut out);
        if out.len() > 200 {
            let mut cut = 200;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str("...");
        }
        out
    }

    fn write_compact(&self, out: &mut String) {
        match self {
            Node::Leaf(s) => out.push_str(s),
            Node::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_compact(out);
                }
                out.push(']');
            }
            Node::Fields(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push_str(": ");
                    v.write_compact(out);
                }
                out.push('}');
            }
        }
    }
}

/// Parses the value that starts on `first` (already trimmed, key removed); consumes the
/// lines of its children and its closing line.
fn parse_value<'a>(first: &str, lines: &mut impl Iterator<Item = &'a str>) -> Node {
    let first = first.strip_suffix(',').unwrap_or(first);
    if first.ends_with('{') {
        let mut fields = Vec::new();
        while let Some(line) = lines.next() {
            if is_close(line, '}') {
                break;
            }
            let (key, rest) = split_key(line);
            fields.push((key, parse_value(rest, lines)));
        }
        Node::Fields(fields)
    } else if first.ends_with('[') {
        let mut items = Vec::new();
        while let Some(line) = lines.next() {
            if is_close(line, ']') {
                break;
            }
            items.push(parse_value(line, lines));
        }
        Node::Seq(items)
    } else if let Some(name) = first.strip_suffix('(') {
        // Tuple structs and Option: `Some(x)`, `TopicName("t")`, `BrokerId(1)`. A wrapper of
        // one scalar prints as that scalar (with `Some` kept, so None vs Some still differs);
        // a wrapper of a struct is transparent.
        let mut inner = Vec::new();
        while let Some(line) = lines.next() {
            if is_close(line, ')') {
                break;
            }
            inner.push(parse_value(line, lines));
        }
        match (name, inner.len()) {
            (_, 1) => match inner.pop().expect("one") {
                Node::Leaf(s) if name == "Some" => Node::Leaf(format!("Some({s})")),
                Node::Leaf(s) => Node::Leaf(s),
                other => other,
            },
            _ => Node::Seq(inner),
        }
    } else {
        Node::Leaf(first.to_owned())
    }
}

fn is_close(line: &str, bracket: char) -> bool {
    line.strip_suffix(',').unwrap_or(line) == bracket.to_string()
}

/// `name: value` of a struct field or map entry. Field names never contain `": "`; map
/// keys here are numbers or quoted strings, so the first `": "` after a closing quote ends them.
fn split_key(line: &str) -> (String, &str) {
    let split_at = if let Some(quoted) = line.strip_prefix('"') {
        quoted.find("\": ").map(|i| i + 2)
    } else {
        line.find(": ")
    };
    match split_at {
        Some(at) => (line[..at].to_owned(), &line[at + 2..]),
        None => (String::new(), line),
    }
}

/// One field that differs: where, and what each broker said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub samsa: String,
    pub kafka: String,
}

/// Every leaf-level difference between two trees, with readable paths
/// (`responses[0].partition_responses[1].error_code`).
pub fn diff(samsa: &Node, kafka: &Node) -> Vec<Difference> {
    let mut out = Vec::new();
    walk(samsa, kafka, String::new(), &mut out);
    out
}

const ABSENT: &str = "<absent>";

fn walk(s: &Node, k: &Node, path: String, out: &mut Vec<Difference>) {
    let join = |key: &str| {
        if path.is_empty() || key.starts_with('[') {
            format!("{path}{key}")
        } else {
            format!("{path}.{key}")
        }
    };
    match (s, k) {
        (Node::Fields(sf), Node::Fields(kf)) => {
            for (key, sv) in sf {
                match kf.iter().find(|(kk, _)| kk == key) {
                    Some((_, kv)) => walk(sv, kv, join(key), out),
                    None => out.push(Difference {
                        path: join(key),
                        samsa: sv.summary(),
                        kafka: ABSENT.into(),
                    }),
                }
            }
            for (key, kv) in kf {
                if !sf.iter().any(|(sk, _)| sk == key) {
                    out.push(Difference {
                        path: join(key),
                        samsa: ABSENT.into(),
                        kafka: kv.summary(),
                    });
                }
            }
        }
        (Node::Seq(si), Node::Seq(ki)) => {
            for i in 0..si.len().max(ki.len()) {
                let at = format!("{path}[{i}]");
                match (si.get(i), ki.get(i)) {
                    (Some(sv), Some(kv)) => walk(sv, kv, at, out),
                    (sv, kv) => out.push(Difference {
                        path: at,
                        samsa: sv.map_or(ABSENT.into(), Node::summary),
                        kafka: kv.map_or(ABSENT.into(), Node::summary),
                    }),
                }
            }
        }
        _ if s == k => {}
        _ => out.push(Difference {
            path: if path.is_empty() {
                "<response>".into()
            } else {
                path
            },
            samsa: s.summary(),
            kafka: k.summary(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)] // read through Debug
    #[derive(Debug)]
    struct Inner {
        code: i16,
        name: Option<String>,
    }
    #[allow(dead_code)] // read through Debug
    #[derive(Debug)]
    struct Outer {
        items: Vec<Inner>,
        empty: Vec<i32>,
        id: Option<i32>,
    }

    #[test]
    fn parses_and_diffs_nested_debug() {
        let a = Outer {
            items: vec![Inner {
                code: 0,
                name: Some("a: b".into()),
            }],
            empty: vec![],
            id: Some(1),
        };
        let b = Outer {
            items: vec![
                Inner {
                    code: 3,
                    name: Some("a: b".into()),
                },
                Inner {
                    code: 0,
                    name: None,
                },
            ],
            empty: vec![],
            id: None,
        };
        let d = diff(&Node::of(&a), &Node::of(&b));
        let paths: Vec<_> = d
            .iter()
            .map(|d| (d.path.as_str(), d.samsa.as_str(), d.kafka.as_str()))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("items[0].code", "0", "3"),
                ("items[1]", ABSENT, "{code: 0, name: None}"),
                ("id", "Some(1)", "None"),
            ]
        );
    }
}
