//! Who is staff. Configured entries name a scope, `*`, or one channel; roles granted in chat
//! (`/role`) override them, except that a configured admin always stays admin. `*` never matches
//! an Official Account's OpenIDs: anyone who sees one delivery URL of a plaintext or compatible
//! channel could otherwise act as them. The rules that keep a community administrable (nobody
//! mutes an equal or higher role, the last admin stays) live here too.

use std::collections::{BTreeSet, HashMap};

use super::spec::Role;
use crate::channels::scope_of;
use crate::config::{ChannelKind, Config, StaffConfig};
use crate::store::Store;

/// Why a role or mute change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The target's role is the actor's or higher.
    EqualOrHigher,
    /// The target is an admin in the configuration file, which chat cannot change.
    ConfiguredAdmin,
    /// The change would leave the scope without an admin.
    LastAdmin,
}

impl Refusal {
    /// The code the reply template branches on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EqualOrHigher => "equal_or_higher",
            Self::ConfiguredAdmin => "configured_admin",
            Self::LastAdmin => "last_admin",
        }
    }
}

/// The staff configuration with what it needs to know of the channels.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    staff: Vec<StaffConfig>,
    /// Channel id → (scope, kind).
    channels: HashMap<String, (String, ChannelKind)>,
}

impl Roles {
    pub fn new(config: &Config) -> Self {
        Self {
            staff: config.commands.staff.clone(),
            channels: config
                .channels
                .iter()
                .map(|(id, c)| (id.clone(), (scope_of(id, c), c.kind)))
                .collect(),
        }
    }

    fn is_official_account(&self, channel_id: &str) -> bool {
        self.channels
            .get(channel_id)
            .is_some_and(|(_, kind)| *kind == ChannelKind::WechatMp)
    }

    /// Whether a configured entry speaks for a sender on `channel_id` in `scope`.
    fn entry_matches(&self, entry: &StaffConfig, channel_id: &str, scope: &str) -> bool {
        if let Some(channel) = &entry.channel {
            return channel == channel_id && (entry.scope == "*" || entry.scope == scope);
        }
        entry.scope == scope || (entry.scope == "*" && !self.is_official_account(channel_id))
    }

    /// The role the configuration gives `user` on `channel_id`.
    pub fn configured(&self, channel_id: &str, scope: &str, user: &str) -> Role {
        self.staff
            .iter()
            .filter(|s| s.user == user && self.entry_matches(s, channel_id, scope))
            .filter_map(|s| Role::parse(&s.role))
            .max()
            .unwrap_or(Role::Member)
    }

    /// Whether `user` is an admin of `scope` in the configuration (on any of its channels).
    pub fn is_configured_admin(&self, scope: &str, user: &str) -> bool {
        self.configured_admins(scope).contains(user)
    }

    fn configured_admins(&self, scope: &str) -> BTreeSet<String> {
        let channels_of_scope: Vec<(&String, ChannelKind)> = self
            .channels
            .iter()
            .filter(|(_, (s, _))| s == scope)
            .map(|(id, (_, kind))| (id, *kind))
            .collect();
        self.staff
            .iter()
            .filter(|s| Role::parse(&s.role) == Some(Role::Admin))
            .filter(|s| match &s.channel {
                Some(channel) => channels_of_scope.iter().any(|(id, _)| *id == channel),
                None => {
                    s.scope == scope
                        || (s.scope == "*"
                            && channels_of_scope
                                .iter()
                                .any(|(_, kind)| *kind != ChannelKind::WechatMp))
                }
            })
            .map(|s| s.user.clone())
            .collect()
    }

    /// The sender's role: a configured admin is admin; otherwise a role granted in chat wins
    /// over the configuration; default member.
    pub async fn effective(
        &self,
        store: &Store,
        channel_id: &str,
        scope: &str,
        user: &str,
    ) -> Result<Role, crate::store::StoreError> {
        let configured = self.configured(channel_id, scope, user);
        if configured == Role::Admin {
            return Ok(configured);
        }
        if let Some(granted) = store.granted_role(scope, user).await? {
            return Ok(Role::parse(&granted).unwrap_or(Role::Member));
        }
        Ok(configured)
    }

    /// Whether `target` may be given `new_role` in `scope`, where they have `current` now.
    pub async fn check_role_change(
        &self,
        store: &Store,
        scope: &str,
        target: &str,
        current: Role,
        new_role: Role,
    ) -> Result<Option<Refusal>, crate::store::StoreError> {
        if current != Role::Admin || new_role == Role::Admin {
            return Ok(None);
        }
        if self.is_configured_admin(scope, target) {
            return Ok(Some(Refusal::ConfiguredAdmin));
        }
        let mut admins = self.configured_admins(scope);
        for (user, role) in store.granted_roles(scope).await? {
            if role == Role::Admin.as_str() {
                admins.insert(user);
            } else if !self.is_configured_admin(scope, &user) {
                admins.remove(&user);
            }
        }
        admins.remove(target);
        Ok(admins.is_empty().then_some(Refusal::LastAdmin))
    }
}

/// Whether an actor of role `actor` may mute (or unmute) a member of role `target`.
pub fn check_mute(actor: Role, target: Role) -> Option<Refusal> {
    (target >= actor).then_some(Refusal::EqualOrHigher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChannelConfig;

    fn roles(staff: &[(&str, &str, &str, Option<&str>)]) -> Roles {
        let mut config = Config::example().expect("example");
        config.commands.staff = staff
            .iter()
            .map(|(scope, user, role, channel)| StaffConfig {
                scope: (*scope).into(),
                user: (*user).into(),
                role: (*role).into(),
                channel: channel.map(str::to_owned),
            })
            .collect();
        let mp: &ChannelConfig = &config.channels["demo_mp"];
        assert_eq!(mp.kind, ChannelKind::WechatMp);
        Roles::new(&config)
    }

    #[test]
    fn a_star_entry_never_matches_official_account_openids() {
        let r = roles(&[("*", "boss", "admin", None)]);
        assert_eq!(
            r.configured("demo_app", "wwdemo0000000001", "boss"),
            Role::Admin
        );
        assert_eq!(
            r.configured("demo_mp", "wxdemo0000000001", "boss"),
            Role::Member
        );
        let named = roles(&[("*", "oOpen", "operator", Some("demo_mp"))]);
        assert_eq!(
            named.configured("demo_mp", "wxdemo0000000001", "oOpen"),
            Role::Operator
        );
        assert_eq!(
            named.configured("demo_app", "wwdemo0000000001", "oOpen"),
            Role::Member
        );
        let scoped = roles(&[("wxdemo0000000001", "oOpen", "admin", None)]);
        assert_eq!(
            scoped.configured("demo_mp", "wxdemo0000000001", "oOpen"),
            Role::Admin
        );
    }

    #[test]
    fn nobody_mutes_an_equal_or_higher_role() {
        assert_eq!(
            check_mute(Role::Operator, Role::Admin),
            Some(Refusal::EqualOrHigher)
        );
        assert_eq!(
            check_mute(Role::Operator, Role::Operator),
            Some(Refusal::EqualOrHigher)
        );
        assert_eq!(check_mute(Role::Admin, Role::Operator), None);
        assert_eq!(check_mute(Role::Operator, Role::Member), None);
    }
}
