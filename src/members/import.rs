//! `yunying members import FILE --scope S`: members of a community that lives elsewhere (gateway
//! groups, another tool) from a CSV as Excel saves it: id, name, tags, join date and opening
//! points with their reason. Every bad row is reported with its line and the rest still imports;
//! importing the file again changes nothing (the opening points are one ledger entry per member).

use chrono::{NaiveDate, NaiveDateTime, TimeZone as _};

use crate::store::points::{self as db, LedgerChange};
use crate::store::registry::{self, KnownMember, Written};
use crate::store::tags::{self, TagBatch};
use crate::store::{Store, StoreError};

/// One row of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub line: usize,
    pub user_id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// Epoch ms; `None`: the import's time.
    pub joined_ms: Option<i64>,
    pub points: i64,
    pub reason: String,
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub rows: Vec<MemberRow>,
    pub rejected: Vec<Rejected>,
    pub warnings: Vec<String>,
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub points_credited: usize,
}

/// The reason of opening points when the file gives none.
const DEFAULT_REASON: &str = "导入初始积分";
/// The ledger key of a member's opening points: once per member.
const OPENING_KEY: &str = "import:opening";
/// Rows per transaction.
const ROWS_PER_TX: usize = 500;

fn column(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_lowercase().as_str() {
        "id" | "user_id" | "userid" | "用户id" | "成员id" | "微信号" => "id",
        "name" | "昵称" | "姓名" | "名称" => "name",
        "tags" | "标签" => "tags",
        "joined" | "join_date" | "入群时间" | "加入时间" | "入群日期" => "joined",
        "points" | "积分" | "初始积分" => "points",
        "reason" | "积分原因" | "原因" => "reason",
        _ => return None,
    })
}

/// `2024-03-01`, `2024/3/1`, `2024-03-01 08:30[:00]` in the community's zone, or epoch seconds
/// or milliseconds.
fn parse_time(value: &str, tz: chrono_tz::Tz) -> Result<i64, String> {
    let v = value.trim().replace('/', "-");
    if let Ok(n) = v.parse::<i64>() {
        return Ok(if n > 100_000_000_000 { n } else { n * 1000 });
    }
    let local = NaiveDateTime::parse_from_str(&v, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&v, "%Y-%m-%d %H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .map_err(|_| format!("`{value}` is not a date such as 2024-03-01 or 2024-03-01 08:30"))?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("`{value}` does not exist in {tz}"))
}

/// Reads the CSV text (already decoded); `now_ms` bounds join dates (none in the future).
pub fn parse(text: &str, tz: chrono_tz::Tz, now_ms: i64) -> anyhow::Result<Parsed> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| anyhow::anyhow!("line 1: reading the header: {e}"))?
        .clone();
    let columns: Vec<Option<&str>> = headers.iter().map(column).collect();
    if !columns.contains(&Some("id")) {
        anyhow::bail!("line 1: the column `id` (用户ID) is required; known: id, name, tags, joined, points, reason");
    }
    let mut parsed = Parsed::default();
    let ignored: Vec<&str> = headers
        .iter()
        .zip(&columns)
        .filter(|(_, c)| c.is_none())
        .map(|(h, _)| h)
        .collect();
    if !ignored.is_empty() {
        parsed
            .warnings
            .push(format!("line 1: columns ignored: {}", ignored.join(", ")));
    }
    let mut seen = std::collections::HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                parsed.rejected.push(Rejected {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        match row_of(&record, &columns, line, tz, now_ms) {
            Ok(row) => {
                if let Some(first) = seen.insert(row.user_id.clone(), line) {
                    parsed.rejected.push(Rejected {
                        line,
                        reason: format!("id `{}` is on line {first} already", row.user_id),
                    });
                } else {
                    parsed.rows.push(row);
                }
            }
            Err(reason) => parsed.rejected.push(Rejected { line, reason }),
        }
    }
    Ok(parsed)
}

fn row_of(
    record: &csv::StringRecord,
    columns: &[Option<&str>],
    line: usize,
    tz: chrono_tz::Tz,
    now_ms: i64,
) -> Result<MemberRow, String> {
    let mut row = MemberRow {
        line,
        user_id: String::new(),
        name: String::new(),
        tags: Vec::new(),
        joined_ms: None,
        points: 0,
        reason: DEFAULT_REASON.to_owned(),
    };
    for (value, col) in record.iter().zip(columns) {
        let value = value.trim();
        match col.unwrap_or_default() {
            "id" => row.user_id = value.to_owned(),
            "name" => row.name = value.to_owned(),
            "tags" => {
                row.tags = value
                    .split(['|', '；', ';', '，', ','])
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "joined" if !value.is_empty() => {
                let at = parse_time(value, tz).map_err(|e| format!("joined: {e}"))?;
                if at > now_ms {
                    return Err(format!("joined: `{value}` is in the future"));
                }
                row.joined_ms = Some(at);
            }
            "points" if !value.is_empty() => {
                row.points = value
                    .parse()
                    .ok()
                    .filter(|p: &i64| (0..=100_000_000).contains(p))
                    .ok_or_else(|| format!("points: `{value}` is not a whole number from 0"))?;
            }
            "reason" if !value.is_empty() => row.reason = value.to_owned(),
            _ => {}
        }
    }
    if row.user_id.is_empty() {
        return Err("id is empty".into());
    }
    if row.user_id.len() > 256 || row.tags.iter().any(|t| t.chars().count() > 64) {
        return Err("id longer than 256 bytes or a tag longer than 64 characters".into());
    }
    Ok(row)
}

/// Writes the rows into `scope`, `ROWS_PER_TX` to a transaction. A member's opening points
/// are credited once: a second import (even with another number) leaves them, and says so.
pub async fn import(
    store: &Store,
    scope: &str,
    rows: &[MemberRow],
    day: i32,
    now_ms: i64,
) -> Result<(Imported, Vec<Rejected>), StoreError> {
    let mut done = Imported::default();
    let mut notes = Vec::new();
    for chunk in rows.chunks(ROWS_PER_TX) {
        let mut tx = store.begin_write().await?;
        for row in chunk {
            let (member_id, written) = registry::upsert_member(
                &mut tx,
                &KnownMember {
                    scope,
                    user_id: &row.user_id,
                    name: &row.name,
                    first_seen_ms: row.joined_ms.unwrap_or(now_ms),
                },
            )
            .await?;
            let mut tagged = 0;
            for tag in &row.tags {
                let batch = TagBatch {
                    scope,
                    tag,
                    source: "manual",
                    by: "import",
                    now_ms,
                };
                tagged += tags::set_many(&mut tx, &batch, &[member_id], true).await?;
            }
            if row.points > 0 {
                let (_, _) = db::member_account(&mut tx, scope, &row.user_id, None, now_ms).await?;
                let change = LedgerChange {
                    member_id,
                    delta: row.points,
                    reason: &row.reason,
                    source_key: &format!("{OPENING_KEY}:{member_id}"),
                    operator: Some("import"),
                    day,
                    now_ms,
                };
                if db::insert_ledger(&mut tx, &change).await? {
                    db::adjust_balance(&mut tx, member_id, row.points, now_ms).await?;
                    done.points_credited += 1;
                    tagged += 1;
                } else if let Some((_, before, _)) =
                    db::ledger_by_source(&mut tx, change.source_key).await?
                {
                    if before != row.points {
                        notes.push(Rejected {
                            line: row.line,
                            reason: format!(
                                "opening points were imported before ({before}); left as they are"
                            ),
                        });
                    }
                }
            }
            match (written, tagged) {
                (Written::Created, _) => done.created += 1,
                (Written::Unchanged, 0) => done.unchanged += 1,
                _ => done.updated += 1,
            }
        }
        tx.commit().await?;
    }
    Ok((done, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_760_000_000_000;

    #[test]
    fn rows_carry_their_line_and_bad_ones_say_why() {
        let text = "用户ID,昵称,标签,入群时间,初始积分,积分原因,备注\n\
                    u1,张三,VIP|老客户,2024-03-01,100,老社群积分,x\n\
                    ,李四,,,,,\n\
                    u3,王五,,2024/13/01,,,\n\
                    u4,赵六,新客；活动,2024-03-01 08:30,-5,,\n\
                    u1,重复,,,,,\n\
                    u6,钱七,,1709251200,,,\n";
        let parsed = parse(text, chrono_tz::Asia::Shanghai, NOW).expect("csv");
        let ids: Vec<_> = parsed
            .rows
            .iter()
            .map(|r| (r.line, r.user_id.as_str()))
            .collect();
        assert_eq!(ids, [(2, "u1"), (7, "u6")]);
        assert_eq!(parsed.rows[0].tags, ["VIP", "老客户"]);
        assert_eq!(parsed.rows[0].points, 100);
        assert_eq!(parsed.rows[0].reason, "老社群积分");
        // 2024-03-01 00:00 in Shanghai.
        assert_eq!(parsed.rows[0].joined_ms, Some(1_709_222_400_000));
        assert_eq!(parsed.rows[1].joined_ms, Some(1_709_251_200_000));
        let bad: Vec<_> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(bad, [3, 4, 5, 6], "{:?}", parsed.rejected);
        assert!(parsed.rejected[1].reason.contains("joined"));
        assert!(parsed.rejected[2].reason.contains("points"));
        assert!(parsed.rejected[3].reason.contains("line 2"));
        assert!(parsed.warnings[0].contains("备注"));
    }

    #[test]
    fn a_file_without_ids_is_refused_at_its_header() {
        let err = parse("昵称,积分\n张三,1\n", chrono_tz::Asia::Shanghai, NOW).expect_err("no id");
        assert!(err.to_string().starts_with("line 1:"), "{err}");
    }
}
