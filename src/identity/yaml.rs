//! A YAML document as a tree of nodes that remember where they stand in the file.
//!
//! serde stops at the first problem; an administrator fixing `identity.yaml` wants every problem
//! at once, each with its line and column. So the file is first read into this small tree (with
//! `granit-parser`, the pure-Rust parser under serde-saphyr), and validation walks the tree.

use std::collections::HashMap;
use std::fmt;

use granit_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Pos {
    fn of(span: &Span) -> Self {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
    /// The key this node is the value of, in its mapping (for messages).
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar as written; `plain` is false for quoted and block scalars.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; keys are scalars (other keys are reported while reading).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The YAML null: a plain empty scalar, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What the node is, for error messages: a scalar's own text (quoted, shortened), or its
    /// kind.
    pub fn found(&self) -> String {
        match &self.kind {
            _ if self.is_null() => "nothing".to_string(),
            NodeKind::Scalar { text, .. } => {
                let shown: String = text.chars().take(40).collect();
                format!("{shown:?}")
            }
            _ => self.kind_name().to_string(),
        }
    }

    /// A short name of the node's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            _ if self.is_null() => "nothing",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxProblem {
    pub pos: Pos,
    pub message: String,
}

/// Reads one YAML document. Structural problems that still leave a usable tree (a duplicate key,
/// a non-scalar key) are returned beside it; a syntax error returns no tree.
pub fn parse(source: &str) -> Result<(Option<Node>, Vec<SyntaxProblem>), SyntaxProblem> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxProblem {
            pos: Pos {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: format!("invalid YAML: {}", e.info()),
        })?;
        builder.event(event, &span)?;
    }
    Ok((builder.root, builder.problems))
}

enum Open {
    Seq(Pos, Vec<Node>, usize),
    Map(Pos, Vec<(Node, Node)>, Option<Node>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    problems: Vec<SyntaxProblem>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), SyntaxProblem> {
        let pos = Pos::of(span);
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(SyntaxProblem {
                        pos,
                        message: "only one YAML document is allowed".into(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, _) => {
                let node = Node {
                    pos,
                    kind: NodeKind::Scalar {
                        text: text.into_owned(),
                        plain: matches!(style, ScalarStyle::Plain),
                    },
                    key: None,
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(_, anchor, _) => {
                self.stack.push(Open::Seq(pos, Vec::new(), anchor))
            }
            Event::MappingStart(_, anchor, _) => {
                self.stack.push(Open::Map(pos, Vec::new(), None, anchor))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq(pos, items, anchor)) => (
                        Node {
                            pos,
                            kind: NodeKind::Seq(items),
                            key: None,
                        },
                        anchor,
                    ),
                    Some(Open::Map(pos, entries, _, anchor)) => (
                        Node {
                            pos,
                            kind: NodeKind::Map(entries),
                            key: None,
                        },
                        anchor,
                    ),
                    None => return Ok(()),
                };
                self.finish(node, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.pos = pos;
                    self.finish(node, 0);
                }
                None => {
                    return Err(SyntaxProblem {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                }
            },
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq(_, items, _)) => items.push(node),
            Some(Open::Map(_, entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    let Some(name) = key.as_scalar() else {
                        self.problems.push(SyntaxProblem {
                            pos: key.pos,
                            message: format!("a key must be a scalar, found {}", key.kind_name()),
                        });
                        return;
                    };
                    if let Some((first, _)) =
                        entries.iter().find(|(k, _)| k.as_scalar() == Some(name))
                    {
                        self.problems.push(SyntaxProblem {
                            pos: key.pos,
                            message: format!(
                                "duplicate key `{name}` (first at line {})",
                                first.pos.line
                            ),
                        });
                        return;
                    }
                    let mut node = node;
                    node.key = Some(name.to_string());
                    entries.push((key, node));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(source: &str) -> Node {
        match parse(source) {
            Ok((Some(node), problems)) if problems.is_empty() => node,
            other => unreachable!("unexpected parse result {other:?}"),
        }
    }

    #[test]
    fn nodes_carry_their_line_and_column() {
        let root = tree("a: 1\nb:\n  - x\n  - 'y'\n");
        let NodeKind::Map(entries) = root.kind else {
            unreachable!()
        };
        assert_eq!(entries[0].1.pos, Pos { line: 1, column: 4 });
        let NodeKind::Seq(items) = &entries[1].1.kind else {
            unreachable!()
        };
        assert_eq!(items[1].pos, Pos { line: 4, column: 5 });
        assert_eq!(
            items[1].kind,
            NodeKind::Scalar {
                text: "y".into(),
                plain: false
            }
        );
    }

    #[test]
    fn a_duplicate_key_is_reported_with_both_lines() {
        let Ok((_, problems)) = parse("a: 1\nb: 2\na: 3\n") else {
            unreachable!()
        };
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].pos, Pos { line: 3, column: 1 });
        assert!(problems[0].message.contains("first at line 1"));
    }

    #[test]
    fn a_syntax_error_has_a_position() {
        let Err(problem) = parse("a: [1, 2\nb: 3\n") else {
            unreachable!()
        };
        assert!(problem.pos.line >= 1);
        assert!(problem.message.starts_with("invalid YAML"));
    }

    #[test]
    fn aliases_are_resolved() {
        let root = tree("a: &x hello\nb: *x\n");
        let NodeKind::Map(entries) = root.kind else {
            unreachable!()
        };
        assert_eq!(entries[1].1.as_scalar(), Some("hello"));
    }
}
