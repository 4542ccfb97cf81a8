//! librdkafka properties checked the way librdkafka itself checks them: the name and value by `rd_kafka_conf_set`, the client kind by its own table of properties.
//!
//! Without this, a misspelt property failed only at `run`, and one meant for the
//! other kind of client (a producer's `linger.ms` under a source) was dropped
//! with a warning the default log level hides.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Which kind of client a `librdkafka` table configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A source's consumer.
    Consumer,
    /// A sink's or the DLQ's producer.
    Producer,
}

impl Client {
    fn as_str(self) -> &'static str {
        match self {
            Client::Consumer => "consumer",
            Client::Producer => "producer",
        }
    }
}

/// Where librdkafka's table says a property applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Consumer,
    Producer,
    Both,
}

/// `Err` says, in librdkafka's words where it has them, why `key = value` does not configure a
/// `client`: an unknown property, a value out of its range or of the wrong kind, or a property
/// of the other kind of client.
pub fn check(client: Client, key: &str, value: &str) -> Result<(), String> {
    let mut config = rdkafka::ClientConfig::new();
    config.set(key, value);
    if let Err(e) = config.create_native_config() {
        return Err(match e {
            rdkafka::error::KafkaError::ClientConfig(_, description, _, _) => description,
            other => other.to_string(),
        });
    }
    let scope = scopes().get(key).copied().unwrap_or(Scope::Both);
    match (client, scope) {
        (Client::Consumer, Scope::Producer) | (Client::Producer, Scope::Consumer) => Err(format!(
            "`{key}` is a property of librdkafka's {} clients; this table configures a {}, which would ignore it",
            match scope {
                Scope::Producer => "producer",
                _ => "consumer",
            },
            client.as_str()
        )),
        _ => Ok(()),
    }
}

/// librdkafka's table of properties (what `rd_kafka_conf_properties_show` prints), read once.
fn scopes() -> &'static HashMap<String, Scope> {
    static SCOPES: OnceLock<HashMap<String, Scope>> = OnceLock::new();
    SCOPES.get_or_init(|| parse_table(&properties_table()))
}

/// The text `rd_kafka_conf_properties_show` writes (Markdown tables), through a temporary file.
fn properties_table() -> String {
    // SAFETY: a FILE from tmpfile, written by librdkafka, read back and closed here; nothing else
    // holds it. A null FILE (no temporary file could be made) leaves the table empty: then no
    // property is refused for its client kind, and librdkafka still checks names and values.
    unsafe {
        let file = libc::tmpfile();
        if file.is_null() {
            return String::new();
        }
        rdkafka::bindings::rd_kafka_conf_properties_show(file);
        libc::fflush(file);
        libc::rewind(file);
        let mut text = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = libc::fread(chunk.as_mut_ptr().cast(), 1, chunk.len(), file);
            if n == 0 {
                break;
            }
            text.extend_from_slice(&chunk[..n]);
        }
        libc::fclose(file);
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// Rows `name | C/P | range | default | importance | description` of both tables (global and topic).
fn parse_table(text: &str) -> HashMap<String, Scope> {
    let mut scopes = HashMap::new();
    for line in text.lines() {
        let mut cells = line.split('|').map(str::trim);
        let (Some(name), Some(scope)) = (cells.next(), cells.next()) else { continue };
        let scope = match scope {
            "C" => Scope::Consumer,
            "P" => Scope::Producer,
            "*" => Scope::Both,
            _ => continue,
        };
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
            scopes.insert(name.to_string(), scope);
        }
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafkas_own_table_is_read() {
        let scopes = scopes();
        assert!(scopes.len() > 100, "{} properties", scopes.len());
        assert_eq!(scopes.get("linger.ms"), Some(&Scope::Producer));
        assert_eq!(scopes.get("fetch.min.bytes"), Some(&Scope::Consumer));
        assert_eq!(scopes.get("auto.offset.reset"), Some(&Scope::Consumer), "topic properties too");
        assert_eq!(scopes.get("socket.timeout.ms"), Some(&Scope::Both));
    }

    #[test]
    fn names_values_and_client_kinds_are_checked() {
        assert_eq!(check(Client::Consumer, "session.timeout.ms", "6000"), Ok(()));
        assert_eq!(check(Client::Producer, "linger.ms", "5"), Ok(()));
        assert_eq!(check(Client::Producer, "socket.timeout.ms", "5000"), Ok(()));
        let unknown = check(Client::Consumer, "sesion.timeout.ms", "6000").unwrap_err();
        assert!(unknown.contains("No such configuration property"), "{unknown}");
        let bad_value = check(Client::Producer, "linger.ms", "soon").unwrap_err();
        assert!(bad_value.contains("Invalid value"), "{bad_value}");
        let misplaced = check(Client::Consumer, "linger.ms", "5").unwrap_err();
        assert!(
            misplaced.contains("property of librdkafka's producer clients") && misplaced.contains("configures a consumer"),
            "{misplaced}"
        );
        assert!(check(Client::Producer, "fetch.min.bytes", "1").is_err());
    }
}
