//! URLs as they may be logged: webhook URLs carry their token in the query (DingTalk
//! `access_token=`, WeCom `key=`) or in the path (Feishu `/open-apis/bot/v2/hook/TOKEN`), so
//! only the scheme, host and port are kept.

/// `url` reduced to `scheme://host[:port]/***` (credentials, path and query dropped), or
/// `<not a URL>`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let rest = if u.path() == "/" && u.query().is_none() {
                "/"
            } else {
                "/***"
            };
            match u.port() {
                Some(p) => format!("{}://{host}:{p}{rest}", u.scheme()),
                None => format!("{}://{host}{rest}", u.scheme()),
            }
        }
        Err(_) => "<not a URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_query_path_and_userinfo_are_dropped() {
        let cases = [
            (
                "https://oapi.dingtalk.com/robot/send?access_token=abc123",
                "https://oapi.dingtalk.com/***",
            ),
            (
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6",
                "https://qyapi.weixin.qq.com/***",
            ),
            (
                "https://open.feishu.cn/open-apis/bot/v2/hook/0f1e2d",
                "https://open.feishu.cn/***",
            ),
            (
                "http://user:pw@10.0.0.5:8080/hook",
                "http://10.0.0.5:8080/***",
            ),
            ("http://example.com", "http://example.com/"),
            ("not a url", "<not a URL>"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
