//! WXBizMsgCrypt: the signature, AES-256-CBC frame and receive-id check shared by WeCom apps,
//! group robots, AI bots and WeChat Official Accounts (wecom-protocol.md §1).
//!
//! Platform code only: nothing here knows about channels, storage or HTTP.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// WeCom pads to 32-byte blocks, not AES's 16 (doc 91144); pad values 1..=32 are legal.
const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const HEADER_LEN: usize = RANDOM_LEN + 4;

/// The 43-character EncodingAESKey usually has non-zero trailing bits, which strict base64
/// decoders reject; the official SDKs (Python, Go, Node) accept them.
const LENIENT_KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a callback failed the crypto checks. Each maps to a 4xx at the edge.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    #[error("signature mismatch")]
    BadSignature,
    #[error("timestamp is not a number")]
    BadTimestamp,
    #[error("timestamp outside the replay window ({skew_secs} s away from now)")]
    StaleTimestamp { skew_secs: i64 },
    #[error("ciphertext is not valid base64")]
    BadBase64,
    #[error("ciphertext length {0} is not a positive multiple of 32")]
    BadCiphertextLength(usize),
    #[error("bad padding")]
    BadPadding,
    #[error("decrypted frame is malformed")]
    BadFrame,
    #[error("receive id does not match this channel")]
    ReceiveIdMismatch,
    #[error("message is not valid UTF-8")]
    NotUtf8,
}

/// An EncodingAESKey decoded to its 32 key bytes.
#[derive(Clone)]
pub struct AesKey([u8; 32]);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(***)")
    }
}

/// Why an EncodingAESKey was refused at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("must be exactly 43 characters, got {0}")]
    Length(usize),
    #[error("must contain only A-Z, a-z and 0-9")]
    Alphabet,
}

impl AesKey {
    /// Decodes the console's 43-char EncodingAESKey (`base64(key)` without the trailing `=`).
    pub fn from_encoding_aes_key(encoding_aes_key: &str) -> Result<Self, KeyError> {
        let len = encoding_aes_key.chars().count();
        if len != 43 {
            return Err(KeyError::Length(len));
        }
        if !encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyError::Alphabet);
        }
        let bytes = LENIENT_KEY_ENGINE
            .decode(encoding_aes_key)
            .map_err(|_| KeyError::Alphabet)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Length(len))?;
        Ok(Self(key))
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

/// `sha1(sort([token, timestamp, nonce, encrypt]))` as 40 lowercase hex digits (doc 91144).
/// With `encrypt = None` it is the three-value `signature` of WeChat MP plaintext mode.
///
/// ```
/// // The URL-verification vector of the official WeCom Python sample.
/// let sig = yunying::wecom::crypto::signature(
///     "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
///     "1476416373",
///     "47744683",
///     Some("fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="),
/// );
/// assert_eq!(sig, "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb");
/// ```
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypt: Option<&str>) -> String {
    let mut parts: Vec<&str> = vec![token, timestamp, nonce];
    if let Some(encrypt) = encrypt {
        parts.push(encrypt);
    }
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Compares a received signature with the expected one in constant time.
pub fn verify_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: Option<&str>,
    received: &str,
) -> Result<(), CryptoError> {
    let expected = signature(token, timestamp, nonce, encrypt);
    if expected.as_bytes().ct_eq(received.as_bytes()).into() {
        Ok(())
    } else {
        Err(CryptoError::BadSignature)
    }
}

/// Rejects a timestamp (seconds) further than `window_secs` from `now_secs` either way.
/// A window of 0 disables the check.
pub fn check_replay_window(
    timestamp: &str,
    now_secs: i64,
    window_secs: i64,
) -> Result<i64, CryptoError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| CryptoError::BadTimestamp)?;
    let skew = now_secs.saturating_sub(ts);
    if window_secs > 0 && skew.abs() > window_secs {
        return Err(CryptoError::StaleTimestamp { skew_secs: skew });
    }
    Ok(ts)
}

/// The parts of a decrypted frame: `random(16) ‖ len(4, BE) ‖ msg ‖ receive_id ‖ pad`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub random: [u8; 16],
    pub msg: Vec<u8>,
    pub receive_id: Vec<u8>,
    pub pad: u8,
}

/// Decrypts base64 ciphertext into its frame without checking the receive id.
pub fn decrypt_frame(key: &AesKey, encrypt_b64: &str) -> Result<Frame, CryptoError> {
    let mut buf = general_purpose::STANDARD
        .decode(encrypt_b64.trim())
        .map_err(|_| CryptoError::BadBase64)?;
    if buf.is_empty() || buf.len() % PAD_BLOCK != 0 {
        return Err(CryptoError::BadCiphertextLength(buf.len()));
    }
    let plain = Aes256CbcDec::new(&key.0.into(), &key.iv().into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CryptoError::BadPadding)?;
    let pad = *plain.last().ok_or(CryptoError::BadPadding)?;
    let pad_len = usize::from(pad);
    if !(1..=PAD_BLOCK).contains(&pad_len) || pad_len > plain.len() {
        return Err(CryptoError::BadPadding);
    }
    let (body, padding) = plain.split_at(plain.len() - pad_len);
    if padding.iter().any(|&b| b != pad) {
        return Err(CryptoError::BadPadding);
    }
    if body.len() < HEADER_LEN {
        return Err(CryptoError::BadFrame);
    }
    let mut random = [0u8; RANDOM_LEN];
    random.copy_from_slice(&body[..RANDOM_LEN]);
    let len_bytes: [u8; 4] = body[RANDOM_LEN..HEADER_LEN]
        .try_into()
        .map_err(|_| CryptoError::BadFrame)?;
    let msg_len =
        usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| CryptoError::BadFrame)?;
    let msg_end = HEADER_LEN
        .checked_add(msg_len)
        .ok_or(CryptoError::BadFrame)?;
    if msg_end > body.len() {
        return Err(CryptoError::BadFrame);
    }
    Ok(Frame {
        random,
        msg: body[HEADER_LEN..msg_end].to_vec(),
        receive_id: body[msg_end..].to_vec(),
        pad,
    })
}

/// Encrypts `msg` into base64 ciphertext with the given 16-byte random prefix.
pub fn encrypt_with_random(
    key: &AesKey,
    msg: &[u8],
    receive_id: &str,
    random: &[u8; 16],
) -> String {
    let body_len = HEADER_LEN + msg.len() + receive_id.len();
    let pad_len = PAD_BLOCK - body_len % PAD_BLOCK;
    let mut buf = Vec::with_capacity(body_len + pad_len);
    buf.extend_from_slice(random);
    let msg_len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&msg_len.to_be_bytes());
    buf.extend_from_slice(msg);
    buf.extend_from_slice(receive_id.as_bytes());
    let pad = u8::try_from(pad_len).unwrap_or(32);
    buf.resize(body_len + pad_len, pad);
    let total = buf.len();
    let cipher = Aes256CbcEnc::new(&key.0.into(), &key.iv().into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, total)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    general_purpose::STANDARD.encode(cipher)
}

/// One configured crypto endpoint: token, key and the receive id expected inside every frame.
#[derive(Clone)]
pub struct MsgCrypt {
    token: String,
    key: AesKey,
    receive_id: String,
}

impl std::fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgCrypt")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl MsgCrypt {
    pub fn new(token: &str, encoding_aes_key: &str, receive_id: &str) -> Result<Self, KeyError> {
        Ok(Self {
            token: token.to_owned(),
            key: AesKey::from_encoding_aes_key(encoding_aes_key)?,
            receive_id: receive_id.to_owned(),
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// Verifies the signature over `encrypt`, then decrypts it and checks the receive id.
    /// The caller checks the replay window (it owns the clock).
    pub fn open(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let encrypt = encrypt.trim();
        verify_signature(&self.token, timestamp, nonce, Some(encrypt), msg_signature)?;
        self.decrypt(encrypt)
    }

    /// Decrypts and checks the receive id, without the signature (already checked).
    pub fn decrypt(&self, encrypt: &str) -> Result<Vec<u8>, CryptoError> {
        let frame = decrypt_frame(&self.key, encrypt)?;
        if frame.receive_id != self.receive_id.as_bytes() {
            return Err(CryptoError::ReceiveIdMismatch);
        }
        Ok(frame.msg)
    }

    /// Encrypts a reply with a fresh random prefix and signs it: `(encrypt, signature)`.
    pub fn seal(&self, msg: &[u8], timestamp: &str, nonce: &str) -> (String, String) {
        let random: [u8; 16] = rand::random();
        self.seal_with_random(msg, timestamp, nonce, &random)
    }

    /// [`Self::seal`] with a chosen random prefix (known-answer tests, the `send` client).
    pub fn seal_with_random(
        &self,
        msg: &[u8],
        timestamp: &str,
        nonce: &str,
        random: &[u8; 16],
    ) -> (String, String) {
        let encrypt = encrypt_with_random(&self.key, msg, &self.receive_id, random);
        let sig = signature(&self.token, timestamp, nonce, Some(&encrypt));
        (encrypt, sig)
    }
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
mod tests;
