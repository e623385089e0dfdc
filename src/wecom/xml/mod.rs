//! WeCom XML in and out: envelope and message parsing into flat `Path.To.Field → text` pairs
//! (DOCTYPE and entity declarations rejected), and the passive-reply writers.
//!
//! Platform code only: nothing here knows about channels, storage or HTTP.

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

/// Deepest element nesting accepted (WeCom's deepest documented payload nests four levels).
pub const MAX_DEPTH: usize = 32;
/// Most elements (or JSON values) in one payload.
pub const MAX_FIELDS: usize = 4096;
/// Longest element path (`A.B.C`) in bytes.
pub const MAX_PATH_BYTES: usize = 512;
/// Longest detail of a parse error, in characters: the rest is cut off.
pub const MAX_DETAIL_CHARS: usize = 120;

/// Why an XML or JSON payload was refused. Details quote the input only through [`clean`], so
/// an attacker's element names cannot put control characters into logs or answers.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("XML with a DOCTYPE is not accepted")]
    Doctype,
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("payload is neither XML nor JSON")]
    UnknownFormat,
    #[error("payload nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("payload has more than {MAX_FIELDS} elements")]
    TooManyFields,
    #[error("field {field} is too long ({len} bytes, at most {max})")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("field {0} contains a NUL character")]
    Nul(&'static str),
}

/// Error text safe to log and to answer: control characters escaped, at most
/// [`MAX_DETAIL_CHARS`] characters.
pub fn clean(detail: &str) -> String {
    let mut out = String::new();
    for (i, c) in detail.chars().enumerate() {
        if i == MAX_DETAIL_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn xml_error(e: impl std::fmt::Display) -> ParseError {
    ParseError::Xml(clean(&e.to_string()))
}

fn json_error(e: impl std::fmt::Display) -> ParseError {
    ParseError::Json(clean(&e.to_string()))
}

/// A message flattened to `(path, text)` pairs in document order. Paths join element names
/// below the root with `.` (`Text.Content`, `MemChangeList.Item`); JSON keys the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pairs: Vec<(String, String)>,
    json: bool,
}

impl Fields {
    /// The first value at `path`.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }

    /// The first value at any of `paths` (XML and JSON spell the same field differently).
    pub fn get_any(&self, paths: &[&str]) -> Option<&str> {
        paths.iter().find_map(|p| self.get(p))
    }

    /// A present, non-empty value.
    pub fn non_empty(&self, paths: &[&str]) -> Option<&str> {
        self.get_any(paths).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value at `path`, in order.
    pub fn all<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Adds a pair. NUL characters are dropped from the value: no platform sends them, and
    /// PostgreSQL refuses them in text.
    pub fn push(&mut self, path: impl Into<String>, value: impl Into<String>) {
        let mut value = value.into();
        if value.contains('\0') {
            value.retain(|c| c != '\0');
        }
        self.pairs.push((path.into(), value));
    }

    /// Whether the payload was JSON (its documented field names are lowercase).
    pub fn is_json(&self) -> bool {
        self.json
    }
}

/// Parses an XML document into [`Fields`]. Rejects DOCTYPE (and with it entity declarations),
/// nesting past [`MAX_DEPTH`], more than [`MAX_FIELDS`] elements and paths past
/// [`MAX_PATH_BYTES`], so the work is linear in the input.
pub fn parse_xml(input: &[u8]) -> Result<Fields, ParseError> {
    // Reading from the slice borrows names and text from the input instead of copying each
    // event into a buffer.
    let mut reader = Reader::from_reader(input);
    reader.config_mut().trim_text(false);
    let mut walk = XmlWalk::default();
    loop {
        let event = reader.read_event().map_err(xml_error)?;
        if walk.fields.pairs.len() > MAX_FIELDS {
            return Err(ParseError::TooManyFields);
        }
        match event {
            XmlEvent::DocType(_) => return Err(ParseError::Doctype),
            XmlEvent::Start(start) => walk.enter(start.local_name().as_ref())?,
            XmlEvent::Empty(start) => walk.empty(start.local_name().as_ref())?,
            XmlEvent::Text(t) => walk.text.push_str(&t.unescape().map_err(xml_error)?),
            XmlEvent::CData(c) => push_utf8(&mut walk.text, &c),
            XmlEvent::End(_) => walk.leave()?,
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    if !walk.open.is_empty() {
        return Err(ParseError::Xml("unexpected end of document".into()));
    }
    if !walk.saw_root {
        return Err(ParseError::Xml("no root element".into()));
    }
    // Parent elements get an entry too (their own text, usually whitespace); leaves are what
    // callers ask for.
    Ok(walk.fields)
}

/// Where [`parse_xml`] stands: the fields so far and the path of the open elements, kept as
/// one growing string.
#[derive(Default)]
struct XmlWalk {
    fields: Fields,
    /// Open elements below the root joined by `.`, each followed by a `.`.
    path: String,
    /// For each open element (the root first), the length of `path` before it was entered.
    open: Vec<usize>,
    text: String,
    saw_root: bool,
}

impl XmlWalk {
    fn enter(&mut self, name: &[u8]) -> Result<(), ParseError> {
        if self.open.is_empty() {
            if self.saw_root {
                return Err(ParseError::Xml("more than one root element".into()));
            }
            self.saw_root = true;
            // The root (`xml`) is not part of the paths.
            self.open.push(0);
        } else {
            if self.open.len() > MAX_DEPTH {
                return Err(ParseError::TooDeep);
            }
            self.open.push(self.path.len());
            push_utf8(&mut self.path, name);
            self.path.push('.');
            if self.path.len() > MAX_PATH_BYTES {
                return Err(ParseError::Xml("element path too long".into()));
            }
        }
        self.text.clear();
        Ok(())
    }

    fn empty(&mut self, name: &[u8]) -> Result<(), ParseError> {
        if self.open.is_empty() {
            self.saw_root = true;
            return Ok(());
        }
        let mut own = self.path.clone();
        push_utf8(&mut own, name);
        if own.len() > MAX_PATH_BYTES {
            return Err(ParseError::Xml("element path too long".into()));
        }
        self.fields.push(own, String::new());
        Ok(())
    }

    fn leave(&mut self) -> Result<(), ParseError> {
        let Some(before) = self.open.pop() else {
            return Err(ParseError::Xml("unbalanced end tag".into()));
        };
        if !self.open.is_empty() {
            // Without the trailing `.`.
            let own = &self.path[..self.path.len() - 1];
            self.fields.push(own, std::mem::take(&mut self.text));
            self.path.truncate(before);
        }
        self.text.clear();
        Ok(())
    }
}

/// Appends `bytes` as text; invalid UTF-8 becomes U+FFFD. The strict check goes first because it
/// is several times faster than the lossy decoder on valid input (the 1.3 KB `Encrypt` value and
/// the message text: a fifth of a callback's parse time went to the lossy decoder).
fn push_utf8(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(valid) => out.push_str(valid),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// Parses a JSON object into [`Fields`] (nested objects joined with `.`, arrays repeat the path,
/// numbers kept as their literal text so 64-bit ids survive). The same bounds as XML apply
/// (serde_json itself stops at 128 levels).
pub fn parse_json(input: &[u8]) -> Result<Fields, ParseError> {
    let value: serde_json::Value = serde_json::from_slice(input).map_err(json_error)?;
    if !value.is_object() {
        return Err(ParseError::Json("top level is not an object".into()));
    }
    let mut fields = Fields {
        json: true,
        ..Fields::default()
    };
    flatten_json("", &value, 0, &mut fields)?;
    Ok(fields)
}

fn flatten_json(
    path: &str,
    value: &serde_json::Value,
    depth: usize,
    out: &mut Fields,
) -> Result<(), ParseError> {
    use serde_json::Value;
    if depth > MAX_DEPTH {
        return Err(ParseError::TooDeep);
    }
    if out.pairs.len() > MAX_FIELDS {
        return Err(ParseError::TooManyFields);
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if child.len() > MAX_PATH_BYTES {
                    return Err(ParseError::Json("key path too long".into()));
                }
                flatten_json(&child, v, depth + 1, out)?;
            }
        }
        Value::Array(items) => {
            for v in items {
                flatten_json(path, v, depth + 1, out)?;
            }
        }
        Value::String(s) => out.push(path, s.as_str()),
        Value::Number(n) => out.push(path, n.to_string()),
        Value::Bool(b) => out.push(path, b.to_string()),
        Value::Null => {}
    }
    Ok(())
}

/// Parses XML or JSON by the first non-space byte.
pub fn parse_any(input: &[u8]) -> Result<Fields, ParseError> {
    match input.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => parse_xml(input),
        Some(b'{') => parse_json(input),
        _ => Err(ParseError::UnknownFormat),
    }
}

/// The ciphertext of an encrypted envelope, found without parsing the rest of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The `Encrypt` value, trimmed: what the signature covers.
    pub encrypt: String,
    /// Whether the envelope was JSON (the reply then goes back as JSON too).
    pub json: bool,
}

#[derive(serde::Deserialize)]
struct JsonEnvelope {
    #[serde(alias = "Encrypt")]
    encrypt: String,
}

/// Takes `Encrypt` out of an envelope with a bounded scan (XML: the first `<Encrypt>` element,
/// as text or CDATA; JSON: the `encrypt` key), so nothing an unauthenticated sender wrote is
/// parsed before the signature over that value is checked.
pub fn envelope_encrypt(body: &[u8]) -> Result<Envelope, ParseError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => {
            if find(body, b"<!DOCTYPE").is_some() {
                return Err(ParseError::Doctype);
            }
            Ok(Envelope {
                encrypt: xml_encrypt(body)?,
                json: false,
            })
        }
        Some(b'{') => {
            let envelope: JsonEnvelope = serde_json::from_slice(body).map_err(json_error)?;
            Ok(Envelope {
                encrypt: envelope.encrypt.trim().to_owned(),
                json: true,
            })
        }
        _ => Err(ParseError::UnknownFormat),
    }
}

fn xml_encrypt(body: &[u8]) -> Result<String, ParseError> {
    const OPEN: &[u8] = b"<Encrypt>";
    const CLOSE: &[u8] = b"</Encrypt>";
    const CDATA_OPEN: &[u8] = b"<![CDATA[";
    const CDATA_CLOSE: &[u8] = b"]]>";
    let start = find(body, OPEN).ok_or(ParseError::Missing("Encrypt"))? + OPEN.len();
    let rest = trim_start(&body[start..]);
    let (value, after) = if let Some(inner) = rest.strip_prefix(CDATA_OPEN) {
        let end = find(inner, CDATA_CLOSE)
            .ok_or_else(|| ParseError::Xml("unterminated CDATA in Encrypt".into()))?;
        (&inner[..end], trim_start(&inner[end + CDATA_CLOSE.len()..]))
    } else {
        let end = rest.iter().position(|&b| b == b'<').unwrap_or(rest.len());
        (&rest[..end], &rest[end..])
    };
    if !after.starts_with(CLOSE) {
        return Err(ParseError::Xml(
            "Encrypt is not closed by </Encrypt>".into(),
        ));
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| ParseError::Xml("Encrypt is not UTF-8 text".into()))?;
    let text = quick_xml::escape::unescape(text).map_err(xml_error)?;
    Ok(text.trim().to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &bytes[skip..]
}

/// Wraps text in CDATA, splitting any `]]>` so the content cannot close the section early.
pub fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// The encrypted passive-reply envelope (doc 91144; note `TimeStamp` with a capital S).
pub fn encrypted_reply_envelope(
    encrypt: &str,
    signature: &str,
    timestamp: &str,
    nonce: &str,
) -> String {
    format!(
        "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature><TimeStamp>{}</TimeStamp><Nonce>{}</Nonce></xml>",
        cdata(encrypt),
        cdata(signature),
        timestamp,
        cdata(nonce)
    )
}

/// Inner text reply for an app or Official Account message (`ToUserName` = the sender).
pub fn text_reply(to_user: &str, from_user: &str, create_time: i64, content: &str) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime><MsgType>{}</MsgType><Content>{}</Content></xml>",
        cdata(to_user),
        cdata(from_user),
        create_time,
        cdata("text"),
        cdata(content)
    )
}

/// Inner text reply for a group-robot callback, optionally @-mentioning users.
pub fn robot_text_reply(content: &str, mentioned: &[String]) -> String {
    let mut out = format!(
        "<xml><MsgType>{}</MsgType><Text><Content>{}</Content>",
        cdata("text"),
        cdata(content)
    );
    if !mentioned.is_empty() {
        out.push_str("<MentionedList>");
        for m in mentioned {
            out.push_str("<Item>");
            out.push_str(&cdata(m));
            out.push_str("</Item>");
        }
        out.push_str("</MentionedList>");
    }
    out.push_str("</Text></xml>");
    out
}

#[cfg(test)]
mod tests;
