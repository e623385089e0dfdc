//! The stand-in's directory endpoints: the members with customer-contact permission, their
//! customers page by page (`batch/get_by_user`), customer groups page by page and one by one,
//! and the corp's own members (`user/get`); plus a generator that fills the directory with a
//! community of any size for imports at scale.

use axum::extract::{Query, State as AxState};
use axum::response::Response;
use axum::Json;
use rand::{Rng as _, SeedableRng as _};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{after, before, errcode, log, ok, Roll, TokenQuery};
use super::{lock, Shared};

/// The largest page `batch/get_by_user` serves (Doc 92994).
const CUSTOMER_PAGE_MAX: usize = 100;
/// The largest page `groupchat/list` serves (Doc 92120).
const GROUP_PAGE_MAX: usize = 1000;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /cgi-bin/externalcontact/get_follow_user_list`: every member who has a customer.
pub(super) async fn follow_user_list(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let hang = guarded!(state, "get_follow_user_list", "", Some(&q.access_token));
    let users: std::collections::BTreeSet<String> = {
        let mut st = lock(&state);
        log(&mut st, "get_follow_user_list", "", "ok");
        st.contacts
            .values()
            .flat_map(|c| c["follow_user"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f["userid"].as_str().map(str::to_owned))
            .collect()
    };
    after(hang, ok(json!({ "follow_user": users }))).await
}

/// `POST /cgi-bin/externalcontact/batch/get_by_user`: one item per (customer, follow user) of
/// the listed members, in customer order; the cursor is the customer to start from.
pub(super) async fn batch_get_by_user(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let hang = guarded!(state, "batch/get_by_user", "", Some(&q.access_token));
    let users = strings(&body["userid_list"]);
    if users.is_empty() || users.len() > 100 {
        return errcode(40058, "userid_list must hold 1 to 100 members");
    }
    let limit = match body["limit"].as_u64().unwrap_or(50) {
        0 => 50,
        n => usize::try_from(n).unwrap_or(CUSTOMER_PAGE_MAX),
    };
    if limit > CUSTOMER_PAGE_MAX {
        return errcode(40058, "limit must be at most 100");
    }
    let cursor = body["cursor"].as_str().unwrap_or("").to_owned();
    let response = {
        let mut st = lock(&state);
        log(&mut st, "batch/get_by_user", "", "ok");
        let mut list = Vec::new();
        let mut next = String::new();
        for (id, c) in st.contacts.range(cursor..) {
            let follows: Vec<&Value> = c["follow_user"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| users.iter().any(|u| f["userid"] == u.as_str()))
                .collect();
            if follows.is_empty() {
                continue;
            }
            if !list.is_empty() && list.len() + follows.len() > limit {
                next.clone_from(id);
                break;
            }
            for f in follows {
                let tag_id: Vec<&Value> = f["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| &t["tag_id"])
                    .collect();
                let mut info = f.clone();
                if let Some(o) = info.as_object_mut() {
                    o.remove("tags");
                    o.insert("tag_id".into(), json!(tag_id));
                }
                list.push(
                    json!({ "external_contact": c["external_contact"], "follow_info": info }),
                );
            }
        }
        ok(json!({ "external_contact_list": list, "next_cursor": next }))
    };
    after(hang, response).await
}

/// `POST /cgi-bin/externalcontact/groupchat/list`: chat ids in order, `status_filter` and
/// `owner_filter` applied; the cursor is the chat id to start from.
pub(super) async fn groupchat_list(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let hang = guarded!(state, "groupchat/list", "", Some(&q.access_token));
    let limit = body["limit"].as_u64().unwrap_or(0);
    if !(1..=GROUP_PAGE_MAX as u64).contains(&limit) {
        return errcode(40058, "limit must be 1 to 1000");
    }
    let limit = usize::try_from(limit).unwrap_or(GROUP_PAGE_MAX);
    let status = body["status_filter"].as_i64().unwrap_or(0);
    let owners = strings(&body["owner_filter"]["userid_list"]);
    let cursor = body["cursor"].as_str().unwrap_or("").to_owned();
    let response = {
        let mut st = lock(&state);
        log(&mut st, "groupchat/list", "", "ok");
        let mut list = Vec::new();
        let mut next = String::new();
        for (id, g) in st.groups.range(cursor..) {
            let group_status = g["status"].as_i64().unwrap_or(0);
            if status != 0 && group_status != status {
                continue;
            }
            if !owners.is_empty() && !owners.iter().any(|o| g["owner"] == o.as_str()) {
                continue;
            }
            if list.len() == limit {
                next.clone_from(id);
                break;
            }
            list.push(json!({ "chat_id": id, "status": group_status }));
        }
        ok(json!({ "group_chat_list": list, "next_cursor": next }))
    };
    after(hang, response).await
}

/// `POST /cgi-bin/externalcontact/groupchat/get`: one group with its members; names only with
/// `need_name = 1`.
pub(super) async fn groupchat_get(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let chat = body["chat_id"].as_str().unwrap_or("").to_owned();
    let hang = guarded!(state, "groupchat/get", &chat, Some(&q.access_token));
    let with_names = body["need_name"].as_i64() == Some(1);
    let response = {
        let mut st = lock(&state);
        match st.groups.get(&chat).cloned() {
            None => {
                log(&mut st, "groupchat/get", &chat, "errcode 40050");
                errcode(40050, "invalid chatid")
            }
            Some(mut group) => {
                log(&mut st, "groupchat/get", &chat, "ok");
                if let Some(o) = group.as_object_mut() {
                    o.remove("status");
                }
                if !with_names {
                    for m in group["member_list"].as_array_mut().into_iter().flatten() {
                        if let Some(o) = m.as_object_mut() {
                            o.remove("name");
                        }
                    }
                }
                ok(json!({ "group_chat": group }))
            }
        }
    };
    after(hang, response).await
}

#[derive(Deserialize)]
pub(super) struct UserQuery {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    userid: String,
}

/// `GET /cgi-bin/user/get`: a corp member's name (60111 for an unknown id).
pub(super) async fn user_get(
    AxState(state): AxState<Shared>,
    Query(q): Query<UserQuery>,
) -> Response {
    let hang = guarded!(state, "user/get", &q.userid, Some(&q.access_token));
    let response = {
        let mut st = lock(&state);
        match st.users.get(&q.userid).cloned() {
            Some(user) => {
                log(&mut st, "user/get", &q.userid, "ok");
                ok(user)
            }
            None => {
                log(&mut st, "user/get", &q.userid, "errcode 60111");
                errcode(60111, "userid not found")
            }
        }
    };
    after(hang, response).await
}

/// What `generate` builds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Community {
    pub customers: usize,
    pub groups: usize,
    /// Members with customer-contact permission, `staff001`….
    pub staff: usize,
    /// Members per group (the owner and customers).
    pub group_size: usize,
    pub seed: u64,
}

impl Default for Community {
    fn default() -> Self {
        Self {
            customers: 1000,
            groups: 20,
            staff: 10,
            group_size: 50,
            seed: 1,
        }
    }
}

/// The customer id the generator gives customer `i`.
pub fn customer_id(i: usize) -> String {
    format!("wmgen{i:08}")
}

/// The chat id the generator gives group `i`.
pub fn group_id(i: usize) -> String {
    format!("wrgen{i:06}")
}

/// Fills the directory with `c`: staff with names, customers followed by one or two of them
/// (added over the last two years, some through a contact-way `state`, some tagged), groups
/// owned by staff with customers who joined by invitation, link or QR code.
pub(super) fn generate(st: &mut super::state::State, c: Community) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(c.seed);
    let staff: Vec<String> = (1..=c.staff.max(1))
        .map(|i| format!("staff{i:03}"))
        .collect();
    for (i, s) in staff.iter().enumerate() {
        st.users.insert(
            s.clone(),
            json!({ "userid": s, "name": format!("运营{}", i + 1) }),
        );
    }
    let now_s = super::now_ms() / 1000;
    for i in 0..c.customers {
        let id = customer_id(i);
        let follows = 1 + usize::from(rng.gen_bool(0.2));
        let follow_user: Vec<Value> = (0..follows)
            .map(|k| {
                let userid = &staff[(i + k * 7) % staff.len()];
                let state = if rng.gen_bool(0.3) { "livestream" } else { "" };
                let tags: Vec<Value> = if rng.gen_bool(0.25) {
                    vec![json!({ "group_name": "客户等级", "tag_name": "重要客户", "type": 1, "tag_id": "etgenvip" })]
                } else {
                    Vec::new()
                };
                json!({
                    "userid": userid,
                    "remark": if rng.gen_bool(0.1) { format!("备注{i}") } else { String::new() },
                    "createtime": now_s - rng.gen_range(0..2 * 365 * 86_400),
                    "state": state,
                    "add_way": 1,
                    "tags": tags,
                })
            })
            .collect();
        st.contacts.insert(
            id.clone(),
            json!({
                "external_contact": { "external_userid": id, "name": format!("客户{i}"), "type": 1 },
                "follow_user": follow_user,
            }),
        );
    }
    if !st.tag_groups.iter().any(|g| g["group_id"] == "etggen") {
        st.tag_groups.push(json!({ "group_id": "etggen", "group_name": "客户等级", "order": 1,
            "deleted": false, "tag": [{ "id": "etgenvip", "name": "重要客户", "order": 1, "deleted": false }] }));
    }
    for g in 0..c.groups {
        let owner = &staff[g % staff.len()];
        let mut members = vec![
            json!({ "userid": owner, "type": 1, "join_time": now_s - 400 * 86_400,
            "join_scene": 1, "name": st.users[owner]["name"] }),
        ];
        for k in 0..c.group_size.saturating_sub(1).min(c.customers) {
            let customer = (g * 37 + k * 13) % c.customers;
            members.push(json!({
                "userid": customer_id(customer),
                "type": 2,
                "join_time": now_s - rng.gen_range(0..365 * 86_400),
                "join_scene": 1 + rng.gen_range(0..3),
                "invitor": { "userid": owner },
                "name": format!("客户{customer}"),
            }));
        }
        members.dedup_by(|a, b| a["userid"] == b["userid"]);
        st.groups.insert(
            group_id(g),
            json!({
                "chat_id": group_id(g), "name": format!("产品交流{}群", g + 1), "owner": owner,
                "create_time": now_s - 400 * 86_400, "notice": "欢迎加入", "member_list": members,
                "admin_list": [], "member_version": "1", "status": 0,
            }),
        );
    }
}
