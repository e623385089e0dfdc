//! The segment language on a real database: for many random expressions over random members,
//! the SQL count and list equal the in-memory evaluator's, on SQLite and PostgreSQL.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yunying::config::Config;
use yunying::members::segment::{self, Expr, Field, MemberFacts, Op, SegmentContext};
use yunying::on_pool;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(sql_and_memory_agree_on_random_segments);

const SCOPE: &str = "wwseg";
const NOW: i64 = 1_717_200_000_000;
const DAY: i64 = 86_400_000;
const TAGS: &[&str] = &["VIP", "免打扰", "意向", "核心 用户"];
const STAGES: &[&str] = &["new", "active", "silent", "lapsed", "churned", "returned"];
const GROUPS: &[(&str, &str)] = &[("g1", "产品交流1群"), ("g2", "福利群"), ("g3", "新手群")];

fn random_expr(rng: &mut StdRng, depth: u32) -> Expr {
    let leaf = depth == 0 || rng.gen_bool(0.4);
    if leaf {
        return match rng.gen_range(0..7) {
            6 => Expr::Stage(STAGES[rng.gen_range(0..STAGES.len())].into()),
            0 => Expr::Tag(TAGS[rng.gen_range(0..TAGS.len())].into()),
            1 => {
                let (id, name) = GROUPS[rng.gen_range(0..GROUPS.len())];
                Expr::Group(if rng.gen_bool(0.5) { id } else { name }.into())
            }
            2 => Expr::Level(["新手", "活跃", "核心", "元老"][rng.gen_range(0..4)].into()),
            _ => {
                let field = [
                    Field::Points,
                    Field::Earned,
                    Field::Messages,
                    Field::DaysSinceActive,
                    Field::DaysSinceJoined,
                ][rng.gen_range(0..5)];
                let op = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge][rng.gen_range(0..6)];
                let value = match field {
                    Field::DaysSinceActive | Field::DaysSinceJoined => rng.gen_range(0..60),
                    _ => rng.gen_range(0..600),
                };
                Expr::Compare(field, op, value)
            }
        };
    }
    match rng.gen_range(0..3) {
        0 => Expr::And(
            Box::new(random_expr(rng, depth - 1)),
            Box::new(random_expr(rng, depth - 1)),
        ),
        1 => Expr::Or(
            Box::new(random_expr(rng, depth - 1)),
            Box::new(random_expr(rng, depth - 1)),
        ),
        _ => Expr::Not(Box::new(random_expr(rng, depth - 1))),
    }
}

async fn sql_and_memory_agree_on_random_segments(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let config = Config::example().expect("config");
    let mut rng = StdRng::seed_from_u64(7);
    let pool = app.store.pool();

    for (id, name) in GROUPS {
        on_pool!(pool, p => {
            sqlx::query("insert into chat_groups (scope, platform_group_id, name, first_seen_at, last_active_at) values ($1, $2, $3, 0, 0)")
            .bind(SCOPE).bind(*id).bind(*name).execute(p).await.expect("group");
        });
    }
    for t in TAGS {
        on_pool!(pool, p => {
            sqlx::query("insert into tags (scope, name, source, created_at) values ($1, $2, 'manual', 0)")
            .bind(SCOPE).bind(*t).execute(p).await.expect("tag");
        });
    }
    let mut members: Vec<(String, MemberFacts)> = Vec::new();
    for i in 0..60 {
        let user = format!("u{i:02}");
        let facts = MemberFacts {
            tags: TAGS
                .iter()
                .filter(|_| rng.gen_bool(0.3))
                .map(|t| (*t).to_owned())
                .collect(),
            groups: GROUPS
                .iter()
                .filter(|_| rng.gen_bool(0.4))
                .map(|(id, name)| ((*id).to_owned(), Some((*name).to_owned())))
                .collect(),
            balance: rng.gen_range(0..600),
            earned: rng.gen_range(0..2500),
            messages: rng.gen_range(0..300),
            last_active_at: NOW - rng.gen_range(0..60 * DAY),
            first_seen_at: NOW - rng.gen_range(0..90 * DAY),
            stage: rng
                .gen_bool(0.8)
                .then(|| STAGES[rng.gen_range(0..STAGES.len())].to_owned()),
        };
        let member_id: i64 = on_pool!(pool, p => sqlx::query_scalar("insert into members (scope, platform_user_id, first_seen_at, last_active_at, message_count) values ($1, $2, $3, $4, $5) returning id")
            .bind(SCOPE).bind(&user).bind(facts.first_seen_at).bind(facts.last_active_at).bind(facts.messages)
            .fetch_one(p).await.expect("member"));
        let mut facts = facts;
        if rng.gen_bool(0.85) {
            on_pool!(pool, p => {
                sqlx::query("insert into points_accounts (member_id, balance, total_earned, updated_at) values ($1, $2, $3, 0)")
                    .bind(member_id).bind(facts.balance).bind(facts.earned).execute(p).await.expect("account");
            });
        } else {
            // No account: the segment treats points as 0.
            facts.balance = 0;
            facts.earned = 0;
        }
        for t in &facts.tags {
            on_pool!(pool, p => {
                sqlx::query("insert into member_tags (member_id, tag_id, source, set_by, set_at) select $1, id, 'manual', 'test', 0 from tags where scope = $2 and name = $3")
                    .bind(member_id).bind(SCOPE).bind(t).execute(p).await.expect("member tag");
            });
        }
        if let Some(stage) = &facts.stage {
            on_pool!(pool, p => {
                sqlx::query("insert into member_stages (member_id, stage, since) values ($1, $2, 0)")
                    .bind(member_id).bind(stage).execute(p).await.expect("stage");
            });
        }
        for (gid, _) in &facts.groups {
            on_pool!(pool, p => {
                sqlx::query("insert into group_members (group_id, member_id, joined_at) select id, $1, 0 from chat_groups where scope = $2 and platform_group_id = $3")
                    .bind(member_id).bind(SCOPE).bind(gid).execute(p).await.expect("membership");
            });
        }
        members.push((user, facts));
    }

    let ctx = SegmentContext {
        accounts: yunying::members::segment::AccountSql::for_backend(app.store.backend()),
        now_ms: NOW,
        levels: &config.points.levels,
    };
    for round in 0..150 {
        let expr = random_expr(&mut rng, 4);
        let compiled = segment::to_sql(&expr, &ctx, 2).expect("compiles");
        let mut expected: Vec<String> = members
            .iter()
            .filter(|(_, f)| segment::matches(&expr, f, &ctx).expect("evaluates"))
            .map(|(u, _)| u.clone())
            .collect();
        expected.sort();
        let count = app
            .store
            .segment_count(SCOPE, &compiled)
            .await
            .expect("count");
        let listed = app
            .store
            .segment_members(SCOPE, &compiled, 1000, 0)
            .await
            .expect("list");
        assert_eq!(
            count,
            i64::try_from(expected.len()).expect("n"),
            "round {round}: {expr:?}"
        );
        assert_eq!(listed, expected, "round {round}: {expr:?}");
    }

    // A parsed expression and paging.
    let expr =
        segment::parse("not tag:免打扰 and (points >= 100 or last_active < 14d)").expect("parses");
    let compiled = segment::to_sql(&expr, &ctx, 2).expect("compiles");
    let all = app
        .store
        .segment_members(SCOPE, &compiled, 1000, 0)
        .await
        .expect("list");
    let page = app
        .store
        .segment_members(SCOPE, &compiled, 5, 5)
        .await
        .expect("page");
    assert_eq!(page, all[5..10.min(all.len())].to_vec());
}
