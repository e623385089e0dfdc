//! Recall and the scheduler on an injected clock: sixty simulated days of a synthetic community
//! (touches on the right days in Asia/Shanghai, holdout members untouched, cooldown and max
//! touches, opt-out, bonus credited once, recall rates and lift as designed), and two replicas
//! claiming 1,000 ticks with each run once.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::TimeZone as _;
use serde_json::Value;
use yunying::clock::Clock as _;
use yunying::config::{Config, RecallPlanConfig, Secret};
use yunying::fake_wecom::FakeWecom;
use yunying::recall::Plan;
use yunying::scheduler::runner::Runner;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    sixty_days_of_recall_match_the_design,
    two_replicas_run_each_of_a_thousand_ticks_once,
    plans_are_managed_through_the_api,
    a_run_in_small_batches_touches_each_due_member_once,
);

const TOKEN: &str = "ops-token-0123456789";
const SCOPE: &str = "wwdemo0000000001";

fn plan() -> RecallPlanConfig {
    toml::from_str(
        r#"
        id = "lapsed"
        name = "流失召回"
        cron = "0 0 10 * * *"
        channel = "demo_robot"
        segment = "stage:lapsed and not tag:免打扰"
        holdout_percent = 25
        recall_window_days = 7
        cooldown_days = 5
        max_touches = 2
        send_hours = [9, 21]
        [[touches]]
        after_days = 14
        template = "{{ name }}，{{ days_away }} 天没见啦，回来看看～"
        bonus_points = 10
        bonus_within_days = 7
        [[touches]]
        after_days = 21
        template = "{{ name }}，你的 {{ balance }} 积分还在等你"
        "#,
    )
    .expect("plan")
}

fn adjust(config: &mut Config, base: String) {
    config.ops_api.token = Secret::new(TOKEN);
    config.api.wecom_base = base;
    config.scheduler.enabled = false; // the test drives the scheduler itself
    config.lifecycle.new_days = 7;
    config.lifecycle.silent_days = 7;
    config.lifecycle.lapsed_days = 14;
    config.recall.plans = vec![plan()];
}

/// 08:00 (members act) or 10:00 (the plan's tick) on day `d`, in Asia/Shanghai.
fn at(d: i64, hour: u32) -> i64 {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 1, 5, hour, 0, 0)
        .single()
        .map(|t| t.timestamp_millis())
        .unwrap_or_default()
        + d * 86_400_000
}

async fn api(app: &TestApp, method: &str, path: &str) -> Value {
    let url = app.url(path);
    let request = if method == "GET" {
        app.client.get(url)
    } else {
        app.client.post(url)
    };
    let response = request.bearer_auth(TOKEN).send().await.expect("request");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

async fn sixty_days_of_recall_match_the_design(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let base = fake.base_url();
    let app = TestApp::spawn_with(backend, move |c| adjust(c, base)).await;
    let say = |i: usize, day: i64, text: &'static str| {
        let app = &app;
        async move {
            app.clock.set_ms(at(day, 8));
            app.robot_say(
                &format!("m{i}"),
                Some("g1"),
                text,
                &format!("d{day}m{i}{text}"),
            )
            .await;
        }
    };
    // Design: m0–m9 come every day; m10–m24 answer a touch (back two days later, then daily);
    // m25–m29 come back on day 17 by themselves; m30–m37 and m39 never return; m38 opts out.
    let regulars = 0..10;
    let responsive: HashSet<usize> = (10..25).collect();
    let spontaneous: HashSet<usize> = (25..30).collect();
    for i in 0..40 {
        say(i, 0, if i == 38 { "退订" } else { "大家好" }).await;
    }
    let id_of = |i: usize| {
        let store = app.store.clone();
        async move {
            store
                .member(SCOPE, &format!("m{i}"))
                .await
                .expect("member")
                .expect("exists")
                .id
        }
    };
    let plan = Plan::compile(&plan()).expect("plan");
    let mut held = HashSet::new();
    for i in 10..40 {
        if plan.holds_out(id_of(i).await) {
            held.insert(i);
        }
    }
    assert!(!held.is_empty() && held.len() < 20, "holdout {held:?}");
    let runner = Runner::new(
        app.app_state.clone(),
        Arc::clone(&app.app_state.recall),
        at(0, 7),
    )
    .expect("runner");

    let mut recall_days = Vec::new();
    let mut back: HashSet<usize> = HashSet::new();
    for day in 0..60 {
        // Members act at 08:00.
        for i in regulars
            .clone()
            .chain(back.iter().copied().collect::<Vec<_>>())
        {
            if day > 0 {
                say(i, day, "早").await;
            }
        }
        if day == 16 {
            for &i in responsive.iter().filter(|i| !held.contains(i)) {
                say(i, day, "我回来了").await;
                back.insert(i);
            }
        }
        if day == 17 {
            for &i in &spontaneous {
                say(i, day, "路过").await;
                back.insert(i);
            }
        }
        if day == 14 {
            // A dry run first: nothing recorded.
            app.clock.set_ms(at(day, 9));
            // Stages as of now (the scheduled recompute would do the same at 10:00).
            yunying::scheduler::jobs::maintenance(&app.app_state, app.clock.now_ms())
                .await
                .expect("maintenance");
            let preview = api(&app, "GET", "/api/v1/recall/lapsed/preview").await;
            assert_eq!(preview["eligible"], 29, "{preview}");
            assert_eq!(preview["held_out"], held.len(), "{preview}");
            assert!(
                preview["samples"][0][1]
                    .as_str()
                    .is_some_and(|t| t.contains("14 天没见")),
                "{preview}"
            );
            assert!(
                api(&app, "GET", "/api/v1/recall/lapsed/stats").await["touches"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
            );
        }
        // 09:59: not yet; 10:00: the plan's tick.
        app.clock.set_ms(at(day, 10) - 1000);
        assert!(!runner
            .run_due(app.clock.now_ms())
            .await
            .contains(&"recall:lapsed".to_string()));
        app.clock.set_ms(at(day, 10));
        let ran = runner.run_due(app.clock.now_ms()).await;
        assert!(
            ran.contains(&"recall:lapsed".to_string()),
            "day {day}: {ran:?}"
        );
        let rows = app.store.outbox_rows(None, 10_000).await.expect("rows");
        let today = rows
            .iter()
            .filter(|r| r.idem_key.starts_with("recall:") && r.created_at == at(day, 10))
            .count();
        if today > 0 {
            recall_days.push((day, today));
        }
    }

    let silent_touched = |set: &dyn Fn(usize) -> bool| {
        (10..40)
            .filter(|i| *i != 38 && set(*i) && !held.contains(i))
            .count()
    };
    let first = silent_touched(&|_| true);
    let second = silent_touched(&|i| !responsive.contains(&i) && !spontaneous.contains(&i));
    assert_eq!(
        recall_days,
        vec![(14, first), (21, second)],
        "touches on day 14 and day 21 only"
    );

    // Nothing went to held-out members or to the one who opted out.
    let rows = app.store.outbox_rows(None, 10_000).await.expect("rows");
    for i in held.iter().chain(std::iter::once(&38)) {
        let id = id_of(*i).await;
        assert!(
            !rows
                .iter()
                .any(|r| r.idem_key.starts_with("recall:")
                    && r.idem_key.contains(&format!(":{id}:"))),
            "m{i} was touched"
        );
    }

    // Results as designed: touch 1 — touched responsive and spontaneous members came back,
    // held-out spontaneous ones too; touch 2 — nobody came back.
    let stats = api(&app, "GET", "/api/v1/recall/lapsed/stats").await;
    let t1 = &stats["touches"][0];
    let t2 = &stats["touches"][1];
    let held_touch1 = held.iter().filter(|i| **i != 38).count();
    let recalled_t = (10..30).filter(|i| !held.contains(i)).count();
    let recalled_h = spontaneous.iter().filter(|i| held.contains(i)).count();
    assert_eq!(
        (t1["touched"].as_u64(), t1["held_out"].as_u64()),
        (Some(first as u64), Some(held_touch1 as u64)),
        "{stats}"
    );
    assert_eq!(
        (
            t1["recalled_touched"].as_u64(),
            t1["recalled_held_out"].as_u64()
        ),
        (Some(recalled_t as u64), Some(recalled_h as u64)),
        "{stats}"
    );
    let expected_lift = recalled_t as f64 / first as f64 - recalled_h as f64 / held_touch1 as f64;
    assert!(
        (t1["lift"].as_f64().unwrap_or(9.0) - expected_lift).abs() < 1e-9,
        "{stats}"
    );
    let held_touch2 = held
        .iter()
        .filter(|i| !spontaneous.contains(i) && **i != 38)
        .count();
    assert_eq!(
        (
            t2["touched"].as_u64(),
            t2["held_out"].as_u64(),
            t2["recalled_touched"].as_u64()
        ),
        (Some(second as u64), Some(held_touch2 as u64), Some(0)),
        "{stats}"
    );

    // The touch-1 bonus (10 points back within 7 days) was credited once to each who came back.
    let returner = (10..30)
        .find(|i| !held.contains(i))
        .expect("a touched returner");
    let (_, account) = app
        .store
        .points_account(SCOPE, &format!("m{returner}"))
        .await
        .expect("account")
        .expect("member");
    assert_eq!(account.balance, 10);
    if let Some(h) = spontaneous.iter().find(|i| held.contains(i)) {
        let (_, account) = app
            .store
            .points_account(SCOPE, &format!("m{h}"))
            .await
            .expect("account")
            .expect("member");
        assert_eq!(account.balance, 0, "held out: no offer, no bonus");
    }
}

/// Candidates are read and written a batch at a time: batches of 3 over 10 due members give the
/// same report as one batch, each member is touched once, and a re-run touches nobody.
async fn a_run_in_small_batches_touches_each_due_member_once(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let base = fake.base_url();
    let app = TestApp::spawn_with(backend, move |c| adjust(c, base)).await;
    app.clock.set_ms(at(0, 8));
    for i in 0..11 {
        let text = if i == 5 { "退订" } else { "大家好" };
        app.robot_say(&format!("m{i}"), Some("g1"), text, &format!("b{i}"))
            .await;
    }
    let now = at(14, 10);
    app.clock.set_ms(now);
    yunying::scheduler::jobs::maintenance(&app.app_state, now)
        .await
        .expect("maintenance");
    let plans = &app.app_state.recall;
    let plan = plans.get("lapsed").expect("plan");
    let run = |dry_run: bool, batch: usize| {
        let plan = Arc::clone(&plan);
        async move {
            yunying::recall::run_in_batches(&plans.ctx, &plan, now, dry_run, batch)
                .await
                .expect("run")
        }
    };
    let whole = run(true, 1000).await;
    let batched = run(true, 3).await;
    assert_eq!(whole.eligible, 10, "m5 opted out: {whole:?}");
    assert_eq!(
        (batched.eligible, batched.touched, batched.held_out),
        (whole.eligible, whole.touched, whole.held_out)
    );
    assert_eq!(batched.samples, whole.samples);
    assert_eq!(batched.held_out_sample, whole.held_out_sample);

    let done = run(false, 3).await;
    assert_eq!(
        (done.touched, done.held_out),
        (whole.touched, whole.held_out)
    );
    let recall_keys = || async {
        let rows = app.store.outbox_rows(None, 10_000).await.expect("rows");
        rows.into_iter()
            .filter(|r| r.idem_key.starts_with("recall:"))
            .map(|r| r.idem_key)
            .collect::<HashSet<_>>()
    };
    let sent = recall_keys().await;
    assert_eq!(sent.len(), whole.touched, "{sent:?}");

    // Again at the same time: everyone touched is cooling down; nothing new is queued.
    let again = run(false, 3).await;
    assert_eq!((again.eligible, again.waiting), (0, 10), "{again:?}");
    assert_eq!(recall_keys().await, sent);
}

async fn two_replicas_run_each_of_a_thousand_ticks_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.scheduler.enabled = false;
        c.scheduler.lifecycle_cron = "* * * * * *".into(); // every second
        c.recall.plans.clear();
    })
    .await;
    let start = app.clock.now_ms() / 1000 * 1000;
    let a = Runner::new(
        app.app_state.clone(),
        Arc::clone(&app.app_state.recall),
        start,
    )
    .expect("a");
    let b = Runner::new(
        app.app_state.clone(),
        Arc::clone(&app.app_state.recall),
        start,
    )
    .expect("b");
    let mut runs = 0;
    for s in 1..=1000 {
        app.clock.set_ms(start + s * 1000);
        let now = app.clock.now_ms();
        let (ra, rb) = tokio::join!(a.run_due(now), b.run_due(now));
        runs += ra.iter().chain(&rb).filter(|n| *n == "lifecycle").count();
    }
    assert_eq!(runs, 1000, "each tick ran exactly once");
    assert_eq!(
        app.store.tick_count("lifecycle").await.expect("count"),
        1000
    );
}

async fn plans_are_managed_through_the_api(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.ops_api.token = Secret::new(TOKEN);
        c.scheduler.enabled = false;
    })
    .await;
    let put = |id: &str, body: serde_json::Value| {
        app.client
            .put(app.url(&format!("/api/v1/recall/plans/{id}")))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let mut plan = serde_json::to_value(plan()).expect("json");
    plan["cron"] = "0 30 9 * * *".into();
    let response = put("weekly", plan.clone()).await.expect("put");
    assert_eq!(response.status(), 200);
    let mut bad = plan.clone();
    bad["holdout_percent"] = 80.into();
    let response = put("bad", bad).await.expect("put");
    assert_eq!(response.status(), 400);
    let reason: Value = response.json().await.expect("json");
    assert!(
        reason["error"]
            .as_str()
            .unwrap_or("")
            .contains("holdout_percent"),
        "{reason}"
    );
    assert_eq!(
        put("lapsed", plan).await.expect("put").status(),
        409,
        "configured plans are read-only"
    );

    let listed = api(&app, "GET", "/api/v1/recall/plans").await;
    let ids: Vec<(&str, &str)> = listed["plans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["plan"]["id"].as_str().unwrap_or(""),
                p["from"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(ids, vec![("lapsed", "config"), ("weekly", "database")]);
    assert_eq!(
        api(&app, "GET", "/api/v1/recall/weekly/preview").await["plan"],
        "weekly"
    );

    // The scheduler runs it on its own cron (09:30 Shanghai) without a restart.
    let runner = Runner::new(
        app.app_state.clone(),
        Arc::clone(&app.app_state.recall),
        at(0, 7),
    )
    .expect("runner");
    app.clock.set_ms(at(1, 9) + 30 * 60_000);
    let ran = runner.run_due(app.clock.now_ms()).await;
    assert!(ran.contains(&"recall:weekly".to_string()), "{ran:?}");

    let delete = |id: &str| {
        app.client
            .delete(app.url(&format!("/api/v1/recall/plans/{id}")))
            .bearer_auth(TOKEN)
            .send()
    };
    assert_eq!(delete("weekly").await.expect("delete").status(), 200);
    assert_eq!(delete("weekly").await.expect("delete").status(), 404);
}
