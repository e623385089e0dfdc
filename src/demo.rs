//! `yunying demo`: the real server (SQLite in a temporary folder) and the WeCom stand-in, driven
//! by a short scripted community with correctly signed and encrypted callbacks. It prints the
//! conversation as it happens: a customer is welcomed, joins the group, signs in, asks a
//! question, an ops member runs a command, a push goes out through the outbox, and a recall plan
//! reaches a lapsed member.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::app::App;
use crate::channels::Channels;
use crate::clock::{Clock as _, SystemClock};
use crate::config::{Config, Secret};
use crate::fake_wecom::FakeWecom;
use crate::send::{self, Simulated};
use crate::store::faq::NewFaqEntry;
use crate::store::windows::MEMBER_WINDOW;

const GROUP: &str = "wrdemo-group";
const CUSTOMER: &str = "wmdemo-lisi";
const STAFF: &str = "zhangsan";
const DEMO_BOT: &str = "aibdemo-ws";

struct Demo {
    http: reqwest::Client,
    port: u16,
    channels: Channels,
    fake: FakeWecom,
    token: String,
}

impl Demo {
    /// Sends a callback as the platform would and returns the decrypted passive reply.
    async fn callback(&self, channel_id: &str, what: &Simulated) -> anyhow::Result<Option<String>> {
        let channel = self.channels.get(channel_id).context("demo channel")?;
        let now = SystemClock.now_secs();
        let inner = send::inner_payload(channel, what, now)?;
        let request =
            send::build_request(channel, &inner, now, &rand::random::<u32>().to_string())?;
        let mut url = format!("http://127.0.0.1:{}/callbacks/{channel_id}", self.port);
        if !request.query.is_empty() {
            url = format!("{url}?{}", request.query);
        }
        let mut builder = self.http.post(url).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let response = builder.send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "callback refused: {}",
            response.status()
        );
        let body = response.bytes().await?;
        Ok(send::open_reply(channel, &body)?)
    }

    async fn say(&self, from: &str, name: &str, text: &str) -> anyhow::Result<()> {
        println!("  👤 {name}：{text}");
        let what = Simulated::Text {
            from: from.into(),
            name: Some(name.into()),
            group: Some(GROUP.into()),
            text: text.into(),
            msg_id: format!("demo-{}", rand::random::<u64>()),
        };
        match self.callback("demo_robot", &what).await? {
            Some(reply) => println!(
                "  🤖 运营小助手：{}",
                reply.replace('\n', "\n               ")
            ),
            None => println!("  🤖 （不回复）"),
        }
        Ok(())
    }

    /// Waits (up to 5 s) for the stand-in to receive a call of `api`, and prints it.
    async fn outbound(&self, api: &str, seen: usize, label: &str) -> anyhow::Result<()> {
        for _ in 0..100 {
            let deliveries = self.fake.deliveries();
            let matching: Vec<_> = deliveries.iter().filter(|d| d.api == api).collect();
            if matching.len() > seen {
                let d = matching[seen];
                let kind = d.body["msgtype"].as_str().unwrap_or("text");
                let text = d.body[kind]["content"]
                    .as_str()
                    .or_else(|| d.body["text"]["content"].as_str())
                    .unwrap_or("");
                println!(
                    "  📤 {label}（{api}）：{}",
                    text.replace('\n', "\n                ")
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the stand-in never received {api}")
    }
}

fn demo_config(dir: &std::path::Path, fake: &FakeWecom, token: &str) -> anyhow::Result<Config> {
    let mut config = Config::example()?;
    config.server.listen = "127.0.0.1:0".into();
    config.database.url = Secret::new(format!("sqlite://{}", dir.join("demo.db").display()));
    config.api.wecom_base = fake.base_url();
    config.api.mp_base = fake.base_url();
    config.outbox.poll_interval_ms = 50;
    config.ops_api.token = Secret::new(token);
    config.log.level = "warn".into();
    // The demo may run at any hour; the plan's send window would otherwise hold the touch.
    for plan in &mut config.recall.plans {
        plan.send_hours = [0, 24];
    }
    // An AI bot on the long connection, dialling the stand-in (no public URL involved).
    let mut ws = config
        .channels
        .get("demo_aibot")
        .cloned()
        .context("demo_aibot channel")?;
    ws.mode = Some("websocket".into());
    ws.token = None;
    ws.encoding_aes_key = None;
    ws.bot_id = Some(DEMO_BOT.into());
    ws.secret = Some(Secret::new("demo-long-connection-secret"));
    ws.ws_url = Some(fake.ws_url());
    config.channels.insert("demo_aibot_ws".into(), ws);
    Ok(config)
}

async fn seed_faq(store: &crate::store::Store) -> anyhow::Result<()> {
    let entries = [
        (
            "怎么参加活动？",
            "回复「报名」即可参加本周活动，名额有限先到先得。",
        ),
        (
            "积分可以兑换什么？",
            "发送「商城」查看可兑换的礼品，发送「兑换 礼品名」即可兑换。",
        ),
        (
            "直播几点开始？",
            "每周三晚上 8 点在视频号直播，记得提前预约哦。",
        ),
    ];
    let mut tx = store.begin_write().await?;
    for (question, answer) in entries {
        let entry = NewFaqEntry {
            external_id: None,
            question: question.into(),
            similar: Vec::new(),
            keywords: Vec::new(),
            answer: answer.into(),
            category: None,
            enabled: true,
        };
        crate::store::faq::insert_entry(&mut tx, &entry, SystemClock.now_ms()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A member last seen 35 days ago, with the stage the periodic recompute gives them (lapsed).
async fn seed_lapsed_member(store: &crate::store::Store, now_ms: i64) -> anyhow::Result<()> {
    let last = now_ms - 35 * 86_400_000;
    store
        .import_member("wwdemo0000000001", "wangwu", "王五", last, last)
        .await?;
    let lifecycle = Config::example()?.lifecycle;
    crate::members::lifecycle::recompute(store, &lifecycle, now_ms, MEMBER_WINDOW).await?;
    Ok(())
}

/// Runs the scripted community and prints it.
pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("yunying-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = script(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

impl Demo {
    /// ① and ②: a customer adds a staff member, then joins a group; both are welcomed.
    async fn welcomes(&self) -> anyhow::Result<()> {
        let demo = self;
        println!("\n① 客户「李四」扫码添加了员工 {STAFF}（add_external_contact 回调）");
        let added = Simulated::ContactAdded {
            staff: STAFF.into(),
            external: CUSTOMER.into(),
            state: Some("demo_qr".into()),
            welcome_code: Some(format!("WELCOME{:016X}", rand::random::<u64>())),
        };
        demo.callback("demo_app", &added).await?;
        demo.outbound("send_welcome_msg", 0, "欢迎语").await?;

        println!("\n② 李四加入客户群 {GROUP}（change_external_chat 回调）");
        let join = Simulated::Join {
            group: GROUP.into(),
            members: vec![CUSTOMER.into()],
        };
        demo.callback("demo_app", &join).await?;
        demo.outbound("webhook/send", 0, "入群欢迎（群机器人）")
            .await?;
        Ok(())
    }

    /// ⑤: a message over the AI bot's long connection and its answer.
    async fn aibot_over_the_long_connection(&self) -> anyhow::Result<()> {
        let demo = self;
        println!(
            "\n⑤ 智能机器人长连接（不需要公网地址）：Yunying 主动连上企业微信，消息从长连接进来"
        );
        let mut req = None;
        for _ in 0..100 {
            req = demo.fake.aibot_push(
                DEMO_BOT,
                "aibot_msg_callback",
                serde_json::json!({ "msgid": "demo-ws-1", "chattype": "single", "from": { "userid": "zhaoliu" },
                    "msgtype": "text", "text": { "content": "积分" } }),
            );
            if req.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let req = req.context("the AI bot never connected")?;
        println!("  👤 赵六（智能机器人单聊）：积分");
        let mut answered = false;
        for _ in 0..100 {
            let frames = demo.fake.aibot_frames();
            if let Some(f) = frames
                .iter()
                .find(|f| f["cmd"] == "aibot_respond_msg" && f["headers"]["req_id"] == req.as_str())
            {
                let text = f["body"]["stream"]["content"].as_str().unwrap_or("");
                println!(
                    "  🤖 aibot_respond_msg（req_id 原样带回）：{}",
                    text.replace('\n', "\n                ")
                );
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::ensure!(answered, "no answer over the long connection");
        Ok(())
    }

    /// ⑦: a lapsed member and a recall plan run.
    async fn recall(&self, store: &crate::store::Store) -> anyhow::Result<()> {
        let (demo, port) = (self, self.port);
        println!("\n⑦ 召回：老成员「王五」已经 35 天没来了（阶段：流失），运营执行召回计划");
        seed_lapsed_member(store, SystemClock.now_ms()).await?;
        let run: serde_json::Value = demo
            .http
            .post(format!("http://127.0.0.1:{port}/api/v1/recall/lapsed/run"))
            .bearer_auth(&demo.token)
            .send()
            .await?
            .json()
            .await?;
        println!(
            "  POST /api/v1/recall/lapsed/run → 符合条件 {}，触达 {}，对照组 {}",
            run["eligible"], run["touched"], run["held_out"]
        );
        if run["touched"].as_u64().unwrap_or(0) > 0 {
            demo.outbound("webhook/send", 1, "召回消息（群机器人 @王五）")
                .await?;
        } else {
            println!("  （王五这次落在对照组里：不发送，用来衡量召回效果）");
        }
        Ok(())
    }
}

async fn script(dir: &std::path::Path) -> anyhow::Result<()> {
    let fake = FakeWecom::start("127.0.0.1:0").await?;
    let token = format!("{:032x}", rand::random::<u128>());
    let config = demo_config(dir, &fake, &token)?;
    let channels = Channels::from_config(&config)?;
    let app = App::build(config, Arc::new(SystemClock)).await?;
    let port = app.port();
    let store = app.state().store.clone();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    seed_faq(&store).await?;
    let http = reqwest::Client::new();
    http.post(format!("{}/_fake/contacts", fake.base_url()))
        .json(&serde_json::json!({
            "external_userid": CUSTOMER, "name": "李四", "follow_user": [{ "userid": STAFF, "state": "demo_qr" }]
        }))
        .send()
        .await?;
    let demo = Demo {
        http,
        port,
        channels,
        fake,
        token,
    };

    println!(
        "运营 Yunying demo — server on http://127.0.0.1:{port}, WeCom stand-in on {}",
        demo.fake.base_url()
    );
    demo.welcomes().await?;

    println!("\n③ 群聊");
    demo.say(CUSTOMER, "李四", "签到").await?;
    demo.say(CUSTOMER, "李四", "签到").await?;
    demo.say(CUSTOMER, "李四", "直播几点开始").await?;
    demo.say(CUSTOMER, "李四", "积分").await?;

    println!("\n④ 运营人员在群里使用指令");
    demo.say(STAFF, "张三", "/points @李四 +20 欢迎新朋友")
        .await?;
    demo.say(STAFF, "张三", "/stats").await?;

    demo.aibot_over_the_long_connection().await?;

    println!("\n⑥ 运营通过接口发起推送（写入发送队列 outbox，由 worker 发送）");
    let response = demo
        .http
        .post(format!("http://127.0.0.1:{port}/api/v1/outbox"))
        .bearer_auth(&demo.token)
        .json(&serde_json::json!({
            "channel": "demo_app", "to": [STAFF], "text": "本周三晚 8 点直播，欢迎预约！", "key": "demo-push-1"
        }))
        .send()
        .await?;
    println!("  POST /api/v1/outbox → {}", response.status());
    demo.outbound("message/send", 0, "应用消息推送").await?;

    demo.recall(&store).await?;

    let stats = demo
        .http
        .get(format!("http://127.0.0.1:{port}/api/v1/outbox/stats"))
        .bearer_auth(&demo.token)
        .send()
        .await?
        .text()
        .await?;
    println!("\n发送队列状态 outbox: {stats}");
    println!(
        "模拟企业微信收到的请求: {} 次，其中 gettoken {} 次",
        demo.fake.requests().len(),
        demo.fake.gettoken_calls()
    );
    shutdown.cancel();
    server.await.context("server task")??;
    Ok(())
}
