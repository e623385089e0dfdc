//! Recall results per touch: touched vs held out, how many came back within the window, the
//! recall rates, and their difference (lift) with a 95 % confidence interval (normal
//! approximation for a difference of two proportions).

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TouchStats {
    /// 1 for the first touch of an absence, 2 for the second, …
    pub touch: i64,
    pub touched: i64,
    pub held_out: i64,
    pub recalled_touched: i64,
    pub recalled_held_out: i64,
    pub rate_touched: f64,
    pub rate_held_out: f64,
    /// `rate_touched - rate_held_out`.
    pub lift: f64,
    /// 95 % interval of the lift; `None` while either group is empty.
    pub lift_ci95: Option<(f64, f64)>,
}

fn rate(recalled: i64, n: i64) -> f64 {
    if n == 0 {
        0.0
    } else {
        recalled as f64 / n as f64
    }
}

/// The figures of one touch from its counts.
pub fn touch_stats(touch: i64, touched: (i64, i64), held: (i64, i64)) -> TouchStats {
    let (rt, rh) = (rate(touched.1, touched.0), rate(held.1, held.0));
    let lift = rt - rh;
    let ci = (touched.0 > 0 && held.0 > 0).then(|| {
        let se = (rt * (1.0 - rt) / touched.0 as f64 + rh * (1.0 - rh) / held.0 as f64).sqrt();
        (lift - 1.96 * se, lift + 1.96 * se)
    });
    TouchStats {
        touch,
        touched: touched.0,
        held_out: held.0,
        recalled_touched: touched.1,
        recalled_held_out: held.1,
        rate_touched: rt,
        rate_held_out: rh,
        lift,
        lift_ci95: ci,
    }
}

/// Every touch of the plan, in order.
pub async fn plan_stats(store: &Store, plan: &str) -> Result<Vec<TouchStats>, StoreError> {
    Ok(store
        .recall_results(plan)
        .await?
        .into_iter()
        .map(|(touch, t, h)| touch_stats(touch, (t.members, t.recalled), (h.members, h.recalled)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lift_and_interval_by_hand() {
        // 30 of 100 touched came back, 10 of 50 held out: 0.30 − 0.20 = 0.10,
        // se = sqrt(0.3·0.7/100 + 0.2·0.8/50) = sqrt(0.0021 + 0.0032) = 0.0728.
        let s = touch_stats(1, (100, 30), (50, 10));
        assert!((s.lift - 0.10).abs() < 1e-9);
        let (lo, hi) = s.lift_ci95.expect("both groups");
        assert!((lo - (0.10 - 1.96 * 0.072_801)).abs() < 1e-4, "{lo}");
        assert!((hi - (0.10 + 1.96 * 0.072_801)).abs() < 1e-4, "{hi}");
        assert_eq!(touch_stats(1, (10, 3), (0, 0)).lift_ci95, None);
    }
}
