//! Reply templates (minijinja), loaded at run time from `templates.dir` so ops staff can edit
//! them without recompiling; a file missing there falls back to the copy built into the binary.
//! Every template is compiled at start-up, so a syntax error stops start-up with file and line.
//! Text ops staff write at run time renders in the [`sandbox`](crate::templates::sandbox).

pub mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::Environment;

pub use sandbox::{Sandbox, SandboxError};

/// Templates shipped in the binary: (name, source).
const BUILTIN: &[(&str, &str)] = &[
    (
        "commands/faq.txt.j2",
        include_str!("../../templates/commands/faq.txt.j2"),
    ),
    (
        "commands/faq_test.txt.j2",
        include_str!("../../templates/commands/faq_test.txt.j2"),
    ),
    (
        "commands/help.txt.j2",
        include_str!("../../templates/commands/help.txt.j2"),
    ),
    (
        "commands/help_one.txt.j2",
        include_str!("../../templates/commands/help_one.txt.j2"),
    ),
    (
        "commands/member.txt.j2",
        include_str!("../../templates/commands/member.txt.j2"),
    ),
    (
        "commands/mention.txt.j2",
        include_str!("../../templates/commands/mention.txt.j2"),
    ),
    (
        "commands/mute.txt.j2",
        include_str!("../../templates/commands/mute.txt.j2"),
    ),
    (
        "commands/points.txt.j2",
        include_str!("../../templates/commands/points.txt.j2"),
    ),
    (
        "commands/recall.txt.j2",
        include_str!("../../templates/commands/recall.txt.j2"),
    ),
    (
        "commands/refused.txt.j2",
        include_str!("../../templates/commands/refused.txt.j2"),
    ),
    (
        "commands/rule_refused.txt.j2",
        include_str!("../../templates/commands/rule_refused.txt.j2"),
    ),
    (
        "commands/role.txt.j2",
        include_str!("../../templates/commands/role.txt.j2"),
    ),
    (
        "commands/stats.txt.j2",
        include_str!("../../templates/commands/stats.txt.j2"),
    ),
    (
        "commands/tag.txt.j2",
        include_str!("../../templates/commands/tag.txt.j2"),
    ),
    (
        "commands/unknown.txt.j2",
        include_str!("../../templates/commands/unknown.txt.j2"),
    ),
    (
        "commands/usage.txt.j2",
        include_str!("../../templates/commands/usage.txt.j2"),
    ),
    (
        "outbound/welcome_contact.txt.j2",
        include_str!("../../templates/outbound/welcome_contact.txt.j2"),
    ),
    (
        "outbound/welcome_group.txt.j2",
        include_str!("../../templates/outbound/welcome_group.txt.j2"),
    ),
    (
        "replies/recall_opt_out.txt.j2",
        include_str!("../../templates/replies/recall_opt_out.txt.j2"),
    ),
    (
        "replies/recall_opt_in.txt.j2",
        include_str!("../../templates/replies/recall_opt_in.txt.j2"),
    ),
    (
        "replies/aibot_welcome.txt.j2",
        include_str!("../../templates/replies/aibot_welcome.txt.j2"),
    ),
    (
        "replies/pong.txt.j2",
        include_str!("../../templates/replies/pong.txt.j2"),
    ),
    (
        "replies/faq_answer.txt.j2",
        include_str!("../../templates/replies/faq_answer.txt.j2"),
    ),
    (
        "replies/faq_suggest.txt.j2",
        include_str!("../../templates/replies/faq_suggest.txt.j2"),
    ),
    (
        "replies/faq_unsure.txt.j2",
        include_str!("../../templates/replies/faq_unsure.txt.j2"),
    ),
    (
        "replies/makeup_ok.txt.j2",
        include_str!("../../templates/replies/makeup_ok.txt.j2"),
    ),
    (
        "replies/makeup_refused.txt.j2",
        include_str!("../../templates/replies/makeup_refused.txt.j2"),
    ),
    (
        "replies/signin_ok.txt.j2",
        include_str!("../../templates/replies/signin_ok.txt.j2"),
    ),
    (
        "replies/signin_already.txt.j2",
        include_str!("../../templates/replies/signin_already.txt.j2"),
    ),
    (
        "replies/points_balance.txt.j2",
        include_str!("../../templates/replies/points_balance.txt.j2"),
    ),
    (
        "replies/leaderboard.txt.j2",
        include_str!("../../templates/replies/leaderboard.txt.j2"),
    ),
    (
        "replies/leaderboard_usage.txt.j2",
        include_str!("../../templates/replies/leaderboard_usage.txt.j2"),
    ),
    (
        "replies/shop.txt.j2",
        include_str!("../../templates/replies/shop.txt.j2"),
    ),
    (
        "replies/redeem_ok.txt.j2",
        include_str!("../../templates/replies/redeem_ok.txt.j2"),
    ),
    (
        "replies/redeem_refused.txt.j2",
        include_str!("../../templates/replies/redeem_refused.txt.j2"),
    ),
    (
        "replies/redeem_again.txt.j2",
        include_str!("../../templates/replies/redeem_again.txt.j2"),
    ),
];

/// A template problem found at start-up or render time.
#[derive(Debug, thiserror::Error)]
#[error("template {file}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct TemplateError {
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

/// The loaded template set. Cheap to clone.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    sandbox: Arc<Sandbox>,
}

impl Templates {
    /// Loads every known template (folder first, built-in fallback) and compiles it.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(false);
        for (name, builtin) in BUILTIN {
            let path: PathBuf = dir.join(name);
            let (source, file) = match std::fs::read_to_string(&path) {
                Ok(text) => (text, path.display().to_string()),
                Err(_) => ((*builtin).to_owned(), format!("(built-in) {name}")),
            };
            env.add_template_owned(*name, source)
                .map_err(|e| TemplateError {
                    file: file.clone(),
                    line: e.line(),
                    reason: e.detail().unwrap_or("syntax error").to_owned(),
                })?;
        }
        Ok(Self {
            env: Arc::new(env),
            sandbox: Arc::new(Sandbox::new()),
        })
    }

    /// Only the built-in copies (tests, tools).
    pub fn builtin() -> Self {
        Self::load(Path::new("/nonexistent")).expect("built-in templates compile")
    }

    /// Renders text written by ops staff (an FAQ answer may use `{{ name }}`) in the sandbox;
    /// `what` names it in errors. A broken template is an error, never a half-rendered answer.
    pub fn render_str(
        &self,
        what: &str,
        source: &str,
        vars: impl serde::Serialize,
    ) -> Result<String, TemplateError> {
        self.sandbox
            .render(source, &minijinja::Value::from_serialize(&vars))
            .map_err(|e| TemplateError {
                file: what.to_owned(),
                line: None,
                reason: e.to_string(),
            })
    }

    /// The sandbox ops templates render in.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Renders `name` (without the `.txt.j2` suffix) with `vars`; trailing whitespace trimmed.
    pub fn render(&self, name: &str, vars: impl serde::Serialize) -> Result<String, TemplateError> {
        let full = format!("{name}.txt.j2");
        let tmpl = self.env.get_template(&full).map_err(|e| TemplateError {
            file: full.clone(),
            line: None,
            reason: e.to_string(),
        })?;
        tmpl.render(vars)
            .map(|s| s.trim_end().to_owned())
            .map_err(|e| TemplateError {
                file: full,
                line: e.line(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_file_is_built_in() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files = Vec::new();
        for dir in std::fs::read_dir(&root).expect("templates/") {
            let dir = dir.expect("entry").path();
            for file in std::fs::read_dir(&dir).expect("subfolder") {
                let path = file.expect("entry").path();
                files.push(
                    path.strip_prefix(&root)
                        .expect("prefix")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        files.sort();
        let mut builtin: Vec<String> = BUILTIN.iter().map(|(n, _)| (*n).to_owned()).collect();
        builtin.sort();
        assert_eq!(
            files, builtin,
            "templates/ and the built-in list must match"
        );
    }

    #[test]
    fn builtin_pong_renders() {
        let t = Templates::builtin();
        let text = t
            .render("replies/pong", minijinja::context! { name => "张三" })
            .expect("render");
        assert!(text.starts_with("pong"), "{text}");
        assert!(text.contains("张三"));
    }

    #[test]
    fn a_broken_override_is_reported_with_file_and_line() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("replies")).expect("mkdir");
        std::fs::write(
            dir.path().join("replies/pong.txt.j2"),
            "line one\n{% if %}\n",
        )
        .expect("write");
        let err = Templates::load(dir.path()).err().expect("must fail");
        assert!(err.file.ends_with("replies/pong.txt.j2"), "{err}");
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn an_override_replaces_the_builtin() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("replies")).expect("mkdir");
        std::fs::write(dir.path().join("replies/pong.txt.j2"), "自定义 {{ name }}").expect("write");
        let t = Templates::load(dir.path()).expect("load");
        assert_eq!(
            t.render("replies/pong", minijinja::context! { name => "A" })
                .expect("render"),
            "自定义 A"
        );
    }
}
