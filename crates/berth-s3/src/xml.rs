//! S3's XML: a writer for response documents and a small element tree for the few request
//! bodies S3 reads (CreateBucketConfiguration, Delete).

use quick_xml::events::Event;
use quick_xml::Reader;

pub const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// A response document being written.
pub struct Writer {
    out: String,
}

impl Writer {
    /// A document whose root element carries S3's namespace.
    pub fn new(root: &str) -> Self {
        let mut out = String::with_capacity(512);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        out.push_str(root);
        out.push_str(" xmlns=\"");
        out.push_str(NAMESPACE);
        out.push_str("\">");
        Writer { out }
    }
    /// A document whose root element has no namespace (errors).
    pub fn bare(root: &str) -> Self {
        Writer {
            out: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root}>"),
        }
    }
    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self
    }
    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }
    pub fn elem(&mut self, tag: &str, text: &str) -> &mut Self {
        self.open(tag);
        escape(text, &mut self.out);
        self.close(tag)
    }
    pub fn finish(mut self, root: &str) -> Vec<u8> {
        self.close(root);
        self.out.into_bytes()
    }
}

/// Text as XML character data (the wire layer's escaping, shared with awsQuery).
pub use berth_wire::query::escape;

/// A parsed element: its local name, text and child elements.
#[derive(Debug, Default)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parse a whole document into its root element; None if it is not well-formed.
pub fn parse(body: &[u8]) -> Option<Element> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = vec![];
    let mut root = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => stack.push(Element {
                name: String::from_utf8(e.local_name().as_ref().to_vec()).ok()?,
                ..Default::default()
            }),
            Event::Empty(e) => {
                let el = Element {
                    name: String::from_utf8(e.local_name().as_ref().to_vec()).ok()?,
                    ..Default::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return None,
                }
            }
            Event::End(e) => {
                let el = stack.pop()?;
                if e.local_name().as_ref() != el.name.as_bytes() {
                    return None;
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return None,
                }
            }
            Event::Text(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&t.decode().ok()?);
                } else if !t.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
            }
            Event::GeneralRef(r) => {
                let el = stack.last_mut()?;
                let name = std::str::from_utf8(r.as_ref()).ok()?;
                el.text.push(resolve_entity(name)?);
            }
            Event::CData(c) => {
                stack
                    .last_mut()?
                    .text
                    .push_str(std::str::from_utf8(c.as_ref()).ok()?);
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions, doctype: nothing to keep.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return None;
    }
    root
}

/// `amp`, `#x41;`-style references and the other predefined entities.
fn resolve_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        n => {
            let code = if let Some(hex) = n.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()?
            } else {
                n.strip_prefix('#')?.parse().ok()?
            };
            char::from_u32(code)
        }
    }
}
