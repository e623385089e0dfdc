//! Platform library for WeCom (企业微信) and WeChat: callback crypto, XML/JSON payloads and
//! the gateway signature. Self-contained: it imports nothing from the rest of the crate, so the
//! business code can change without touching the wire format (checked by a test below).

pub mod api;
pub mod crypto;
pub mod gateway;
pub mod xml;

#[cfg(test)]
mod tests {
    #[test]
    fn platform_code_does_not_import_the_rest_of_the_crate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/wecom");
        let mut files: Vec<std::path::PathBuf> = Vec::new();
        for sub in [dir.clone(), dir.join("api")] {
            for entry in std::fs::read_dir(&sub).expect("src/wecom") {
                files.push(entry.expect("entry").path());
            }
        }
        for path in files {
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                for (n, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    let forbidden =
                        code.starts_with("use crate::") && !code.starts_with("use crate::wecom");
                    assert!(
                        !forbidden,
                        "{}:{}: platform code imports `{}`",
                        path.display(),
                        n + 1,
                        code
                    );
                }
            }
        }
    }
}
