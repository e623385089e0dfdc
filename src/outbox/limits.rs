//! Rate limits enforced before a send. The platform's quotas are "at most N in any window"
//! (robot 20 per minute, app messages per member per minute and hour) and it silently drops what
//! exceeds them, so those are sliding windows that never let N+1 through; plain throughput
//! caps are token buckets. A rate-limited answer pauses a key for the platform's window.
//! Limits live in this process: with several replicas, divide the figures among them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One limit on one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// At most `limit` acquisitions in any `window_ms`.
    Window { limit: u32, window_ms: i64 },
    /// A token bucket refilled at `per_sec`, holding at most `per_sec` tokens.
    Bucket { per_sec: u32 },
}

#[derive(Debug)]
enum Entry {
    Window(VecDeque<i64>),
    Bucket { tokens: f64, at_ms: i64 },
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    paused: HashMap<String, i64>,
    acquisitions: u64,
}

/// Every key's limit state. Thread-safe; cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Limits {
    state: Mutex<State>,
}

impl Limits {
    /// Takes one unit from every key, or none: `Err(at_ms)` says when to try again.
    pub fn acquire(&self, keys: &[(String, Rule)], now_ms: i64) -> Result<(), i64> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait_until = now_ms;
        for (key, rule) in keys {
            if let Some(&until) = st.paused.get(key) {
                if until > now_ms {
                    wait_until = wait_until.max(until);
                    continue;
                }
            }
            let entry = st
                .entries
                .entry(key.clone())
                .or_insert_with(|| fresh(*rule, now_ms));
            wait_until = wait_until.max(ready_at(entry, *rule, now_ms));
        }
        if wait_until > now_ms {
            return Err(wait_until);
        }
        for (key, rule) in keys {
            if let Some(entry) = st.entries.get_mut(key) {
                take(entry, *rule, now_ms);
            }
        }
        st.acquisitions += 1;
        if st.acquisitions % 4096 == 0 && st.entries.len() > 50_000 {
            st.entries.retain(|_, e| !idle(e));
            st.paused.retain(|_, until| *until > now_ms);
        }
        Ok(())
    }

    /// Refuses `key` until `until_ms` (the platform said "too many").
    pub fn pause(&self, key: &str, until_ms: i64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let slot = st.paused.entry(key.to_owned()).or_insert(until_ms);
        *slot = (*slot).max(until_ms);
    }
}

fn fresh(rule: Rule, now_ms: i64) -> Entry {
    match rule {
        Rule::Window { .. } => Entry::Window(VecDeque::new()),
        Rule::Bucket { per_sec } => Entry::Bucket {
            tokens: f64::from(per_sec),
            at_ms: now_ms,
        },
    }
}

/// When one more unit becomes available (≤ now: available now).
fn ready_at(entry: &mut Entry, rule: Rule, now_ms: i64) -> i64 {
    match (entry, rule) {
        (Entry::Window(times), Rule::Window { limit, window_ms }) => {
            while times.front().is_some_and(|&t| t <= now_ms - window_ms) {
                times.pop_front();
            }
            if times.len() < limit as usize {
                now_ms
            } else {
                // The oldest of the last `limit` leaves the window.
                times[times.len() - limit as usize] + window_ms + 1
            }
        }
        (Entry::Bucket { tokens, at_ms }, Rule::Bucket { per_sec }) => {
            let rate = f64::from(per_sec) / 1000.0;
            let elapsed = (now_ms - *at_ms).max(0) as f64;
            *tokens = (*tokens + elapsed * rate).min(f64::from(per_sec));
            *at_ms = now_ms;
            if *tokens >= 1.0 {
                now_ms
            } else {
                now_ms + ((1.0 - *tokens) / rate).ceil() as i64
            }
        }
        // The rule of a key changed (configuration reload): start over.
        (entry, rule) => {
            *entry = fresh(rule, now_ms);
            now_ms
        }
    }
}

fn take(entry: &mut Entry, rule: Rule, now_ms: i64) {
    match (entry, rule) {
        (Entry::Window(times), Rule::Window { .. }) => times.push_back(now_ms),
        (Entry::Bucket { tokens, .. }, Rule::Bucket { .. }) => *tokens -= 1.0,
        _ => {}
    }
}

fn idle(entry: &Entry) -> bool {
    match entry {
        Entry::Window(times) => times.is_empty(),
        Entry::Bucket { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn robot() -> Vec<(String, Rule)> {
        vec![(
            "robot:a".into(),
            Rule::Window {
                limit: 20,
                window_ms: 60_000,
            },
        )]
    }

    #[test]
    fn a_window_never_lets_more_than_its_limit_through_in_any_window() {
        let limits = Limits::default();
        let mut sent = Vec::new();
        let mut now = 0;
        // Try every 100 ms for ten minutes; record what got through.
        while now < 600_000 {
            if limits.acquire(&robot(), now).is_ok() {
                sent.push(now);
            }
            now += 100;
        }
        assert_eq!(sent.len(), 200, "20 per minute for ten minutes");
        for (i, &t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|&&u| u < t + 60_000).count();
            assert!(in_window <= 20, "{in_window} sends in the minute from {t}");
        }
    }

    #[test]
    fn a_refusal_says_when_to_come_back_and_takes_nothing() {
        let limits = Limits::default();
        for _ in 0..20 {
            limits.acquire(&robot(), 1_000).expect("within limit");
        }
        let again = limits
            .acquire(&robot(), 2_000)
            .expect_err("21st is refused");
        assert_eq!(again, 61_001);
        assert!(limits.acquire(&robot(), 61_001).is_ok());
    }

    #[test]
    fn all_keys_or_none() {
        let limits = Limits::default();
        let member = |u: &str| {
            (
                format!("member:{u}"),
                Rule::Window {
                    limit: 1,
                    window_ms: 60_000,
                },
            )
        };
        limits.acquire(&[member("a")], 0).expect("a");
        // b is free but a is not: nothing is taken from b.
        assert!(limits.acquire(&[member("b"), member("a")], 10).is_err());
        assert!(limits.acquire(&[member("b")], 20).is_ok());
    }

    #[test]
    fn a_bucket_refills_at_its_rate_and_a_pause_holds_every_send() {
        let limits = Limits::default();
        let key = vec![("app".to_string(), Rule::Bucket { per_sec: 10 })];
        let burst = (0..20).filter(|_| limits.acquire(&key, 0).is_ok()).count();
        assert_eq!(burst, 10);
        assert_eq!(limits.acquire(&key, 0), Err(100));
        assert!(limits.acquire(&key, 100).is_ok());
        limits.pause("app", 5_000);
        assert_eq!(limits.acquire(&key, 1_000), Err(5_000));
    }
}
