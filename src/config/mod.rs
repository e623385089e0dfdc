//! Typed configuration: one TOML file whose every key can be overridden by a `YUNYING_…`
//! environment variable. The embedded `config.example.toml` is the default. Validation after
//! loading names the key and the reason; secrets are [`Secret`](crate::config::Secret)s that
//! never print.

mod channel_checks;
mod channel_kind;
mod load;
mod secret;
mod sync;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use channel_kind::ChannelKind;
pub use load::{load, load_checked, Check, ConfigError, ConfigIssue, LoadedConfig, EXAMPLE_TOML};
pub use secret::Secret;
pub use sync::SyncConfig;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub community: CommunityConfig,
    pub templates: TemplatesConfig,
    pub log: LogConfig,
    pub points: PointsConfig,
    pub faq: FaqConfig,
    pub commands: CommandsConfig,
    pub lifecycle: LifecycleConfig,
    pub value_layers: ValueLayersConfig,
    /// Automatic tagging rules, evaluated as events arrive.
    #[serde(default)]
    pub tag_rules: Vec<TagRuleConfig>,
    pub ops_api: OpsApiConfig,
    pub api: ApiConfig,
    pub outbox: OutboxConfig,
    pub welcome: WelcomeConfig,
    pub scheduler: SchedulerConfig,
    pub aibot: AibotConfig,
    #[serde(default)]
    pub recall: RecallConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
}

/// Where the platform APIs are (a local stand-in for tests and the demo).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// WeCom server API, e.g. `https://qyapi.weixin.qq.com`.
    pub wecom_base: String,
    /// WeChat MP API, e.g. `https://api.weixin.qq.com`.
    pub mp_base: String,
    /// Longest wait for one API call.
    pub timeout_ms: u64,
}

/// The durable outbox: workers, retries and rate limits (发送队列).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Whether this process sends (several replicas may all send; each row goes out once).
    pub enabled: bool,
    /// How often an idle worker looks for due rows.
    pub poll_interval_ms: u64,
    /// Rows claimed and sent concurrently per round.
    pub batch_size: usize,
    /// A claimed row not marked within this time is claimed again (a crashed worker).
    pub lease_secs: i64,
    /// Attempts before a transiently failing row goes dead.
    pub max_attempts: i64,
    /// Retry delay: random between 0 and min(cap, base × 2^attempt) (full jitter).
    pub backoff_base_ms: i64,
    pub backoff_cap_ms: i64,
    /// Group robot: most messages per robot per minute (platform: 20).
    pub robot_per_minute: u32,
    /// App messages: most per member per minute and per hour (platform: 30 and 1000).
    pub member_per_minute: u32,
    pub member_per_hour: u32,
    /// Most API calls per second per channel (token bucket); 0 = no limit.
    pub channel_per_second: u32,
    /// Scheduled sends due in the first N seconds after :00 and :30 are spread over the next N
    /// seconds (the platform asks to avoid those peaks); 0 = off.
    pub avoid_peak_secs: i64,
    /// WeCom's duplicate check on app messages: a re-send after a crash within this window is
    /// not delivered twice (max 14400).
    pub duplicate_check_secs: i64,
    /// Customer mass sends per recipient per month; 0 = as many as the month has days.
    pub customer_monthly_quota: i64,
    /// How often a mass-send task is asked for its results, and when to give up waiting for
    /// staff to confirm it.
    pub task_poll_secs: i64,
    pub task_expire_hours: i64,
}

/// The AI bot's long connection (智能机器人长连接).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AibotConfig {
    /// A ping this often; two unanswered pings mean the link is dead and is redialled.
    pub heartbeat_secs: u64,
    /// One replica holds each bot's connection under a lease this long, renewed while connected.
    pub lease_secs: i64,
    /// Reconnect backoff: exponential with jitter up to this.
    pub reconnect_max_secs: u64,
    /// Hosts a callback's `response_url` may point at; late answers to other hosts are not posted.
    pub response_url_hosts: Vec<String>,
}

/// The scheduler (定时任务): cron expressions with seconds first, in `community.timezone`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Whether this process runs scheduled jobs (replicas may all run it: each tick runs once).
    pub enabled: bool,
    /// A tick missed while no process ran is run once if it is less than this late; older
    /// ticks are skipped (and logged).
    pub missed_window_secs: i64,
    /// Lifecycle stages, value layers and state tag rules.
    pub lifecycle_cron: String,
    /// Deleting processed inbox rows older than `inbox_retention_hours` (at least 24).
    pub inbox_prune_cron: String,
    pub inbox_retention_hours: i64,
}

/// Lapsed-member recall (流失召回) and the churn-risk warning (流失预警).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecallConfig {
    pub plans: Vec<RecallPlanConfig>,
    /// Risk = days away ÷ the member's usual gap between active days; at or above this the
    /// member gets `risk_tag` and is listed for follow-up.
    pub risk_threshold: f64,
    pub risk_tag: String,
    /// Only members with this many active days in the last `risk_lookback_days` are scored.
    pub risk_min_active_days: i64,
    pub risk_lookback_days: i64,
}

impl Default for RecallConfig {
    fn default() -> Self {
        Self {
            plans: Vec::new(),
            risk_threshold: 3.0,
            risk_tag: "流失预警".into(),
            risk_min_active_days: 3,
            risk_lookback_days: 90,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecallPlanConfig {
    pub id: String,
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// When the plan runs (cron, seconds first).
    pub cron: String,
    /// Channel the touches go out on (wecom_robot: @-mention in the group; wecom_app: app
    /// message; wechat_mp: customer-service message).
    pub channel: String,
    /// Who is eligible (segment language).
    pub segment: String,
    /// Share of eligible members (0–50 %) held out as the control group: never touched.
    pub holdout_percent: u32,
    /// A member counts as recalled when active within this many days after a touch.
    pub recall_window_days: i64,
    /// Least days between two touches of one member.
    pub cooldown_days: i64,
    /// Most touches per member per absence.
    pub max_touches: i64,
    /// Local hours when touches may go out, `[from, to)`.
    pub send_hours: [u32; 2],
    pub touches: Vec<RecallTouchConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecallTouchConfig {
    /// Days since the member's last activity.
    pub after_days: i64,
    /// minijinja: name, days_away, balance, streak_lost, level, faq_top (list of questions).
    pub template: String,
    /// Points credited through the ledger if the member comes back within `bonus_within_days`.
    #[serde(default)]
    pub bonus_points: i64,
    #[serde(default)]
    pub bonus_within_days: i64,
}

/// Welcome messages (欢迎语).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WelcomeConfig {
    /// A new customer contact gets `outbound/welcome_contact` through `send_welcome_msg`.
    pub contact: bool,
    /// A member joining a group gets `outbound/welcome_group` through the group's robot.
    pub group: bool,
    /// Group rules shown in the group welcome.
    pub group_rules: String,
    /// Welcome texts by the State of the contact-way code that brought the contact.
    #[serde(default)]
    pub by_state: BTreeMap<String, String>,
}

/// Lifecycle stage thresholds, in days (生命周期).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// First seen less than this many days ago: new (and a return counts as "returned" this long).
    pub new_days: i64,
    /// No activity for this many days: silent.
    pub silent_days: i64,
    /// No activity for this many days: lapsed.
    pub lapsed_days: i64,
}

/// One automatic tagging rule (自动打标签).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TagRuleConfig {
    /// Recorded with every application of the rule.
    pub id: String,
    /// `keyword` (any of `|`-separated words in a message), `regex` (a message matches),
    /// `joined_group` (joined a group whose id or name is `pattern`), `channel_state` (added as a
    /// contact through a contact-way code whose State is `pattern`; `*` for any).
    pub when: String,
    pub pattern: String,
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Value layers (价值分层) by RFM score (3–15), highest first.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValueLayersConfig {
    pub layers: Vec<LayerConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    pub name: String,
    /// Lowest total score in this layer.
    pub min_score: i64,
}

/// Ops commands in chat (运营指令).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    /// What a command starts with, e.g. `/` (full-width `／` works too).
    pub prefix: String,
    /// Ops staff by platform user id; `/role` changes made in chat override this list, except
    /// that an admin listed here always stays admin.
    #[serde(default)]
    pub staff: Vec<StaffConfig>,
    /// Largest change of one `/points` adjustment (either sign).
    pub max_points_adjustment: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaffConfig {
    /// Member scope (the corp id for WeCom channels); `*` for every scope except Official
    /// Accounts, whose OpenIDs match only an entry that names their channel or scope.
    pub scope: String,
    pub user: String,
    /// `admin` or `operator`.
    pub role: String,
    /// Only on this channel (then `scope` may be `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// FAQ answers (智能问答).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaqConfig {
    pub enabled: bool,
    /// Confidence (0–1) from which the best entry is answered outright.
    pub answer_threshold: f32,
    /// Confidence from which "您是不是想问" offers the top three; below it nothing is answered.
    pub suggest_threshold: f32,
    /// After an unprompted answer in a group, no other unprompted answer there for this long.
    pub group_cooldown_secs: i64,
    /// Whether groups answer questions not addressed to the bot (changeable per group via the API).
    pub auto_answer: bool,
    /// How long a member may reply 1/2/3 to a "您是不是想问" list.
    pub choice_ttl_secs: i64,
    /// Interchangeable words of this knowledge base; the first word of a group stands for the rest.
    #[serde(default)]
    pub synonyms: Vec<Vec<String>>,
}

/// The JSON API for ops staff under `/api/v1`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpsApiConfig {
    /// Bearer token; empty disables the API (every call answers 403).
    pub token: Secret,
}

/// Sign-in points (签到积分).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointsConfig {
    /// Messages (exact, after trimming) that sign a member in.
    pub signin_keywords: Vec<String>,
    /// Messages that show the member's balance, level, streak and rank.
    pub balance_keywords: Vec<String>,
    /// Messages that show the leaderboard; an argument picks the period (今日/本周/本月/总).
    pub leaderboard_keywords: Vec<String>,
    /// Points for every sign-in.
    pub base: i64,
    /// Extra points on given days of a streak.
    pub streak_bonuses: Vec<StreakBonus>,
    /// Bonuses repeat every this many days (7: day 10 pays like day 3, day 14 like day 7); 0 = once.
    pub streak_cycle_days: i64,
    /// Each sign-in adds a bonus between 0 and this (deterministic per member and day); 0 = off.
    pub random_bonus_max: i64,
    /// Seed of the random bonus, so tests and audits can reproduce it.
    pub random_seed: u64,
    /// Most points a member can earn per local day from all sources.
    pub daily_cap: i64,
    /// Levels by points earned in total (never lowered by spending).
    pub levels: Vec<LevelConfig>,
    /// Messages that list the redeemable items.
    pub shop_keywords: Vec<String>,
    /// Prefix of a redemption: `兑换 <item name>`.
    pub redeem_keyword: String,
    /// Messages that spend a make-up card (补签卡) on yesterday's missed sign-in.
    pub makeup_keywords: Vec<String>,
    /// Items added to the catalog at start-up when missing (the database is the source of truth
    /// afterwards: stock changes with every order).
    #[serde(default)]
    pub items: Vec<ItemConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ItemConfig {
    pub name: String,
    pub cost: i64,
    pub stock: i64,
    /// Most orders per member (0 = no limit).
    #[serde(default)]
    pub per_member_limit: i64,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `goods` (default: ops ship it) or `makeup_card` (补签卡: delivered at once, spent on `补签`).
    #[serde(default)]
    pub kind: ItemKind,
}

/// What an item of the catalog is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    #[default]
    Goods,
    MakeupCard,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Goods => "goods",
            Self::MakeupCard => "makeup_card",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreakBonus {
    pub day: i64,
    pub points: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    pub name: String,
    pub min_points: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// Largest accepted callback body in bytes.
    pub body_limit_bytes: usize,
    /// Callbacks whose timestamp is further from now than this are refused; 0 disables.
    pub replay_window_secs: i64,
    /// Time budget for handlers before the answer goes out without a passive reply.
    pub handler_budget_ms: u64,
    /// Unprocessed inbox rows older than this are re-dispatched by the sweeper.
    pub sweep_after_secs: i64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// A client must send a request's headers within this time (also the wait for the first).
    pub header_read_timeout_secs: u64,
    /// A client must send a request's body within this time once its headers are in.
    pub body_read_timeout_secs: u64,
    /// A kept-alive connection with no request for this long is closed.
    pub keep_alive_idle_secs: u64,
    /// Most open connections; 0 = three quarters of the process's open-file limit.
    pub max_connections: usize,
    /// A platform message time further ahead of arrival than this is replaced by the arrival time.
    pub future_skew_secs: i64,
    /// A platform message time further behind arrival than this is replaced by the arrival time
    /// (retries of a delivery come within minutes; a crash backlog within hours).
    pub past_skew_secs: i64,
    /// Runs of an event whose handlers keep failing before it is set aside as dead.
    pub handler_max_attempts: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`.
    pub url: Secret,
    pub max_connections: u32,
    /// A pool wait longer than this answers 503 so the platform retries.
    pub acquire_timeout_ms: u64,
    /// Most callbacks written in one group-commit transaction.
    pub batch_max: usize,
    /// Parallel group-commit writers (PostgreSQL); 0 picks 1.
    pub writers: usize,
    /// SQLite `synchronous` pragma: `normal` (durable across process crashes) or `full`
    /// (also across power loss).
    pub sqlite_synchronous: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityConfig {
    /// IANA time zone for "today" (sign-in days, daily activity).
    pub timezone: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Folder with reply templates; files missing there fall back to the built-in copies.
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter, e.g. `info` or `yunying=debug,info`; `YUNYING_LOG` wins when set.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

/// How a WeChat Official Account channel takes deliveries (the MP console's 消息加解密方式).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpMode {
    /// 安全模式: only encrypted bodies, signed over the ciphertext.
    Safe,
    /// 兼容模式: encrypted bodies, and plaintext ones whose body no signature covers.
    Compatible,
    /// 明文模式: plaintext bodies only.
    Plaintext,
}

impl MpMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "safe" => Some(Self::Safe),
            "compatible" => Some(Self::Compatible),
            "plaintext" => Some(Self::Plaintext),
            _ => None,
        }
    }
}

/// One configured connection. Which keys are required depends on `kind`; validation says which.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub kind: ChannelKind,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Members of channels with the same scope are the same people (default: corp id / app id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Callback Token (WeCom/MP console).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Callback EncodingAESKey, 43 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key: Option<Secret>,
    /// `wecom_app`: CorpID (`ww…`), the receive id of its callbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_id: Option<String>,
    /// `wecom_app`: AgentId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<i64>,
    /// `wecom_app` / `wechat_mp`: API secret (outbound); `gateway`: the HMAC secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// `wechat_mp`: AppID (`wx…`), the receive id; `gh_` id is taken from each message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// `wecom_robot`: the webhook key (outbound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_key: Option<Secret>,
    /// `wecom_aibot`: the bot id (`aibotid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<String>,
    /// `wecom_aibot`: `callback` (encrypted JSON callbacks to `/callbacks/{id}`) or `websocket`
    /// (the long connection Yunying dials out; no public URL needed). `wechat_mp`: `safe`
    /// (default with an `encoding_aes_key`: encrypted bodies only), `compatible` (also plaintext
    /// bodies, which never run staff commands) or `plaintext` (no key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `wecom_aibot` in websocket mode: the endpoint (default `wss://openws.work.weixin.qq.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_url: Option<String>,
    /// `wecom_robot`: the robot's display name, stripped from `@name` at the start of texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robot_name: Option<String>,
    /// `wecom_robot`: group chat ids this robot sits in (`*`: any), for group welcomes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// `wecom_app` / `wecom_robot`: send welcome messages from this channel.
    #[serde(default = "yes")]
    pub welcome: bool,
    /// `gateway`: URL to POST active messages to (outbound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_url: Option<String>,
}

fn yes() -> bool {
    true
}

impl ChannelConfig {
    /// The Official Account mode: the configured one, else safe when a key is set (validation
    /// refuses a channel with neither).
    pub fn mp_mode(&self) -> MpMode {
        match self.mode.as_deref().and_then(MpMode::parse) {
            Some(mode) => mode,
            None if self.encoding_aes_key.is_some() => MpMode::Safe,
            None => MpMode::Plaintext,
        }
    }
}

impl Config {
    /// The built-in defaults (`config.example.toml`), validated; the environment is not read.
    pub fn example() -> Result<Self, ConfigError> {
        load::example_alone()
    }

    /// The time zone, already validated at load.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.community
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// Renders the resolved configuration as TOML with every secret shown as `***`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
