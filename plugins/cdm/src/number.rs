//! Numbers as a CDM writes them: at most 16 significant digits, the same text for the same value on every machine.
//!
//! Why not `{}`: Rust prints the shortest text that reads back as the same `f64`, which takes 17 significant digits
//! for some values (0.1 + 0.2 is `0.30000000000000004`). CCSDS 508.0-B-1 does not bound the digits of a real value,
//! but receivers commonly read them into a double through a 16-digit format, and this operator writes at most 16:
//! the shortest text that reads back exactly when it has 16 digits or fewer (nearly always), else the value rounded
//! to 16 significant digits (`{:.15e}`, exactly rounded, so the text does not depend on the platform).

/// `value` with at most 16 significant digits: fixed notation for exponents -3 to 15 (`27.4`, `-14692`, `0.0025`),
/// otherwise `d.dddE±XX` as in the standard's example (`4.835E-05`). Zero (either sign) is `0`.
///
/// Panics on a value that is not finite: the CDM has no spelling for one, and callers check first.
pub fn format_real(value: f64) -> String {
    assert!(value.is_finite(), "a CDM value must be finite, not {value}");
    if value == 0.0 {
        return "0".to_string();
    }
    // The shortest text that reads back as `value` ("-d.ddde-N"), when it has at most 16 significant digits (as
    // -8.579 does, whose 16-digit rounding is -8.579000000000001); otherwise the value rounded to 16 significant
    // digits (exactly rounded by Rust, so the same on every platform).
    let shortest = format!("{value:e}");
    let shortest_digits = shortest.split('e').next().map_or(0, |m| m.chars().filter(char::is_ascii_digit).count());
    let scientific = if shortest_digits <= 16 { shortest } else { format!("{value:.15e}") };
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes an integer exponent");
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };

    if (-3..=15).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{text}")
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{first}{fraction}E{exponent_sign}{:02}", exponent.abs())
    }
}

/// The value `value` takes once written by [`format_real`] and read back: what a receiver of the CDM sees.
pub fn as_written(value: f64) -> f64 {
    format_real(value).parse().expect("format_real writes a number Rust reads")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn significant_digits(text: &str) -> usize {
        let mantissa = text.split(['E', 'e']).next().unwrap();
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        digits.trim_start_matches('0').trim_end_matches('0').len().max(1)
    }

    #[test]
    fn values_are_written_as_in_the_standards_example() {
        // CCSDS 508.0-B-1's example CDM writes `715`, `27.4`, `-14692.0`, `4.835E-05`, `2.520E-03`.
        assert_eq!(format_real(715.0), "715");
        assert_eq!(format_real(27.4), "27.4");
        assert_eq!(format_real(-14692.0), "-14692");
        assert_eq!(format_real(4.835e-5), "4.835E-05");
        assert_eq!(format_real(2.52e-3), "0.00252");
        assert_eq!(format_real(-0.0), "0");
        assert_eq!(format_real(1e16), "1E+16");
        assert_eq!(format_real(1e300), "1E+300");
        assert_eq!(format_real(-2.5e-300), "-2.5E-300");
    }

    #[test]
    fn a_value_needing_17_digits_is_rounded_to_16() {
        let value = 0.1 + 0.2;
        assert_eq!(value.to_string(), "0.30000000000000004", "Rust's own printing takes 17 digits here");
        assert_eq!(format_real(value), "0.3");
        assert_eq!(format_real(5102.508957900001), "5102.508957900001");
        assert_eq!(format_real(1.0 / 3.0), "0.3333333333333333");
        // Its 16-digit rounding would be -8.579000000000001: the shortest exact text is kept when it fits.
        assert_eq!(format_real(-8.579), "-8.579");
    }

    proptest! {
        #[test]
        fn at_most_16_significant_digits_and_reads_back_within_one_part_in_1e15(bits in any::<u64>()) {
            let value = f64::from_bits(bits);
            prop_assume!(value.is_finite());
            let text = format_real(value);
            prop_assert!(significant_digits(&text) <= 16, "{text} has more than 16 significant digits");
            let back: f64 = text.parse().unwrap();
            if value == 0.0 {
                prop_assert_eq!(back, 0.0);
            } else if value.abs() >= f64::MIN_POSITIVE {
                prop_assert!(((back - value) / value).abs() <= 1e-15, "{value:e} written {text}, read back {back:e}");
            } else {
                // Subnormals have fewer than 16 significant digits of their own: the rounding is absolute there.
                prop_assert!((back - value).abs() <= 1e-15 * f64::MIN_POSITIVE, "{value:e} written {text}, read back {back:e}");
            }
            prop_assert_eq!(format_real(back), text.clone(), "writing is idempotent: the written value writes the same");
        }

        #[test]
        fn ordinary_values_use_fixed_notation(value in -1.0e12f64..1.0e12) {
            prop_assume!(value.abs() >= 1e-3 || value == 0.0);
            let text = format_real(value);
            prop_assert!(!text.contains('E'), "{text}");
        }
    }
}
