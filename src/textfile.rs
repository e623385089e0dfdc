//! Text files made with spreadsheets: UTF-8 with or without a byte-order mark, or GBK (what Excel
//! writes for CSV on a Chinese Windows), decoded to UTF-8 with the encoding named.

/// The file's text (Windows line ends made `\n`, so line numbers count as an editor does) and
/// the encoding it was in.
pub fn decode(bytes: &[u8]) -> Result<(String, &'static str), String> {
    decode_as_is(bytes).map(|(text, encoding)| (text.replace("\r\n", "\n"), encoding))
}

fn decode_as_is(bytes: &[u8]) -> Result<(String, &'static str), String> {
    let without_bom = bytes.strip_prefix(b"\xEF\xBB\xBF");
    if let Ok(text) = std::str::from_utf8(without_bom.unwrap_or(bytes)) {
        let name = if without_bom.is_some() {
            "UTF-8 (BOM)"
        } else {
            "UTF-8"
        };
        return Ok((text.to_owned(), name));
    }
    let (text, had_errors) = encoding_rs::GBK.decode_without_bom_handling(bytes);
    if had_errors {
        let valid = std::str::from_utf8(bytes)
            .map_err(|e| e.valid_up_to())
            .err()
            .unwrap_or(0);
        let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(format!(
            "line {line}: the file is neither UTF-8 nor GBK text (save it as CSV UTF-8)"
        ));
    }
    Ok((text.into_owned(), "GBK"))
}

/// Reads a file people may have saved from Excel.
pub fn read(path: &std::path::Path) -> anyhow::Result<(String, &'static str)> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn utf8_with_and_without_bom_and_gbk_decode_to_the_same_text() {
        let text = "问题,答案\n怎么退款,在订单页申请\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode(text.as_bytes()), Ok((text.to_owned(), "UTF-8")));
        assert_eq!(decode(&bom), Ok((text.to_owned(), "UTF-8 (BOM)")));
        assert_eq!(decode(&gbk), Ok((text.to_owned(), "GBK")));
    }

    #[test]
    fn bytes_that_are_neither_are_refused_with_a_line() {
        let bad = b"id,name\nu1,\xFF\xFF\n";
        let err = decode(bad).expect_err("not text");
        assert!(err.starts_with("line 2:"), "{err}");
    }
}
