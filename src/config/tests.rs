//! Loading, layering and error reports, with figment's `Jail` isolating files and env vars.
#![allow(clippy::result_large_err)] // figment::Jail closures return figment::Error by design.

use std::path::Path;

use figment::Jail;

use super::*;

fn err_of(file: Option<&Path>) -> ConfigError {
    load(file).expect_err("configuration must be refused")
}

#[test]
fn the_embedded_example_is_valid_and_is_the_default() {
    Jail::expect_with(|_| {
        let config = Config::example().expect("example loads");
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.database.url.expose(), "sqlite://data/yunying.db");
        assert_eq!(config.channels.len(), 5);
        Ok(())
    });
}

#[test]
fn environment_beats_file_and_file_beats_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "y.toml",
            r#"
            [server]
            listen = "127.0.0.1:9000"
            [database]
            url = "sqlite://file.db"
            [channels.corp]
            kind = "wecom_app"
            token = "t"
            encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
            corp_id = "ww1"
            "#,
        )?;
        jail.set_env("YUNYING_DATABASE__URL", "postgres://postgres@127.0.0.1/x");
        jail.set_env("YUNYING_CHANNELS__CORP__TOKEN", "123456");
        jail.set_env("YUNYING_LOG", "debug");
        let loaded = load(Some(Path::new("y.toml"))).expect("loads");
        let c = loaded.config;
        assert_eq!(c.server.listen, "127.0.0.1:9000", "file beats defaults");
        assert_eq!(c.server.body_limit_bytes, 65536, "defaults fill the rest");
        assert_eq!(
            c.database.url.expose(),
            "postgres://postgres@127.0.0.1/x",
            "env beats file"
        );
        assert_eq!(
            c.channels["corp"].token.as_ref().map(Secret::expose),
            Some("123456"),
            "all-digit env token stays a string"
        );
        assert_eq!(
            c.channels.len(),
            1,
            "demo channels do not leak into a real config"
        );
        assert!(
            c.commands.staff.is_empty(),
            "the demo admin does not leak into a real config (default deny)"
        );
        assert!(
            c.recall.plans.is_empty(),
            "the demo recall plan does not leak into a real config"
        );
        assert_eq!(c.commands.prefix, "/", "other command defaults still apply");
        Ok(())
    });
}

#[test]
fn unknown_key_names_file_and_key() {
    Jail::expect_with(|jail| {
        jail.create_file("y.toml", "[server]\nlistn = \"x\"\n")?;
        let e = err_of(Some(Path::new("y.toml")));
        let issue = &e.0[0];
        assert_eq!(issue.key, "server.listn");
        assert!(issue.source.ends_with("y.toml"), "{issue}");
        assert!(issue.reason.contains("unknown key"), "{issue}");
        Ok(())
    });
}

#[test]
fn official_account_modes_and_staff_channels_are_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "mp.toml",
            "[channels.mp1]\nkind = \"wechat_mp\"\ntoken = \"t\"\napp_id = \"wx1\"\n\n\
             [channels.mp2]\nkind = \"wechat_mp\"\ntoken = \"t\"\napp_id = \"wx2\"\nmode = \"compatible\"\n\n\
             [channels.mp3]\nkind = \"wechat_mp\"\ntoken = \"t\"\napp_id = \"wx3\"\nmode = \"plaintext\"\n\n\
             [commands]\nprefix = \"/\"\nstaff = [{ scope = \"*\", user = \"a\", role = \"admin\", channel = \"nowhere\" }]\n",
        )?;
        let text = err_of(Some(Path::new("mp.toml"))).to_string();
        assert!(
            text.contains("channels.mp1.mode`: without encoding_aes_key"),
            "{text}"
        );
        assert!(
            text.contains("channels.mp2.encoding_aes_key`: required in compatible mode"),
            "{text}"
        );
        assert!(
            !text.contains("channels.mp3"),
            "explicit plaintext is accepted: {text}"
        );
        assert!(
            text.contains("commands.staff[0].channel`: no channel `nowhere`"),
            "{text}"
        );

        Ok(())
    });
}

#[test]
fn wrong_type_and_bad_values_are_reported_with_key_and_reason() {
    Jail::expect_with(|jail| {
        jail.create_file("a.toml", "[server]\nbody_limit_bytes = \"big\"\n")?;
        let e = err_of(Some(Path::new("a.toml")));
        assert_eq!(e.0[0].key, "server.body_limit_bytes", "{e}");

        jail.create_file(
            "b.toml",
            "[community]\ntimezone = \"Mars/Olympus\"\n[channels.x]\nkind = \"wecom_app\"\ntoken = \"t\"\nencoding_aes_key = \"short\"\nwebhook_key = \"k\"\n",
        )?;
        let e = err_of(Some(Path::new("b.toml")));
        let text = e.to_string();
        assert!(text.contains("community.timezone"), "{text}");
        assert!(
            text.contains("channels.x.corp_id: required")
                || text.contains("key `channels.x.corp_id`: required"),
            "{text}"
        );
        assert!(text.contains("channels.x.encoding_aes_key`: invalid EncodingAESKey: must be exactly 43 characters, got 5"), "{text}");
        assert!(
            text.contains("channels.x.webhook_key`: not used by kind wecom_app"),
            "{text}"
        );
        assert!(text.contains("b.toml"), "{text}");

        jail.create_file(
            "d.toml",
            "[[tag_rules]]\nid = \"r\"\nwhen = \"regex\"\npattern = \"(unclosed\"\nadd = [\"x\"]\n\n[commands]\nprefix = \"\"\nstaff = [{ scope = \"*\", user = \"a\", role = \"boss\" }]\n",
        )?;
        let text = err_of(Some(Path::new("d.toml"))).to_string();
        assert!(
            !text.contains("tag_rules"),
            "rules are the members domain's to check: {text}"
        );
        let checked = crate::config::load_checked(
            Some(Path::new("d.toml")),
            &[|c| {
                c.tag_rules
                    .iter()
                    .map(|r| {
                        (
                            format!("tag_rules.{}", r.id),
                            "checked by the domain".to_owned(),
                        )
                    })
                    .collect()
            }],
        )
        .expect_err("fails")
        .to_string();
        assert!(
            checked.contains("tag_rules.r`: checked by the domain"),
            "{checked}"
        );
        assert!(text.contains("commands.prefix"), "{text}");
        assert!(
            text.contains("commands.staff[0].role`: `boss` is not admin or operator"),
            "{text}"
        );

        jail.create_file("c.toml", "[channels.Bad]\nkind = \"carrier_pigeon\"\n")?;
        let text = err_of(Some(Path::new("c.toml"))).to_string();
        assert!(text.contains("channels.Bad.kind"), "{text}");
        Ok(())
    });
}

#[test]
fn bad_values_from_the_environment_name_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("YUNYING_SERVER__LISTEN", "not-an-address");
        let text = err_of(None).to_string();
        assert!(text.contains("YUNYING_SERVER__LISTEN"), "{text}");
        assert!(text.contains("server.listen"), "{text}");
        Ok(())
    });
}

#[test]
fn missing_and_unparsable_files() {
    Jail::expect_with(|jail| {
        assert!(err_of(Some(Path::new("nope.toml")))
            .to_string()
            .contains("file not found"));
        jail.create_file("bad.toml", "[server\nlisten=")?;
        assert!(err_of(Some(Path::new("bad.toml")))
            .to_string()
            .contains("not valid TOML"));
        Ok(())
    });
}

#[test]
fn secrets_never_appear_in_output() {
    Jail::expect_with(|_| {
        let config = Config::example().expect("example");
        let printed = config.to_redacted_toml();
        let debugged = format!("{config:?}");
        for channel in config.channels.values() {
            for secret in [&channel.token, &channel.encoding_aes_key, &channel.secret]
                .into_iter()
                .flatten()
            {
                assert!(
                    !printed.contains(secret.expose()),
                    "check-config leaks a secret"
                );
                assert!(!debugged.contains(secret.expose()), "Debug leaks a secret");
            }
        }
        assert!(printed.contains("token = \"***\""));
        Ok(())
    });
}

#[test]
fn outbound_settings_are_checked_with_their_keys() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "o.toml",
            r#"
            [api]
            wecom_base = "qyapi.weixin.qq.com"
            [outbox]
            batch_size = 0
            duplicate_check_secs = 20000
            [channels.r]
            kind = "wecom_robot"
            token = "t"
            encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
            groups = ["wr1"]
            webhook_key = "k"
            "#,
        )?;
        let text = err_of(Some(Path::new("o.toml"))).to_string();
        assert!(text.contains("api.wecom_base"), "{text}");
        assert!(text.contains("outbox.batch_size"), "{text}");
        assert!(text.contains("outbox.duplicate_check_secs"), "{text}");
        assert!(
            !text.contains("channels.r.groups"),
            "groups belong to robots: {text}"
        );
        Ok(())
    });
}

#[test]
fn an_ai_bot_needs_the_keys_of_its_mode() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "a.toml",
            r#"
            [channels.ws]
            kind = "wecom_aibot"
            mode = "websocket"
            bot_id = "aib1"
            [channels.cb]
            kind = "wecom_aibot"
            token = "t"
            [channels.odd]
            kind = "wecom_aibot"
            mode = "carrier-pigeon"
            ws_url = "http://x"
            "#,
        )?;
        let text = err_of(Some(Path::new("a.toml"))).to_string();
        assert!(text.contains("channels.ws.secret"), "{text}");
        assert!(text.contains("channels.cb.encoding_aes_key"), "{text}");
        assert!(text.contains("channels.odd.mode"), "{text}");
        assert!(text.contains("channels.odd.ws_url"), "{text}");
        assert!(
            !text.contains("channels.ws.token"),
            "websocket mode needs no callback keys: {text}"
        );
        Ok(())
    });
}
