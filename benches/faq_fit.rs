//! Fits the FAQ re-ranker's weights and the confidence coefficients on the **dev half** of the
//! evaluation data (never on anything else), and prints them for `src/faq/rerank.rs` and
//! `src/faq/matcher.rs`. The data is read from ../shared/data/faq-eval, never copied.
//!
//! cargo bench --bench faq_fit -- ../shared/data/faq-eval/faqs.jsonl ../shared/data/faq-eval/queries.dev.jsonl

use std::path::PathBuf;

use yunying::faq::eval::{read_entries, read_queries};
use yunying::faq::rerank::{self, FEATURES, NAMES, WEIGHTS};
use yunying::faq::Matcher;

struct Prepared {
    gold: u32,
    /// (entry, features) of the shortlisted documents.
    docs: Vec<(u32, [f32; FEATURES])>,
}

/// (top-1 hits, top-3 hits) with `w`.
fn measure(data: &[Prepared], w: &[f32; FEATURES]) -> (usize, usize) {
    let (mut h1, mut h3) = (0, 0);
    let mut best: Vec<(u32, f32)> = Vec::new();
    for p in data {
        best.clear();
        for (entry, f) in &p.docs {
            let s = rerank::score(f, w);
            match best.iter_mut().find(|(e, _)| e == entry) {
                Some(slot) => slot.1 = slot.1.max(s),
                None => best.push((*entry, s)),
            }
        }
        let gold = best.iter().find(|(e, _)| *e == p.gold).map(|(_, s)| *s);
        if let Some(g) = gold {
            let above = best
                .iter()
                .filter(|(e, s)| *s > g || (*s == g && *e < p.gold))
                .count();
            h1 += usize::from(above == 0);
            h3 += usize::from(above < 3);
        }
    }
    (h1, h3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let faqs = PathBuf::from(args.first().expect("usage: faq_fit FAQS QUERIES"));
    let queries = PathBuf::from(args.get(1).expect("usage: faq_fit FAQS QUERIES"));
    let entries = read_entries(&faqs).expect("faqs");
    let queries = read_queries(&queries).expect("queries");
    let matcher = Matcher::build(entries);
    let index_of: std::collections::HashMap<&str, u32> = matcher
        .entries()
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.as_str(), u32::try_from(i).expect("entries")))
        .collect();
    let data: Vec<Prepared> = queries
        .iter()
        .filter_map(|q| {
            let gold = *index_of.get(q.faq_id.as_str())?;
            let docs = matcher
                .shortlist(&q.query)
                .into_iter()
                .map(|s| (s.entry, s.features))
                .collect();
            Some(Prepared { gold, docs })
        })
        .collect();
    let n = data.len() as f64;
    let recall = data.iter().filter(|p| p.docs.iter().any(|(e, _)| *e == p.gold)).count();
    println!("queries {}  gold in shortlist {:.4}", data.len(), recall as f64 / n);

    let mut w = WEIGHTS;
    let (mut b1, mut b3) = measure(&data, &w);
    println!("current weights: top-1 {:.4} top-3 {:.4}", b1 as f64 / n, b3 as f64 / n);
    let steps = [-1.0, -0.5, -0.25, -0.1, -0.05, 0.05, 0.1, 0.25, 0.5, 1.0];
    for pass in 0..6 {
        let mut improved = false;
        // Feature 0 stays at 1: the scale of a linear ranker is free.
        for i in 1..FEATURES {
            for step in steps {
                let mut t = w;
                t[i] += step;
                let (h1, h3) = measure(&data, &t);
                if h1 > b1 || (h1 == b1 && h3 > b3) {
                    (w, b1, b3, improved) = (t, h1, h3, true);
                }
            }
        }
        println!("pass {pass}: top-1 {:.4} top-3 {:.4}", b1 as f64 / n, b3 as f64 / n);
        if !improved {
            break;
        }
    }
    println!("pub const WEIGHTS: [f32; FEATURES] = {w:?};");
    for (name, v) in NAMES.iter().zip(w) {
        println!("  {name:<36} {v:>7.3}");
    }

    // Confidence: logistic regression of "top candidate right" on (score, margin).
    let mut samples = Vec::new();
    for p in &data {
        let mut best: Vec<(u32, f32)> = Vec::new();
        for (entry, f) in &p.docs {
            let s = rerank::score(f, &w);
            match best.iter_mut().find(|(e, _)| e == entry) {
                Some(slot) => slot.1 = slot.1.max(s),
                None => best.push((*entry, s)),
            }
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(&(e, s)) = best.first() {
            let margin = best.get(1).map_or(s, |x| s - x.1);
            samples.push((s, margin, f32::from(u8::from(e == p.gold))));
        }
    }
    let mut c = [0.0f32; 3];
    for _ in 0..3000 {
        let mut g = [0.0f32; 3];
        for &(s, m, y) in &samples {
            let p = 1.0 / (1.0 + (-(c[0] * s + c[1] * m + c[2])).exp());
            let d = p - y;
            g[0] += d * s;
            g[1] += d * m;
            g[2] += d;
        }
        for k in 0..3 {
            c[k] -= 0.5 * g[k] / samples.len() as f32;
        }
    }
    println!("pub const CONFIDENCE: [f32; 3] = {c:?};");
    // Calibration check: accuracy by confidence band.
    for (lo, hi) in [(0.0, 0.5), (0.5, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.01)] {
        let band: Vec<_> = samples
            .iter()
            .filter(|&&(s, m, _)| {
                let p = 1.0 / (1.0 + (-(c[0] * s + c[1] * m + c[2])).exp());
                p >= lo && p < hi
            })
            .collect();
        let right = band.iter().filter(|x| x.2 > 0.5).count();
        println!(
            "  confidence {lo:.2}–{hi:.2}: {} queries, {:.3} right",
            band.len(),
            right as f64 / band.len().max(1) as f64
        );
    }
}
