//! Number and text formatting as metadata-extractor's Java runtime does it, so that the
//! descriptions match its output character for character: `DecimalFormat` patterns such
//! as `0.0##` (with HALF_EVEN or HALF_UP rounding of the exact binary value),
//! `Double.toString` for short decimals, and default-charset string decoding.

/// Rounding mode of a `DecimalFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rounding {
    /// Java's default: ties to the even neighbour.
    HalfEven,
    /// Ties away from zero.
    HalfUp,
}

/// Formats `x` like a Java `DecimalFormat` with one integer digit minimum, between
/// `min_frac` and `max_frac` fraction digits and no grouping (`0.#`, `0.0`, `0.0##`, ...).
///
/// Rounding applies to the exact binary value of `x`, as Java does since version 8: a tie
/// is only a tie when the double is exactly halfway.
pub(crate) fn decimal(x: f64, min_frac: usize, max_frac: usize, rounding: Rounding) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 {
            "-\u{221e}".to_string()
        } else {
            "\u{221e}".to_string()
        };
    }
    let negative = x.is_sign_negative() && x != 0.0;
    let a = x.abs();
    // Rust rounds the exact binary value half-to-even; only exact ties can differ.
    let mut s = format!("{a:.max_frac$}");
    if rounding == Rounding::HalfUp && is_exact_tie(a, max_frac) {
        s = round_tie_up(a, max_frac);
    }
    let s = trim_fraction(&s, min_frac);
    // Java keeps the sign of a negative number that rounds to zero ("-0").
    if negative {
        format!("-{s}")
    } else {
        s
    }
}

/// Whether the exact decimal expansion of `a` has a 5 at fraction digit `digits + 1`
/// followed only by zeros.
fn is_exact_tie(a: f64, digits: usize) -> bool {
    // Cheap filter first: a tie is (close to) an odd multiple of 5 at the next digit.
    let scaled = a * 10f64.powi(digits as i32 + 1);
    let nearest = scaled.round();
    if (scaled - nearest).abs() > 1e-6 * scaled.max(1.0) || nearest % 10.0 != 5.0 {
        return false;
    }
    // Any finite double's exact expansion ends within 1100 fraction digits.
    let exact = format!("{a:.1100}");
    let Some(dot) = exact.find('.') else {
        return false;
    };
    let frac = &exact[dot + 1..];
    let mut chars = frac[digits.min(frac.len())..].chars();
    chars.next() == Some('5') && chars.all(|c| c == '0')
}

/// Rounds an exact tie away from zero: truncate, then add one unit in the last place.
fn round_tie_up(a: f64, digits: usize) -> String {
    let exact = format!("{a:.1100}");
    let dot = exact.find('.').unwrap_or(exact.len());
    let keep = if digits == 0 { dot } else { dot + 1 + digits };
    let mut out: Vec<u8> = exact.as_bytes()[..keep].to_vec();
    // Increment the decimal string, carrying over nines.
    let mut i = out.len();
    loop {
        if i == 0 {
            out.insert(0, b'1');
            break;
        }
        i -= 1;
        match out[i] {
            b'.' => continue,
            b'9' => out[i] = b'0',
            d => {
                out[i] = d + 1;
                break;
            }
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Drops trailing zeros of the fraction down to `min_frac` digits (and the dot if none
/// remain).
fn trim_fraction(s: &str, min_frac: usize) -> String {
    let Some(dot) = s.find('.') else {
        return s.to_string();
    };
    let int = &s[..dot];
    let frac = &s.as_bytes()[dot + 1..];
    let mut len = frac.len();
    while len > min_frac && frac[len - 1] == b'0' {
        len -= 1;
    }
    if len == 0 {
        int.to_string()
    } else {
        format!("{int}.{}", std::str::from_utf8(&frac[..len]).unwrap_or(""))
    }
}

/// `Double.toString` for the values it is used on here (decimals that need few digits):
/// the shortest representation that reads back as the same double, always with a dot.
pub(crate) fn double_to_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 {
            "-Infinity".to_string()
        } else {
            "Infinity".to_string()
        };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e7).contains(&a) {
        // Java switches to computerised scientific notation outside [1e-3, 1e7).
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = if mant.contains('.') {
            mant.to_string()
        } else {
            format!("{mant}.0")
        };
        return format!("{mant}E{exp}");
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Decodes bytes with the default charset of the reference runs (UTF-8), replacing
/// malformed sequences.
pub(crate) fn decode_default(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Java's `String.trim`: strips every character up to U+0020 (controls, NUL, space) from
/// both ends.
pub(crate) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_patterns_follow_java() {
        // 0.#
        assert_eq!(decimal(18.0, 0, 1, Rounding::HalfUp), "18");
        assert_eq!(decimal(5.7, 0, 1, Rounding::HalfUp), "5.7");
        // 0.0 (f-stops)
        assert_eq!(decimal(2.8, 1, 1, Rounding::HalfUp), "2.8");
        assert_eq!(decimal(8.0, 1, 1, Rounding::HalfUp), "8.0");
        // exact ties: HALF_UP goes away from zero, HALF_EVEN to the even digit
        assert_eq!(decimal(2.25, 1, 1, Rounding::HalfUp), "2.3");
        assert_eq!(decimal(2.25, 1, 1, Rounding::HalfEven), "2.2");
        assert_eq!(decimal(9.95, 1, 1, Rounding::HalfUp), "9.9"); // 9.95 is below the tie in binary
        assert_eq!(decimal(9.5, 0, 0, Rounding::HalfUp), "10");
        // 0.0## and the negative zero
        assert_eq!(decimal(5.488, 1, 3, Rounding::HalfEven), "5.488");
        assert_eq!(decimal(-1.0, 1, 3, Rounding::HalfEven), "-1.0");
        assert_eq!(decimal(-0.01, 0, 1, Rounding::HalfEven), "-0");
        assert_eq!(decimal(0.1234, 0, 3, Rounding::HalfEven), "0.123");
    }

    #[test]
    fn double_to_string_matches_java_shapes() {
        assert_eq!(double_to_string(0.5), "0.5");
        assert_eq!(double_to_string(2.0), "2.0");
        assert_eq!(double_to_string(-0.25), "-0.25");
        assert_eq!(double_to_string(1e-4), "1.0E-4");
        assert_eq!(double_to_string(1.5e7), "1.5E7");
    }

    #[test]
    fn trim_strips_nul_and_spaces() {
        assert_eq!(java_trim("\0 ab c \0\0"), "ab c");
    }
}
