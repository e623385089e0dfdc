//! Known-answer tests from wecom-protocol.md §2 and property tests of the frame.

use super::*;
use proptest::prelude::*;

fn random16(s: &str) -> [u8; 16] {
    s.as_bytes().try_into().expect("16-byte random prefix")
}

struct Vector {
    name: &'static str,
    token: &'static str,
    key: &'static str,
    receive_id: &'static str,
    timestamp: &'static str,
    nonce: &'static str,
    signature: &'static str,
    encrypt: &'static str,
    pad: u8,
    msg_starts_with: &'static str,
    msg_len: usize,
}

const VECTORS: &[Vector] = &[
    Vector {
        name: "V1a verify url",
        token: "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
        key: "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        receive_id: "ww1436e0e65a779aee",
        timestamp: "1476416373",
        nonce: "47744683",
        signature: "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        encrypt: "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
        pad: 7,
        msg_starts_with: "1288432023552776189",
        msg_len: 19,
    },
    Vector {
        name: "V1b decrypt (pad 22)",
        token: "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
        key: "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        receive_id: "ww1436e0e65a779aee",
        timestamp: "1476422779",
        nonce: "1597212914",
        signature: "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
        encrypt: "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+",
        pad: 22,
        msg_starts_with: "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>",
        msg_len: 228,
    },
    Vector {
        name: "V1c json (pad 10)",
        token: "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
        key: "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        receive_id: "ww1436e0e65a779aee",
        timestamp: "1409659813",
        nonce: "1372623149",
        signature: "e3647471e395139e2308c1fa963f2d648a00b90e",
        encrypt: "cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0cjw9frBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoILdqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU=",
        pad: 10,
        msg_starts_with: "{",
        msg_len: 176,
    },
    Vector {
        name: "V2a verify url",
        token: "QDG6eK",
        key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        receive_id: "wx5823bf96d3bd56c7",
        timestamp: "1409659589",
        nonce: "263014780",
        signature: "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        encrypt: "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
        pad: 7,
        msg_starts_with: "1616140317555161061",
        msg_len: 19,
    },
    Vector {
        name: "V2b decrypt (pad 30)",
        token: "QDG6eK",
        key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        receive_id: "wx5823bf96d3bd56c7",
        timestamp: "1409659813",
        nonce: "1372623149",
        signature: "477715d11cdb4164915debcba66cb864d751f3e6",
        encrypt: "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==",
        pad: 30,
        msg_starts_with: "<xml>",
        msg_len: 284,
    },
    Vector {
        name: "V2c json (pad 22)",
        token: "QDG6eK",
        key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        receive_id: "wx5823bf96d3bd56c7",
        timestamp: "1409659813",
        nonce: "1372623149",
        signature: "0623cbc5a8cbee5bcc137c70de99575366fc2af3",
        encrypt: "CZWs4CWRpI4VolQlvn4dlEC1alN2MUEY2VklGehgBVLBrlVF7SyT+SV+Toj43l4ayJ9UMGKphktKKmP7B2j/P1ey67XB8PBgS7Wr5/8+w/yWriZv3Vmoo/MH3/1HsIWZrPQ3N2mJrelStIfI2Y8kLKXA7EhfZgZX4o+ffdkZDM76SEl79Ib9mw7TGjZ9Aw/x/A2VjNbV1E8BtEbRxYYcQippYNw7hr8sFfa3nW1xLdxokt8QkRX83vK3DFP2F6TQFPL2Tu98UwhcUpPvdJBuu1/yiOQIScppV3eOuLWEsko=",
        pad: 22,
        msg_starts_with: "{",
        msg_len: 164,
    },
    Vector {
        name: "V3a verify url",
        token: "123456",
        key: "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        receive_id: "wx49f0ab532d5d035a",
        timestamp: "1411443780",
        nonce: "437374425",
        signature: "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
        encrypt: "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
        pad: 7,
        msg_starts_with: "5927782489442352469",
        msg_len: 19,
    },
    Vector {
        name: "V3b decrypt (pad 1)",
        token: "123456",
        key: "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        receive_id: "wx49f0ab532d5d035a",
        timestamp: "1411525903",
        nonce: "461056294",
        signature: "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
        encrypt: "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=",
        pad: 1,
        msg_starts_with: "<xml>",
        msg_len: 281,
    },
    Vector {
        name: "V4a verify url (alphanumeric nonce, pad 3)",
        token: "kjr2TKI8umCBfVF3wAHk8JiPwma5VBme",
        key: "4Ma3YBrSBbX2aez8MJpXGBne5LSDwgGqHbhM9WPYIws",
        receive_id: "ww6a112864f8022910",
        timestamp: "1583940690",
        nonce: "VHh7ymSeb0jc4lSb",
        signature: "1ba3cb09c0d2c2b3ed6900d37f91a6efae6cb011",
        encrypt: "6KmUQuPVu7UhjyVqRdbo5SfcRqaHvbUlKSHFvBV2ZuR6TIlKsygcfeSd1GDplg1C5KSKr6UPHCaC/nIX3ZNt9w==",
        pad: 3,
        msg_starts_with: "94966531020182955848408",
        msg_len: 23,
    },
    Vector {
        name: "V4b binary random prefix (pad 13)",
        token: "kz7Yx62CH8SaLN",
        key: "cD0d7jx4tYvVtzqrmh3Dm3QFCXe6f8SlHoMtMh3qQEP",
        receive_id: "ww6a112864f8022910",
        timestamp: "1583995625",
        nonce: "1584392382",
        signature: "f265ae551b1932727204c3d707628d01376a6940",
        encrypt: "EUCt7xMcNiyASzZj0Hjc5yDjFQrCum6AfQ3ntHiUzjGQ51xieKmbvtrZ40/EcB2W/W8yH0n4Lqx48gJl/T9HD/R309I0P/r5pIZucK3lyEn48FYMr4YdE0QdL2jIJ3xkcXUr6uzefzCxG6lMvwpAJaOyVCzN7sRRw47njfxy5EIqU6R9ZBhlTzfdnhhOhK/nTwzrZX3SoGlXFA9OBeZ6ru1NWpXFk76x9DUMe0lcxPPiUqK8ctnQcYXSGUHVqC6DfG7E7mab0OmruNN8cBZY5d3dYOBA4OgaH55Q0AJmUpdT8vNiXpXx+6TxT3TIjySXpDrHVyrsb772aYywgg/Nu4kUmGkALwFZlzhjNegR7wDwb9lr4ERXsSSS8JZ8lbBmaQ3F2Tq584xoPj5rIhXAF734ynm4no1g+SdHiNqR328=",
        pad: 13,
        msg_starts_with: "<xml>",
        msg_len: 269,
    },
    Vector {
        name: "V6 WeChat MP (pad 2)",
        token: "spamtest",
        key: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        receive_id: "wx2c2769f8efd9abc2",
        timestamp: "1409735669",
        nonce: "1320562132",
        signature: "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
        encrypt: "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=",
        pad: 2,
        msg_starts_with: "<xml>",
        msg_len: 280,
    },
    Vector {
        name: "G1 generated: empty receive id (pad 9)",
        token: "QDG6eK",
        key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        receive_id: "",
        timestamp: "1700000000",
        nonce: "1234567890",
        signature: "07b7f34d0551f4ec0432b664e3da72367a28c4ca",
        encrypt: "sKqRbbiSUnDhFHOvPjtUMbbUQBr1h+f5tXSmfVXxirwYjJhFj0rf6oa2eZto9yqW3O9V4SVLyp0nCYVajhscrRLeXSB7dlctGfHCtvma2B64DS261rYR91phipeYJfwrHtC6WOl4AxBFVqiGtAdblssS5RJT4mx0eLP/cWGwrJN/0YhsG+ovVbzurb2qZjxyAKOozGqgvZ1OpUW5uW5ceQ==",
        pad: 9,
        msg_starts_with: "{\"msgid\":\"MSGID1\"",
        msg_len: 131,
    },
    Vector {
        name: "G2 generated: pad 32",
        token: "QDG6eK",
        key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        receive_id: "ww1436e0e65a779aee",
        timestamp: "1700000001",
        nonce: "42",
        signature: "f744d055cd3503147b728a827f34bf32f82e423d",
        encrypt: "P9TP8OO8ZpJE35Ha/87+5CUxVp/s5chZfslO5EJXXgk88OXCxK6bgtNy7RnSCKAwJWs11miYZiaJz93xIL4oS4XdhR5q+Pv2CRwyvk/yuCy/jmN1avni0bLhsz4+KgYQCUjN76EV9AxdVtphhdsTKL4D5/Msl9h93vVZq3TFvaUDsoqaL1kb8og9PTZaLCrnhyhBIqzBnhyLoEwz6ubRpr4OMteg557Q9i2jcEYLNrG1eekWRH8vhNiGB4mwwsdP",
        pad: 32,
        msg_starts_with: "xxxxxxxx",
        msg_len: 122,
    },
];

#[test]
fn every_vector_verifies_decrypts_and_reencrypts_byte_for_byte() {
    for v in VECTORS {
        let crypt = MsgCrypt::new(v.token, v.key, v.receive_id).expect(v.name);
        assert_eq!(
            signature(v.token, v.timestamp, v.nonce, Some(v.encrypt)),
            v.signature,
            "{}",
            v.name
        );
        let msg = crypt
            .open(v.signature, v.timestamp, v.nonce, v.encrypt)
            .expect(v.name);
        assert_eq!(msg.len(), v.msg_len, "{}", v.name);
        assert!(msg.starts_with(v.msg_starts_with.as_bytes()), "{}", v.name);

        let frame = decrypt_frame(&crypt.key, v.encrypt).expect(v.name);
        assert_eq!(frame.pad, v.pad, "{}", v.name);
        let again = encrypt_with_random(&crypt.key, &frame.msg, v.receive_id, &frame.random);
        assert_eq!(again, v.encrypt, "{}: encryption known-answer", v.name);
    }
}

#[test]
fn v1b_plaintext_is_the_documented_message() {
    let v = &VECTORS[1];
    let crypt = MsgCrypt::new(v.token, v.key, v.receive_id).expect("key");
    let msg = crypt
        .open(v.signature, v.timestamp, v.nonce, v.encrypt)
        .expect("open");
    let text = String::from_utf8(msg).expect("utf8");
    assert_eq!(
        text,
        "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
    );
}

#[test]
fn v4b_binary_random_prefix_is_kept_as_bytes() {
    let v = &VECTORS[9];
    let crypt = MsgCrypt::new(v.token, v.key, v.receive_id).expect("key");
    let frame = decrypt_frame(&crypt.key, v.encrypt).expect("frame");
    assert_eq!(
        hex::encode(frame.random),
        "21e33070c56d1ca4e4fa84ace71334f6"
    );
}

#[test]
fn v3c_passive_reply_known_answer() {
    let crypt = MsgCrypt::new(
        "123456",
        "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        "wx49f0ab532d5d035a",
    )
    .expect("key");
    let reply = [
        "<xml>",
        "<MsgType><![CDATA[text]]></MsgType>",
        "<Content><![CDATA[test]]></Content>",
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>",
        "<ToUserName><![CDATA[messense]]></ToUserName>",
        "<AgentID>1</AgentID>",
        "<CreateTime>1411525903</CreateTime>",
        "</xml>",
    ]
    .join("\n");
    let (encrypt, sig) = crypt.seal_with_random(
        reply.as_bytes(),
        "1411525903",
        "461056294",
        &random16("1234567890123456"),
    );
    assert_eq!(encrypt, "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3");
    assert_eq!(sig, "407518b7649e86ef23978113f92d27afa9296533");
}

#[test]
fn v5_wxjava_known_answer() {
    let key =
        AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").expect("key");
    let out = encrypt_with_random(
        &key,
        "我是中文abcd123".as_bytes(),
        "wxb11529c136998cb6",
        &random16("aaaabbbbccccdddd"),
    );
    assert_eq!(
        out,
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    );
}

#[test]
fn mp_plain_signature_vectors() {
    assert_eq!(
        signature("spamtest", "1409735669", "1320562132", None),
        "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
    );
    assert_eq!(
        signature("AAAAA", "1714037059", "486452656", None),
        "899cf89e464efb63f54ddac96b0a0a235f53aa78"
    );
}

#[test]
fn negative_cases_from_the_protocol_notes() {
    let v3a = &VECTORS[6];
    let crypt = MsgCrypt::new(v3a.token, v3a.key, v3a.receive_id).expect("key");
    // V3a with nonce 437374424: bad signature.
    assert_eq!(
        crypt.open(v3a.signature, v3a.timestamp, "437374424", v3a.encrypt),
        Err(CryptoError::BadSignature)
    );

    // One character of ciphertext changed: rejected by the signature before decrypting.
    let mut tampered = v3a.encrypt.to_owned();
    tampered.replace_range(0..1, "5");
    assert_eq!(
        crypt.open(v3a.signature, v3a.timestamp, v3a.nonce, &tampered),
        Err(CryptoError::BadSignature)
    );

    // V1b with the wrong receive id (the outer ToUserName of another corp).
    let v1b = &VECTORS[1];
    let wrong = MsgCrypt::new(v1b.token, v1b.key, "wx5823bf96d3bd56c7").expect("key");
    assert_eq!(
        wrong.open(v1b.signature, v1b.timestamp, v1b.nonce, v1b.encrypt),
        Err(CryptoError::ReceiveIdMismatch)
    );

    // V1c: the outer tousername is not the receive id.
    let v1c = &VECTORS[2];
    let outer = MsgCrypt::new(v1c.token, v1c.key, "wx5823bf96d3bd56c7").expect("key");
    assert_eq!(
        outer.open(v1c.signature, v1c.timestamp, v1c.nonce, v1c.encrypt),
        Err(CryptoError::ReceiveIdMismatch)
    );

    // Whitespace around Encrypt is trimmed before verifying.
    let padded = format!("\n  {}  \n", v1b.encrypt);
    let right = MsgCrypt::new(v1b.token, v1b.key, v1b.receive_id).expect("key");
    assert!(right
        .open(v1b.signature, v1b.timestamp, v1b.nonce, &padded)
        .is_ok());

    // Key lengths 42 and 44 are refused.
    assert_eq!(
        AesKey::from_encoding_aes_key(&v1b.key[..42]).err(),
        Some(KeyError::Length(42))
    );
    assert_eq!(
        AesKey::from_encoding_aes_key(&format!("{}A", v1b.key)).err(),
        Some(KeyError::Length(44))
    );
    assert_eq!(
        AesKey::from_encoding_aes_key(&format!("{}=", &v1b.key[..42])).err(),
        Some(KeyError::Alphabet)
    );
}

#[test]
fn ciphertext_not_a_multiple_of_32_is_rejected() {
    let key =
        AesKey::from_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").expect("key");
    let sixteen = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
    assert_eq!(
        decrypt_frame(&key, &sixteen),
        Err(CryptoError::BadCiphertextLength(16))
    );
    assert_eq!(
        decrypt_frame(&key, ""),
        Err(CryptoError::BadCiphertextLength(0))
    );
    assert_eq!(
        decrypt_frame(&key, "not base64!"),
        Err(CryptoError::BadBase64)
    );
}

/// Encrypts a raw, already padded plaintext so tests can forge bad pads and lengths.
fn encrypt_raw(key: &AesKey, plain: &[u8]) -> String {
    let mut buf = plain.to_vec();
    let len = buf.len();
    let out = Aes256CbcEnc::new(&key.0.into(), &key.iv().into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, len)
        .expect("aligned")
        .to_vec();
    general_purpose::STANDARD.encode(out)
}

#[test]
fn bad_pad_values_and_lengths_are_rejected() {
    let key =
        AesKey::from_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").expect("key");
    let mut zero_pad = vec![b'a'; 64];
    zero_pad[63] = 0;
    assert_eq!(
        decrypt_frame(&key, &encrypt_raw(&key, &zero_pad)),
        Err(CryptoError::BadPadding)
    );
    let mut big_pad = vec![b'a'; 64];
    big_pad[63] = 33;
    assert_eq!(
        decrypt_frame(&key, &encrypt_raw(&key, &big_pad)),
        Err(CryptoError::BadPadding)
    );
    let mut uneven = vec![b'a'; 64];
    uneven[62] = 2;
    uneven[63] = 3;
    uneven[61] = 9;
    assert_eq!(
        decrypt_frame(&key, &encrypt_raw(&key, &uneven)),
        Err(CryptoError::BadPadding)
    );
    // msg_len pointing past the end of the frame.
    let mut frame = vec![b'r'; 16];
    frame.extend_from_slice(&1000u32.to_be_bytes());
    frame.extend_from_slice(b"short");
    let pad = 32 - frame.len() % 32;
    frame.resize(frame.len() + pad, u8::try_from(pad).expect("pad"));
    assert_eq!(
        decrypt_frame(&key, &encrypt_raw(&key, &frame)),
        Err(CryptoError::BadFrame)
    );
}

#[test]
fn replay_window() {
    assert_eq!(check_replay_window("1000", 1200, 300), Ok(1000));
    assert_eq!(
        check_replay_window("1000", 1301, 300),
        Err(CryptoError::StaleTimestamp { skew_secs: 301 })
    );
    assert_eq!(
        check_replay_window("1400", 1000, 300),
        Err(CryptoError::StaleTimestamp { skew_secs: -400 })
    );
    assert_eq!(
        check_replay_window("abc", 1000, 300),
        Err(CryptoError::BadTimestamp)
    );
    assert_eq!(check_replay_window("5", 1_000_000, 0), Ok(5));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Messages of every length mod 32 round-trip, so every pad value 1..=32 is exercised.
    #[test]
    fn round_trip_all_pad_lengths(len in 0usize..200, receive_id in "[a-z0-9]{0,18}", seed in any::<u64>()) {
        let crypt = MsgCrypt::new("tok", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", &receive_id).expect("key");
        let msg: Vec<u8> = (0..len).map(|i| u8::try_from((seed as usize + i * 31) % 251).expect("byte")).collect();
        let (encrypt, sig) = crypt.seal(&msg, "1700000000", "n1");
        let opened = crypt.open(&sig, "1700000000", "n1", &encrypt).expect("round trip");
        prop_assert_eq!(opened, msg);
    }

    /// Flipping any single bit of the ciphertext bytes is rejected (by the signature).
    #[test]
    fn any_single_bit_flip_is_rejected(bit in 0usize..(64 * 8)) {
        let crypt = MsgCrypt::new("tok", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "corp").expect("key");
        let (encrypt, sig) = crypt.seal(b"hello world, this is a message", "1", "2");
        let mut raw = general_purpose::STANDARD.decode(&encrypt).expect("b64");
        let idx = (bit / 8) % raw.len();
        raw[idx] ^= 1 << (bit % 8);
        let tampered = general_purpose::STANDARD.encode(&raw);
        prop_assert_eq!(crypt.open(&sig, "1", "2", &tampered), Err(CryptoError::BadSignature));
        // And even with a re-computed signature, the frame must not open to the same message.
        let resigned = signature("tok", "1", "2", Some(&tampered));
        let reopened = crypt.open(&resigned, "1", "2", &tampered);
        prop_assert!(reopened.as_deref() != Ok(&b"hello world, this is a message"[..]));
    }
}
