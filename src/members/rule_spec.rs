//! Tag rules as written (in the configuration or the database) compiled to triggers. Event
//! triggers look at one event (a message, a join, a contact added); state triggers look at a
//! member's standing (a segment such as `points >= 100`, a level, a stage, recent activity) and
//! are applied set-wise by [`super::state_rules`].

use crate::config::TagRuleConfig;
use crate::members::lifecycle::Stage;
use crate::members::segment::{self, Expr};

/// Every kind a rule may be, for error messages and the API.
pub const KINDS: &[&str] = &[
    "keyword",
    "regex",
    "joined_group",
    "channel_state",
    "segment",
    "points",
    "earned",
    "level",
    "stage",
    "activity",
];

pub enum Trigger {
    Keywords(Vec<String>),
    Regex(regex::Regex),
    JoinedGroup(String),
    /// `None` = any State.
    ChannelState(Option<String>),
    /// Members matching the segment (points, earned, level and stage rules are segments too).
    Segment(Expr),
    /// At least `messages` messages in the last `days` days.
    Activity {
        messages: i64,
        days: i64,
    },
}

impl Trigger {
    /// Whether the trigger looks at standing rather than at one event.
    pub fn is_state(&self) -> bool {
        matches!(self, Self::Segment(_) | Self::Activity { .. })
    }
}

pub struct Rule {
    pub id: String,
    pub trigger: Trigger,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

/// The configuration check of the tag rules: each compiles.
pub fn check_config(config: &crate::config::Config) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    for (i, rule) in config.tag_rules.iter().enumerate() {
        if let Err(reason) = compile(rule) {
            let field = if reason.contains("is not one of") {
                "when"
            } else {
                "pattern"
            };
            issues.push((format!("tag_rules[{i}].{field}"), reason));
        }
    }
    issues
}

/// Compiles one rule, or says what is wrong with its `when` or `pattern`.
pub fn compile(c: &TagRuleConfig) -> Result<Rule, String> {
    let pattern = c.pattern.trim();
    if pattern.is_empty() {
        return Err("pattern must not be empty".into());
    }
    if c.add.is_empty() && c.remove.is_empty() {
        return Err("a rule needs tags to add or remove".into());
    }
    let threshold = |field: &str| -> Result<Trigger, String> {
        let n: i64 = pattern
            .trim_start_matches(">=")
            .trim()
            .parse()
            .map_err(|_| format!("`{pattern}` is not a number of points (e.g. 100 or >= 100)"))?;
        segment_of(&format!("{field} >= {n}"))
    };
    let trigger = match c.when.as_str() {
        "keyword" => Trigger::Keywords(
            pattern
                .split('|')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        "regex" => Trigger::Regex(
            regex::Regex::new(pattern).map_err(|e| format!("not a valid regex: {e}"))?,
        ),
        "joined_group" => Trigger::JoinedGroup(pattern.to_owned()),
        "channel_state" => Trigger::ChannelState((pattern != "*").then(|| pattern.to_owned())),
        "segment" => segment_of(pattern)?,
        "points" => threshold("points")?,
        "earned" => threshold("earned")?,
        "level" => segment_of(&format!("level:\"{}\"", pattern.replace('"', "")))?,
        "stage" => {
            let stage = Stage::parse(pattern).ok_or_else(|| {
                format!(
                    "`{pattern}` is not a stage (new, active, silent, lapsed, churned, returned)"
                )
            })?;
            segment_of(&format!("stage:{}", stage.as_str()))?
        }
        "activity" => {
            let (messages, days) = parse_activity(pattern).ok_or_else(|| {
                format!("`{pattern}` is not messages/days such as 20/7d (at least 20 messages in 7 days; days 1–90)")
            })?;
            Trigger::Activity { messages, days }
        }
        other => return Err(format!("`{other}` is not one of {}", KINDS.join(", "))),
    };
    Ok(Rule {
        id: c.id.clone(),
        trigger,
        add: c.add.clone(),
        remove: c.remove.clone(),
    })
}

fn segment_of(expr: &str) -> Result<Trigger, String> {
    segment::parse(expr)
        .map(Trigger::Segment)
        .map_err(|e| format!("segment: {e}"))
}

/// `20/7d`, `20/7` or `20/7天` → (20, 7).
fn parse_activity(pattern: &str) -> Option<(i64, i64)> {
    let (messages, days) = pattern.split_once('/')?;
    let messages: i64 = messages.trim().parse().ok()?;
    let days: i64 = days
        .trim()
        .trim_end_matches(['d', '天'])
        .trim()
        .parse()
        .ok()?;
    (messages > 0 && (1..=90).contains(&days)).then_some((messages, days))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(when: &str, pattern: &str) -> TagRuleConfig {
        TagRuleConfig {
            id: "r".into(),
            when: when.into(),
            pattern: pattern.into(),
            add: vec!["t".into()],
            remove: Vec::new(),
        }
    }

    #[test]
    fn each_kind_compiles_to_its_trigger_and_bad_patterns_say_why() {
        assert!(matches!(
            compile(&spec("points", ">= 100")).map(|r| r.trigger),
            Ok(Trigger::Segment(_))
        ));
        assert!(matches!(
            compile(&spec("earned", "500")).map(|r| r.trigger),
            Ok(Trigger::Segment(_))
        ));
        assert!(matches!(
            compile(&spec("level", "核心")).map(|r| r.trigger),
            Ok(Trigger::Segment(_))
        ));
        assert!(matches!(
            compile(&spec("stage", "流失")).map(|r| r.trigger),
            Ok(Trigger::Segment(_))
        ));
        assert!(matches!(
            compile(&spec("activity", "20/7d")).map(|r| r.trigger),
            Ok(Trigger::Activity {
                messages: 20,
                days: 7
            })
        ));
        assert!(matches!(
            compile(&spec("segment", "tag:VIP and points > 3")).map(|r| r.trigger),
            Ok(Trigger::Segment(_))
        ));
        let err =
            |when: &str, pattern: &str| compile(&spec(when, pattern)).err().unwrap_or_default();
        assert!(err("points", "many").contains("not a number"));
        assert!(err("stage", "sleepy").contains("not a stage"));
        assert!(err("activity", "20/365d").contains("messages/days"));
        assert!(err("regex", "(").contains("regex"));
        assert!(err("segment", "tag:").contains("segment"));
        assert!(err("weather", "x").contains("not one of"));
    }
}
