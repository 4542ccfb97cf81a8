//! Problems found in a `pipeline.toml`, each with its place in the file, rendered like rustc's.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// One problem, located in the file by a byte range when it has a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Option<Range<usize>>,
    pub message: String,
    pub help: Option<String>,
}

impl Problem {
    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Problem { span: Some(span), message: message.into(), help: None }
    }

    pub fn whole_file(message: impl Into<String>) -> Self {
        Problem { span: None, message: message.into(), help: None }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every problem found in one file, in file order, ready to print.
#[derive(Debug, Clone)]
pub struct Problems {
    /// The file as the user named it (shown in messages).
    pub file: PathBuf,
    /// Its text, for line and column numbers and the quoted line.
    pub text: String,
    pub items: Vec<Problem>,
}

impl Problems {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        for problem in &self.items {
            writeln!(f, "error: {}", problem.message)?;
            match &problem.span {
                Some(span) => {
                    let (line, col) = self.line_col(span.start);
                    let gutter = " ".repeat(line.to_string().len());
                    writeln!(f, "{gutter}--> {file}:{line}:{col}")?;
                    let content = self.text.lines().nth(line - 1).unwrap_or("");
                    // Underline the span, clipped to its first line.
                    let width = self.text[span.clone()].lines().next().map_or(1, |l| l.chars().count().max(1));
                    writeln!(f, "{gutter} |")?;
                    writeln!(f, "{line} | {content}")?;
                    writeln!(f, "{gutter} | {}{}", " ".repeat(col - 1), "^".repeat(width))?;
                    if let Some(help) = &problem.help {
                        writeln!(f, "{gutter} = help: {help}")?;
                    }
                }
                None => {
                    writeln!(f, " --> {file}")?;
                    if let Some(help) = &problem.help {
                        writeln!(f, "  = help: {help}")?;
                    }
                }
            }
            writeln!(f)?;
        }
        let n = self.items.len();
        write!(f, "error: `{file}` has {n} problem{}; nothing was run", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Problems {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_in_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        let at_equals = text.find("= 2").unwrap();
        assert_eq!(line_col(text, at_equals), (2, 4));
    }

    #[test]
    fn renders_location_quote_and_help() {
        let text = "name = \"x\"\ninputs = [\"corelator\"]\n".to_string();
        let start = text.find("\"corelator\"").unwrap();
        let problems = Problems {
            file: "p.toml".into(),
            text: text.clone(),
            items: vec![Problem::at(start..start + 11, "bad input").with_help("did you mean `correlator`?")],
        };
        let shown = problems.to_string();
        assert!(
            shown.contains(
                "error: bad input\n --> p.toml:2:11\n  |\n2 | inputs = [\"corelator\"]\n  |           ^^^^^^^^^^^\n  = \
            help: did you mean `correlator`?"
            ),
            "{shown}"
        );
        assert!(shown.ends_with("error: `p.toml` has 1 problem; nothing was run"));
    }
}
