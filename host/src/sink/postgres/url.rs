//! The connection string: checked when the pipeline is validated, its password hidden wherever it is shown.

use super::sqlstate::describe;
use tokio_postgres::Config;

/// Why `url` is not a connection string tokio-postgres accepts, if it is not. Nothing is connected.
pub fn check_url(url: &str) -> Result<(), String> {
    if let Some((scheme, _)) = url.split_once("://")
        && scheme != "postgres"
        && scheme != "postgresql"
    {
        return Err(format!("its scheme is `{scheme}`, not `postgres`"));
    }
    url.parse::<Config>().map(drop).map_err(|e| describe(&e))
}

/// The connection string as it may be shown: the password of a URL
/// (`postgres://user:password@host/db`), of a `password=` query parameter, or of a `password=`
/// key/value pair replaced by `***`. The URL split follows tokio-postgres's own parser (user
/// information runs to the first `@`), so what it takes for the password is what is hidden.
pub fn redact_url(url: &str) -> String {
    for scheme in ["postgres://", "postgresql://"] {
        let Some(rest) = url.strip_prefix(scheme) else { continue };
        let (userinfo, rest) = match rest.split_once('@') {
            Some((userinfo, rest)) => match userinfo.split_once(':') {
                Some((user, _password)) => (format!("{user}:***@"), rest),
                None => (format!("{userinfo}@"), rest),
            },
            None => (String::new(), rest),
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let query = query.map(|q| {
            let params: Vec<String> = q
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => param.to_string(),
                })
                .collect();
            format!("?{}", params.join("&"))
        });
        return format!("{scheme}{userinfo}{path}{}", query.unwrap_or_default());
    }
    redact_key_values(url)
}

/// `host=h password='s e' user=u` -> `host=h password=*** user=u`, reading values as libpq does
/// (single quotes, backslash escapes). Text it cannot read is hidden whole.
fn redact_key_values(text: &str) -> String {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            out.push("***".into());
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            while let Some(c) = chars.next() {
                value.push(c);
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    _ => {}
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
                if c == '\\' {
                    value.extend(chars.next());
                }
            }
        }
        if key == "password" {
            value = "***".into();
        }
        out.push(format!("{key}={value}"));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://u:secret@127.0.0.1:1/test"), "postgres://u:***@127.0.0.1:1/test");
        assert_eq!(redact_url("postgresql://u@h/db?password=secret&sslmode=disable"), "postgresql://u@h/db?password=***&sslmode=disable");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("postgres://u:se/cr?et@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("host=h password=secret user=u"), "host=h password=*** user=u");
        assert_eq!(redact_url("host=h password = 'se cr\\'et' user=u"), "host=h password=*** user=u");
        assert!(!redact_url("host=h secret").contains("secret"));
    }
}
