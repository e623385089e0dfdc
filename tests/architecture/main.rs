//! The module graph of `src/`: every `crate::` path (in `use` lines, expressions, macros) between
//! top-level modules is an edge, and every edge must point to a lower layer of [`LAYERS`]. So a
//! cycle, or a domain reaching into the platform layer, or storage into a domain, is a red test.
//!
//! `cargo test --test architecture -- --nocapture` prints the graph, layer by layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer; an edge may only point to a lower number. Modules of one
/// number never import each other.
const LAYERS: &[(&str, u32)] = &[
    // Foundations: import nothing of ours.
    ("clock", 0),
    ("events", 0),
    ("templates", 0),
    ("wecom", 0),
    ("schedule", 0),
    ("textfile", 0),
    ("store", 0),
    ("config", 1),
    // Platform glue and process-wide plumbing.
    ("channels", 2),
    ("telemetry", 2),
    ("fake_wecom", 2),
    ("send", 3),
    // The handler chain's machinery.
    ("bot", 3),
    // Outbound messages.
    ("outbox", 4),
    // Domains, lowest first.
    ("members", 5),
    ("points", 6),
    ("faq", 6),
    ("recall", 7),
    ("commands", 8),
    // The inbound pipeline.
    ("ingress", 9),
    ("aibot", 10),
    // Composition and the HTTP surface.
    ("chain", 11),
    ("state", 11),
    ("scheduler", 12),
    ("web", 12),
    ("app", 13),
    ("demo", 14),
    ("cli", 15),
];

/// The only modules that may use the platform library (`wecom`): where configuration decodes
/// keys, where callbacks come in and messages go out. Domains see events and outbound intents.
const PLATFORM_USERS: &[&str] = &[
    "config", "channels", "send", "outbox", "ingress", "aibot", "web",
];

fn rs_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            rs_files(&entry, out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The source without `//` comments (prose naming a module is not a dependency).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string (a URL) is rare enough to keep the line whole.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules named after `crate::` in `code`, also inside `crate::{a, b::c}`.
fn referenced(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident(part.trim());
                if modules.contains(&name) {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if modules.contains(&name) {
                found.insert(name);
            }
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name != "lib" && name != "main" {
            modules.insert(name);
        }
    }
    let mut edges = BTreeMap::new();
    for module in &modules {
        let mut files = Vec::new();
        rs_files(&src.join(module), &mut files);
        rs_files(&src.join(format!("{module}.rs")), &mut files);
        let mut to = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            to.extend(referenced(&code_of(&text), &modules));
        }
        to.remove(module);
        edges.insert(module.clone(), to);
    }
    edges
}

#[test]
fn every_edge_points_to_a_lower_layer() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let edges = graph();
    let mut by_layer: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (module, to) in &edges {
        let Some(&mine) = layers.get(module.as_str()) else {
            problems.push(format!("`{module}` has no layer in LAYERS"));
            continue;
        };
        by_layer.entry(mine).or_default().push(format!(
            "{module} → {}",
            to.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        if to.contains("wecom") && !PLATFORM_USERS.contains(&module.as_str()) {
            problems.push(format!("`{module}` uses the platform library `wecom`"));
        }
        for target in to {
            let theirs = layers.get(target.as_str()).copied().unwrap_or(u32::MAX);
            if theirs >= mine {
                problems.push(format!(
                    "`{module}` (layer {mine}) uses `{target}` (layer {theirs})"
                ));
            }
        }
    }
    for (layer, lines) in &by_layer {
        for line in lines {
            println!("{layer:>2}  {line}");
        }
    }
    assert!(
        problems.is_empty(),
        "forbidden edges:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_scanner_sees_grouped_and_nested_paths() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let code =
        "use crate::{a::X, b};\nlet v = crate::c::f();\nmacro! { $crate::d::g }\n// crate::e";
    let found = referenced(&code_of(code), &modules);
    assert_eq!(found, modules);
}
