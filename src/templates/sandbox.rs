//! Templates written by ops staff at run time (FAQ answers, recall touches, welcome texts by
//! contact-way state) render in a sandbox: a small subset of the template language that cannot
//! grow its output faster than its source, a fuel limit on the instructions a render may run,
//! and an output cap at what one WeCom text message carries. A template outside the subset, or
//! one that runs out of fuel or past the cap on sample values, is refused when it is saved.
//!
//! Allowed: `{{ expressions }}` over the given variables and literals, the filters in
//! [`FILTERS`], tests (`is defined`), `{% if %}` / `{% elif %}` / `{% else %}` and `{% for %}`
//! over lists, `{% raw %}` and comments. Not allowed: `set`, macros, `include`, `extends`,
//! `import`, blocks, function and method calls (`range()`, `debug()`, `x.items()`), and the `*`
//! operator (string repetition).

use std::io::Write;

use minijinja::{Environment, ErrorKind, Value};

/// Most bytes a rendered ops template may produce (WeCom text messages carry 2,048 bytes).
pub const MAX_OUTPUT_BYTES: usize = 2048;
/// Instructions one render may run.
pub const FUEL: u64 = 20_000;
/// Longest template source accepted.
pub const MAX_SOURCE_BYTES: usize = 8192;

/// Filters an ops template may use: each returns at most its input plus its arguments.
pub const FILTERS: &[&str] = &[
    "default",
    "d",
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "length",
    "count",
    "first",
    "last",
    "round",
    "int",
    "float",
    "abs",
    "string",
    "join",
];

/// Statements an ops template may use.
const STATEMENTS: &[&str] = &["if", "elif", "else", "endif", "for", "endfor"];

/// Why an ops template was refused or failed to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("line {line}: {what} is not allowed in ops templates")]
    Forbidden { what: String, line: usize },
    #[error("{0}")]
    Syntax(String),
    #[error("the template is longer than {MAX_SOURCE_BYTES} bytes")]
    TooLong,
    #[error("the template runs more than {FUEL} steps (too many or nested loops)")]
    OutOfFuel,
    #[error("the rendered text is longer than {MAX_OUTPUT_BYTES} bytes (a WeCom text message)")]
    OutputTooLong,
    #[error("{0}")]
    Render(String),
}

/// The process's sandbox (its environment holds no per-template state).
pub fn shared() -> &'static Sandbox {
    static SHARED: std::sync::LazyLock<Sandbox> = std::sync::LazyLock::new(Sandbox::new);
    &SHARED
}

/// The sandboxed environment. Cheap to share behind an `Arc`.
pub struct Sandbox {
    env: Environment<'static>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// An environment with no loader (so no `include`), no global functions, only the allowed
    /// filters and the builtin tests, and the fuel limit.
    pub fn new() -> Self {
        use minijinja::{filters, tests};
        let mut env = Environment::empty();
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(32);
        env.set_keep_trailing_newline(false);
        env.add_filter("default", filters::default);
        env.add_filter("d", filters::default);
        env.add_filter("upper", filters::upper);
        env.add_filter("lower", filters::lower);
        env.add_filter("title", filters::title);
        env.add_filter("capitalize", filters::capitalize);
        env.add_filter("trim", filters::trim);
        env.add_filter("length", filters::length);
        env.add_filter("count", filters::length);
        env.add_filter("first", filters::first);
        env.add_filter("last", filters::last);
        env.add_filter("round", filters::round);
        env.add_filter("int", filters::int);
        env.add_filter("float", filters::float);
        env.add_filter("abs", filters::abs);
        env.add_filter("string", filters::string);
        env.add_filter("join", join_list);
        env.add_test("defined", tests::is_defined);
        env.add_test("undefined", tests::is_undefined);
        env.add_test("none", tests::is_none);
        env.add_test("number", tests::is_number);
        env.add_test("string", tests::is_string);
        env.add_test("odd", tests::is_odd);
        env.add_test("even", tests::is_even);
        env.add_test("true", tests::is_true);
        env.add_test("false", tests::is_false);
        env.add_test("in", tests::is_in);
        Self { env }
    }

    /// Checks a template when it is saved: the allowed subset, a clean compile, and a render of
    /// `sample` within the fuel and the output cap.
    pub fn check(&self, source: &str, sample: &Value) -> Result<(), SandboxError> {
        self.render(source, sample).map(|_| ())
    }

    /// Renders `source` with `vars`; trailing whitespace trimmed.
    pub fn render(&self, source: &str, vars: &Value) -> Result<String, SandboxError> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(SandboxError::TooLong);
        }
        if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
            if source.trim_end().len() > MAX_OUTPUT_BYTES {
                return Err(SandboxError::OutputTooLong);
            }
            return Ok(source.trim_end().to_owned());
        }
        check_subset(source)?;
        let template = self
            .env
            .template_from_str(source)
            .map_err(|e| SandboxError::Syntax(describe(&e)))?;
        let mut out = Capped::default();
        match template.render_captured_to(vars, &mut out) {
            Ok(_) => Ok(String::from_utf8_lossy(&out.bytes).trim_end().to_owned()),
            Err(_) if out.overflowed => Err(SandboxError::OutputTooLong),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(SandboxError::OutOfFuel),
            Err(e) => Err(SandboxError::Render(describe(&e))),
        }
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "line {line}: {}",
            e.detail().unwrap_or(&e.kind().to_string())
        ),
        None => e.to_string(),
    }
}

/// `join` over a list only: joining the characters of a string could grow it without bound.
fn join_list(value: &Value, sep: Option<&str>) -> Result<String, minijinja::Error> {
    if value.kind() != minijinja::value::ValueKind::Seq {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "join takes a list",
        ));
    }
    let parts: Vec<String> = value.try_iter()?.map(|v| v.to_string()).collect();
    Ok(parts.join(sep.unwrap_or("")))
}

/// A writer that stops the render once it would pass [`MAX_OUTPUT_BYTES`].
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("output cap"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'s> {
    Ident(&'s str),
    Op(&'s str),
    Literal,
}

/// Scans every tag of `source` and refuses what the subset leaves out.
fn check_subset(source: &str) -> Result<(), SandboxError> {
    let bytes = source.as_bytes();
    let mut at = 0;
    while let Some(found) = find_from(source, "{", at) {
        let next = bytes.get(found + 1).copied();
        let line = source[..found].matches('\n').count() + 1;
        match next {
            Some(b'#') => {
                at = find_from(source, "#}", found + 2).ok_or_else(|| {
                    SandboxError::Syntax(format!("line {line}: unclosed comment"))
                })? + 2;
            }
            Some(b'{') | Some(b'%') => {
                let block = next == Some(b'%');
                let (tokens, end) = tag_tokens(source, found + 2, block, line)?;
                at = end;
                if block {
                    let keyword = match tokens.first() {
                        Some(Token::Ident(k)) => *k,
                        _ => return Err(forbidden("an empty statement", line)),
                    };
                    if keyword == "raw" {
                        at = skip_raw(source, at, line)?;
                        continue;
                    }
                    if !STATEMENTS.contains(&keyword) {
                        return Err(forbidden(&format!("`{{% {keyword} %}}`"), line));
                    }
                }
                check_tokens(&tokens, line)?;
            }
            _ => at = found + 1,
        }
    }
    Ok(())
}

fn forbidden(what: &str, line: usize) -> SandboxError {
    SandboxError::Forbidden {
        what: what.to_owned(),
        line,
    }
}

fn check_tokens(tokens: &[Token<'_>], line: usize) -> Result<(), SandboxError> {
    for (i, token) in tokens.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| tokens.get(p));
        let next = tokens.get(i + 1);
        match token {
            Token::Op(op @ ("*" | "**")) => {
                return Err(forbidden(&format!("the `{op}` operator"), line));
            }
            Token::Ident(name) if prev == Some(&Token::Op("|")) && !FILTERS.contains(name) => {
                return Err(forbidden(&format!("the filter `{name}`"), line));
            }
            Token::Ident(_) if prev == Some(&Token::Op("|")) => {}
            Token::Ident(name) if next == Some(&Token::Op("(")) => {
                let is_test = prev == Some(&Token::Ident("is"))
                    || prev == Some(&Token::Ident("not"))
                        && i >= 2
                        && tokens.get(i - 2) == Some(&Token::Ident("is"));
                if !is_test {
                    return Err(forbidden(&format!("calling `{name}(…)`"), line));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The tokens of a tag opened just before `start`, and the position after its close.
fn tag_tokens(
    source: &str,
    start: usize,
    block: bool,
    line: usize,
) -> Result<(Vec<Token<'_>>, usize), SandboxError> {
    let close = if block { "%}" } else { "}}" };
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut i = start;
    // Whitespace control right after the opening.
    if matches!(bytes.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    loop {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let rest = &source[i..];
        if rest.is_empty() {
            return Err(SandboxError::Syntax(format!("line {line}: unclosed tag")));
        }
        if rest.starts_with(close) {
            return Ok((tokens, i + 2));
        }
        if (rest.starts_with('-') || rest.starts_with('+')) && rest[1..].starts_with(close) {
            return Ok((tokens, i + 3));
        }
        let c = bytes[i];
        let first = rest.chars().next().unwrap_or(' ');
        if c == b'"' || c == b'\'' {
            i = skip_string(source, i, line)?;
            tokens.push(Token::Literal);
        } else if first.is_alphabetic() || first == '_' {
            let len = rest
                .char_indices()
                .find(|(_, ch)| !(ch.is_alphanumeric() || *ch == '_'))
                .map_or(rest.len(), |(p, _)| p);
            tokens.push(Token::Ident(&rest[..len]));
            i += len;
        } else if c.is_ascii_digit() {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_')
                .count();
            tokens.push(Token::Literal);
            i += len;
        } else {
            let two = rest.get(..2).unwrap_or("");
            let len = if ["**", "//", "==", "!=", "<=", ">="].contains(&two) {
                2
            } else {
                rest.chars().next().map_or(1, char::len_utf8)
            };
            tokens.push(Token::Op(&rest[..len]));
            i += len;
        }
    }
}

fn skip_string(source: &str, start: usize, line: usize) -> Result<usize, SandboxError> {
    let bytes = source.as_bytes();
    let quote = bytes[start];
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b if b == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(SandboxError::Syntax(format!(
        "line {line}: unclosed string"
    )))
}

/// Skips to after `{% endraw %}` (with any whitespace control).
fn skip_raw(source: &str, from: usize, line: usize) -> Result<usize, SandboxError> {
    let mut at = from;
    while let Some(found) = find_from(source, "{%", at) {
        let (tokens, end) = tag_tokens(source, found + 2, true, line)?;
        if tokens.first() == Some(&Token::Ident("endraw")) {
            return Ok(end);
        }
        at = end;
    }
    Err(SandboxError::Syntax(format!(
        "line {line}: unclosed raw block"
    )))
}

fn find_from(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    haystack.get(from..)?.find(needle).map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn render(source: &str) -> Result<String, SandboxError> {
        Sandbox::new().render(
            source,
            &context! { name => "张三", items => vec!["a", "b"] },
        )
    }

    #[test]
    fn the_subset_renders_what_ops_templates_need() {
        assert_eq!(render("你好 {{ name }}！").expect("var"), "你好 张三！");
        assert_eq!(
            render("{% if name is defined %}{{ name | default('朋友') }}{% else %}x{% endif %}")
                .expect("if"),
            "张三"
        );
        assert_eq!(
            render("{% for i in items %}{{ loop.index }}.{{ i | upper }} {% endfor %}")
                .expect("for"),
            "1.A 2.B"
        );
        assert_eq!(render("{{ items | join('、') }}").expect("join"), "a、b");
        assert_eq!(
            render("{# note #}{% raw %}{{ x * 2 }}{% endraw %}").expect("raw"),
            "{{ x * 2 }}"
        );
        assert_eq!(
            render("纯文本，没有变量").expect("plain"),
            "纯文本，没有变量"
        );
    }

    #[test]
    fn what_could_grow_or_escape_is_refused_with_its_line() {
        for (source, what) in [
            ("{{ 'x' * 10000 }}", "`*`"),
            ("{{ 2 ** 64 }}", "`**`"),
            ("a\n{{ debug() }}", "calling `debug"),
            (
                "{% for i in range(100000) %}x{% endfor %}",
                "calling `range",
            ),
            ("{% include 'replies/pong.txt.j2' %}", "include"),
            ("{% extends 'x' %}", "extends"),
            ("{% import 'x' as y %}", "import"),
            ("{% set s = name ~ name %}", "set"),
            ("{% macro m() %}{% endmacro %}", "macro"),
            ("{{ name | replace('', 'xxxx') }}", "replace"),
            ("{{ name | center(100000) }}", "center"),
            ("{{ name.upper() }}", "calling `upper"),
        ] {
            let err = render(source).expect_err(source);
            assert!(err.to_string().contains(what), "{source}: {err}");
        }
        let err = render("ok\n\n{{ debug() }}").expect_err("line");
        assert!(
            matches!(err, SandboxError::Forbidden { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn loops_run_out_of_fuel_and_output_stops_at_the_cap() {
        let nested = "{% for a in [1,2,3,4,5,6,7,8,9,10] %}{% for b in [1,2,3,4,5,6,7,8,9,10] %}{% for c in [1,2,3,4,5,6,7,8,9,10] %}{% for d in [1,2,3,4,5,6,7,8,9,10] %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}";
        assert_eq!(render(nested), Err(SandboxError::OutOfFuel));
        let wide = "{% for a in [1,2,3,4,5,6,7,8,9,10] %}{% for b in [1,2,3,4,5,6,7,8,9,10] %}{{ name }}{{ name }}{{ name }}{{ name }}{% endfor %}{% endfor %}";
        assert_eq!(render(wide), Err(SandboxError::OutputTooLong));
        assert_eq!(render(&"长".repeat(1000)), Err(SandboxError::OutputTooLong));
        assert_eq!(
            render(&format!("{{{{ name }}}}{}", " ".repeat(9000))),
            Err(SandboxError::TooLong)
        );
    }

    #[test]
    fn join_refuses_to_spread_a_string() {
        assert!(matches!(
            render("{{ name | join('xxxxxxxx') }}"),
            Err(SandboxError::Render(_))
        ));
    }

    #[test]
    fn any_character_in_a_tag_is_one_token() {
        // A non-ASCII character that is not a letter once made the scanner stand still.
        assert!(render("{{ name ， }}").is_err());
        assert!(matches!(render("{{ 名字 }}"), Err(SandboxError::Syntax(_))));
    }

    #[test]
    fn strings_may_contain_tag_closers_and_operators() {
        assert_eq!(
            render("{{ '}} * %}' ~ name }}").expect("string"),
            "}} * %}张三"
        );
    }
}
