//! `yunying demo` as a newcomer runs it: the scripted community prints every step.

use std::process::Command;

#[test]
fn the_demo_shows_welcome_sign_in_faq_command_and_push() {
    let out = Command::new(env!("CARGO_BIN_EXE_yunying"))
        .arg("demo")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "send_welcome_msg",
        "李四，你好",
        "webhook/send",
        "签到成功",
        "视频号直播",
        "/points",
        "message/send",
        "\"sent\":",
        "/api/v1/recall/lapsed/run",
        "aibot_respond_msg",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}
