//! Table and column names a sink writes to: checked when the pipeline is validated, always double-quoted in SQL.

/// Longest PostgreSQL identifier (NAMEDATALEN - 1); longer names are silently truncated by the
/// server, which would make the sink write to a table other than the one named.
const MAX_IDENT_BYTES: usize = 63;

/// Why `table` cannot name a sink's table, if it cannot (checked when the pipeline is validated).
pub fn check_table_name(table: &str) -> Result<(), String> {
    Table::parse(table).map(drop)
}

/// Why `column` cannot be a sink's key column, if it cannot.
pub fn check_key_column(column: &str) -> Result<(), String> {
    let key = Ident::parse(column)?;
    if key.0 == "payload" || key.0 == "delivered_at" {
        return Err("the sink's table already has a column of that name".into());
    }
    Ok(())
}

/// A checked identifier: ASCII letters, digits and `_`, 1 to 63 bytes. Always double-quoted in SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ident(pub(super) String);

impl Ident {
    pub(super) fn parse(name: &str) -> Result<Ident, String> {
        if name.is_empty() {
            return Err("it is empty".into());
        }
        if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
            return Err(format!("it contains {c:?}; only ASCII letters, digits and `_` are allowed"));
        }
        if name.len() > MAX_IDENT_BYTES {
            return Err(format!("it is {} bytes long; PostgreSQL names hold at most {MAX_IDENT_BYTES}", name.len()));
        }
        Ok(Ident(name.to_string()))
    }

    /// Safe to splice into SQL: the characters were checked, none of them is a quote.
    pub(super) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

/// A checked table name, optionally schema-qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Table {
    schema: Option<Ident>,
    name: Ident,
    /// As configured, for messages.
    pub(super) display: String,
}

impl Table {
    pub(super) fn parse(text: &str) -> Result<Table, String> {
        let (schema, name) = match text.split_once('.') {
            Some((schema, name)) => {
                if name.contains('.') {
                    return Err("it has more than one `.`; write `schema.table` or `table`".into());
                }
                (Some(Ident::parse(schema).map_err(|e| format!("its schema part: {e}"))?), name)
            }
            None => (None, text),
        };
        let name = Ident::parse(name).map_err(|e| if schema.is_some() { format!("its table part: {e}") } else { e })?;
        Ok(Table { schema, name, display: text.to_string() })
    }

    pub(super) fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", schema.quoted(), self.name.quoted()),
            None => self.name.quoted(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked_and_quoted() {
        assert_eq!(Table::parse("alerts").unwrap().quoted(), "\"alerts\"");
        assert_eq!(Table::parse("sda.Alerts_2").unwrap().quoted(), "\"sda\".\"Alerts_2\"");
        for bad in ["", "alerts; DROP TABLE x", "a.b.c", ".alerts", "alerts.", "al\"erts", "al-erts", "ålerts", "a b"] {
            assert!(Table::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Ident::parse(&"a".repeat(63)).is_ok());
        assert!(Ident::parse(&"a".repeat(64)).is_err(), "would be truncated by the server");
        assert!(Ident::parse("alert_id").is_ok());
        assert!(Ident::parse("alert.id").is_err());
    }
}
