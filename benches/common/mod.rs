//! What the database benches share: their arguments (`sqlite` or a PostgreSQL URL, then a member
//! count, then the bench's own), the database they run on, and memory readings.

// Each bench uses part of this.
#![allow(dead_code)]

/// The database a bench runs on, and the rest of its arguments.
pub struct BenchDatabase {
    /// `sqlite` or the PostgreSQL URL given.
    pub target: String,
    pub url: String,
    pub members: i64,
    /// Arguments after the member count.
    pub rest: Vec<String>,
    /// Holds the SQLite file until the bench ends.
    _dir: tempfile::TempDir,
}

impl BenchDatabase {
    pub fn is_sqlite(&self) -> bool {
        self.target == "sqlite"
    }
}

/// Reads the arguments (`--bench` and the like left out); SQLite goes in a fresh `file` in a
/// temporary folder.
pub fn database_from_args(file: &str) -> BenchDatabase {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let target = args.first().map_or("sqlite", String::as_str).to_owned();
    let members = args
        .get(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("dir");
    let url = if target == "sqlite" {
        format!("sqlite://{}", dir.path().join(file).display())
    } else {
        target.clone()
    };
    BenchDatabase {
        target,
        url,
        members,
        rest: args.into_iter().skip(2).collect(),
        _dir: dir,
    }
}

/// A `/proc/self/status` memory line in MiB (0 where there is none).
pub fn memory(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0)
        / 1024
}

/// Resets the process's peak memory (Linux), so the next `VmHWM` reading is what came after.
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
