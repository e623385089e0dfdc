//! `yunying faq import / export / ask` as a user runs them: the real binary on a SQLite file.

use std::process::Command;

fn yunying(db: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_yunying"))
        .args(args)
        .env("YUNYING_DATABASE__URL", db)
        .env("YUNYING_LOG", "warn")
        .output()
        .expect("runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn import_reports_bad_rows_and_reimport_updates_by_id() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("kb.db").display());
    let csv = dir.path().join("kb.csv");
    std::fs::write(
        &csv,
        "id,question,similar,answer\n\
         refund,怎么申请退款,退款流程|如何退款,在订单页申请退款。\n\
         live,直播几点开始,,每晚八点。\n\
         broken,,,没有问题的行\n",
    )
    .expect("write");
    let path = csv.to_str().expect("path");
    let (ok, out) = yunying(&db, &["faq", "import", path]);
    assert!(!ok, "a rejected row fails the command: {out}");
    assert!(out.contains("2 created, 0 updated, 1 rejected"), "{out}");
    assert!(out.contains("kb.csv:4: question is empty"), "{out}");

    std::fs::write(
        &csv,
        "id,question,similar,answer\n\
         refund,怎么申请退款,退款流程|如何退款,七天内可在订单页申请退款。\n\
         live,直播几点开始,,每晚八点。\n",
    )
    .expect("write");
    let (ok, out) = yunying(&db, &["faq", "import", path]);
    assert!(ok, "{out}");
    assert!(out.contains("0 created, 2 updated, 0 rejected"), "{out}");

    let (ok, out) = yunying(&db, &["faq", "export"]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("\"id\":\"refund\"") && lines[0].contains("七天内"),
        "{out}"
    );

    let (ok, out) = yunying(&db, &["faq", "ask", "如何退款呀"]);
    assert!(ok, "{out}");
    assert!(out.contains("1. [refund]"), "{out}");
}
