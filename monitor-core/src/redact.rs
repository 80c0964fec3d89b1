//! Secrets out of logs and error messages: [`redact_url`] replaces the password of a URL's
//! userinfo (`scheme://user:password@host/…`) with `***`. Every log line, error or `/metrics`
//! label that names a URL from outside (a broker, a Redis, an exporter with basic auth) passes it
//! through this first; the URL itself is used unchanged for connecting.

use std::borrow::Cow;

/// `url` with the password of its userinfo replaced by `***`; unchanged when it has none. Only
/// the authority (between `://` and the first `/`, `?` or `#`) is looked at, so an `@` in a path
/// or query is left alone. A userinfo without `:` (`user@host`) is kept: it is a name, not a
/// secret.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return Cow::Borrowed(url);
    };
    match authority[..at].split_once(':') {
        Some((user, _password)) => Cow::Owned(format!(
            "{}{user}:***{}",
            &url[..authority_start],
            &url[authority_start + at..]
        )),
        None => Cow::Borrowed(url),
    }
}

/// `text` with the password of every URL in it replaced by `***` (see [`redact_url`]): for
/// messages that embed URLs among other words (`the body from http://u:p@h/x is not …`). A URL's
/// authority ends at `/`, `?`, `#`, whitespace or a quote, bracket or backtick.
pub fn redact_urls(text: &str) -> Cow<'_, str> {
    const END: &[char] = &[
        '/', '?', '#', ' ', '\t', '\n', '\r', '\'', '"', '`', ')', ']', '>', '<', ',',
    ];
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let authority_start = from + found + 3;
        let rest = &text[authority_start..];
        let authority_end = authority_start + rest.find(END).unwrap_or(rest.len());
        let authority = &text[authority_start..authority_end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                let buf = out.get_or_insert_with(String::new);
                buf.push_str(&text[copied..authority_start + colon + 1]);
                buf.push_str("***");
                copied = authority_start + at;
            }
        }
        from = authority_end.max(authority_start);
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            Cow::Owned(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{redact_url, redact_urls};

    #[test]
    fn passwords_in_free_text_are_replaced() {
        assert_eq!(
            redact_urls("the body from http://u:s3cret@h:9100/metrics is not UTF-8"),
            "the body from http://u:***@h:9100/metrics is not UTF-8"
        );
        assert_eq!(
            redact_urls("`m` at `ws://u:p@h:9944` and 'https://a:b@c' failed"),
            "`m` at `ws://u:***@h:9944` and 'https://a:***@c' failed"
        );
        assert_eq!(
            redact_urls("Invalid URL 'http://:p@ss@h:1/'"),
            "Invalid URL 'http://:***@h:1/'"
        );
        for unchanged in [
            "no url here",
            "http://h:9100/metrics?user=a@b:c",
            "http://user@h/",
            "trailing ://",
            "empty :///x",
            "ünïcødé http://h/ ✓",
        ] {
            assert_eq!(redact_urls(unchanged), unchanged);
        }
        assert_eq!(redact_urls("x ://u:p@h y"), "x ://u:***@h y");
    }

    #[test]
    fn passwords_are_replaced_and_nothing_else_is() {
        assert_eq!(
            redact_url("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("rediss://:p@ss:word@redis.example:6380/0"),
            "rediss://:***@redis.example:6380/0"
        );
        assert_eq!(redact_url("amqp://127.0.0.1"), "amqp://127.0.0.1");
        assert_eq!(redact_url("amqp://guest@host/"), "amqp://guest@host/");
        assert_eq!(
            redact_url("http://host:9100/metrics?user=a@b:c"),
            "http://host:9100/metrics?user=a@b:c"
        );
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("http://u:p@h"), "http://u:***@h");
    }
}
