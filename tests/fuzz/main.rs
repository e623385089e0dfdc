//! Fuzzing every parser of untrusted input on stable Rust: proptest mutates real samples (bytes
//! flipped, inserted, deleted, duplicated, spliced) and also feeds plain random input. Every
//! target must return an error or a value within its bounds, never panic or run away. A failing
//! case is shrunk and saved under `tests/fuzz/main.proptest-regressions`, which is committed and
//! replayed first on every run.
//!
//! `FUZZ_CASES` sets the cases per target (default 2,000 for `cargo test`; CI runs more).

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use yunying::channels::Channels;
use yunying::config::Config as AppConfig;
use yunying::ingress::{limits, normalize};
use yunying::wecom::crypto::AesKey;
use yunying::wecom::xml;

fn config() -> Config {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// One edit of a sample.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        (any::<usize>(), interesting_bytes()).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 1..64_usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 1..32_usize, 1..200_usize).prop_map(|(at, n, k)| Edit::Repeat(at, n, k)),
    ]
}

/// Bytes that tend to matter to parsers.
fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..8),
        Just(b"<".to_vec()),
        Just(b"</a>".to_vec()),
        Just(b"<![CDATA[".to_vec()),
        Just(b"]]>".to_vec()),
        Just(b"&#0;".to_vec()),
        Just(b"&amp;".to_vec()),
        Just(b"<!DOCTYPE x>".to_vec()),
        Just(b"{\"a\":".to_vec()),
        Just(b"\\u0000".to_vec()),
        Just("（）：「」".as_bytes().to_vec()),
        Just(b"not (".to_vec()),
        Just(b"{% for %}".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
    ]
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for e in edits {
        let len = out.len().max(1);
        match e {
            Edit::Flip(at, b) => {
                if !out.is_empty() {
                    let i = at % out.len();
                    out[i] = *b;
                }
            }
            Edit::Insert(at, bytes) => {
                let i = at % (out.len() + 1);
                out.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(at, n) => {
                let i = at % len;
                let end = (i + n).min(out.len());
                if i < end {
                    out.drain(i..end);
                }
            }
            Edit::Repeat(at, n, k) => {
                let i = at % len;
                let end = (i + n).min(out.len());
                if i < end && out.len() < 70_000 {
                    let chunk: Vec<u8> = out[i..end].to_vec();
                    for _ in 0..*k {
                        out.splice(end..end, chunk.iter().copied());
                    }
                }
            }
        }
    }
    out
}

/// A sample mutated by up to eight edits, or plain random bytes.
fn mutated(samples: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (0..samples.len(), proptest::collection::vec(edit(), 0..8))
            .prop_map(move |(i, edits)| apply(samples[i], &edits)),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

const ENVELOPES: &[&[u8]] = &[
    b"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>",
    br#"{"encrypt":"RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo","msgsignature":"x","timestamp":1,"nonce":"2"}"#,
];

const INNER: &[&[u8]] = &[
    "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1476422779</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[签到]]></Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>".as_bytes(),
    b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wr1]]></ChatId><ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>1</JoinScene><MemChangeList><Item><![CDATA[wm1]]></Item></MemChangeList></xml>",
    b"<xml><WebhookUrl><![CDATA[http://x]]></WebhookUrl><MsgId><![CDATA[m1]]></MsgId><ChatId><![CDATA[c1]]></ChatId><ChatType>group</ChatType><From><UserId><![CDATA[u1]]></UserId><Name><![CDATA[n]]></Name></From><MsgType>text</MsgType><Text><Content><![CDATA[@bot ping]]></Content></Text></xml>",
    br#"{"msgid":"m1","aibotid":"b","chattype":"group","chatid":"c1","from":{"userid":"u1"},"msgtype":"text","text":{"content":"hi"},"response_url":"https://qyapi.weixin.qq.com/x"}"#,
];

const GATEWAY: &[&[u8]] = &[
    "{\"type\":\"message\",\"msg_id\":\"m1\",\"sender\":{\"id\":\"wxid_a\",\"name\":\"张三\"},\"group\":{\"id\":\"1@chatroom\",\"name\":\"群\"},\"text\":\"签到\",\"mentions_bot\":false,\"time\":1700000000}".as_bytes(),
    br#"{"type":"member_joined","group":{"id":"1@chatroom"},"members":[{"id":"wxid_b"}],"inviter":"wxid_a"}"#,
];

const COMMANDS: &[&[u8]] = &[
    "points @张三 +50 活动奖励".as_bytes(),
    "faq add 怎么退款 | 在订单页申请".as_bytes(),
    "tag @小明 VIP \"核心 用户\"".as_bytes(),
    "stats 7d".as_bytes(),
    "recall run lapsed".as_bytes(),
    "role @小红 operator".as_bytes(),
];

const SEGMENTS: &[&[u8]] = &[
    "tag:VIP and not stage:lapsed and group:\"产品交流1群\" and points >= 100".as_bytes(),
    "(tag:a or tag:b) and last_active < 14d".as_bytes(),
    "标签：核心 且 非 积分<=5".as_bytes(),
];

const IMPORTS_CSV: &[&[u8]] = &[
    "id,question,similar,answer,category\n101,怎么退款,钱怎么退|退款流程,在订单页申请,售后\n102,\"多少钱\",,\"见商城\",\n".as_bytes(),
];

const IMPORTS_JSONL: &[&[u8]] = &[
    "{\"id\":\"1\",\"question\":\"怎么签到\",\"answer\":\"发送 签到\",\"similar\":[\"签到\"]}\n{\"question\":\"q\",\"answer\":\"{{ name }}\"}\n".as_bytes(),
];

const TEMPLATES: &[&[u8]] = &[
    "{% if name %}{{ name | default('朋友') }}{% endif %}，{% for q in items %}{{ loop.index }}. {{ q }}{% endfor %}".as_bytes(),
    "{# c #}{% raw %}{{ x }}{% endraw %}{{ name ~ '!' }}".as_bytes(),
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn channels() -> &'static Channels {
    static CHANNELS: std::sync::LazyLock<Channels> = std::sync::LazyLock::new(|| {
        Channels::from_config(&AppConfig::example().expect("config")).expect("channels")
    });
    &CHANNELS
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_envelope_scan_never_panics(body in mutated(ENVELOPES)) {
        if let Ok(envelope) = xml::envelope_encrypt(&body) {
            prop_assert!(envelope.encrypt.len() <= body.len());
        }
    }

    #[test]
    fn inner_payloads_parse_within_bounds_and_normalize(body in mutated(INNER)) {
        if let Ok(fields) = xml::parse_any(&body) {
            prop_assert!(fields.pairs().len() <= xml::MAX_FIELDS + 1);
            prop_assert!(fields.pairs().iter().all(|(p, v)| p.len() <= xml::MAX_PATH_BYTES && !v.contains('\0')));
            let channels = channels();
            for id in ["demo_app", "demo_robot", "demo_aibot", "demo_mp"] {
                let Some(channel) = channels.get(id) else { continue };
                let event = match channel.kind {
                    yunying::config::ChannelKind::WecomApp => normalize::wecom_app(channel, &fields, 1),
                    yunying::config::ChannelKind::WecomRobot => normalize::wecom_robot(channel, &fields, 1),
                    yunying::config::ChannelKind::WecomAibot => normalize::wecom_aibot(channel, &fields, 1),
                    _ => normalize::wechat_mp(channel, &fields, 1),
                };
                if let Ok(mut event) = event {
                    let _ = limits::check_event(&mut event);
                    limits::clamp_time(&mut event, 1_700_000_000, 600, 86_400);
                    prop_assert!(serde_json::to_string(&event).is_ok());
                }
            }
        }
    }

    #[test]
    fn encrypted_frames_never_panic(encrypt in mutated(ENVELOPES)) {
        let key = AesKey::from_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").expect("key");
        let _ = yunying::wecom::crypto::decrypt_frame(&key, &text(&encrypt));
    }

    #[test]
    fn gateway_bodies_never_panic(body in mutated(GATEWAY)) {
        let channels = channels();
        let channel = channels.get("demo_gateway").expect("gateway");
        if let Ok(mut event) = normalize::gateway(channel, &body, 1) {
            let _ = limits::check_event(&mut event);
        }
    }

    #[test]
    fn chat_commands_parse_or_explain(line in mutated(COMMANDS)) {
        let _ = yunying::commands::parse::parse(&text(&line));
    }

    #[test]
    fn segment_errors_point_inside_the_expression(expr in mutated(SEGMENTS)) {
        let expr = text(&expr);
        if let Err(e) = yunying::members::segment::parse(&expr) {
            prop_assert!(e.position <= expr.chars().count(), "{e}");
        }
    }

    #[test]
    fn imports_report_rows_never_panic(csv in mutated(IMPORTS_CSV), jsonl in mutated(IMPORTS_JSONL)) {
        let _ = yunying::faq::import::parse_text(&text(&csv), "csv");
        let _ = yunying::faq::import::parse_text(&text(&jsonl), "jsonl");
        let _ = yunying::faq::import::parse_text(&text(&jsonl), "json");
    }

    #[test]
    fn ops_templates_stay_within_their_caps(source in mutated(TEMPLATES)) {
        let vars = minijinja::context! { name => "张三", items => vec!["a", "b"] };
        if let Ok(out) = yunying::templates::sandbox::shared().render(&text(&source), &vars) {
            prop_assert!(out.len() <= yunying::templates::sandbox::MAX_OUTPUT_BYTES);
        }
    }
}
