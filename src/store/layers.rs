//! Value-layer storage: inputs for the RFM score, the computed layers and their distribution.

use sqlx::QueryBuilder;

/// What the score looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmFacts {
    pub last_active_at: i64,
    /// Messages in the last 30 days.
    pub recent_messages: i64,
    pub earned: i64,
}

use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

const INPUTS: &str = "select m.id, m.last_active_at, \
     cast(coalesce((select sum(d.message_count) from member_daily_activity d \
       where d.member_id = m.id and d.day >= $1 and d.day <= $2), 0) as bigint), \
     coalesce(a.total_earned, 0), cast(l.recency as bigint), cast(l.frequency as bigint), \
     cast(l.monetary as bigint), l.layer \
     from members m left join points_accounts a on a.member_id = m.id \
     left join member_layers l on l.member_id = m.id where m.id > $3 and m.id <= $4";
const UPSERT_TAIL: &str = " on conflict (member_id) do update set recency = excluded.recency, \
     frequency = excluded.frequency, monetary = excluded.monetary, score = excluded.score, layer = excluded.layer, \
     computed_at = excluded.computed_at";
const DISTRIBUTION: &str = "select l.layer, cast(count(*) as bigint) from member_layers l \
     join members m on m.id = l.member_id where m.scope = $1 group by l.layer order by 2 desc";

/// One member's computed layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    pub member_id: i64,
    pub recency: i64,
    pub frequency: i64,
    pub monetary: i64,
    pub layer: String,
}

/// A member's RFM inputs and the layer stored last time, if any.
#[derive(Debug, Clone)]
pub struct LayerInput {
    pub member_id: i64,
    pub facts: RfmFacts,
    pub stored: Option<LayerRow>,
}

type InputRow = (
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

impl Store {
    /// The members with ids in `(after, last]` with what the RFM score needs (messages over
    /// local days `from..=to`) and their stored layer.
    pub async fn rfm_inputs(
        &self,
        from: i32,
        to: i32,
        (after, last): (i64, i64),
    ) -> Result<Vec<LayerInput>, StoreError> {
        let rows: Vec<InputRow> = on_pool!(self.pool(), p => sqlx::query_as(INPUTS)
            .bind(from).bind(to).bind(after).bind(last).persistent(false).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(
                |(member_id, last_active_at, recent_messages, earned, r, f, m, layer)| {
                    let stored = match (r, f, m, layer) {
                        (Some(recency), Some(frequency), Some(monetary), Some(layer)) => {
                            Some(LayerRow {
                                member_id,
                                recency,
                                frequency,
                                monetary,
                                layer,
                            })
                        }
                        _ => None,
                    };
                    LayerInput {
                        member_id,
                        facts: RfmFacts {
                            last_active_at,
                            recent_messages,
                            earned,
                        },
                        stored,
                    }
                },
            )
            .collect())
    }

    /// How many members of the scope are in each layer, largest first.
    pub async fn layer_distribution(&self, scope: &str) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (String, i64)>(DISTRIBUTION).bind(scope).fetch_all(p).await?),
        )
    }
}

/// Rows per multi-row layer statement (seven parameters each).
const MANY: usize = 500;

/// Stores each row's layer, one statement per 500 rows.
pub async fn upsert_many(tx: &mut Tx, rows: &[LayerRow], now_ms: i64) -> Result<(), StoreError> {
    for chunk in rows.chunks(MANY) {
        on_tx!(tx, c => {
            let mut qb = QueryBuilder::new(
                "insert into member_layers (member_id, recency, frequency, monetary, score, layer, computed_at) ",
            );
            qb.push_values(chunk, |mut b, row| {
                b.push_bind(row.member_id).push_bind(row.recency).push_bind(row.frequency)
                    .push_bind(row.monetary).push_bind(row.recency + row.frequency + row.monetary)
                    .push_bind(&row.layer).push_bind(now_ms);
            });
            qb.push(UPSERT_TAIL);
            qb.build().execute(&mut **c).await?;
        });
    }
    Ok(())
}
