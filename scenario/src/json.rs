//! A strict RFC 8259 JSON reader that keeps every number as its literal text.
//!
//! The observation rules in `plugins/SEMANTICS.md` are partly lexical ("a JSON integer literal (no
//! `.`, `e` or `E`)") and partly about the value a number has "when read as a 64-bit float" (so
//! `1e400` is valid JSON that fails validation, not a parse error). A generic JSON library either
//! loses the literal or refuses out-of-range numbers, so the reference reads JSON itself.
//!
//! The parser is iterative (an explicit stack), so deeply nested input cannot overflow the call
//! stack. Strings must be valid Unicode: a `\u` escape naming a lone surrogate is refused, since it
//! cannot be decoded to a string (serde_json refuses it too).

/// A parsed JSON value. Numbers keep their exact literal text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The literal, exactly as written (it matches the JSON number grammar).
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Members in input order; a repeated name is kept every time it appears.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The value of member `name` of an object. If the name appears more than once, the last one
    /// counts (as SEMANTICS.md says). `None` for a missing member or a non-object.
    pub fn member(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value),
            _ => None,
        }
    }

    /// A short name of the value's JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

// Dropping nested values recursively could overflow the stack on hostile input (the parser
// itself is iterative), so children are moved onto a heap worklist and dropped one level at a time.
impl Drop for Json {
    fn drop(&mut self) {
        let mut pending = Vec::new();
        move_children(self, &mut pending);
        while let Some(mut value) = pending.pop() {
            move_children(&mut value, &mut pending);
        }
    }
}

fn move_children(value: &mut Json, into: &mut Vec<Json>) {
    match value {
        Json::Array(items) => into.append(items),
        Json::Object(members) => into.extend(std::mem::take(members).into_iter().map(|(_, member)| member)),
        _ => {}
    }
}

/// Why a text is not valid JSON, and the byte offset where that became clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub message: &'static str,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// Parses one complete JSON text (surrounding whitespace allowed, nothing else).
pub fn parse(text: &str) -> Result<Json, JsonError> {
    Parser { bytes: text.as_bytes(), text, pos: 0 }.parse_document()
}

/// An open container while its elements are being read.
enum Frame {
    Array(Vec<Json>),
    /// The members so far and the name of the member whose value is being read.
    Object(Vec<(String, Json)>, String),
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error<T>(&self, message: &'static str) -> Result<T, JsonError> {
        Err(JsonError { offset: self.pos, message })
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn parse_document(mut self) -> Result<Json, JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            self.skip_whitespace();
            let mut value = match self.peek() {
                None => return self.error("unexpected end of input, expected a value"),
                Some(b'{') => {
                    self.pos += 1;
                    self.skip_whitespace();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Json::Object(Vec::new())
                    } else {
                        let name = self.parse_member_name()?;
                        stack.push(Frame::Object(Vec::new(), name));
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_whitespace();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        Json::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                }
                Some(b'"') => Json::String(self.parse_string()?),
                Some(b't') => self.parse_literal("true", Json::Bool(true))?,
                Some(b'f') => self.parse_literal("false", Json::Bool(false))?,
                Some(b'n') => self.parse_literal("null", Json::Null)?,
                Some(b'-' | b'0'..=b'9') => Json::Number(self.parse_number()?),
                Some(_) => return self.error("expected a value"),
            };
            // A value is complete: hand it to its container, closing containers as they end.
            loop {
                match stack.last_mut() {
                    None => {
                        self.skip_whitespace();
                        if self.pos != self.bytes.len() {
                            return self.error("trailing characters after the value");
                        }
                        return Ok(value);
                    }
                    Some(Frame::Array(items)) => {
                        items.push(value);
                        self.skip_whitespace();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                continue 'value;
                            }
                            Some(b']') => {
                                self.pos += 1;
                                let Some(Frame::Array(items)) = stack.pop() else { unreachable!() };
                                value = Json::Array(items);
                            }
                            None => return self.error("unexpected end of input in an array"),
                            Some(_) => return self.error("expected `,` or `]` in an array"),
                        }
                    }
                    Some(Frame::Object(members, name)) => {
                        members.push((std::mem::take(name), value));
                        self.skip_whitespace();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_whitespace();
                                let next = self.parse_member_name()?;
                                if let Some(Frame::Object(_, name)) = stack.last_mut() {
                                    *name = next;
                                }
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.pos += 1;
                                let Some(Frame::Object(members, _)) = stack.pop() else { unreachable!() };
                                value = Json::Object(members);
                            }
                            None => return self.error("unexpected end of input in an object"),
                            Some(_) => return self.error("expected `,` or `}` in an object"),
                        }
                    }
                }
            }
        }
    }

    /// `"name"` followed by `:` (whitespace allowed around the colon).
    fn parse_member_name(&mut self) -> Result<String, JsonError> {
        if self.peek() != Some(b'"') {
            return self.error("expected a member name in double quotes");
        }
        let name = self.parse_string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return self.error("expected `:` after a member name");
        }
        self.pos += 1;
        Ok(name)
    }

    fn parse_literal(&mut self, word: &'static str, value: Json) -> Result<Json, JsonError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            self.error("invalid literal")
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, returned as written.
    fn parse_number(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return self.error("invalid number: expected a digit"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.error("invalid number: expected a digit after `.`");
            }
            self.skip_digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.error("invalid number: expected a digit in the exponent");
            }
            self.skip_digits();
        }
        Ok(self.text[start..self.pos].to_string())
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// A string starting at the opening quote; returns its decoded content.
    fn parse_string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        let mut run_start = self.pos;
        loop {
            let Some(byte) = self.peek() else {
                return self.error("unexpected end of input in a string");
            };
            match byte {
                b'"' => {
                    out.push_str(&self.text[run_start..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.text[run_start..self.pos]);
                    self.pos += 1;
                    self.parse_escape(&mut out)?;
                    run_start = self.pos;
                }
                0x00..=0x1f => return self.error("control character in a string"),
                // Multi-byte UTF-8 sequences are copied as they are: the input is a `&str`.
                _ => self.pos += 1,
            }
        }
    }

    fn parse_escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let Some(byte) = self.peek() else {
            return self.error("unexpected end of input in an escape");
        };
        self.pos += 1;
        let decoded = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.parse_hex4()?;
                match first {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return self.error("lone leading surrogate in a \\u escape");
                        }
                        self.pos += 2;
                        let second = self.parse_hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return self.error("invalid trailing surrogate in a \\u escape");
                        }
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        char::from_u32(code).expect("a surrogate pair decodes to a scalar value")
                    }
                    0xDC00..=0xDFFF => return self.error("lone trailing surrogate in a \\u escape"),
                    code => char::from_u32(code).expect("a non-surrogate code point is a scalar value"),
                }
            }
            _ => {
                self.pos -= 1;
                return self.error("invalid escape");
            }
        };
        out.push(decoded);
        Ok(())
    }

    fn parse_hex4(&mut self) -> Result<u32, JsonError> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            return self.error("unexpected end of input in a \\u escape");
        };
        let mut code = 0u32;
        for &digit in digits {
            let value = match digit {
                b'0'..=b'9' => digit - b'0',
                b'a'..=b'f' => digit - b'a' + 10,
                b'A'..=b'F' => digit - b'A' + 10,
                _ => return self.error("invalid hex digit in a \\u escape"),
            };
            code = code * 16 + u32::from(value);
        }
        self.pos += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Json {
        Json::Number(s.to_string())
    }

    #[test]
    fn parses_nested_values_keeping_number_literals() {
        let value = parse(r#" {"a":[1, -0, 2.50, 1E+3, 1e400], "b":{"c":null,"d":true,"e":false}, "s":"x\u00e9\n"} "#).unwrap();
        assert_eq!(value.member("a"), Some(&Json::Array(vec![num("1"), num("-0"), num("2.50"), num("1E+3"), num("1e400")])));
        assert_eq!(value.member("b").and_then(|b| b.member("d")), Some(&Json::Bool(true)));
        assert_eq!(value.member("s"), Some(&Json::String("xé\n".into())));
    }

    #[test]
    fn last_duplicate_member_wins() {
        let value = parse(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(value.member("a"), Some(&num("2")));
    }

    #[test]
    fn surrogate_pairs_decode_and_lone_surrogates_are_refused() {
        assert_eq!(parse(r#""\ud83d\ude00""#).unwrap(), Json::String("😀".into()));
        assert!(parse(r#""\ud83d""#).is_err());
        assert!(parse(r#""\ude00""#).is_err());
    }

    #[test]
    fn rejects_what_rfc_8259_rejects() {
        for bad in [
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "{\"a\":1,}",
            "{'a':1}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "NaN",
            "Infinity",
            "tru",
            "nul",
            "\"abc",
            "\"a\tb\"",
            "\"\\x\"",
            "[1 2]",
            "{\"a\" 1}",
            "{\"a\":1}}",
            "1 2",
            "{\"a\":[1,,2]}",
            "[",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let depth = 200_000;
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse(&text).is_ok());
        let unbalanced = "[".repeat(depth);
        assert!(parse(&unbalanced).is_err());
    }
}
