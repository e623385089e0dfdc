//! The server process's memory: transparent huge pages are off unless mimalloc is told otherwise.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = serve(dir.path(), None);
    let enabled = thp_enabled_once_started(&server, &dir.path().join("test.db"));
    server.kill().expect("kill");
    server.wait().expect("wait");
    match enabled {
        None => eprintln!("skipped: this kernel does not report THP_enabled"),
        Some(enabled) => assert!(!enabled, "THP is still enabled for the server"),
    }
}

#[test]
fn mimalloc_allow_thp_leaves_them_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = serve(dir.path(), Some("1"));
    let enabled = thp_enabled_once_started(&server, &dir.path().join("test.db"));
    server.kill().expect("kill");
    server.wait().expect("wait");
    // Only meaningful where the machine itself allows THP for processes.
    if own_thp_enabled() == Some(true) {
        assert_eq!(enabled, Some(true));
    }
}

fn serve(dir: &Path, allow_thp: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_yunying"));
    command
        .arg("serve")
        .env(
            "YUNYING_DATABASE__URL",
            format!("sqlite://{}", dir.join("test.db").display()),
        )
        .env("YUNYING_SERVER__LISTEN", "127.0.0.1:0")
        .env("YUNYING_LOG", "warn")
        .env_remove("MIMALLOC_ALLOW_THP")
        .stdout(Stdio::null());
    if let Some(value) = allow_thp {
        command.env("MIMALLOC_ALLOW_THP", value);
    }
    command.spawn().expect("start yunying serve")
}

/// The server's `THP_enabled` once it has created its database (its `main` has run by then);
/// `None` where the kernel does not report it.
fn thp_enabled_once_started(server: &Child, db: &Path) -> Option<bool> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !db.exists() {
        assert!(
            Instant::now() < deadline,
            "the server did not create its database"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    thp_enabled(&format!("/proc/{}/status", server.id()))
}

fn own_thp_enabled() -> Option<bool> {
    thp_enabled("/proc/self/status")
}

fn thp_enabled(status_file: &str) -> Option<bool> {
    let status = std::fs::read_to_string(status_file).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(|value| value.trim() == "1")
}
