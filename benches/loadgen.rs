//! Writes signed, encrypted callbacks for the wrk load test (benches/load/run.sh), one request
//! per line: `path?query<TAB>body` (bodies are single-line XML). Unique MsgIds, senders spread over N members.
//!
//! Usage: cargo bench --bench loadgen -- OUT COUNT MEMBERS CHANNEL TEXT [TIMESTAMP]
//! (MEMBER_OFFSET=N in the environment numbers the members from N.)

use std::io::Write as _;

use yunying::channels::Channels;
use yunying::config::Config;
use yunying::send::{self, Simulated};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen OUT COUNT MEMBERS CHANNEL TEXT [TIMESTAMP]");
        std::process::exit(2);
    }
    let out = &args[0];
    let count: usize = args[1].parse().expect("COUNT");
    let members: usize = args[2].parse().expect("MEMBERS");
    let channel_id = &args[3];
    let text = &args[4];
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let ts: i64 = args.get(5).map_or(i64::try_from(now).expect("ts"), |t| {
        t.parse().expect("TIMESTAMP")
    });
    let config = Config::example().expect("example config");
    let channels = Channels::from_config(&config).expect("channels");
    let channel = channels.get(channel_id).expect("channel");
    // MEMBER_OFFSET=N numbers the members from N: a second run with new members.
    let offset: usize =
        std::env::var("MEMBER_OFFSET").map_or(0, |v| v.parse().expect("MEMBER_OFFSET"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("create OUT"));
    for i in 0..count {
        let member = offset + i % members;
        let what = Simulated::Text {
            from: format!("member-{member:05}"),
            name: Some(format!("成员{member}")),
            group: Some(format!("chat-{}", i % 20)),
            text: text.clone(),
            msg_id: format!("load-{ts}-{i}"),
        };
        let inner = send::inner_payload(channel, &what, ts).expect("payload");
        let request = send::build_request(channel, &inner, ts, &format!("{i}")).expect("request");
        let body = String::from_utf8(request.body).expect("utf8 body");
        assert!(!body.contains(['\n', '\t']), "bodies must be single-line");
        writeln!(file, "/callbacks/{channel_id}?{}\t{body}", request.query).expect("write");
    }
    file.flush().expect("flush");
}
