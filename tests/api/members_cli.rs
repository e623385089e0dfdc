//! `yunying members import` and `faq import` with files as Excel saves them: GBK or UTF-8 with a
//! BOM, extra columns, Chinese headers; bad rows by line, and a second import that changes
//! nothing.

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

#[tokio::test]
async fn a_gbk_member_file_imports_once_with_opening_points_and_bad_lines_named() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let csv = dir.path().join("members.csv");
    let text = "用户ID,昵称,标签,入群时间,初始积分,积分原因,备注\r\n\
                g1,张三,VIP|老客户,2024-03-01,120,老社群积分,随便\r\n\
                g2,李四,,2024-13-01,,,\r\n\
                g3,王五,新客,,0,,\r\n";
    let (gbk, _, _) = encoding_rs::GBK.encode(text);
    std::fs::write(&csv, &gbk).expect("write");
    let path = csv.to_str().expect("path");
    let (ok, out) = yunying(&db, &["members", "import", path, "--scope", "gw-club"]);
    assert!(!ok, "a rejected row fails the command: {out}");
    assert!(out.contains("the file is GBK"), "{out}");
    assert!(out.contains("columns ignored: 备注"), "{out}");
    assert!(
        out.contains("2 created, 0 updated, 0 unchanged, opening points for 1, 1 rejected"),
        "{out}"
    );
    assert!(out.contains("members.csv:3: joined:"), "{out}");

    // Fixed and saved again as UTF-8 with a BOM: nothing is imported twice.
    let fixed = text.replace("2024-13-01", "2024-02-01");
    std::fs::write(
        &csv,
        [b"\xEF\xBB\xBF".as_slice(), fixed.as_bytes()].concat(),
    )
    .expect("write");
    let (ok, out) = yunying(&db, &["members", "import", path, "--scope", "gw-club"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("1 created, 0 updated, 2 unchanged, opening points for 0, 0 rejected"),
        "{out}"
    );

    let store = yunying::store::Store::connect(&db, &yunying::store::StoreOptions::default())
        .await
        .expect("db");
    let zhang = store
        .member("gw-club", "g1")
        .await
        .expect("read")
        .expect("g1");
    assert_eq!(zhang.display_name.as_deref(), Some("张三"));
    // 2024-03-01 00:00 in the community's zone (Asia/Shanghai).
    assert_eq!(zhang.first_seen_at, 1_709_222_400_000);
    let mut tags = store.tags_of("gw-club", "g1").await.expect("tags");
    tags.sort();
    assert_eq!(tags, ["VIP", "老客户"]);
    let (_, account) = store
        .points_account("gw-club", "g1")
        .await
        .expect("read")
        .expect("account");
    assert_eq!(account.balance, 120, "opening points once");
    store.close().await;
}

#[test]
fn an_excel_faq_file_in_gbk_with_extra_columns_imports_with_a_warning() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("kb.db").display());
    let csv = dir.path().join("kb.csv");
    let text =
        "问题,相似问题,答案,负责人\r\n怎么退款,退钱；钱怎么退回来,在订单页申请退款。,小王\r\n";
    let (gbk, _, _) = encoding_rs::GBK.encode(text);
    std::fs::write(&csv, &gbk).expect("write");
    let (ok, out) = yunying(&db, &["faq", "import", csv.to_str().expect("path")]);
    assert!(ok, "{out}");
    assert!(out.contains("columns ignored: 负责人"), "{out}");
    assert!(out.contains("1 created"), "{out}");
    let (ok, out) = yunying(&db, &["faq", "ask", "钱怎么退回来"]);
    assert!(ok && out.contains("怎么退款"), "{out}");
}
