//! Open-loop load at a fixed request rate (wrk cannot hold a rate): reads the file written by
//! `loadgen`, sends RATE requests per second for SECS seconds, prints latency percentiles.
//!
//! Usage: cargo bench --bench rate -- URL FILE RATE SECS

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 4 {
        eprintln!("usage: rate URL FILE RATE SECS");
        std::process::exit(2);
    }
    let base = args[0].trim_end_matches('/').to_owned();
    let lines: Vec<(String, String)> = std::fs::read_to_string(&args[1])
        .expect("FILE")
        .lines()
        .filter_map(|l| {
            l.split_once('\t')
                .map(|(p, b)| (p.to_owned(), b.to_owned()))
        })
        .collect();
    let rate: u64 = args[2].parse().expect("RATE");
    let secs: u64 = args[3].parse().expect("SECS");
    let total = usize::try_from(rate * secs).expect("fits").min(lines.len());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(512).build().expect("client");
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(total);
        for (path, body) in lines.into_iter().take(total) {
            tick.tick().await;
            let client = client.clone();
            let url = format!("{base}{path}");
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let ok = client.post(url).body(body).send().await.map(|r| r.status().is_success()).unwrap_or(false);
                (t.elapsed(), ok, t.duration_since(started))
            }));
        }
        let sent_in = started.elapsed();
        let mut latencies = Vec::with_capacity(total);
        let mut errors = 0;
        // SLOW_MS=N: when (into the run) requests slower than N ms were sent, grouped by 10 ms.
        let slow_ms: Option<u128> = std::env::var("SLOW_MS").ok().and_then(|v| v.parse().ok());
        let mut slow: std::collections::BTreeMap<u128, (usize, Duration)> = Default::default();
        for task in tasks {
            let (latency, ok, sent_at) = task.await.expect("task");
            latencies.push(latency);
            if !ok {
                errors += 1;
            }
            if slow_ms.is_some_and(|ms| latency.as_millis() >= ms) {
                let entry = slow.entry(sent_at.as_millis() / 10 * 10).or_default();
                entry.0 += 1;
                entry.1 = entry.1.max(latency);
            }
        }
        for (at_ms, (count, worst)) in &slow {
            println!("  slow: sent at {at_ms} ms: {count} requests, worst {worst:?}");
        }
        // PER_SECOND=1: p50 and p99 of each second of sending (a burst shows where it starts).
        if std::env::var("PER_SECOND").is_ok_and(|v| v == "1") {
            let per_second = usize::try_from(rate).expect("fits");
            for (second, chunk) in latencies.chunks(per_second.max(1)).enumerate() {
                let mut chunk = chunk.to_vec();
                chunk.sort();
                let at = |p: f64| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
                    let i = ((chunk.len() as f64 - 1.0) * p).round() as usize;
                    chunk[i]
                };
                println!("  second {second}: p50 {:?}, p99 {:?}", at(0.50), at(0.99));
            }
        }
        latencies.sort();
        let pct = |p: f64| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            latencies[i]
        };
        println!(
            "rate {rate}/s for {secs}s: sent {total} in {:.2}s, errors {errors}, p50 {:?}, p90 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
            sent_in.as_secs_f64(),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(0.999),
            latencies.last().copied().unwrap_or_default()
        );
    });
}
