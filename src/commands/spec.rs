//! Every ops command, declared once: name, aliases, typed arguments, the role it needs, help and
//! usage. `/help` and the parser both read this table; nothing else lists commands.

use std::fmt;

/// Who may do what. Ordered: an admin may do everything an operator may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every member: only harmless commands.
    Member,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" | "管理员" => Some(Self::Admin),
            "operator" | "运营" => Some(Self::Operator),
            "member" | "none" => Some(Self::Member),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an argument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// `@显示名` (or a platform user id).
    Member,
    /// A whole number with an explicit sign: `+50`, `-20`.
    Signed,
    /// An entry or record id: `12`.
    Id,
    /// One of a few words.
    Choice(&'static [&'static str]),
    /// One or more words to the end of the line (`"quoted text"` keeps spaces).
    Words,
    /// The rest of the line, free text.
    Text,
    /// `text | text`: two free texts around a `|`.
    TextPair,
    /// One or more names separated by spaces (`"quoted name"` keeps spaces).
    Names,
    /// A length of time: `7d`, `12h`, `30m` (also 天/小时/分钟); `today` counts as `1d`.
    Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSpec {
    pub name: &'static str,
    pub kind: ArgKind,
    pub required: bool,
}

const fn arg(name: &'static str, kind: ArgKind) -> ArgSpec {
    ArgSpec {
        name,
        kind,
        required: true,
    }
}

const fn optional(name: &'static str, kind: ArgKind) -> ArgSpec {
    ArgSpec {
        name,
        kind,
        required: false,
    }
}

/// One command.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// Canonical name, also the key of `/help <name>`.
    pub name: &'static str,
    /// Other names (Chinese and English).
    pub aliases: &'static [&'static str],
    pub args: &'static [ArgSpec],
    pub role: Role,
    pub help: &'static str,
    /// Without the prefix; the prefix is added when shown.
    pub usage: &'static str,
    /// What carries it out: every command has its handler, or the table does not compile.
    pub(super) run: RunFn,
}

/// Commands are told apart by name (each is declared once).
impl PartialEq for CommandSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CommandSpec {}

/// A command's handler.
pub(super) type RunFn = for<'a> fn(
    &'a crate::bot::BotContext,
    &'a super::run::Call<'a>,
) -> crate::store::BoxFuture<'a, anyhow::Result<String>>;

pub const TOP_PERIODS: &[&str] = &[
    "day", "week", "month", "日", "周", "月", "今日", "本周", "本月",
];
pub const RECALL_ACTIONS: &[&str] = &["preview", "stats", "run", "预览", "效果", "执行"];
pub const ROLES: &[&str] = &["admin", "operator", "none", "管理员", "运营"];

/// The command table.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "help",
        aliases: &["帮助"],
        args: &[optional("命令", ArgKind::Words)],
        role: Role::Member,
        help: "列出可用命令，或查看某个命令的用法",
        usage: "help [命令]",
        run: super::help::help,
    },
    CommandSpec {
        name: "member",
        aliases: &["成员"],
        args: &[arg("成员", ArgKind::Member)],
        role: Role::Operator,
        help: "查看成员资料：积分、等级、连签、最近活跃、所在群",
        usage: "member @成员",
        run: super::member::member,
    },
    CommandSpec {
        name: "tag",
        aliases: &["打标签", "标签"],
        args: &[arg("成员", ArgKind::Member), arg("标签", ArgKind::Names)],
        role: Role::Operator,
        help: "给成员打标签（可一次多个）",
        usage: "tag @成员 标签…",
        run: super::tags::tag,
    },
    CommandSpec {
        name: "untag",
        aliases: &["去标签", "删标签"],
        args: &[arg("成员", ArgKind::Member), arg("标签", ArgKind::Names)],
        role: Role::Operator,
        help: "去掉成员的标签",
        usage: "untag @成员 标签…",
        run: super::tags::untag,
    },
    CommandSpec {
        name: "points",
        aliases: &["积分调整", "加分"],
        args: &[
            arg("成员", ArgKind::Member),
            arg("分数", ArgKind::Signed),
            arg("原因", ArgKind::Text),
        ],
        role: Role::Operator,
        help: "给成员加减积分（记入积分流水）",
        usage: "points @成员 +50 原因",
        run: super::points_cmd::adjust,
    },
    CommandSpec {
        name: "faq add",
        aliases: &["问答 新增"],
        args: &[arg("问题 | 答案", ArgKind::TextPair)],
        role: Role::Operator,
        help: "新增问答",
        usage: "faq add 问题 | 答案",
        run: super::faq_cmd::faq_add,
    },
    CommandSpec {
        name: "faq similar",
        aliases: &["问答 相似"],
        args: &[arg("编号", ArgKind::Id), arg("问法", ArgKind::Text)],
        role: Role::Operator,
        help: "给问答添加一个相似问法",
        usage: "faq similar 编号 问法",
        run: super::faq_cmd::faq_similar,
    },
    CommandSpec {
        name: "faq del",
        aliases: &["问答 删除"],
        args: &[arg("编号", ArgKind::Id)],
        role: Role::Operator,
        help: "删除问答",
        usage: "faq del 编号",
        run: super::faq_cmd::faq_del,
    },
    CommandSpec {
        name: "faq test",
        aliases: &["问答 测试"],
        args: &[arg("问题", ArgKind::Text)],
        role: Role::Operator,
        help: "测试一个问题会匹配到哪些问答（含分数）",
        usage: "faq test 问题",
        run: super::faq_cmd::faq_test,
    },
    CommandSpec {
        name: "stats",
        aliases: &["统计"],
        args: &[optional("范围", ArgKind::Duration)],
        role: Role::Operator,
        help: "社群数据：活跃成员、新成员、签到、发放积分、问答（范围按天，最多 90 天）",
        usage: "stats [today|7d|30d]",
        run: super::stats::stats,
    },
    CommandSpec {
        name: "top",
        aliases: &["榜单"],
        args: &[optional("周期", ArgKind::Choice(TOP_PERIODS))],
        role: Role::Operator,
        help: "积分榜前十",
        usage: "top [day|week|month]",
        run: super::points_cmd::top,
    },
    CommandSpec {
        name: "mute",
        aliases: &["屏蔽"],
        args: &[arg("成员", ArgKind::Member)],
        role: Role::Operator,
        help: "不再回复该成员、不再向其推送",
        usage: "mute @成员",
        run: super::staff::mute,
    },
    CommandSpec {
        name: "unmute",
        aliases: &["取消屏蔽"],
        args: &[arg("成员", ArgKind::Member)],
        role: Role::Operator,
        help: "恢复回复与推送",
        usage: "unmute @成员",
        run: super::staff::unmute,
    },
    CommandSpec {
        name: "recall",
        aliases: &["召回"],
        args: &[
            arg("操作", ArgKind::Choice(RECALL_ACTIONS)),
            arg("计划", ArgKind::Words),
        ],
        role: Role::Operator,
        help: "召回计划：preview 预览（不发送）、stats 效果与对照组、run 立即执行（仅管理员）",
        usage: "recall preview|stats|run 计划id",
        run: super::recall_cmd::recall,
    },
    CommandSpec {
        name: "role",
        aliases: &["角色"],
        args: &[
            arg("成员", ArgKind::Member),
            arg("角色", ArgKind::Choice(ROLES)),
        ],
        role: Role::Admin,
        help: "设置成员角色：admin、operator 或 none",
        usage: "role @成员 admin|operator|none",
        run: super::staff::role,
    },
];

/// The command a name (or alias) stands for; two-word names (`faq add`) first.
pub fn find(words: &[&str]) -> Option<(&'static CommandSpec, usize)> {
    let two = words.get(..2).map(|w| w.join(" ").to_lowercase());
    let one = words.first().map(|w| w.to_lowercase());
    let matches = |c: &CommandSpec, name: &str| c.name == name || c.aliases.contains(&name);
    if let Some(two) = two {
        if let Some(c) = COMMANDS.iter().find(|c| matches(c, &two)) {
            return Some((c, 2));
        }
    }
    let one = one?;
    COMMANDS.iter().find(|c| matches(c, &one)).map(|c| (c, 1))
}
