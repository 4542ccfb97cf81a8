//! Numbers and words as the CLI prints them.

/// `n` with its thousands separated by commas: `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The plural ending for `n` things.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
