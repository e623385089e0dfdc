//! Yunying (运营): a community-operations assistant for WeCom (企业微信) and WeChat groups.
//!
//! A guided tour, in the order a callback travels:

/// The AI bot's long connection (WebSocket): dial out, subscribe, answer through the inbox.
pub mod aibot;
/// Wiring and lifecycle of the server.
pub mod app;
/// The handler chain's machinery: the handler trait, the context, the dispatcher.
pub mod bot;
/// The standard handler chain, composed: which handlers, in what order, with which services.
pub mod chain;
/// Configured channels by id, with their decoded keys.
pub mod channels;
/// Command-line interface: `serve`, `migrate`, `check-config`, `send`.
pub mod cli;
/// The injectable clock: the only place that reads "now".
pub mod clock;
/// Ops commands in chat: declarations, parsing, roles, audit.
pub mod commands;
/// Typed configuration: embedded defaults, TOML file, `YUNYING_` environment overrides.
pub mod config;
/// `yunying demo`: a scripted community against the real server and the stand-in.
pub mod demo;
/// The normalized event every channel's deliveries become.
pub mod events;
/// A local stand-in for the WeCom and MP APIs (`yunying fake-wecom`, tests, `yunying demo`).
pub mod fake_wecom;
/// FAQ answers: Chinese question matching over the knowledge base.
pub mod faq;
/// Callback → verified event → durable inbox (group commit) → handlers → passive reply.
pub mod ingress;
/// Member registry and activity tracking.
pub mod members;
/// Outbound messages: the durable outbox, its workers, rate limits, tokens and welcomes.
pub mod outbox;
/// Sign-in points: ledger, streaks, levels, leaderboards.
pub mod points;
/// Lapsed-member recall: plans, holdout, touches through the outbox, measured lift.
pub mod recall;
/// Cron schedules in the community's time zone (a leaf).
pub mod schedule;
/// Cron schedules whose every tick runs once across replicas, and the periodic jobs.
pub mod scheduler;
/// Building signed, encrypted callbacks as the platform would (`yunying send`, tests).
pub mod send;
/// Shared state of HTTP handlers.
pub mod state;
/// Storage: SQLite or PostgreSQL behind one layer.
pub mod store;
/// Logs and Prometheus metrics.
pub mod telemetry;
/// Reply templates loaded at run time.
pub mod templates;
/// Text files saved from spreadsheets (UTF-8 with or without BOM, GBK).
pub mod textfile;
/// HTTP routes.
pub mod web;
/// Platform library: WeCom/WeChat callback crypto, XML/JSON payloads, gateway signatures.
pub mod wecom;
