//! The periodic maintenance over members read a few at a time: with windows of two members,
//! stages, value layers, churn-risk warnings and state tag rules come out for every member as they
//! would in one read, a second run at the same time changes nothing, and a risk no longer
//! measured is dropped.

use yunying::clock::Clock as _;
use yunying::config::TagRuleConfig;
use yunying::members::segment::{self, SegmentContext};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(maintenance_in_small_windows_covers_every_member);

const SCOPE: &str = "wwdemo0000000001";
const DAY: i64 = 86_400_000;

async fn members_in(app: &TestApp, text: &str, now: i64) -> Vec<String> {
    let config = &app.app_state.config;
    let ctx = SegmentContext {
        accounts: segment::AccountSql::for_backend(app.store.backend()),
        now_ms: now,
        levels: &config.points.levels,
    };
    let compiled =
        segment::to_sql(&segment::parse(text).expect("parses"), &ctx, 2).expect("compiles");
    let mut users = app
        .store
        .segment_members(SCOPE, &compiled, 1000, 0)
        .await
        .expect("list");
    users.sort();
    users
}

async fn tag_history_len(app: &TestApp) -> i64 {
    app.query_column("select cast(count(*) as bigint) from member_tag_log")
        .await[0]
}

async fn maintenance_in_small_windows_covers_every_member(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.tag_rules.push(TagRuleConfig {
            id: "quiet".into(),
            when: "segment".into(),
            pattern: "last_active >= 5d".into(),
            add: vec!["五天未发言".into()],
            remove: vec![],
        });
    })
    .await;
    let now = app.clock.now_ms();
    let app = &app;
    let say = |user: &'static str, days_ago: i64, id: String| {
        app.clock.set_ms(now - days_ago * DAY);
        async move { app.robot_say(user, Some("g"), "大家好", &id).await }
    };
    // Two regulars who came every other day and then went away: at risk (26 idle days over a
    // usual gap of 2), quiet, silent.
    for (user, days) in [("r0", [30, 28, 26]), ("r1", [30, 28, 26])] {
        for d in days {
            say(user, d, format!("{user}-{d}")).await;
        }
    }
    // One visit ten days ago: quiet and silent, but too few active days for a risk score.
    say("once", 10, "once-10".into()).await;
    // Four who come every day: new, not quiet, not at risk.
    for user in ["s0", "s1", "s2", "s3"] {
        for d in (0..=4).rev() {
            say(user, d, format!("{user}-{d}")).await;
        }
    }
    app.clock.set_ms(now);

    yunying::scheduler::jobs::maintenance_in_windows(&app.app_state, now, 2)
        .await
        .expect("maintenance");
    let risk_tag = app.app_state.config.recall.risk_tag.clone();
    assert_eq!(
        members_in(app, &format!("tag:{risk_tag}"), now).await,
        ["r0", "r1"]
    );
    assert_eq!(
        members_in(app, "tag:五天未发言", now).await,
        ["once", "r0", "r1"]
    );
    assert_eq!(
        members_in(app, "stage:silent", now).await,
        ["once", "r0", "r1"]
    );
    assert_eq!(
        members_in(app, "stage:new", now).await,
        ["s0", "s1", "s2", "s3"]
    );
    let layers = app.store.layer_distribution(SCOPE).await.expect("layers");
    assert_eq!(layers.iter().map(|(_, n)| n).sum::<i64>(), 7, "{layers:?}");

    // Again at the same time: every window is read again and nothing is written.
    let history = tag_history_len(app).await;
    let layers_changed = yunying::members::layers::recompute(
        &app.store,
        &app.app_state.config.value_layers,
        now,
        (
            yunying::members::local_day(app.app_state.config.timezone(), (now - 29 * DAY) / 1000),
            yunying::members::local_day(app.app_state.config.timezone(), now / 1000),
        ),
        2,
    )
    .await
    .expect("layers");
    assert_eq!(layers_changed, 0);
    yunying::scheduler::jobs::maintenance_in_windows(&app.app_state, now, 2)
        .await
        .expect("again");
    assert_eq!(tag_history_len(app).await, history, "no tag changed");

    // 65 days on, the regulars' active days have left the 90-day look-back: their risk is no
    // longer measured, so it is dropped with the tag instead of staying frozen. The daily four
    // are at risk now.
    let later = now + 65 * DAY;
    yunying::scheduler::jobs::maintenance_in_windows(&app.app_state, later, 2)
        .await
        .expect("later");
    assert_eq!(
        members_in(app, &format!("tag:{risk_tag}"), later).await,
        ["s0", "s1", "s2", "s3"]
    );
    let mut listed: Vec<String> = app
        .store
        .at_risk_above(SCOPE, 0.0, 100)
        .await
        .expect("at risk")
        .into_iter()
        .map(|(user, ..)| user)
        .collect();
    listed.sort();
    assert_eq!(listed, ["s0", "s1", "s2", "s3"], "no frozen risk left");
}
