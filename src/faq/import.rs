//! `yunying faq import` / `export`: knowledge-base files in CSV, JSON (an array) or JSON lines.
//! Every bad row is reported with its line number and reason and the rest still imports;
//! re-importing a file updates entries by their `id` instead of duplicating them.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context as _};

use super::check_entry;
use crate::store::faq::{self as db, FaqEntry, NewFaqEntry};
use crate::store::{Store, StoreError};

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

/// The rows of a file: good ones with their line, and rejected ones.
#[derive(Debug, Default)]
pub struct Parsed {
    pub rows: Vec<(usize, NewFaqEntry)>,
    pub rejected: Vec<Rejected>,
    /// What was read but left out (columns the import does not know), and the file's encoding.
    pub warnings: Vec<String>,
}

/// Reads a knowledge-base file; the format follows the extension (`.csv`, `.json`, `.jsonl`).
/// A CSV may be UTF-8 (with or without BOM) or GBK, as Excel saves it.
pub fn parse_file(path: &Path) -> anyhow::Result<Parsed> {
    let (text, encoding) = crate::textfile::read(path)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut parsed = parse_text(&text, &ext).with_context(|| path.display().to_string())?;
    if encoding == "GBK" {
        parsed
            .warnings
            .insert(0, "the file is GBK; read as such".into());
    }
    Ok(parsed)
}

/// Parses a knowledge base given as text in `format` (`csv`, `json`, `jsonl`).
pub fn parse_text(text: &str, format: &str) -> anyhow::Result<Parsed> {
    let mut parsed = match format {
        "csv" => parse_csv(text)?,
        "json" => parse_json_array(text)?,
        "jsonl" | "ndjson" => parse_json_lines(text),
        _ => bail!("unknown format (use .csv, .json or .jsonl)"),
    };
    check_rows(&mut parsed);
    Ok(parsed)
}

/// Entry checks and duplicate ids within the file (the first one wins).
fn check_rows(parsed: &mut Parsed) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut kept = Vec::with_capacity(parsed.rows.len());
    for (line, mut row) in std::mem::take(&mut parsed.rows) {
        if let Err(reason) = check_entry(&row) {
            parsed.rejected.push(Rejected { line, reason });
            continue;
        }
        // Without an id the question identifies the entry, so re-imports stay idempotent.
        let key = row
            .external_id
            .clone()
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(|| format!("q:{}", row.question.trim()));
        if let Some(first) = seen.get(&key) {
            parsed.rejected.push(Rejected {
                line,
                reason: format!("duplicate id `{key}` (first on line {first})"),
            });
            continue;
        }
        seen.insert(key.clone(), line);
        row.external_id = Some(key);
        kept.push((line, row));
    }
    parsed.rows = kept;
    parsed.rejected.sort_by_key(|r| r.line);
}

fn parse_json_lines(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<NewFaqEntry>(line) {
            Ok(row) => parsed.rows.push((i + 1, row)),
            Err(e) => parsed.rejected.push(Rejected {
                line: i + 1,
                reason: e.to_string(),
            }),
        }
    }
    parsed
}

fn parse_json_array(text: &str) -> anyhow::Result<Parsed> {
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(text).context("a .json file must hold an array of entries")?;
    let mut parsed = Parsed::default();
    for raw in items {
        // The line an item starts on, from where its text sits in the file.
        let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        let line = text[..offset.min(text.len())].matches('\n').count() + 1;
        match serde_json::from_str::<NewFaqEntry>(raw.get()) {
            Ok(row) => parsed.rows.push((line, row)),
            Err(e) => parsed.rejected.push(Rejected {
                line,
                reason: e.to_string(),
            }),
        }
    }
    Ok(parsed)
}

/// Column names (English or Chinese) → field.
fn column(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_lowercase().as_str() {
        "id" | "编号" => "id",
        "question" | "问题" | "标准问题" => "question",
        "similar" | "相似问题" | "相似问法" => "similar",
        "answer" | "答案" | "回答" => "answer",
        "category" | "分类" => "category",
        "keywords" | "关键词" => "keywords",
        "enabled" | "启用" => "enabled",
        _ => return None,
    })
}

fn parse_csv(text: &str) -> anyhow::Result<Parsed> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().context("reading the CSV header")?.clone();
    let columns: Vec<Option<&str>> = headers.iter().map(column).collect();
    if !columns.contains(&Some("question")) || !columns.contains(&Some("answer")) {
        bail!("line 1: the columns `question` and `answer` are required");
    }
    let mut parsed = Parsed::default();
    let ignored: Vec<&str> = headers
        .iter()
        .zip(&columns)
        .filter(|(_, c)| c.is_none())
        .map(|(h, _)| h)
        .collect();
    if !ignored.is_empty() {
        parsed.warnings.push(format!(
            "line 1: columns ignored: {} (known: id, question, similar, answer, category, keywords, enabled)",
            ignored.join(", ")
        ));
    }
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
        let mut row = NewFaqEntry {
            enabled: true,
            ..NewFaqEntry::default()
        };
        let list = |v: &str| -> Vec<String> {
            v.split(['|', '\n', '；'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut bad = None;
        for (value, col) in record.iter().zip(&columns) {
            match col.unwrap_or_default() {
                "id" => row.external_id = Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
                "question" => row.question = value.trim().to_owned(),
                "similar" => row.similar = list(value),
                "answer" => row.answer = value.trim().to_owned(),
                "category" => {
                    row.category = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
                }
                "keywords" => row.keywords = list(value),
                "enabled" => match value.trim().to_lowercase().as_str() {
                    "" | "true" | "1" | "yes" | "是" => row.enabled = true,
                    "false" | "0" | "no" | "否" => row.enabled = false,
                    other => bad = Some(format!("enabled: `{other}` is not true/false")),
                },
                _ => {}
            }
        }
        match bad {
            Some(reason) => parsed.rejected.push(Rejected { line, reason }),
            None => parsed.rows.push((line, row)),
        }
    }
    Ok(parsed)
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub created: usize,
    pub updated: usize,
}

/// Writes the rows in transactions of a few hundred, reporting progress as it goes.
pub async fn import(
    store: &Store,
    rows: &[(usize, NewFaqEntry)],
    now_ms: i64,
    mut progress: impl FnMut(usize, usize),
) -> Result<Imported, StoreError> {
    let mut done = Imported::default();
    for (i, chunk) in rows.chunks(500).enumerate() {
        let mut tx = store.begin_write().await?;
        for (_, row) in chunk {
            let (_, created) = db::upsert_by_external_id(&mut tx, row, now_ms).await?;
            if created {
                done.created += 1;
            } else {
                done.updated += 1;
            }
        }
        tx.commit().await?;
        progress((i * 500 + chunk.len()).min(rows.len()), rows.len());
    }
    Ok(done)
}

/// A progress bar on stderr, for big files only.
pub fn progress_bar(done: usize, total: usize) {
    if total < 1000 {
        return;
    }
    let width = 30;
    let filled = done * width / total.max(1);
    eprint!(
        "\r导入 importing [{}{}] {done}/{total}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
    if done == total {
        eprintln!();
    }
}

/// Writes entries as JSON lines or CSV (the formats `import` reads back).
pub fn export(entries: &[FaqEntry], csv: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let id = |e: &FaqEntry| e.external_id.clone().unwrap_or_else(|| e.id.to_string());
    if csv {
        let mut w = csv::Writer::from_writer(out);
        w.write_record([
            "id", "question", "similar", "answer", "category", "keywords", "enabled",
        ])?;
        for e in entries {
            w.write_record([
                id(e),
                e.question.clone(),
                e.similar.join("|"),
                e.answer.clone(),
                e.category.clone().unwrap_or_default(),
                e.keywords.join("|"),
                e.enabled.to_string(),
            ])?;
        }
        w.flush()?;
    } else {
        for e in entries {
            let row = NewFaqEntry {
                external_id: Some(id(e)),
                ..NewFaqEntry::from(e.clone())
            };
            let mut value = serde_json::to_value(&row)?;
            // Written as `id`, the name import reads.
            if let Some(obj) = value.as_object_mut() {
                if let Some(v) = obj.remove("external_id") {
                    obj.insert("id".into(), v);
                }
            }
            writeln!(out, "{value}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_with_line_numbers_and_reasons() {
        let text = "id,question,similar,answer,enabled\n\
                    a1,怎么退款,退钱|退费怎么办,联系客服,true\n\
                    a2,,没有问题,答案,true\n\
                    a3,开发票吗,,\"多行\n答案\",maybe\n\
                    a1,重复,,x,true\n\
                    a4,直播几点,,{{ name }} 晚上八点,1\n";
        let mut parsed = parse_csv(text).expect("csv");
        check_rows(&mut parsed);
        let ids: Vec<_> = parsed
            .rows
            .iter()
            .map(|(l, r)| (*l, r.external_id.clone().unwrap_or_default()))
            .collect();
        assert_eq!(ids, vec![(2, "a1".into()), (7, "a4".into())]);
        assert_eq!(parsed.rows[0].1.similar, vec!["退钱", "退费怎么办"]);
        let lines: Vec<usize> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 6], "{:?}", parsed.rejected);
        assert!(parsed.rejected[0].reason.contains("question"));
        assert!(parsed.rejected[1].reason.contains("enabled"));
        assert!(parsed.rejected[2].reason.contains("duplicate"));
    }

    #[test]
    fn excel_columns_it_does_not_know_are_ignored_with_a_warning() {
        let text =
            "问题,相似问题,答案,负责人\n怎么退款,退钱；钱怎么退回来|退费,在订单页申请,小王\n";
        let parsed = parse_csv(text).expect("csv");
        assert_eq!(parsed.rows.len(), 1, "{:?}", parsed.rejected);
        assert_eq!(parsed.rows[0].1.similar, ["退钱", "钱怎么退回来", "退费"]);
        assert_eq!(parsed.rows[0].1.answer, "在订单页申请");
        assert_eq!(parsed.warnings.len(), 1);
        assert!(
            parsed.warnings[0].contains("负责人"),
            "{:?}",
            parsed.warnings
        );
    }

    #[test]
    fn json_array_items_know_their_line() {
        let text = "[\n  {\"id\": \"x\", \"question\": \"q\", \"answer\": \"a\"},\n  {\"id\": \"y\", \"question\": \"q2\"},\n  {\"id\": \"z\", \"question\": \"q3\", \"answer\": \"{% if\"}\n]";
        let mut parsed = parse_json_array(text).expect("json");
        check_rows(&mut parsed);
        assert_eq!(parsed.rows.len(), 1);
        let lines: Vec<usize> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4]);
        assert!(parsed.rejected[1].reason.contains("template"));
    }
}
