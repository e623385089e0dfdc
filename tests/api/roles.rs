//! Roles that keep a community administrable: commands before the mute gate, nobody mutes an
//! equal or higher role, the last and the configured admins stay, a recovery API, every refused
//! staff command audited, and a cap on one points adjustment.

use serde_json::{json, Value};
use yunying::config::{Secret, StaffConfig};
use yunying::send::{self, Simulated};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    operators_cannot_mute_admins_and_muted_staff_keep_their_commands,
    the_last_admin_and_configured_admins_stay_admins,
    the_staff_api_recovers_roles_and_mutes,
    one_points_adjustment_is_capped
);

const TOKEN: &str = "ops-token-0123456789";
const SCOPE: &str = "wwdemo0000000001";

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

async fn outcomes(app: &TestApp) -> Vec<(String, String, String)> {
    let response = app
        .client
        .get(app.url("/api/v1/audit"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    let body: Value = response.json().await.expect("json");
    body["audit"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["user_id"].as_str().unwrap_or_default().to_owned(),
                r["command"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn staff(user: &str, role: &str) -> StaffConfig {
    StaffConfig {
        scope: "*".into(),
        user: user.into(),
        role: role.into(),
        channel: None,
    }
}

async fn spawn(backend: Backend, extra: Vec<StaffConfig>) -> TestApp {
    TestApp::spawn_with(backend, move |c| {
        c.ops_api.token = Secret::new(TOKEN);
        c.commands.staff.extend(extra);
    })
    .await
}

async fn operators_cannot_mute_admins_and_muted_staff_keep_their_commands(backend: Backend) {
    let app = spawn(backend, vec![staff("op1", "operator")]).await;
    say(&app, "zhangsan", "张三", "大家好", "m0").await;
    say(&app, "op1", "小运", "大家好", "m1").await;
    say(&app, "op2", "小二", "大家好", "m1b").await;

    let refused = say(&app, "op1", "小运", "/mute @张三", "m2").await;
    assert!(refused.contains("不能屏蔽"), "{refused}");
    let again = say(&app, "op1", "小运", "/mute @小运", "m2b").await;
    assert!(
        again.contains("不能屏蔽"),
        "an operator cannot mute an operator: {again}"
    );
    assert!(app.store.muted_members().await.expect("muted").is_empty());

    // The admin mutes the operator: the operator's commands still run and are audited, their
    // other messages get no reply.
    let muted = say(&app, "zhangsan", "张三", "/mute @小运", "m3").await;
    assert!(muted.contains("已屏蔽 小运"), "{muted}");
    app.clock.advance_ms(2_500);
    let tagged = say(&app, "op1", "小运", "/tag @小二 VIP", "m4").await;
    assert!(!tagged.is_empty(), "a muted operator's command runs");
    assert_eq!(say(&app, "op1", "小运", "积分", "m5").await, "");
    // A muted member's `/help` is silent like the rest.
    say(&app, "zhangsan", "张三", "/mute @小二", "m6").await;
    app.clock.advance_ms(2_500);
    assert_eq!(say(&app, "op2", "小二", "/help", "m7").await, "");

    let log = outcomes(&app).await;
    assert!(
        log.iter()
            .any(|(u, c, o)| u == "op1" && c.starts_with("mute") && o == "refused"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|(u, c, o)| u == "op1" && c.starts_with("tag") && o == "ok"),
        "{log:?}"
    );
}

async fn the_last_admin_and_configured_admins_stay_admins(backend: Backend) {
    // The example's only admin, zhangsan, is configured; u5 becomes admin in chat.
    let app = spawn(backend, Vec::new()).await;
    say(&app, "zhangsan", "张三", "大家好", "a0").await;
    say(&app, "u5", "小五", "大家好", "a1").await;
    let demoted = say(&app, "zhangsan", "张三", "/role @张三 none", "a2").await;
    assert!(demoted.contains("配置文件中的管理员"), "{demoted}");
    let granted = say(&app, "zhangsan", "张三", "/role @小五 admin", "a3").await;
    assert!(granted.contains("管理员"), "{granted}");
    // A configured admin stays admin even with a grant on record that says otherwise.
    app.execute_sql(
        "insert into staff_roles (scope, user_id, role, granted_by, granted_at) \
         values ('wwdemo0000000001', 'zhangsan', 'member', 'x', 0)",
        &[],
    )
    .await;
    let still = say(&app, "zhangsan", "张三", "/role @小五 operator", "a4").await;
    assert!(still.contains("设为运营"), "{still}");

    // Without a configured admin, the last admin cannot demote themselves.
    let app = TestApp::spawn_with(backend, |c| {
        c.ops_api.token = Secret::new(TOKEN);
        c.commands.staff.clear();
    })
    .await;
    say(&app, "u6", "小六", "大家好", "b0").await;
    app.execute_sql(
        "insert into staff_roles (scope, user_id, role, granted_by, granted_at) \
         values ('wwdemo0000000001', 'u6', 'admin', 'x', 0)",
        &[],
    )
    .await;
    let last = say(&app, "u6", "小六", "/role @小六 operator", "b1").await;
    assert!(last.contains("最后一位管理员"), "{last}");
    let role = app
        .store
        .granted_role(SCOPE, "u6")
        .await
        .expect("role")
        .expect("granted");
    assert_eq!(role, "admin");
}

async fn the_staff_api_recovers_roles_and_mutes(backend: Backend) {
    let app = spawn(backend, vec![staff("op1", "operator")]).await;
    say(&app, "op1", "小运", "大家好", "s0").await;
    say(&app, "zhangsan", "张三", "/mute @小运", "s1").await;
    let path = format!("/api/v1/staff/{SCOPE}/op1");
    let (status, body) = app
        .api_call(
            "DELETE",
            &format!("{path}/mute"),
            TOKEN,
            &json!({ "operator": "sre" }),
        )
        .await;
    assert_eq!(
        (status, body["changed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, _) = app
        .api_call(
            "PUT",
            &format!("{path}/role"),
            TOKEN,
            &json!({ "role": "admin", "operator": "sre" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.store
            .granted_role(SCOPE, "op1")
            .await
            .expect("q")
            .as_deref(),
        Some("admin")
    );
    let (status, listed) = app
        .api_call(
            "GET",
            &format!("/api/v1/staff/{SCOPE}"),
            TOKEN,
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["muted"], json!([]));
    assert_eq!(listed["granted"][0]["user_id"], "op1");
    let (status, _) = app
        .api_call(
            "PUT",
            &format!("{path}/role"),
            TOKEN,
            &json!({ "role": "boss", "operator": "sre" }),
        )
        .await;
    assert_eq!(status, 400);
    let log = outcomes(&app).await;
    assert!(
        log.iter()
            .any(|(u, c, o)| u == "sre" && c == "api unmute" && o == "ok"),
        "{log:?}"
    );

    // The bearer scheme is case-insensitive; a 401 says how to authenticate.
    let response = app
        .client
        .get(app.url("/api/v1/audit"))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .get(app.url("/api/v1/audit"))
        .header("authorization", "Bearer wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

async fn one_points_adjustment_is_capped(backend: Backend) {
    let app = spawn(backend, Vec::new()).await;
    say(&app, "u1", "小一", "大家好", "p0").await;
    let huge = say(
        &app,
        "zhangsan",
        "张三",
        "/points @小一 +9223372036854775807 奖励",
        "p1",
    )
    .await;
    assert!(huge.contains("不能超过 100000"), "{huge}");
    let low = say(
        &app,
        "zhangsan",
        "张三",
        "/points @小一 -9223372036854775808 扣",
        "p2",
    )
    .await;
    assert!(low.contains("不能超过 100000"), "{low}");
    let ok = say(&app, "zhangsan", "张三", "/points @小一 +100 奖励", "p3").await;
    assert!(ok.contains("增加 100"), "{ok}");
    let account = app
        .store
        .points_account(SCOPE, "u1")
        .await
        .expect("q")
        .expect("account")
        .1;
    assert_eq!(account.balance, 100);
    let (status, body) = app
        .api_post(
            &format!("/api/v1/members/{SCOPE}/u1/points"),
            TOKEN,
            &json!({ "delta": 100_001, "reason": "r", "operator": "o", "request_id": "x1" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}
