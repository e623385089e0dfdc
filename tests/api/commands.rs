//! Ops commands end to end: permissions (default deny), typed arguments with usage errors,
//! mention resolution, exactly-once execution and the audit log, through the real server.

use serde_json::Value;
use yunying::config::Secret;
use yunying::send::{self, Simulated};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    staff_run_commands_members_are_refused_and_all_is_audited,
    mentions_resolve_within_the_group,
    mute_role_and_faq_commands
);

const TOKEN: &str = "ops-token-0123456789";
const SCOPE: &str = "wwdemo0000000001";

/// `user` (display name `name`) says `text` in group `g` to the demo robot.
async fn say(app: &TestApp, user: &str, name: &str, text: &str, msg_id: &str) -> String {
    let what = Simulated::Text {
        from: user.into(),
        name: Some(name.into()),
        group: Some("g".into()),
        text: text.into(),
        msg_id: msg_id.into(),
    };
    let response = app
        .post("demo_robot", &app.build("demo_robot", &what))
        .await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("body");
    send::open_reply(app.channel("demo_robot"), &body)
        .expect("opens")
        .unwrap_or_default()
}

async fn audit(app: &TestApp) -> Vec<Value> {
    let response = app
        .client
        .get(app.url("/api/v1/audit"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["audit"].as_array().cloned().unwrap_or_default()
}

async fn spawn(backend: Backend) -> TestApp {
    // zhangsan is an admin in the example configuration.
    TestApp::spawn_with(backend, |c| c.ops_api.token = Secret::new(TOKEN)).await
}

async fn staff_run_commands_members_are_refused_and_all_is_audited(backend: Backend) {
    let app = spawn(backend).await;
    say(&app, "u1", "小明", "大家好", "m0").await;

    let refused = say(&app, "u1", "小明", "/points @小明 +500 自己加", "m1").await;
    assert!(
        refused.contains("需要运营权限") && refused.contains("未执行"),
        "{refused}"
    );
    let help = say(&app, "u1", "小明", "/help", "m2").await;
    assert!(
        help.contains("/help") && !help.contains("/role"),
        "members see their commands: {help}"
    );

    let done = say(
        &app,
        "zhangsan",
        "张三",
        "／points @小明 ＋50 活动奖励",
        "m3",
    )
    .await;
    assert!(
        done.contains("已为 小明 增加 50 积分") && done.contains("余额 50"),
        "{done}"
    );
    // The platform retries the same message: same reply, credited once.
    let again = say(
        &app,
        "zhangsan",
        "张三",
        "／points @小明 ＋50 活动奖励",
        "m3",
    )
    .await;
    assert_eq!(again, done);
    let (id, account) = app
        .store
        .points_account(SCOPE, "u1")
        .await
        .expect("q")
        .expect("account");
    assert_eq!(account.balance, 50);
    assert_eq!(app.store.ledger_sum(id).await.expect("sum"), 50);

    let usage = say(&app, "zhangsan", "张三", "/points @小明 50 忘了符号", "m4").await;
    assert!(
        usage.contains("用法：/points @成员 +50 原因") && usage.contains("正负号"),
        "{usage}"
    );
    let too_much = say(&app, "zhangsan", "张三", "/points @小明 -80 扣多了", "m5").await;
    assert!(
        too_much.contains("未执行") && too_much.contains("负数"),
        "{too_much}"
    );
    let admin_help = say(&app, "zhangsan", "张三", "/help role", "m6").await;
    assert!(
        admin_help.contains("/role @成员 admin|operator|none"),
        "{admin_help}"
    );
    assert_eq!(
        say(&app, "u1", "小明", "/nonsense", "m7").await,
        "",
        "members' unknown commands pass through"
    );

    let log = audit(&app).await;
    let outcomes: Vec<(&str, &str)> = log
        .iter()
        .rev()
        .map(|r| {
            (
                r["user_id"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("u1", "refused"),
            ("zhangsan", "ok"),
            ("zhangsan", "invalid"),
            ("zhangsan", "failed")
        ]
    );
    assert_eq!(
        log.last().map(|r| r["role"].clone()),
        Some(Value::from("member"))
    );
}

async fn mentions_resolve_within_the_group(backend: Backend) {
    let app = spawn(backend).await;
    say(&app, "w1", "小王", "hi", "n1").await;
    say(&app, "w2", "小王", "hi", "n2").await;
    let ambiguous = say(&app, "zhangsan", "张三", "/member @小王", "n3").await;
    assert!(
        ambiguous.contains("多位成员") && ambiguous.contains("w1") && ambiguous.contains("w2"),
        "{ambiguous}"
    );
    let unknown = say(&app, "zhangsan", "张三", "/member @小李", "n4").await;
    assert!(unknown.contains("没有找到成员「小李」"), "{unknown}");
    say(&app, "l1", "小李", "签到", "n5").await;
    let profile = say(&app, "zhangsan", "张三", "/member @小李", "n6").await;
    assert!(
        profile.contains("小李（l1）")
            && profile.contains("等级「新手」")
            && profile.contains("积分 5")
            && profile.contains("标签：暂无")
            && profile.contains("所在群：g"),
        "{profile}"
    );
    let tagged = say(
        &app,
        "zhangsan",
        "张三",
        "/tag @小李 VIP \"核心 用户\"",
        "n7",
    )
    .await;
    assert!(
        tagged.contains("已给 小李 打上：VIP、核心 用户"),
        "{tagged}"
    );
    let again = say(&app, "zhangsan", "张三", "/打标签 @小李 VIP", "n8").await;
    assert!(again.contains("小李 已有：VIP"), "{again}");
    let untagged = say(&app, "zhangsan", "张三", "/untag @小李 VIP 不存在", "n9").await;
    assert!(
        untagged.contains("已去掉 小李 的：VIP") && untagged.contains("没有：不存在"),
        "{untagged}"
    );
    let profile = say(&app, "zhangsan", "张三", "/member @小李", "n10").await;
    assert!(profile.contains("标签：核心 用户"), "{profile}");
}

async fn mute_role_and_faq_commands(backend: Backend) {
    let app = spawn(backend).await;
    say(&app, "u2", "小红", "hi", "r0").await;
    assert!(say(&app, "u2", "小红", "签到", "r1")
        .await
        .contains("签到成功"));
    let muted = say(&app, "zhangsan", "张三", "/mute @小红", "r2").await;
    assert!(muted.contains("已屏蔽 小红"), "{muted}");
    app.clock.advance_ms(2_500);
    assert_eq!(
        say(&app, "u2", "小红", "积分", "r3").await,
        "",
        "muted: no reply"
    );
    say(&app, "zhangsan", "张三", "/unmute @小红", "r4").await;
    app.clock.advance_ms(2_500);
    assert!(say(&app, "u2", "小红", "积分", "r5").await.contains("积分"));

    // An operator may add FAQ entries but not change roles.
    let refused = say(&app, "u2", "小红", "/faq add 怎么退款 | 在订单页申请", "r6").await;
    assert!(refused.contains("需要运营权限"), "{refused}");
    let granted = say(&app, "zhangsan", "张三", "/role @小红 operator", "r7").await;
    assert!(granted.contains("已将 小红 设为运营"), "{granted}");
    let added = say(
        &app,
        "u2",
        "小红",
        "/faq add 怎么退款 | 在订单页申请退款。",
        "r8",
    )
    .await;
    assert!(added.contains("已新增问答 #"), "{added}");
    assert_eq!(
        say(&app, "u9", "路人", "请问怎么退款", "r9").await,
        "在订单页申请退款。"
    );
    let tested = say(&app, "u2", "小红", "/faq test 退款怎么弄", "r10").await;
    assert!(tested.contains("怎么退款"), "{tested}");
    let id: i64 = added
        .split('#')
        .nth(1)
        .and_then(|t| t.split('：').next())
        .and_then(|n| n.parse().ok())
        .expect("entry id in the reply");
    let similar = say(
        &app,
        "u2",
        "小红",
        &format!("/faq similar {id} 钱怎么退回来"),
        "r10b",
    )
    .await;
    assert!(similar.contains("相似问法：钱怎么退回来"), "{similar}");
    let entry = app.store.faq_entry(id).await.expect("q").expect("entry");
    assert_eq!(entry.similar, vec!["钱怎么退回来".to_owned()]);
    let missing = say(&app, "u2", "小红", "/faq del 999", "r10c").await;
    assert!(missing.contains("没有编号为 999"), "{missing}");
    say(&app, "u9", "路人", "火星有分店吗", "r10d").await;
    let top = say(&app, "u2", "小红", "/top week", "r10e").await;
    assert!(top.contains("本周") && top.contains("小红"), "{top}");
    assert!(say(&app, "u2", "小红", "/role @小红 admin", "r11")
        .await
        .contains("需要管理员权限"));
    // Someone active in another community is not counted here.
    app.send_text("v1", "outsider", None, "你好", "r11b").await;
    let all: Vec<i64> = app
        .query_column("select cast(count(distinct member_id) as bigint) from member_daily_activity")
        .await;
    let here: Vec<i64> = app
        .query_column(
            "select cast(count(distinct a.member_id) as bigint) from member_daily_activity a \
             join members m on m.id = a.member_id where m.scope = 'wwdemo0000000001'",
        )
        .await;
    assert!(all[0] > here[0], "{all:?} {here:?}");
    let stats = say(&app, "u2", "小红", "/stats 7d", "r12").await;
    assert!(
        stats.contains(&format!("活跃成员 {} ·", here[0])),
        "{stats}"
    );
    assert!(
        stats.contains("近 7 天")
            && stats.contains("签到 1 次")
            && stats.contains("问答已解答 1 · 未解答 1"),
        "{stats}"
    );
    let revoked = say(&app, "zhangsan", "张三", "/role @小红 none", "r13").await;
    assert!(revoked.contains("已取消"), "{revoked}");
    assert!(say(&app, "u2", "小红", &format!("/faq del {id}"), "r14")
        .await
        .contains("需要运营权限"));
    let deleted = say(&app, "zhangsan", "张三", &format!("/faq del {id}"), "r15").await;
    assert!(deleted.contains("已删除问答"), "{deleted}");
}
