//! Callback hot path without I/O: verify the signature, decrypt, parse the inner XML and
//! normalize into an event, for a ~1 KiB encrypted group-robot message.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use yunying::channels::Channels;
use yunying::config::Config;
use yunying::ingress::normalize;
use yunying::send::{self, Simulated};
use yunying::wecom::{crypto, xml};

fn bench(c: &mut Criterion) {
    let config = Config::example().expect("example config");
    let channels = Channels::from_config(&config).expect("channels");
    let channel = channels.get("demo_robot").expect("demo_robot");
    let crypt = channel.crypt.as_ref().expect("keys");
    let text = "请问这个活动的积分怎么兑换？".repeat(12);
    let what = Simulated::Text {
        from: "member-00042".into(),
        name: Some("张三".into()),
        group: Some("wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA".into()),
        text,
        msg_id: "CAIQ7ZfqsgYYsdLF+qeAgAMgAQ==".into(),
    };
    let inner = send::inner_payload(channel, &what, 1_700_000_000).expect("payload");
    let request =
        send::build_request(channel, &inner, 1_700_000_000, "1597212914").expect("request");
    let query: Vec<(String, String)> = url::form_urlencoded::parse(request.query.as_bytes())
        .into_owned()
        .collect();
    let param = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .expect("param")
    };
    let (sig, ts, nonce) = (param("msg_signature"), param("timestamp"), param("nonce"));
    let body = request.body;
    println!(
        "callback body: {} bytes (inner message {} bytes)",
        body.len(),
        inner.len()
    );

    let mut group = c.benchmark_group("callback");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("verify+decrypt+parse+normalize", |b| {
        b.iter(|| {
            let envelope = xml::parse_any(black_box(&body)).expect("envelope");
            let encrypt = envelope.get_any(&["Encrypt", "encrypt"]).expect("encrypt");
            crypto::verify_signature(crypt.token(), &ts, &nonce, Some(encrypt), &sig)
                .expect("signature");
            let plain = crypt.decrypt(encrypt).expect("decrypt");
            let fields = xml::parse_any(&plain).expect("inner");
            black_box(normalize::wecom_robot(channel, &fields, 1_700_000_000).expect("event"))
        });
    });
    group.bench_function("seal passive reply", |b| {
        b.iter(|| {
            black_box(crypt.seal(
                black_box(
                    b"<xml><MsgType>text</MsgType><Text><Content>pong</Content></Text></xml>",
                ),
                "1700000000",
                "123",
            ))
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
