//! Command parsing: the text after the prefix becomes a declared command with typed arguments,
//! or an error that says what was wrong (the reply adds the usage line). Full-width characters
//! and spaces (including WeCom's U+2005 after a mention) are normalized first.

use unicode_normalization::UnicodeNormalization;

use super::spec::{find, ArgKind, CommandSpec};

/// A typed argument value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// `@显示名`, still to be resolved to a member of the group.
    Mention(String),
    Number(i64),
    Id(i64),
    Choice(String),
    Text(String),
    Pair(String, String),
    List(Vec<String>),
    /// Seconds.
    Duration(i64),
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub spec: &'static CommandSpec,
    pub args: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a known command (the word given).
    Unknown(String),
    /// A known command used wrongly: what was wrong.
    Usage {
        spec: &'static CommandSpec,
        reason: String,
    },
}

/// Full-width to ASCII, odd spaces to plain ones.
pub fn normalize(text: &str) -> String {
    text.nfkc()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Splits off the next whitespace-separated token (quoted tokens keep their spaces).
fn next_token(rest: &str) -> Option<(String, &str)> {
    let rest = rest.trim_start();
    let mut chars = rest.char_indices();
    let (_, first) = chars.next()?;
    let close = match first {
        '"' => Some('"'),
        '“' => Some('”'),
        '「' => Some('」'),
        _ => None,
    };
    if let Some(close) = close {
        let body = &rest[first.len_utf8()..];
        if let Some(end) = body.find(close) {
            return Some((body[..end].to_owned(), &body[end + close.len_utf8()..]));
        }
    }
    let end = rest.find(' ').unwrap_or(rest.len());
    Some((rest[..end].to_owned(), &rest[end..]))
}

fn unquote(text: &str) -> String {
    let t = text.trim();
    for (open, close) in [('"', '"'), ('“', '”'), ('「', '」')] {
        if let Some(inner) = t.strip_prefix(open).and_then(|s| s.strip_suffix(close)) {
            return inner.trim().to_owned();
        }
    }
    t.to_owned()
}

/// Parses `text` (without the prefix).
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    let text = normalize(text);
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).take(2).collect();
    let Some((spec, used)) = find(&words) else {
        return Err(ParseError::Unknown(
            words.first().copied().unwrap_or_default().to_owned(),
        ));
    };
    let mut rest = text.as_str();
    for _ in 0..used {
        rest = next_token(rest).map_or("", |(_, r)| r);
    }
    let usage = |reason: String| ParseError::Usage { spec, reason };
    let mut args = Vec::with_capacity(spec.args.len());
    for arg in spec.args {
        let trimmed = rest.trim();
        if trimmed.is_empty() {
            if arg.required {
                return Err(usage(format!("缺少「{}」", arg.name)));
            }
            args.push(Value::Absent);
            continue;
        }
        let value = match arg.kind {
            ArgKind::Text => {
                rest = "";
                Value::Text(unquote(trimmed))
            }
            ArgKind::Words => {
                rest = "";
                Value::Text(unquote(trimmed))
            }
            ArgKind::Names => {
                let mut names = Vec::new();
                while let Some((token, after)) = next_token(rest) {
                    if !token.trim().is_empty() && !names.contains(&token) {
                        names.push(token);
                    }
                    rest = after;
                }
                Value::List(names)
            }
            ArgKind::TextPair => {
                rest = "";
                let Some((a, b)) = trimmed.split_once('|') else {
                    return Err(usage(format!("「{}」要用 | 隔开", arg.name)));
                };
                let (a, b) = (unquote(a), unquote(b));
                if a.is_empty() || b.is_empty() {
                    return Err(usage("| 两边都不能为空".into()));
                }
                Value::Pair(a, b)
            }
            ArgKind::Member
            | ArgKind::Signed
            | ArgKind::Id
            | ArgKind::Choice(_)
            | ArgKind::Duration => {
                let Some((token, after)) = next_token(rest) else {
                    return Err(usage(format!("缺少「{}」", arg.name)));
                };
                rest = after;
                typed(arg.kind, arg.name, &token).map_err(usage)?
            }
        };
        args.push(value);
    }
    if !rest.trim().is_empty() {
        return Err(usage(format!("多余的内容「{}」", rest.trim())));
    }
    Ok(Parsed { spec, args })
}

fn typed(kind: ArgKind, name: &str, token: &str) -> Result<Value, String> {
    match kind {
        ArgKind::Member => match token.strip_prefix('@') {
            Some(member) if !member.is_empty() => Ok(Value::Mention(member.to_owned())),
            _ => Err(format!("「{name}」要用 @ 提到成员，收到「{token}」")),
        },
        ArgKind::Signed => {
            let signed = token.starts_with('+') || token.starts_with('-');
            match token.parse::<i64>() {
                Ok(n) if signed && n != 0 => Ok(Value::Number(n)),
                _ => Err(format!(
                    "「{name}」要写成带正负号的整数，如 +50 或 -20，收到「{token}」"
                )),
            }
        }
        ArgKind::Id => match token.parse::<i64>() {
            Ok(n) if n > 0 && token.bytes().all(|b| b.is_ascii_digit()) => Ok(Value::Id(n)),
            _ => Err(format!("「{name}」要写成编号（正整数），收到「{token}」")),
        },
        ArgKind::Choice(options) => {
            let lower = token.to_lowercase();
            if options.contains(&lower.as_str()) {
                Ok(Value::Choice(lower))
            } else {
                Err(format!(
                    "「{name}」只能是 {}，收到「{token}」",
                    options.join("、")
                ))
            }
        }
        ArgKind::Duration => duration(token).map(Value::Duration).ok_or_else(|| {
            format!("「{name}」要写成时长，如 7d、12h、30m 或 today，收到「{token}」")
        }),
        ArgKind::Text | ArgKind::Words | ArgKind::TextPair | ArgKind::Names => {
            Ok(Value::Text(token.to_owned()))
        }
    }
}

/// `7d` / `12h` / `30m` / `7天` / `12小时` / `30分钟` / `today` → seconds (positive, at most a year).
pub fn duration(token: &str) -> Option<i64> {
    let t = token.trim().to_lowercase();
    if matches!(t.as_str(), "today" | "今天" | "今日") {
        return Some(86_400);
    }
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = t.split_at(split);
    let n: i64 = number.parse().ok()?;
    let unit_secs = match unit {
        "d" | "天" => 86_400,
        "h" | "小时" => 3_600,
        "m" | "分钟" | "min" => 60,
        _ => return None,
    };
    let secs = n.checked_mul(unit_secs)?;
    (secs > 0 && secs <= 366 * 86_400).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (&'static str, Vec<Value>) {
        let p = parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        (p.spec.name, p.args)
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(p) => panic!("{text}: parsed as {p:?}"),
            Err(ParseError::Unknown(w)) => format!("unknown {w}"),
            Err(ParseError::Usage { spec, reason }) => format!("{}: {reason}", spec.name),
        }
    }

    #[test]
    fn valid_commands() {
        let m = |s: &str| Value::Mention(s.into());
        let t = |s: &str| Value::Text(s.into());
        let table: Vec<(&str, &str, Vec<Value>)> = vec![
            ("help", "help", vec![Value::Absent]),
            ("帮助 points", "help", vec![t("points")]),
            (
                "points @张三 +50 活动奖励",
                "points",
                vec![m("张三"), Value::Number(50), t("活动奖励")],
            ),
            // Full-width slash-less text, full-width plus and digits, U+2005 after the mention.
            (
                "points @张三\u{2005}＋５０ 原因 有空格",
                "points",
                vec![m("张三"), Value::Number(50), t("原因 有空格")],
            ),
            (
                "积分调整   @李四   -20   扣分",
                "points",
                vec![m("李四"), Value::Number(-20), t("扣分")],
            ),
            (
                "faq add 怎么退款 | 在订单页申请",
                "faq add",
                vec![Value::Pair("怎么退款".into(), "在订单页申请".into())],
            ),
            (
                "FAQ ADD 问题 | \"答案 带空格\"",
                "faq add",
                vec![Value::Pair("问题".into(), "答案 带空格".into())],
            ),
            (
                "faq similar 12 “退钱 怎么弄”",
                "faq similar",
                vec![Value::Id(12), t("退钱 怎么弄")],
            ),
            ("问答 删除 3", "faq del", vec![Value::Id(3)]),
            ("stats 7d", "stats", vec![Value::Duration(7 * 86_400)]),
            ("stats 今天", "stats", vec![Value::Duration(86_400)]),
            ("stats １２h", "stats", vec![Value::Duration(12 * 3_600)]),
            ("stats", "stats", vec![Value::Absent]),
            ("top WEEK", "top", vec![Value::Choice("week".into())]),
            (
                "role @王五 operator",
                "role",
                vec![m("王五"), Value::Choice("operator".into())],
            ),
            ("mute @小明", "mute", vec![m("小明")]),
            (
                "tag @小明 VIP \"核心 用户\" VIP",
                "tag",
                vec![
                    m("小明"),
                    Value::List(vec!["VIP".into(), "核心 用户".into()]),
                ],
            ),
        ];
        for (text, name, args) in table {
            let got = ok(text);
            assert_eq!(got, (name, args), "{text}");
        }
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let table = [
            ("points", "points: 缺少「成员」"),
            ("points @张三", "points: 缺少「分数」"),
            (
                "points @张三 50 原因",
                "points: 「分数」要写成带正负号的整数",
            ),
            ("points 张三 +50 原因", "points: 「成员」要用 @ 提到成员"),
            (
                "points @张三 +0 原因",
                "points: 「分数」要写成带正负号的整数",
            ),
            ("faq add 只有问题", "faq add: 「问题 | 答案」要用 | 隔开"),
            ("faq add 问题 |  ", "faq add: | 两边都不能为空"),
            ("faq del abc", "faq del: 「编号」要写成编号"),
            ("faq del 3 4", "faq del: 多余的内容「4」"),
            ("stats 400d", "stats: 「范围」要写成时长"),
            ("stats 0d", "stats: 「范围」要写成时长"),
            ("stats 7w", "stats: 「范围」要写成时长"),
            ("role @a boss", "role: 「角色」只能是"),
            ("untag @小明", "untag: 缺少「标签」"),
            ("dance", "unknown dance"),
            ("", "unknown "),
        ];
        for (text, expected) in table {
            let got = err(text);
            assert!(got.starts_with(expected), "{text}: {got}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,60}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_command_shapes(
            name in proptest::sample::select(vec!["points", "faq add", "faq similar", "role", "stats", "help", "mute"]),
            tail in "[ @+\\-0-9a-z|\"“”「」张三\u{2005}\u{3000}]{0,30}",
        ) {
            let _ = parse(&format!("{name} {tail}"));
        }
    }
}
