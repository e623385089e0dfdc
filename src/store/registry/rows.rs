//! The rows an import page touches: read together (one query per page and table), compared in
//! memory, and written only where something changed; relations and memberships that did not
//! change are marked seen with one statement per page.

use std::collections::{HashMap, HashSet};

use super::Written;
use crate::on_tx;
use crate::store::{StoreError, Tx};

/// Ids per `in (…)` list.
const PER_LIST: usize = 400;

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// A member as the registry has them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredMember {
    pub id: i64,
    pub platform_user_id: String,
    pub display_name: Option<String>,
    pub first_seen_at: i64,
}

/// The members of `scope` among `user_ids`, by user id.
pub async fn members_by_user(
    tx: &mut Tx,
    scope: &str,
    user_ids: &[&str],
) -> Result<HashMap<String, StoredMember>, StoreError> {
    let mut out = HashMap::new();
    for chunk in user_ids.chunks(PER_LIST) {
        let sql = format!(
            "select id, platform_user_id, display_name, first_seen_at from members \
             where scope = $1 and platform_user_id in ({})",
            placeholders(2, chunk.len())
        );
        let rows: Vec<StoredMember> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql).persistent(false).bind(scope);
            for u in chunk {
                q = q.bind(*u);
            }
            q.fetch_all(&mut **c).await?
        });
        out.extend(rows.into_iter().map(|m| (m.platform_user_id.clone(), m)));
    }
    Ok(out)
}

/// A member as the import knows them.
#[derive(Debug, Clone, Copy)]
pub struct KnownMember<'a> {
    pub scope: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    /// When they first appeared (a customer's add time, a group join time).
    pub first_seen_ms: i64,
}

const INSERT_MEMBER: &str = "insert into members (scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) \
     values ($1, $2, $3, $4, $4, 0) returning id";
const UPDATE_MEMBER: &str =
    "update members set display_name = $2, first_seen_at = $3 where id = $1";
const MEMBER: &str = "select id, platform_user_id, display_name, first_seen_at from members \
     where scope = $1 and platform_user_id = $2";

/// Creates the member or gives them the name and the earlier first-seen time (an empty name
/// never replaces one); `stored` is what [`members_by_user`] read, and is kept up to date so a
/// member twice on a page is written once.
pub async fn write_member(
    tx: &mut Tx,
    m: &KnownMember<'_>,
    stored: &mut HashMap<String, StoredMember>,
) -> Result<(i64, Written), StoreError> {
    let name = non_empty(m.name);
    let Some(found) = stored.get_mut(m.user_id) else {
        let id: i64 = on_tx!(tx, c => sqlx::query_scalar(INSERT_MEMBER)
            .bind(m.scope).bind(m.user_id).bind(name).bind(m.first_seen_ms)
            .fetch_one(&mut **c).await?);
        let row = StoredMember {
            id,
            platform_user_id: m.user_id.to_owned(),
            display_name: name.map(str::to_owned),
            first_seen_at: m.first_seen_ms,
        };
        stored.insert(m.user_id.to_owned(), row);
        return Ok((id, Written::Created));
    };
    let name = name.map(str::to_owned).or(found.display_name.clone());
    let first = found.first_seen_at.min(m.first_seen_ms);
    if name == found.display_name && first == found.first_seen_at {
        return Ok((found.id, Written::Unchanged));
    }
    on_tx!(tx, c => {
        sqlx::query(UPDATE_MEMBER).bind(found.id).bind(&name).bind(first).execute(&mut **c).await?;
    });
    found.display_name = name;
    found.first_seen_at = first;
    Ok((found.id, Written::Updated))
}

/// Creates or corrects one member without a page around it (a CSV row).
pub async fn upsert_member(tx: &mut Tx, m: &KnownMember<'_>) -> Result<(i64, Written), StoreError> {
    let found: Option<StoredMember> = on_tx!(tx, c => sqlx::query_as(MEMBER)
        .bind(m.scope).bind(m.user_id).fetch_optional(&mut **c).await?);
    let mut stored: HashMap<String, StoredMember> = found
        .into_iter()
        .map(|f| (f.platform_user_id.clone(), f))
        .collect();
    write_member(tx, m, &mut stored).await
}

/// A customer relation as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredFollow {
    pub external_userid: String,
    pub staff: String,
    pub state: Option<String>,
    pub remark: Option<String>,
    pub added_at: i64,
    pub removed_at: Option<i64>,
}

/// The relations of `scope` of the customers in `externals`, by (customer, staff member).
pub async fn follows_of(
    tx: &mut Tx,
    scope: &str,
    externals: &[&str],
) -> Result<HashMap<(String, String), StoredFollow>, StoreError> {
    let mut out = HashMap::new();
    for chunk in externals.chunks(PER_LIST) {
        let sql = format!(
            "select external_userid, staff, state, remark, added_at, removed_at from contact_follows \
             where scope = $1 and external_userid in ({})",
            placeholders(2, chunk.len())
        );
        let rows: Vec<StoredFollow> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql).persistent(false).bind(scope);
            for e in chunk {
                q = q.bind(*e);
            }
            q.fetch_all(&mut **c).await?
        });
        out.extend(
            rows.into_iter()
                .map(|f| ((f.external_userid.clone(), f.staff.clone()), f)),
        );
    }
    Ok(out)
}

/// A customer relation as the platform has it.
#[derive(Debug, Clone, Copy)]
pub struct KnownFollow<'a> {
    pub scope: &'a str,
    pub external_userid: &'a str,
    pub staff: &'a str,
    pub state: &'a str,
    pub remark: &'a str,
    pub added_at_ms: i64,
    pub run: i64,
}

const INSERT_FOLLOW: &str = "insert into contact_follows (scope, external_userid, staff, state, remark, added_at, removed_at, seen_run) \
     values ($1, $2, $3, $4, $5, $6, null, $7)";
const UPDATE_FOLLOW: &str = "update contact_follows set state = $4, remark = $5, added_at = $6, removed_at = null, seen_run = $7 \
     where scope = $1 and external_userid = $2 and staff = $3";

/// Creates or corrects the relation (marking it seen by the run); an unchanged one is left for
/// [`see_follows`].
pub async fn write_follow(
    tx: &mut Tx,
    f: &KnownFollow<'_>,
    stored: Option<&StoredFollow>,
) -> Result<Written, StoreError> {
    let (state, remark) = (non_empty(f.state), non_empty(f.remark));
    let sql = match stored {
        None => INSERT_FOLLOW,
        Some(s)
            if s.state.as_deref() == state
                && s.remark.as_deref() == remark
                && s.added_at == f.added_at_ms
                && s.removed_at.is_none() =>
        {
            return Ok(Written::Unchanged)
        }
        Some(_) => UPDATE_FOLLOW,
    };
    on_tx!(tx, c => {
        sqlx::query(sql).bind(f.scope).bind(f.external_userid).bind(f.staff).bind(state).bind(remark)
            .bind(f.added_at_ms).bind(f.run).execute(&mut **c).await?;
    });
    Ok(if stored.is_none() {
        Written::Created
    } else {
        Written::Updated
    })
}

/// Marks unchanged relations (customer, staff member) as seen by `run`, in one statement per
/// `PER_LIST` pairs: the pairs are a `values` list joined on the primary key.
pub async fn see_follows(
    tx: &mut Tx,
    scope: &str,
    run: i64,
    pairs: &[(&str, &str)],
) -> Result<(), StoreError> {
    for chunk in pairs.chunks(PER_LIST / 2) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 3 + 2 * i, 4 + 2 * i))
            .collect();
        let sql = format!(
            "with seen (external_userid, staff) as (values {}) \
             update contact_follows set seen_run = $2 from seen \
             where contact_follows.scope = $1 and contact_follows.external_userid = seen.external_userid \
             and contact_follows.staff = seen.staff",
            values.join(", ")
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(&sql).persistent(false).bind(scope).bind(run);
            for (e, s) in chunk {
                q = q.bind(*e).bind(*s);
            }
            q.execute(&mut **c).await?;
        });
    }
    Ok(())
}

/// The tag names each of `member_ids` has.
pub async fn tags_of_members(
    tx: &mut Tx,
    member_ids: &[i64],
) -> Result<HashMap<i64, HashSet<String>>, StoreError> {
    let mut out: HashMap<i64, HashSet<String>> = HashMap::new();
    for chunk in member_ids.chunks(PER_LIST) {
        let sql = format!(
            "select mt.member_id, t.name from member_tags mt join tags t on t.id = mt.tag_id \
             where mt.member_id in ({})",
            placeholders(1, chunk.len())
        );
        let rows: Vec<(i64, String)> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql).persistent(false);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut **c).await?
        });
        for (member, tag) in rows {
            out.entry(member).or_default().insert(tag);
        }
    }
    Ok(out)
}

/// A customer group as the platform has it.
#[derive(Debug, Clone, Copy)]
pub struct KnownGroup<'a> {
    pub scope: &'a str,
    pub chat_id: &'a str,
    pub name: &'a str,
    pub owner: &'a str,
    pub notice: &'a str,
    pub created_ms: i64,
    pub run: i64,
}

const GROUP: &str =
    "select id, name, owner, notice, gone_at from chat_groups where scope = $1 and platform_group_id = $2";
const INSERT_GROUP: &str = "insert into chat_groups (scope, platform_group_id, name, owner, notice, first_seen_at, last_active_at, seen_run) \
     values ($1, $2, $3, $4, $5, $6, $6, $7) returning id";
const UPDATE_GROUP: &str =
    "update chat_groups set name = $2, owner = $3, notice = $4, gone_at = null, seen_run = $5 where id = $1";
const SEE_GROUP: &str = "update chat_groups set seen_run = $2 where id = $1";

/// Creates or corrects the group and marks it seen; its id and what changed.
pub async fn upsert_group(tx: &mut Tx, g: &KnownGroup<'_>) -> Result<(i64, Written), StoreError> {
    type Row = (
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let found: Option<Row> = on_tx!(tx, c => sqlx::query_as(GROUP)
        .bind(g.scope).bind(g.chat_id).fetch_optional(&mut **c).await?);
    let (name, owner, notice) = (non_empty(g.name), non_empty(g.owner), non_empty(g.notice));
    match found {
        None => {
            let id: i64 = on_tx!(tx, c => sqlx::query_scalar(INSERT_GROUP)
                .bind(g.scope).bind(g.chat_id).bind(name).bind(owner).bind(notice).bind(g.created_ms)
                .bind(g.run).fetch_one(&mut **c).await?);
            Ok((id, Written::Created))
        }
        Some((id, n, o, t, gone))
            if n.as_deref() == name
                && o.as_deref() == owner
                && t.as_deref() == notice
                && gone.is_none() =>
        {
            on_tx!(tx, c => { sqlx::query(SEE_GROUP).bind(id).bind(g.run).execute(&mut **c).await?; });
            Ok((id, Written::Unchanged))
        }
        Some((id, ..)) => {
            on_tx!(tx, c => {
                sqlx::query(UPDATE_GROUP).bind(id).bind(name).bind(owner).bind(notice).bind(g.run)
                    .execute(&mut **c).await?;
            });
            Ok((id, Written::Updated))
        }
    }
}

/// A membership as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredMembership {
    pub member_id: i64,
    pub joined_at: i64,
    pub left_at: Option<i64>,
    pub join_scene: Option<i64>,
    pub inviter: Option<String>,
}

const MEMBERSHIPS: &str = "select member_id, joined_at, left_at, join_scene, inviter from group_members where group_id = $1";

/// Every membership (current and past) of a group, by member id.
pub async fn memberships_of(
    tx: &mut Tx,
    group_id: i64,
) -> Result<HashMap<i64, StoredMembership>, StoreError> {
    let rows: Vec<StoredMembership> = on_tx!(tx, c => sqlx::query_as(MEMBERSHIPS)
        .bind(group_id).fetch_all(&mut **c).await?);
    Ok(rows.into_iter().map(|m| (m.member_id, m)).collect())
}

/// One member of a group as the platform has them.
#[derive(Debug, Clone, Copy)]
pub struct KnownMembership<'a> {
    pub group_id: i64,
    pub member_id: i64,
    pub joined_at_ms: i64,
    pub join_scene: i64,
    pub inviter: Option<&'a str>,
    pub run: i64,
}

const INSERT_MEMBERSHIP: &str = "insert into group_members (group_id, member_id, joined_at, left_at, join_scene, inviter, seen_run) \
     values ($1, $2, $3, null, $4, $5, $6)";
const UPDATE_MEMBERSHIP: &str = "update group_members set joined_at = $3, left_at = null, join_scene = $4, inviter = $5, seen_run = $6 \
     where group_id = $1 and member_id = $2";

/// Creates or corrects the membership (marking it seen); an unchanged one is left for
/// [`see_memberships`].
pub async fn write_membership(
    tx: &mut Tx,
    m: &KnownMembership<'_>,
    stored: Option<&StoredMembership>,
) -> Result<Written, StoreError> {
    let sql = match stored {
        None => INSERT_MEMBERSHIP,
        Some(s)
            if s.joined_at == m.joined_at_ms
                && s.left_at.is_none()
                && s.join_scene == Some(m.join_scene)
                && s.inviter.as_deref() == m.inviter =>
        {
            return Ok(Written::Unchanged)
        }
        Some(_) => UPDATE_MEMBERSHIP,
    };
    on_tx!(tx, c => {
        sqlx::query(sql).bind(m.group_id).bind(m.member_id).bind(m.joined_at_ms).bind(m.join_scene)
            .bind(m.inviter).bind(m.run).execute(&mut **c).await?;
    });
    Ok(if stored.is_none() {
        Written::Created
    } else {
        Written::Updated
    })
}

/// Marks unchanged memberships of a group as seen by `run`.
pub async fn see_memberships(
    tx: &mut Tx,
    group_id: i64,
    run: i64,
    member_ids: &[i64],
) -> Result<(), StoreError> {
    for chunk in member_ids.chunks(PER_LIST) {
        let sql = format!(
            "update group_members set seen_run = $2 where group_id = $1 and member_id in ({})",
            placeholders(3, chunk.len())
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(&sql).persistent(false).bind(group_id).bind(run);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut **c).await?;
        });
    }
    Ok(())
}

/// A member a page brings that the registry does not have yet.
#[derive(Debug, Clone, Copy)]
pub struct NewMember<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub first_seen_ms: i64,
}

/// Rows per multi-row insert (four to six values each, within both databases' limits).
const PER_INSERT: usize = 200;

/// Inserts the members in few statements (one that appeared meanwhile keeps its row and gains
/// the name); adds them to `stored`.
pub async fn insert_members(
    tx: &mut Tx,
    scope: &str,
    members: &[NewMember<'_>],
    stored: &mut HashMap<String, StoredMember>,
) -> Result<(), StoreError> {
    // One row per member: a statement may not touch a row twice.
    let mut seen = HashSet::new();
    let members: Vec<&NewMember<'_>> = members.iter().filter(|m| seen.insert(m.user_id)).collect();
    for chunk in members.chunks(PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 2 + 3 * i;
                format!("($1, ${b}, ${}, ${}, ${}, 0)", b + 1, b + 2, b + 2)
            })
            .collect();
        let sql = format!(
            "insert into members (scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) \
             values {} on conflict (scope, platform_user_id) do update set \
             display_name = coalesce(excluded.display_name, members.display_name) \
             returning id, platform_user_id, display_name, first_seen_at",
            values.join(", ")
        );
        let rows: Vec<StoredMember> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql).persistent(false).bind(scope);
            for m in chunk {
                q = q.bind(m.user_id).bind(non_empty(m.name)).bind(m.first_seen_ms);
            }
            q.fetch_all(&mut **c).await?
        });
        stored.extend(rows.into_iter().map(|m| (m.platform_user_id.clone(), m)));
    }
    Ok(())
}

/// Inserts new relations (seen by their run) in few statements.
pub async fn insert_follows(tx: &mut Tx, follows: &[KnownFollow<'_>]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    let follows: Vec<&KnownFollow<'_>> = follows
        .iter()
        .filter(|f| seen.insert((f.external_userid, f.staff)))
        .collect();
    for chunk in follows.chunks(PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 1 + 7 * i;
                format!(
                    "(${b}, ${}, ${}, ${}, ${}, ${}, null, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                )
            })
            .collect();
        let sql = format!(
            "insert into contact_follows (scope, external_userid, staff, state, remark, added_at, removed_at, seen_run) \
             values {} on conflict (scope, external_userid, staff) do update set state = excluded.state, \
             remark = excluded.remark, added_at = excluded.added_at, removed_at = null, seen_run = excluded.seen_run",
            values.join(", ")
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(&sql).persistent(false);
            for f in chunk {
                q = q.bind(f.scope).bind(f.external_userid).bind(f.staff).bind(non_empty(f.state))
                    .bind(non_empty(f.remark)).bind(f.added_at_ms).bind(f.run);
            }
            q.execute(&mut **c).await?;
        });
    }
    Ok(())
}

/// Inserts new memberships (seen by their run) in few statements.
pub async fn insert_memberships(
    tx: &mut Tx,
    memberships: &[KnownMembership<'_>],
) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    let memberships: Vec<&KnownMembership<'_>> = memberships
        .iter()
        .filter(|m| seen.insert(m.member_id))
        .collect();
    for chunk in memberships.chunks(PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 1 + 6 * i;
                format!(
                    "(${b}, ${}, ${}, null, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                )
            })
            .collect();
        let sql = format!(
            "insert into group_members (group_id, member_id, joined_at, left_at, join_scene, inviter, seen_run) \
             values {} on conflict (group_id, member_id) do update set joined_at = excluded.joined_at, \
             left_at = null, join_scene = excluded.join_scene, inviter = excluded.inviter, seen_run = excluded.seen_run",
            values.join(", ")
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(&sql).persistent(false);
            for m in chunk {
                q = q.bind(m.group_id).bind(m.member_id).bind(m.joined_at_ms).bind(m.join_scene)
                    .bind(m.inviter).bind(m.run);
            }
            q.execute(&mut **c).await?;
        });
    }
    Ok(())
}
