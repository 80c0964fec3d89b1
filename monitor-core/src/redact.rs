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

#[cfg(test)]
mod tests {
    use super::redact_url;

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
