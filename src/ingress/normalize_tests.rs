use super::*;
use crate::config::ChannelKind;
use crate::wecom::xml::{parse_json, parse_xml};

fn channel(kind: ChannelKind, robot_name: Option<&str>) -> Channel {
    Channel {
        id: "c1".into(),
        kind,
        scope: "corp".into(),
        crypt: None,
        token: None,
        gateway_secret: None,
        robot_name: robot_name.map(str::to_owned),
        receive_id: "corp".into(),
        mp_mode: None,
    }
}

#[test]
fn app_text_message_from_the_official_sample() {
    let xml = "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>";
    let event = wecom_app(
        &channel(ChannelKind::WecomApp, None),
        &parse_xml(xml.as_bytes()).expect("xml"),
        0,
    )
    .expect("event");
    assert_eq!(event.dedupe_key, "msg:1456453720:ChenJiaShun");
    assert_eq!(event.occurred_at, 1476422779);
    let m = event.message().expect("message");
    assert_eq!(
        (m.sender.id.as_str(), m.text.as_str(), m.group.is_none()),
        ("ChenJiaShun", "你好", true)
    );
}

fn add_contact(external: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID><State><![CDATA[teststate]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml >"
    )
}

#[test]
fn two_contacts_added_in_the_same_second_get_different_keys() {
    let ch = channel(ChannelKind::WecomApp, None);
    let a = wecom_app(
        &ch,
        &parse_xml(add_contact("woAJ2GCAAAXtWyujaWJHDDGi0mACH71w").as_bytes()).expect("xml"),
        0,
    )
    .expect("a");
    let b = wecom_app(
        &ch,
        &parse_xml(add_contact("woAJ2GCAAAXtWyujaWJHDDGi0mACH71x").as_bytes()).expect("xml"),
        0,
    )
    .expect("b");
    assert_ne!(a.dedupe_key, b.dedupe_key);
    let again = wecom_app(
        &ch,
        &parse_xml(add_contact("woAJ2GCAAAXtWyujaWJHDDGi0mACH71w").as_bytes()).expect("xml"),
        0,
    )
    .expect("a2");
    assert_eq!(a.dedupe_key, again.dedupe_key, "a retry has the same key");
    match a.kind {
        EventKind::ContactAdded {
            staff,
            contact,
            state,
            welcome_code,
        } => {
            assert_eq!(staff, "zhangsan");
            assert_eq!(contact.id, "woAJ2GCAAAXtWyujaWJHDDGi0mACH71w");
            assert_eq!(state.as_deref(), Some("teststate"));
            assert_eq!(welcome_code.as_deref(), Some("WELCOMECODE"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn group_member_changes_in_both_list_encodings() {
    let ch = channel(ChannelKind::WecomApp, None);
    let items = "<xml><FromUserName>sys</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_external_chat</Event><ChatId>wrOg</ChatId><ChangeType>update</ChangeType><UpdateDetail>add_member</UpdateDetail><JoinScene>3</JoinScene><MemChangeCnt>2</MemChangeCnt><MemChangeList><Item>wmA</Item><Item>wmB</Item></MemChangeList></xml>";
    let csv = "<xml><FromUserName>sys</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_external_chat</Event><ChatId>wrOg</ChatId><ChangeType>update</ChangeType><UpdateDetail>del_member</UpdateDetail><QuitScene>1</QuitScene><MemChangeList><![CDATA[wmA,wmB]]></MemChangeList></xml>";
    match wecom_app(&ch, &parse_xml(items.as_bytes()).expect("xml"), 0)
        .expect("e")
        .kind
    {
        EventKind::MemberJoined {
            group,
            members,
            join_scene,
            ..
        } => {
            assert_eq!(group.id, "wrOg");
            assert_eq!(
                members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
                ["wmA", "wmB"]
            );
            assert_eq!(join_scene.as_deref(), Some("3"));
        }
        other => panic!("unexpected {other:?}"),
    }
    match wecom_app(&ch, &parse_xml(csv.as_bytes()).expect("xml"), 0)
        .expect("e")
        .kind
    {
        EventKind::MemberLeft {
            members, removed, ..
        } => {
            assert_eq!(members.len(), 2);
            assert!(removed);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn robot_xml_and_json_modes_agree() {
    let ch = channel(ChannelKind::WecomRobot, Some("运营小助手"));
    let xml = "<xml><WebhookUrl>https://x/send?key=k</WebhookUrl><MsgId>abc</MsgId><ChatId>chat1</ChatId><ChatType>group</ChatType><From><UserId>zhangsan</UserId><Name>张三</Name></From><MsgType>text</MsgType><Text><Content>@运营小助手\u{2005}签到</Content></Text></xml>";
    let json = r#"{"webhook_url":"https://x","msgid":"abc","chatid":"chat1","chattype":"group","from":{"userid":"zhangsan","name":"张三"},"msgtype":"text","text":{"content":"@运营小助手 签到"}}"#;
    let a = wecom_robot(&ch, &parse_xml(xml.as_bytes()).expect("xml"), 77).expect("xml event");
    let b = wecom_robot(&ch, &parse_json(json.as_bytes()).expect("json"), 77).expect("json event");
    assert_eq!(a.dedupe_key, b.dedupe_key);
    assert_eq!(a.kind, b.kind);
    assert_eq!(a.occurred_at, 77);
    let m = a.message().expect("message");
    assert_eq!(m.text, "签到");
    assert_eq!(m.group.as_ref().map(|g| g.id.as_str()), Some("chat1"));
    assert_eq!(m.sender.name.as_deref(), Some("张三"));
}

#[test]
fn mention_stripping() {
    assert_eq!(strip_mention("@小助手\u{2005}你好", None), "你好");
    assert_eq!(strip_mention("@小助手 你好", Some("小助手")), "你好");
    assert_eq!(
        strip_mention("请问 @小助手 价格", Some("小助手")),
        "请问  价格"
    );
    assert_eq!(strip_mention("  ping ", None), "ping");
    assert_eq!(strip_mention("@only", None), "");
}

#[test]
fn mp_subscribe_and_text() {
    let ch = channel(ChannelKind::WechatMp, None);
    let text = "<xml><ToUserName>gh_10f6c3c3ac5a</ToUserName><FromUserName>oyORnuP8q7ou2gfYjqLzSIWZf0rs</FromUserName><CreateTime>1409735668</CreateTime><MsgType>text</MsgType><Content>abcdteT</Content><MsgId>6054768590064713728</MsgId></xml>";
    let e = wechat_mp(&ch, &parse_xml(text.as_bytes()).expect("xml"), 0).expect("text");
    assert_eq!(
        e.dedupe_key,
        "msg:6054768590064713728:oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    );
    let sub = "<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>5</CreateTime><MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_spring</EventKey></xml>";
    match wechat_mp(&ch, &parse_xml(sub.as_bytes()).expect("xml"), 0)
        .expect("sub")
        .kind
    {
        EventKind::ContactAdded { contact, state, .. } => {
            assert_eq!(contact.id, "o1");
            assert_eq!(state.as_deref(), Some("spring"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn gateway_bodies() {
    let ch = channel(ChannelKind::Gateway, None);
    let body = r#"{"type":"message","msg_id":"m1","sender":{"id":"wxid_a","name":"A"},"group":{"id":"g@chatroom","name":"产品交流1群"},"text":" 签到 ","mentions_bot":false,"time":1700000000}"#.as_bytes();
    let e = gateway(&ch, body, 5).expect("message");
    assert_eq!(e.dedupe_key, "msg:m1:wxid_a");
    assert_eq!(e.occurred_at, 1700000000);
    assert_eq!(e.message().expect("m").text, "签到");
    let join =
        br#"{"type":"member_joined","group":{"id":"g"},"members":[{"id":"x"}],"inviter":"wxid_a"}"#;
    let j = gateway(&ch, join, 9).expect("join");
    assert_eq!(j.occurred_at, 9);
    assert!(
        matches!(j.kind, EventKind::MemberJoined { ref inviter, .. } if inviter.as_deref() == Some("wxid_a"))
    );
    assert!(gateway(&ch, br#"{"type":"message"}"#, 0).is_err());
    assert!(gateway(&ch, b"not json", 0).is_err());
}

#[test]
fn missing_fields_are_errors() {
    let ch = channel(ChannelKind::WecomApp, None);
    assert_eq!(
        wecom_app(&ch, &parse_xml(b"<xml><A>1</A></xml>").expect("xml"), 0),
        Err(ParseError::Missing("MsgType"))
    );
    assert!(wecom_app(
        &ch,
        &parse_xml(b"<xml><MsgType>text</MsgType></xml>").expect("xml"),
        0
    )
    .is_err());
}

#[test]
fn json_robot_callbacks_take_the_documented_lowercase_sender() {
    let json = br#"{"msgid":"m1","chatid":"c1","chattype":"group","From":{"UserId":"forged"},"from":{"userid":"real"},"msgtype":"text","text":{"content":"hi"}}"#;
    let event = wecom_robot(
        &channel(ChannelKind::WecomRobot, None),
        &parse_json(json).expect("json"),
        5,
    )
    .expect("event");
    assert_eq!(event.actor().map(|u| u.id.as_str()), Some("real"));
    let xml = b"<xml><MsgId>m1</MsgId><ChatId>c1</ChatId><ChatType>group</ChatType><From><UserId>real</UserId></From><from><userid>forged</userid></from><MsgType>text</MsgType><Text><Content>hi</Content></Text></xml>";
    let event = wecom_robot(
        &channel(ChannelKind::WecomRobot, None),
        &parse_xml(xml).expect("xml"),
        5,
    )
    .expect("event");
    assert_eq!(event.actor().map(|u| u.id.as_str()), Some("real"));
}
