//! Pure reward arithmetic: streaks over local days, bonuses, the daily cap, levels.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::config::PointsConfig;

/// yyyymmdd → date.
pub fn day_to_date(day: i32) -> Option<NaiveDate> {
    let y = day / 10_000;
    let m = u32::try_from((day / 100) % 100).ok()?;
    let d = u32::try_from(day % 100).ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
}

/// The streak after signing in on `today`, given the previous sign-in day and streak.
pub fn next_streak(last_signin_day: Option<i32>, previous_streak: i64, today: i32) -> i64 {
    let (Some(last), Some(today_date)) =
        (last_signin_day.and_then(day_to_date), day_to_date(today))
    else {
        return 1;
    };
    if today_date.pred_opt() == Some(last) {
        previous_streak + 1
    } else {
        1
    }
}

/// The streak bonus paid on streak day `streak`.
pub fn streak_bonus(config: &PointsConfig, streak: i64) -> i64 {
    let day = if config.streak_cycle_days > 0 {
        (streak - 1).rem_euclid(config.streak_cycle_days) + 1
    } else {
        streak
    };
    config
        .streak_bonuses
        .iter()
        .filter(|b| b.day == day)
        .map(|b| b.points)
        .sum()
}

/// The random bonus for a member on a day: uniform in 0..=max, the same on every retry.
pub fn random_bonus(config: &PointsConfig, member_id: i64, day: i32) -> i64 {
    if config.random_bonus_max <= 0 {
        return 0;
    }
    let mut h = Sha256::new();
    h.update(config.random_seed.to_be_bytes());
    h.update(member_id.to_be_bytes());
    h.update(day.to_be_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let n = u64::from_be_bytes(first);
    let range = u64::try_from(config.random_bonus_max).unwrap_or(0) + 1;
    i64::try_from(n % range).unwrap_or(0)
}

/// What a sign-in pays before the daily cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reward {
    pub base: i64,
    pub streak_bonus: i64,
    pub random_bonus: i64,
}

impl Reward {
    pub fn total(&self) -> i64 {
        self.base + self.streak_bonus + self.random_bonus
    }
}

pub fn reward(config: &PointsConfig, member_id: i64, day: i32, streak: i64) -> Reward {
    Reward {
        base: config.base,
        streak_bonus: streak_bonus(config, streak),
        random_bonus: random_bonus(config, member_id, day),
    }
}

/// Points actually granted when `earned_today` were already earned.
pub fn capped(config: &PointsConfig, amount: i64, earned_today: i64) -> i64 {
    amount.min(config.daily_cap - earned_today).max(0)
}

/// The level for a total, and the next level with the points still missing.
pub fn level_of(config: &PointsConfig, total_earned: i64) -> (String, Option<(String, i64)>) {
    let mut current = config
        .levels
        .first()
        .map(|l| l.name.clone())
        .unwrap_or_default();
    let mut next = None;
    for level in &config.levels {
        if total_earned >= level.min_points {
            current.clone_from(&level.name);
        } else {
            next = Some((level.name.clone(), level.min_points - total_earned));
            break;
        }
    }
    (current, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> PointsConfig {
        crate::config::Config::example().expect("example").points
    }

    #[test]
    fn streaks_continue_only_on_consecutive_days() {
        assert_eq!(next_streak(None, 0, 20240101), 1);
        assert_eq!(
            next_streak(Some(20231231), 4, 20240101),
            5,
            "across a year boundary"
        );
        assert_eq!(next_streak(Some(20240228), 2, 20240229), 3, "leap day");
        assert_eq!(next_streak(Some(20240229), 3, 20240301), 4);
        assert_eq!(
            next_streak(Some(20240101), 9, 20240103),
            1,
            "a missed day breaks the streak"
        );
    }

    #[test]
    fn weekly_bonus_cycle() {
        let c = config();
        let bonuses: Vec<i64> = (1..=15).map(|s| streak_bonus(&c, s)).collect();
        assert_eq!(bonuses, vec![0, 0, 5, 0, 0, 0, 20, 0, 0, 5, 0, 0, 0, 20, 0]);
        let once = PointsConfig {
            streak_cycle_days: 0,
            ..c
        };
        assert_eq!(streak_bonus(&once, 7), 20);
        assert_eq!(streak_bonus(&once, 14), 0);
    }

    #[test]
    fn random_bonus_is_reproducible_and_bounded() {
        let c = PointsConfig {
            random_bonus_max: 3,
            ..config()
        };
        let values: Vec<i64> = (0..200).map(|m| random_bonus(&c, m, 20240101)).collect();
        assert!(values.iter().all(|v| (0..=3).contains(v)));
        assert!((0..=3).all(|v| values.contains(&v)), "every value occurs");
        assert_eq!(random_bonus(&c, 7, 20240101), random_bonus(&c, 7, 20240101));
    }

    #[test]
    fn cap_and_levels() {
        let c = config();
        assert_eq!(capped(&c, 25, 90), 10);
        assert_eq!(capped(&c, 25, 100), 0);
        assert_eq!(capped(&c, 25, 0), 25);
        assert_eq!(
            level_of(&c, 0),
            ("新手".to_owned(), Some(("活跃".to_owned(), 100)))
        );
        assert_eq!(
            level_of(&c, 120),
            ("活跃".to_owned(), Some(("核心".to_owned(), 380)))
        );
        assert_eq!(level_of(&c, 5000), ("元老".to_owned(), None));
    }

    proptest! {
        /// Against a reference model that walks calendar days one by one.
        #[test]
        fn streak_matches_a_day_by_day_model(start in 0i64..3000, gaps in proptest::collection::vec(1i64..4, 1..40)) {
            let base = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date") + chrono::Duration::days(start);
            let to_day = |d: NaiveDate| { use chrono::Datelike; d.year() * 10_000 + i32::try_from(d.month()).expect("m") * 100 + i32::try_from(d.day()).expect("d") };
            let mut date = base;
            let mut last: Option<i32> = None;
            let mut streak = 0;
            let mut model = 0;
            for gap in gaps {
                date += chrono::Duration::days(gap);
                model = if gap == 1 && last.is_some() { model + 1 } else { 1 };
                streak = next_streak(last, streak, to_day(date));
                prop_assert_eq!(streak, model);
                last = Some(to_day(date));
            }
        }
    }
}
