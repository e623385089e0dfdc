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
fn the_envelope_scan_finds_encrypt_as_text_cdata_or_json() {
    let cdata = b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[ abc+/= ]]></Encrypt><AgentID>1</AgentID></xml>";
    assert_eq!(
        envelope_encrypt(cdata).expect("cdata"),
        Envelope {
            encrypt: "abc+/=".into(),
            json: false
        }
    );
    let text = b"  <xml><Encrypt>\n abc&#43;\n</Encrypt></xml>";
    assert_eq!(envelope_encrypt(text).expect("text").encrypt, "abc+");
    let json = br#"{"tousername":"x","encrypt":"abc\/d","agentid":1}"#;
    assert_eq!(
        envelope_encrypt(json).expect("json"),
        Envelope {
            encrypt: "abc/d".into(),
            json: true
        }
    );
}

#[test]
fn the_envelope_scan_refuses_what_it_cannot_take_apart() {
    for (bad, want) in [
        (&b"<xml><A>1</A></xml>"[..], ParseError::Missing("Encrypt")),
        (
            b"<xml><Encrypt><![CDATA[abc</Encrypt></xml>",
            ParseError::Xml("unterminated CDATA in Encrypt".into()),
        ),
        (
            b"<xml><Encrypt>abc<B/></Encrypt></xml>",
            ParseError::Xml("Encrypt is not closed by </Encrypt>".into()),
        ),
        (
            b"<!DOCTYPE x><xml><Encrypt>a</Encrypt></xml>",
            ParseError::Doctype,
        ),
        (b"garbage", ParseError::UnknownFormat),
    ] {
        assert_eq!(
            envelope_encrypt(bad),
            Err(want),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn deep_nesting_and_floods_of_elements_are_refused() {
    let deep = format!(
        "<xml>{}{}</xml>",
        "<a>".repeat(MAX_DEPTH + 1),
        "</a>".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(parse_xml(deep.as_bytes()), Err(ParseError::TooDeep));
    let ok = format!(
        "<xml>{}{}</xml>",
        "<a>".repeat(MAX_DEPTH),
        "</a>".repeat(MAX_DEPTH)
    );
    assert!(parse_xml(ok.as_bytes()).is_ok());
    let many = format!("<xml>{}</xml>", "<a/>".repeat(MAX_FIELDS + 2));
    assert_eq!(parse_xml(many.as_bytes()), Err(ParseError::TooManyFields));
    let long = format!("<xml><{0}>1</{0}></xml>", "n".repeat(MAX_PATH_BYTES + 1));
    assert!(matches!(
        parse_xml(long.as_bytes()),
        Err(ParseError::Xml(_))
    ));
    let json_deep = format!(
        "{}1{}",
        "{\"a\":".repeat(MAX_DEPTH + 2),
        "}".repeat(MAX_DEPTH + 2)
    );
    assert_eq!(parse_json(json_deep.as_bytes()), Err(ParseError::TooDeep));
}

#[test]
fn error_details_escape_control_characters_and_stay_short() {
    let err = parse_xml(b"<xml><a\x01\x1b[31m>1</b></xml>").expect_err("mismatch");
    let text = err.to_string();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert_eq!(
        clean(&"x".repeat(500)).chars().count(),
        MAX_DETAIL_CHARS + 1
    );
    assert_eq!(clean("a\nb\u{1b}"), "a\\nb\\u{1b}");
}

#[test]
fn nul_characters_never_reach_a_value() {
    let f = parse_json(br#"{"from":{"userid":"u\u0000 1"}}"#).expect("json");
    assert_eq!(f.get("from.userid"), Some("u 1"));
    let f = parse_xml(b"<xml><A>x&#0;y</A></xml>");
    if let Ok(f) = f {
        assert_eq!(f.get("A"), Some("xy"));
    }
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
