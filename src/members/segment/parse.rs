//! The segment language: `tag:VIP and not group:"产品交流1群" and points >= 100 and last_active < 14d`.
//! `and`, `or`, `not` (also 且/或/非), parentheses, quoted names, comparisons on numbers and on
//! days since an event. Errors give the character position and what was expected.

use std::fmt;

/// A parsed segment expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `tag:名字`
    Tag(String),
    /// `group:名字` (group name or platform group id)
    Group(String),
    /// `level:名字` (a level of the points configuration)
    Level(String),
    /// `stage:lapsed` (a lifecycle stage)
    Stage(String),
    /// `points >= 100` and friends.
    Compare(Field, Op, i64),
}

/// A numeric member field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Current balance.
    Points,
    /// Points earned in total.
    Earned,
    /// Messages sent.
    Messages,
    /// Days since the last activity (`last_active < 14d`).
    DaysSinceActive,
    /// Days since first seen (`joined > 30d`).
    DaysSinceJoined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    pub fn holds(self, a: i64, b: i64) -> bool {
        match self {
            Self::Eq => a == b,
            Self::Ne => a != b,
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
        }
    }
}

/// Where parsing stopped and what it wanted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentError {
    /// Character position (0-based) in the expression.
    pub position: usize,
    pub expected: String,
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at character {}: expected {}",
            self.position + 1,
            self.expected
        )
    }
}

impl std::error::Error for SegmentError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Colon,
    Open,
    Close,
    Op(Op),
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, SegmentError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | '（' => {
                out.push((start, Token::Open));
                i += 1;
            }
            ')' | '）' => {
                out.push((start, Token::Close));
                i += 1;
            }
            ':' | '：' => {
                out.push((start, Token::Colon));
                i += 1;
            }
            '"' | '“' | '「' => {
                let close = match c {
                    '"' => '"',
                    '“' => '”',
                    _ => '」',
                };
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == close)
                    .ok_or(SegmentError {
                        position: start,
                        expected: format!("a closing {close}"),
                    })?;
                out.push((
                    start,
                    Token::Quoted(chars[i + 1..i + 1 + end].iter().collect()),
                ));
                i += end + 2;
            }
            '<' | '>' | '=' | '!' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('>')) => (Op::Ne, 2),
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    ('=', _) => (Op::Eq, 1),
                    _ => {
                        return Err(SegmentError {
                            position: start,
                            expected: "!= (a lone ! means nothing)".into(),
                        })
                    }
                };
                out.push((start, Token::Op(op)));
                i += len;
            }
            _ => {
                let end = chars[i..]
                    .iter()
                    .position(|&x| x.is_whitespace() || "()（）:：\"“「<>=!".contains(x))
                    .map_or(chars.len(), |p| i + p);
                out.push((start, Token::Word(chars[i..end].iter().collect())));
                i = end;
            }
        }
    }
    Ok(out)
}

/// Deepest nesting of parentheses and `not` accepted.
pub const MAX_NESTING: usize = 64;
/// Most conditions in one expression (each `and` / `or` nests the tree one level deeper).
pub const MAX_TERMS: usize = 256;

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    len: usize,
    /// Open parentheses and `not`s around the current position.
    nesting: usize,
    /// Conditions parsed so far.
    terms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.len, |(p, _)| *p)
    }

    fn fail<T>(&self, expected: &str) -> Result<T, SegmentError> {
        Err(SegmentError {
            position: self.position(),
            expected: expected.into(),
        })
    }

    fn keyword(&self, words: &[&str]) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if words.contains(&w.to_lowercase().as_str()))
    }

    fn or(&mut self) -> Result<Expr, SegmentError> {
        let mut left = self.and()?;
        while self.keyword(&["or", "或"]) {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SegmentError> {
        let mut left = self.not()?;
        while self.keyword(&["and", "且"]) {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    /// Enters one more level of parentheses or `not`, refusing past [`MAX_NESTING`].
    fn nest(&mut self) -> Result<(), SegmentError> {
        if self.nesting >= MAX_NESTING {
            return self.fail(&format!(
                "at most {MAX_NESTING} levels of parentheses and `not`"
            ));
        }
        self.nesting += 1;
        Ok(())
    }

    fn not(&mut self) -> Result<Expr, SegmentError> {
        if self.keyword(&["not", "非"]) {
            self.nest()?;
            self.at += 1;
            let inner = self.not()?;
            self.nesting -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return self.fail(&format!("at most {MAX_TERMS} conditions"));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, SegmentError> {
        match self.peek().cloned() {
            Some(Token::Open) => {
                self.nest()?;
                self.at += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return self.fail("`)`, `and` or `or`");
                }
                self.at += 1;
                self.nesting -= 1;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                self.at += 1;
                let key = word.to_lowercase();
                match self.peek() {
                    Some(Token::Colon) => {
                        self.at += 1;
                        self.membership(&key)
                    }
                    Some(Token::Op(op)) => {
                        let op = *op;
                        self.comparison(&key, op)
                    }
                    _ => self.fail("`:` or a comparison (>=, <, =, …)"),
                }
            }
            _ => self.fail("a condition such as tag:VIP, points >= 100 or `(`"),
        }
    }

    /// `key:value` after the `:`: a tag, group, level or stage.
    fn membership(&mut self, key: &str) -> Result<Expr, SegmentError> {
        let value = match self.peek().cloned() {
            Some(Token::Word(v) | Token::Quoted(v)) if !v.is_empty() => v,
            _ => return self.fail("a name after `:` (quote it if it has spaces)"),
        };
        self.at += 1;
        match key {
            "tag" | "标签" => Ok(Expr::Tag(value)),
            "group" | "群" => Ok(Expr::Group(value)),
            "level" | "等级" => Ok(Expr::Level(value)),
            "stage" | "阶段" => match crate::members::lifecycle::Stage::parse(&value) {
                Some(stage) => Ok(Expr::Stage(stage.as_str().to_owned())),
                None => Err(SegmentError {
                    position: self.tokens[self.at - 1].0,
                    expected: "a stage: new, active, silent, lapsed, churned or returned".into(),
                }),
            },
            _ => Err(SegmentError {
                position: self.tokens[self.at - 3].0,
                expected: "tag:, group:, level: or stage:".into(),
            }),
        }
    }

    /// `field op number`, at the operator.
    fn comparison(&mut self, key: &str, op: Op) -> Result<Expr, SegmentError> {
        let field = match key {
            "points" | "积分" => Field::Points,
            "earned" | "累计积分" => Field::Earned,
            "messages" | "发言" => Field::Messages,
            "last_active" | "最近活跃" => Field::DaysSinceActive,
            "joined" | "入群" => Field::DaysSinceJoined,
            _ => {
                return Err(SegmentError {
                    position: self.tokens[self.at - 1].0,
                    expected: "points, earned, messages, last_active or joined".into(),
                })
            }
        };
        self.at += 1;
        let days = matches!(field, Field::DaysSinceActive | Field::DaysSinceJoined);
        let value = match self.peek().cloned() {
            Some(Token::Word(v)) => number(&v, days),
            _ => None,
        };
        let Some(value) = value else {
            return self.fail(if days {
                "a number of days such as 14d"
            } else {
                "a whole number"
            });
        };
        self.at += 1;
        Ok(Expr::Compare(field, op, value))
    }
}

/// `100`, `-5`; for day fields also `14d` / `14天`.
fn number(text: &str, days: bool) -> Option<i64> {
    let digits = if days {
        text.strip_suffix('d')
            .or_else(|| text.strip_suffix('天'))
            .unwrap_or(text)
    } else {
        text
    };
    digits.parse().ok()
}

/// Parses a segment expression.
pub fn parse(text: &str) -> Result<Expr, SegmentError> {
    let tokens = tokenize(text)?;
    let len = text.chars().count();
    let mut parser = Parser {
        tokens,
        at: 0,
        len,
        nesting: 0,
        terms: 0,
    };
    let expr = parser.or()?;
    if parser.at < parser.tokens.len() {
        return parser.fail("`and`, `or` or the end");
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Box<Expr> {
        Box::new(Expr::Tag(s.into()))
    }

    #[test]
    fn parses_the_documented_example() {
        let e = parse(r#"tag:VIP and not stage_free and group:"产品交流1群""#);
        assert!(e.is_err(), "unknown bare word");
        let e = parse(r#"tag:VIP and not tag:免打扰 and group:"产品交流1群" and points >= 100 and last_active < 14d"#)
            .expect("parses");
        let expected = Expr::And(
            Box::new(Expr::And(
                Box::new(Expr::And(
                    Box::new(Expr::And(tag("VIP"), Box::new(Expr::Not(tag("免打扰"))))),
                    Box::new(Expr::Group("产品交流1群".into())),
                )),
                Box::new(Expr::Compare(Field::Points, Op::Ge, 100)),
            )),
            Box::new(Expr::Compare(Field::DaysSinceActive, Op::Lt, 14)),
        );
        assert_eq!(e, expected);
    }

    #[test]
    fn precedence_parentheses_and_chinese() {
        assert_eq!(
            parse("tag:a or tag:b and tag:c").expect("p"),
            Expr::Or(tag("a"), Box::new(Expr::And(tag("b"), tag("c"))))
        );
        assert_eq!(
            parse("(tag:a or tag:b) and tag:c").expect("p"),
            Expr::And(Box::new(Expr::Or(tag("a"), tag("b"))), tag("c"))
        );
        assert_eq!(
            parse("标签：核心 且 非 积分<=5").expect("p"),
            Expr::And(
                tag("核心"),
                Box::new(Expr::Not(Box::new(Expr::Compare(Field::Points, Op::Le, 5))))
            )
        );
        assert_eq!(
            parse("joined > 30天").expect("p"),
            Expr::Compare(Field::DaysSinceJoined, Op::Gt, 30)
        );
    }

    #[test]
    fn deep_nesting_and_endless_chains_are_refused_with_a_position() {
        for (text, what) in [
            ("(".repeat(5000) + "tag:a" + &")".repeat(5000), "levels"),
            ("not ".repeat(5000) + "tag:a", "levels"),
            (vec!["tag:a"; 5000].join(" and "), "conditions"),
            (vec!["tag:a"; 5000].join(" or "), "conditions"),
        ] {
            let e = parse(&text).expect_err("refused");
            assert!(e.expected.contains(what), "{e}");
            assert!(e.position > 0 && e.position < text.chars().count(), "{e}");
        }
        let ok = format!(
            "{}tag:a{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert_eq!(parse(&ok).expect("at the limit"), Expr::Tag("a".into()));
        assert!(parse(&vec!["tag:a"; MAX_TERMS].join(" or ")).is_ok());
    }

    #[test]
    fn errors_point_at_the_problem() {
        let table = [
            ("", 1, "a condition"),
            ("tag:", 5, "a name after"),
            ("tag:a and", 10, "a condition"),
            ("(tag:a", 7, "`)`"),
            ("tag:a tag:b", 7, "`and`, `or` or the end"),
            ("color:red", 1, "tag:, group:, level: or stage:"),
            ("stage:gone", 7, "a stage"),
            ("points >= lots", 11, "a whole number"),
            ("last_active < soon", 15, "a number of days"),
            ("height > 3", 1, "points, earned"),
            ("tag:\"unclosed", 5, "a closing"),
        ];
        for (text, position, expected) in table {
            let e = parse(text).expect_err(text);
            assert_eq!(e.position + 1, position, "{text}: {e}");
            assert!(e.expected.starts_with(expected), "{text}: {e}");
        }
    }
}
