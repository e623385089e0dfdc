//! One integration binary: every test drives the real HTTP server with real encrypted payloads,
//! on SQLite always and on PostgreSQL when YUNYING_TEST_DATABASE_URL is set.

mod helpers;

mod aibot;
mod aibot_ws;
mod callbacks;
mod commands;
mod connections;
mod dedupe;
mod demo;
mod faq;
mod faq_cli;
mod hostile;
mod lifecycle;
mod maintenance;
mod makeup;
mod member_api;
mod members;
mod members_cli;
mod memory;
mod ops_api;
mod outbox;
mod outbox_processes;
mod recall;
mod redeem;
mod rejections;
mod resilience;
mod robustness;
mod roles;
mod segments;
mod signin;
mod sync;
mod tag_rules;
mod welcome;
mod writer;

#[test]
fn ci_never_skips_postgres_silently() {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert!(
            helpers::pg_url().is_some(),
            "CI=true but YUNYING_TEST_DATABASE_URL is not set"
        );
    }
}
