//! Value layers (价值分层): an RFM-style score — recency of activity, frequency of messages in the
//! last 30 days, points earned — each scored 1–5, summed (3–15) and mapped to configured layers.

use crate::config::ValueLayersConfig;
use crate::store::layers::LayerRow;
pub use crate::store::layers::RfmFacts;
use crate::store::windows::MemberWindows;
use crate::store::{Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// (recency, frequency, monetary) scores, 1–5 each.
pub fn scores(f: &RfmFacts, now_ms: i64) -> (i64, i64, i64) {
    let idle_days = (now_ms - f.last_active_at) / DAY_MS;
    let recency = match idle_days {
        i64::MIN..=1 => 5,
        2..=3 => 4,
        4..=7 => 3,
        8..=30 => 2,
        _ => 1,
    };
    let frequency = match f.recent_messages {
        100.. => 5,
        30..=99 => 4,
        10..=29 => 3,
        1..=9 => 2,
        _ => 1,
    };
    let monetary = match f.earned {
        2000.. => 5,
        500..=1999 => 4,
        100..=499 => 3,
        10..=99 => 2,
        _ => 1,
    };
    (recency, frequency, monetary)
}

/// The layer of a total score: the first configured layer whose `min_score` it reaches.
pub fn layer_of(config: &ValueLayersConfig, score: i64) -> String {
    config
        .layers
        .iter()
        .find(|l| score >= l.min_score)
        .or(config.layers.last())
        .map_or_else(String::new, |l| l.name.clone())
}

/// Recomputes every member's layer, `window` members at a time, and stores those that changed
/// (`computed_at` is when the stored scores were set); returns how many changed.
pub async fn recompute(
    store: &Store,
    config: &ValueLayersConfig,
    now_ms: i64,
    days: (i32, i32),
    window: i64,
) -> Result<usize, StoreError> {
    let (month_ago, today) = days;
    let mut windows = MemberWindows::new(window);
    let mut changed = 0;
    while let Some(ids) = windows.next(store).await? {
        let rows: Vec<LayerRow> = store
            .rfm_inputs(month_ago, today, ids)
            .await?
            .into_iter()
            .filter_map(|input| {
                let (r, f, m) = scores(&input.facts, now_ms);
                let row = LayerRow {
                    member_id: input.member_id,
                    recency: r,
                    frequency: f,
                    monetary: m,
                    layer: layer_of(config, r + f + m),
                };
                (input.stored.as_ref() != Some(&row)).then_some(row)
            })
            .collect();
        if !rows.is_empty() {
            let mut tx = store.begin_write().await?;
            crate::store::layers::upsert_many(&mut tx, &rows, now_ms).await?;
            tx.commit().await?;
        }
        changed += rows.len();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerConfig;

    #[test]
    fn scores_and_layers() {
        let now = 1_717_200_000_000;
        let top = RfmFacts {
            last_active_at: now,
            recent_messages: 150,
            earned: 3000,
        };
        assert_eq!(scores(&top, now), (5, 5, 5));
        let asleep = RfmFacts {
            last_active_at: now - 90 * DAY_MS,
            recent_messages: 0,
            earned: 0,
        };
        assert_eq!(scores(&asleep, now), (1, 1, 1));
        let mid = RfmFacts {
            last_active_at: now - 5 * DAY_MS,
            recent_messages: 12,
            earned: 150,
        };
        assert_eq!(scores(&mid, now), (3, 3, 3));
        let config = ValueLayersConfig {
            layers: vec![
                LayerConfig {
                    name: "核心".into(),
                    min_score: 12,
                },
                LayerConfig {
                    name: "潜力".into(),
                    min_score: 9,
                },
                LayerConfig {
                    name: "普通".into(),
                    min_score: 6,
                },
                LayerConfig {
                    name: "沉睡".into(),
                    min_score: 0,
                },
            ],
        };
        assert_eq!(layer_of(&config, 15), "核心");
        assert_eq!(layer_of(&config, 9), "潜力");
        assert_eq!(layer_of(&config, 3), "沉睡");
    }
}
