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

/// Listwise training: maximize the softmax probability of the gold entry's documents among the
/// shortlist, by gradient descent on standardized features; returns weights on raw features,
/// scaled so that the first is 1.
fn softmax_fit(data: &[Prepared]) -> [f32; FEATURES] {
    let all: Vec<&[f32; FEATURES]> = data
        .iter()
        .flat_map(|p| p.docs.iter().map(|(_, f)| f))
        .collect();
    let count = all.len().max(1) as f32;
    let mut mean = [0.0f32; FEATURES];
    let mut std = [0.0f32; FEATURES];
    for f in &all {
        for i in 0..FEATURES {
            mean[i] += f[i] / count;
        }
    }
    for f in &all {
        for i in 0..FEATURES {
            std[i] += (f[i] - mean[i]).powi(2) / count;
        }
    }
    for s in &mut std {
        *s = s.sqrt().max(1e-6);
    }
    let mut w = [0.0f32; FEATURES];
    w[0] = 1.0;
    let (mut m, mut v) = ([0.0f32; FEATURES], [0.0f32; FEATURES]);
    for step in 1..=300 {
        let mut g = [0.0f32; FEATURES];
        for p in data {
            if !p.docs.iter().any(|(e, _)| *e == p.gold) {
                continue;
            }
            let z: Vec<[f32; FEATURES]> = p
                .docs
                .iter()
                .map(|(_, f)| {
                    let mut x = [0.0; FEATURES];
                    for i in 0..FEATURES {
                        x[i] = (f[i] - mean[i]) / std[i];
                    }
                    x
                })
                .collect();
            let s: Vec<f32> = z.iter().map(|x| rerank::score(x, &w)).collect();
            let max = s.iter().copied().fold(f32::MIN, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let total: f32 = e.iter().sum();
            let gold_total: f32 = p
                .docs
                .iter()
                .zip(&e)
                .filter(|((entry, _), _)| *entry == p.gold)
                .map(|(_, x)| x)
                .sum();
            for (k, x) in z.iter().enumerate() {
                let p_all = e[k] / total;
                let p_gold = if p.docs[k].0 == p.gold {
                    e[k] / gold_total
                } else {
                    0.0
                };
                for i in 0..FEATURES {
                    g[i] += (p_all - p_gold) * x[i];
                }
            }
        }
        // Adam.
        let lr = 0.05;
        for i in 0..FEATURES {
            let gi = g[i] / data.len() as f32;
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.999 * v[i] + 0.001 * gi * gi;
            let mh = m[i] / (1.0 - 0.9f32.powi(step));
            let vh = v[i] / (1.0 - 0.999f32.powi(step));
            w[i] -= lr * mh / (vh.sqrt() + 1e-8);
        }
    }
    let mut raw = [0.0f32; FEATURES];
    for i in 0..FEATURES {
        raw[i] = w[i] / std[i];
    }
    let scale = raw[0].abs().max(1e-6);
    raw.map(|x| x / scale)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
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
    let recall = data
        .iter()
        .filter(|p| p.docs.iter().any(|(e, _)| *e == p.gold))
        .count();
    println!(
        "queries {}  gold in shortlist {:.4}",
        data.len(),
        recall as f64 / n
    );

    let current = measure(&data, &WEIGHTS);
    println!(
        "current weights: top-1 {:.4} top-3 {:.4}",
        current.0 as f64 / n,
        current.1 as f64 / n
    );
    // Start from a listwise softmax fit (smooth, uses every candidate), then polish the
    // accuracy itself by coordinate ascent.
    let mut w = softmax_fit(&data);
    if measure(&data, &w).0 < current.0 {
        w = WEIGHTS;
    }
    let (mut b1, mut b3) = measure(&data, &w);
    println!(
        "softmax fit: top-1 {:.4} top-3 {:.4}",
        b1 as f64 / n,
        b3 as f64 / n
    );
    let steps = [-1.0, -0.5, -0.25, -0.1, -0.05, 0.05, 0.1, 0.25, 0.5, 1.0];
    for pass in 0..6 {
        let mut improved = false;
        // Feature 0 sets the scale of the linear ranker; the steps are relative to it.
        for i in 1..FEATURES {
            for step in steps {
                let mut t = w;
                t[i] += step * w[0].abs().max(1e-3);
                let (h1, h3) = measure(&data, &t);
                if h1 > b1 || (h1 == b1 && h3 > b3) {
                    (w, b1, b3, improved) = (t, h1, h3, true);
                }
            }
        }
        println!(
            "pass {pass}: top-1 {:.4} top-3 {:.4}",
            b1 as f64 / n,
            b3 as f64 / n
        );
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
    for (lo, hi) in [
        (0.0, 0.5),
        (0.5, 0.8),
        (0.8, 0.9),
        (0.9, 0.95),
        (0.95, 1.01),
    ] {
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
