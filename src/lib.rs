//! Yunying (运营): a community-operations assistant for WeCom (企业微信) and WeChat groups.
//!
//! A guided tour, in the order a callback travels:

/// Command-line interface: `serve`, `migrate`, `check-config`, `send`.
pub mod cli;
/// Typed configuration: embedded defaults, TOML file, `YUNYING_` environment overrides.
pub mod config;
/// The injectable clock: the only place that reads "now".
pub mod clock;
/// Platform library: WeCom/WeChat callback crypto, XML/JSON payloads, gateway signatures.
pub mod wecom;
/// Configured channels by id, with their decoded keys.
pub mod channels;
/// The normalized event every channel's deliveries become.
pub mod events;
/// Callback → verified event → durable inbox (group commit) → handlers → passive reply.
pub mod ingress;
/// The handler chain that decides what to answer.
pub mod bot;
/// Member registry and activity tracking.
pub mod members;
/// Storage: SQLite or PostgreSQL behind one layer.
pub mod store;
/// Reply templates loaded at run time.
pub mod templates;
/// Logs and Prometheus metrics.
pub mod telemetry;
/// Shared state of HTTP handlers.
pub mod state;
/// HTTP routes.
pub mod web;
/// Wiring and lifecycle of the server.
pub mod app;
/// Building signed, encrypted callbacks as the platform would (`yunying send`, tests).
pub mod send;
