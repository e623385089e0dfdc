//! WeCom XML in and out: envelope and message parsing into flat `Path.To.Field → text` pairs
//! (DOCTYPE and entity declarations rejected), and the passive-reply writers.
//!
//! Platform code only: nothing here knows about channels, storage or HTTP.

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

/// Why an XML or JSON payload was refused.
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
}

/// A message flattened to `(path, text)` pairs in document order. Paths join element names
/// below the root with `.` (`Text.Content`, `MemChangeList.Item`); JSON keys the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pairs: Vec<(String, String)>,
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

    pub fn push(&mut self, path: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((path.into(), value.into()));
    }
}

/// Parses an XML document into [`Fields`]. Rejects DOCTYPE (and with it entity declarations).
pub fn parse_xml(input: &[u8]) -> Result<Fields, ParseError> {
    // Reading from the slice borrows names and text from the input instead of copying each
    // event into a buffer; the path of the open elements is kept as one growing string.
    let mut reader = Reader::from_reader(input);
    reader.config_mut().trim_text(false);
    let mut fields = Fields::default();
    // Open elements below the root joined by `.`, each followed by a `.`.
    let mut path = String::new();
    // For each open element (the root first), the length of `path` before it was entered.
    let mut open: Vec<usize> = Vec::new();
    let mut text = String::new();
    let mut saw_root = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| ParseError::Xml(e.to_string()))?;
        match event {
            XmlEvent::DocType(_) => return Err(ParseError::Doctype),
            XmlEvent::Start(start) => {
                if open.is_empty() {
                    if saw_root {
                        return Err(ParseError::Xml("more than one root element".into()));
                    }
                    saw_root = true;
                    // The root (`xml`) is not part of the paths.
                    open.push(0);
                } else {
                    open.push(path.len());
                    push_utf8(&mut path, start.local_name().as_ref());
                    path.push('.');
                }
                text.clear();
            }
            XmlEvent::Empty(start) => {
                if open.is_empty() {
                    saw_root = true;
                    continue;
                }
                let mut own = path.clone();
                push_utf8(&mut own, start.local_name().as_ref());
                fields.push(own, String::new());
            }
            XmlEvent::Text(t) => {
                let unescaped = t.unescape().map_err(|e| ParseError::Xml(e.to_string()))?;
                text.push_str(&unescaped);
            }
            XmlEvent::CData(c) => {
                push_utf8(&mut text, &c);
            }
            XmlEvent::End(_) => {
                let Some(before) = open.pop() else {
                    return Err(ParseError::Xml("unbalanced end tag".into()));
                };
                if !open.is_empty() {
                    // Without the trailing `.`.
                    let own = &path[..path.len() - 1];
                    fields.push(own, std::mem::take(&mut text));
                    path.truncate(before);
                }
                text.clear();
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err(ParseError::Xml("unexpected end of document".into()));
    }
    if !saw_root {
        return Err(ParseError::Xml("no root element".into()));
    }
    // Parent elements get an entry too (their own text, usually whitespace); leaves are what
    // callers ask for.
    Ok(fields)
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
/// numbers kept as their literal text so 64-bit ids survive).
pub fn parse_json(input: &[u8]) -> Result<Fields, ParseError> {
    let value: serde_json::Value =
        serde_json::from_slice(input).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Json("top level is not an object".into()));
    }
    let mut fields = Fields::default();
    flatten_json("", &value, &mut fields);
    Ok(fields)
}

fn flatten_json(path: &str, value: &serde_json::Value, out: &mut Fields) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten_json(&child, v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| flatten_json(path, v, out)),
        Value::String(s) => out.push(path, s.as_str()),
        Value::Number(n) => out.push(path, n.to_string()),
        Value::Bool(b) => out.push(path, b.to_string()),
        Value::Null => {}
    }
}

/// Parses XML or JSON by the first non-space byte.
pub fn parse_any(input: &[u8]) -> Result<Fields, ParseError> {
    match input.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => parse_xml(input),
        Some(b'{') => parse_json(input),
        _ => Err(ParseError::UnknownFormat),
    }
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
mod tests {
    use super::*;

    #[test]
    fn parses_flat_message_with_cdata_and_plain_text() {
        let xml = b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><CreateTime>1476422779</CreateTime><Content><![CDATA[a < b ]]]]><![CDATA[> c]]></Content><MsgId>1456453720</MsgId></xml>";
        let f = parse_xml(xml).expect("parse");
        assert_eq!(f.get("ToUserName"), Some("ww1"));
        assert_eq!(f.get("CreateTime"), Some("1476422779"));
        assert_eq!(f.get("Content"), Some("a < b ]]> c"));
        assert_eq!(f.get("MsgId"), Some("1456453720"));
    }

    #[test]
    fn nested_and_repeated_elements() {
        let xml = b"<xml><From><UserId>u1</UserId><Name>\xe5\xbc\xa0</Name></From><MemChangeList><Item>a</Item><Item>b</Item></MemChangeList></xml >";
        let f = parse_xml(xml).expect("parse");
        assert_eq!(f.get("From.UserId"), Some("u1"));
        assert_eq!(f.get("From.Name"), Some("张"));
        assert_eq!(
            f.all("MemChangeList.Item").collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn paths_return_to_the_parent_after_nested_and_empty_elements() {
        let xml = b"<xml><A><B>1</B><C><D>2</D><Gone/></C><E>3</E></A><F/><G>4&amp;5</G></xml>";
        let f = parse_xml(xml).expect("parse");
        let leaves: Vec<(&str, &str)> = f
            .pairs()
            .iter()
            .map(|(p, v)| (p.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            leaves,
            vec![
                ("A.B", "1"),
                ("A.C.D", "2"),
                ("A.C.Gone", ""),
                ("A.C", ""),
                ("A.E", "3"),
                ("A", ""),
                ("F", ""),
                ("G", "4&5"),
            ]
        );
    }

    #[test]
    fn invalid_utf8_in_cdata_becomes_the_replacement_character() {
        let xml = b"<xml><Content><![CDATA[ok \xe5\xbc \xff end]]></Content><B><![CDATA[\xe5\xbc\xa0]]></B></xml>";
        let f = parse_xml(xml).expect("parse");
        assert_eq!(f.get("Content"), Some("ok \u{fffd} \u{fffd} end"));
        assert_eq!(f.get("B"), Some("张"));
    }

    #[test]
    fn doctype_is_rejected() {
        let xml = b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><xml><A>&a;</A></xml>";
        assert_eq!(parse_xml(xml), Err(ParseError::Doctype));
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        for bad in [
            &b"<xml><A>1</B></xml>"[..],
            b"<xml><A>",
            b"",
            b"<xml></xml><xml></xml>",
            b"<xml><A>&bogus;</A></xml>",
        ] {
            assert!(
                parse_xml(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn json_flattening_keeps_big_numbers_exact() {
        let f = parse_json(br#"{"MsgId": 4561255354251345929, "from": {"userid": "u"}, "items": [{"t": "x"}, {"t": "y"}]}"#).expect("json");
        assert_eq!(f.get("MsgId"), Some("4561255354251345929"));
        assert_eq!(f.get("from.userid"), Some("u"));
        assert_eq!(f.all("items.t").collect::<Vec<_>>(), vec!["x", "y"]);
    }

    #[test]
    fn replies_round_trip_through_the_parser() {
        let reply = text_reply("user", "corp", 5, "你好 ]]> 世界");
        let f = parse_xml(reply.as_bytes()).expect("parse");
        assert_eq!(f.get("Content"), Some("你好 ]]> 世界"));
        assert_eq!(f.get("ToUserName"), Some("user"));
        let robot = robot_text_reply("hi", &["u1".to_owned()]);
        let f = parse_xml(robot.as_bytes()).expect("parse");
        assert_eq!(f.get("Text.Content"), Some("hi"));
        assert_eq!(f.get("Text.MentionedList.Item"), Some("u1"));
        let env = encrypted_reply_envelope("abc", "sig", "1", "n");
        let f = parse_xml(env.as_bytes()).expect("parse");
        assert_eq!(f.get("TimeStamp"), Some("1"));
        assert_eq!(f.get("MsgSignature"), Some("sig"));
    }
}
