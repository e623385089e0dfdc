//! What each documented `errcode` means for a sender (wecom-protocol.md §4.10, Doc 90313).

/// How a failed call should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later with backoff.
    Transient,
    /// The access token is invalid or expired: refresh it once and retry once.
    TokenInvalid,
    /// A frequency limit tripped: wait for the window to pass instead of hammering.
    RateLimited,
    /// Retrying cannot help (bad recipient, missing permission, bad configuration).
    Permanent,
}

/// Maps an `errcode` to its class. Unknown codes are permanent: retrying an error nobody
/// understands only burns the quota.
pub fn classify(errcode: i64) -> ErrorClass {
    match errcode {
        // System busy; concurrency limit; MP system error.
        -1 | 45033 | 45035 => ErrorClass::Transient,
        // Invalid, missing or expired access token. 40001 is "invalid secret" when gettoken
        // answers it but "invalid credential" on MP calls: a refresh decides which it is.
        40001 | 40014 | 41001 | 42001 | 42007 => ErrorClass::TokenInvalid,
        // API frequency limit; MP customer-service downlink limit; robot message limit.
        45009 | 45011 | 45047 | 45606 => ErrorClass::RateLimited,
        _ => ErrorClass::Permanent,
    }
}

/// A short Chinese explanation of the codes ops staff meet most, for the dead-letter reason.
pub fn describe(errcode: i64) -> &'static str {
    match errcode {
        -1 => "系统繁忙",
        40001 => "secret 无效（请检查应用 Secret）",
        40003 => "无效的 UserID",
        40014 | 42001 | 41001 => "access_token 无效或过期",
        40096 => "无效的外部联系人 userid",
        41051 => "欢迎语 code 已被使用或已过期",
        44004 => "消息内容为空",
        45002 => "消息内容超过长度限制",
        45009 => "接口调用超过频率限制",
        45033 => "接口并发调用超过限制",
        48002 => "应用无此接口权限（请在“可调用应用”中加入本应用）",
        60011 => "不在应用可见范围内",
        60020 => "调用 IP 不在企业可信 IP 列表中",
        81013 => "接收人全部无效",
        84061 => "成员与该客户不存在好友关系",
        93000 => "机器人 webhook key 无效",
        _ => "平台返回错误",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes_map_to_the_documented_action() {
        assert_eq!(classify(-1), ErrorClass::Transient);
        for code in [40014, 42001, 41001, 40001] {
            assert_eq!(classify(code), ErrorClass::TokenInvalid, "{code}");
        }
        assert_eq!(classify(45009), ErrorClass::RateLimited);
        assert_eq!(classify(45047), ErrorClass::RateLimited);
        for code in [81013, 84061, 40096, 41051, 48002, 60011, 60020, 12345] {
            assert_eq!(classify(code), ErrorClass::Permanent, "{code}");
        }
    }
}
