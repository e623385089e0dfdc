//! `/help [命令]`: the commands the sender may use, or one command's usage, from the table.

use minijinja::context;

use super::parse::Value;
use super::run::Call;
use super::spec::{self, COMMANDS};
use crate::bot::BotContext;
use crate::store::BoxFuture;

/// `/help [命令]`.
pub(super) fn help<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let (role, prefix) = (call.run.role, call.run.prefix);
        if let Some(Value::Text(name)) = call.args().first() {
            let words: Vec<&str> = name.split(' ').collect();
            if let Some((spec, _)) = spec::find(&words) {
                return Ok(ctx.templates.render(
                    "commands/help_one",
                    context! { name => spec.name, usage => format!("{prefix}{}", spec.usage), help => spec.help,
                               aliases => spec.aliases, role => spec.role.as_str() },
                )?);
            }
        }
        let commands: Vec<_> = COMMANDS
            .iter()
            .filter(|c| c.role <= role)
            .map(|c| context! { usage => format!("{prefix}{}", c.usage), help => c.help })
            .collect();
        Ok(ctx
            .templates
            .render("commands/help", context! { commands, prefix })?)
    })
}
