//! The signed-JSON scheme of third-party WeChat group gateways:
//! `hex(HMAC-SHA256(secret, timestamp + "." + body))`, checked in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the request time in epoch seconds.
pub const TIMESTAMP_HEADER: &str = "x-yunying-timestamp";
/// Header carrying `sha256=<hex>` (the `sha256=` prefix is optional).
pub const SIGNATURE_HEADER: &str = "x-yunying-signature";

/// Signs `timestamp.body` with the shared secret; returns lowercase hex.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Verifies a received signature (hex, optionally prefixed `sha256=`) in constant time.
pub fn verify(secret: &[u8], timestamp: &str, body: &[u8], received: &str) -> bool {
    let received = received.trim();
    let received = received.strip_prefix("sha256=").unwrap_or(received);
    let Ok(received) = hex::decode(received) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&received).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_style_known_answer_and_tamper() {
        // HMAC-SHA256("key", "1700000000.{}") computed independently with Python's hmac module.
        let sig = sign(b"key", "1700000000", b"{}");
        assert_eq!(
            sig,
            "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert!(verify(b"key", "1700000000", b"{}", &sig));
        assert!(verify(
            b"key",
            "1700000000",
            b"{}",
            &format!("sha256={sig}")
        ));
        assert!(!verify(b"key", "1700000001", b"{}", &sig));
        assert!(!verify(b"key", "1700000000", b"{ }", &sig));
        assert!(!verify(b"other", "1700000000", b"{}", &sig));
        assert!(!verify(b"key", "1700000000", b"{}", "zz"));
    }
}
