//! Descriptions that compute: versions, f-stops, focal lengths, APEX shutter speeds,
//! flash bits, encoded user comments, lens specifications and CFA patterns.

use super::{default_description, get, Dir};
use crate::exif::javafmt::{self, decimal, java_trim, Rounding};
use crate::exif::raw::Raw;

pub(super) fn version(v: &Raw) -> Option<String> {
    let c = v.int_array()?;
    let mut out = String::new();
    for (i, &x) in c.iter().take(4).enumerate() {
        if i == 2 {
            out.push('.');
        }
        // Java: (char) of the int, shifted into the digits when below '0'.
        let mut ch = (x as u32) & 0xFFFF;
        if ch < u32::from(b'0') {
            ch += u32::from(b'0');
        }
        let ch = char::from_u32(ch).unwrap_or('\u{fffd}');
        if i == 0 && ch == '0' {
            continue;
        }
        out.push(ch);
    }
    Some(out)
}

pub(super) fn fstop(f: f64) -> String {
    format!("f/{}", decimal(f, 1, 1, Rounding::HalfUp))
}

pub(super) fn focal_length(mm: f64) -> String {
    format!("{} mm", decimal(mm, 0, 1, Rounding::HalfUp))
}

pub(super) fn shutter_speed(apex: f32) -> String {
    if apex <= 1.0 {
        let power = (1.0 / (f64::from(apex) * std::f64::consts::LN_2).exp()) as f32;
        let power10 = (f64::from(power) * 10.0 + 0.5).floor() as i64;
        let rounded = power10 as f32 / 10.0;
        format!(
            "{} sec",
            decimal(f64::from(rounded), 0, 2, Rounding::HalfUp)
        )
    } else {
        let power = (f64::from(apex) * std::f64::consts::LN_2).exp();
        format!("1/{} sec", (power + 0.5).floor() as i64 as i32)
    }
}

pub(super) fn measured(v: &Raw, min: usize, max: usize, unit: &str) -> Option<String> {
    let r = v.rational()?;
    if r.den == 0xFFFF_FFFF {
        return Some("Unknown".to_string());
    }
    Some(format!(
        "{}{unit}",
        decimal(r.to_f64(), min, max, Rounding::HalfEven)
    ))
}

pub(super) fn flash(f: i32) -> String {
    let mut s = String::from(if f & 0x1 != 0 {
        "Flash fired"
    } else {
        "Flash did not fire"
    });
    if f & 0x4 != 0 {
        s.push_str(if f & 0x2 != 0 {
            ", return detected"
        } else {
            ", return not detected"
        });
    }
    if f & 0x10 != 0 && f & 0x0F != 0 {
        s.push_str(", auto");
    }
    if f & 0x40 != 0 {
        s.push_str(", red-eye reduction");
    }
    s
}

/// User comments: an 8-byte character-code prefix (`ASCII`, `UNICODE`, `JIS`) then text.
pub(super) fn encoded_text(v: &Raw) -> Option<String> {
    let b = v.byte_array()?;
    if b.is_empty() {
        return Some(String::new());
    }
    let decode = |bytes: &[u8], unicode: bool| {
        let s = if unicode {
            utf16le(bytes)
        } else {
            // JIS text is decoded as UTF-8 too: no Shift-JIS decoder is available here.
            javafmt::decode_default(bytes)
        };
        java_trim(&s).to_string()
    };
    if b.len() >= 10 {
        for (code, unicode) in [("ASCII", false), ("UNICODE", true), ("JIS", false)] {
            if b.starts_with(code.as_bytes()) {
                for j in code.len()..10 {
                    if b[j] != 0 && b[j] != b' ' {
                        return Some(decode(&b[j..], unicode));
                    }
                }
                return Some(decode(&b[10..], unicode));
            }
        }
    }
    Some(decode(&b, false))
}

pub(super) fn lens_specification(v: &Raw) -> Option<String> {
    let r = v.rationals()?;
    if r.len() != 4 || (r[0].is_zero() && r[2].is_zero()) {
        return None;
    }
    let mut s = if r[0].same_value(r[1]) {
        format!("{}mm", r[0].simple_string(true))
    } else {
        format!(
            "{}-{}mm",
            r[0].simple_string(true),
            r[1].simple_string(true)
        )
    };
    if !r[2].is_zero() {
        s.push(' ');
        if r[2].same_value(r[3]) {
            s.push_str(&fstop(r[2].to_f64()));
        } else {
            s.push_str(&format!(
                "f/{}-{}",
                decimal(r[2].to_f64(), 1, 1, Rounding::HalfUp),
                decimal(r[3].to_f64(), 1, 1, Rounding::HalfUp)
            ));
        }
    }
    Some(s)
}

/// Exif CFA pattern (0xa302): two 16-bit dimensions, then one colour code per cell.
pub(super) fn decode_cfa(v: &Raw) -> Option<Vec<i32>> {
    let b = v.byte_array()?;
    if b.len() < 4 {
        return Some(b.iter().map(|&x| i32::from(x as i8)).collect());
    }
    let mut out = vec![0i32; b.len() - 2];
    let read = |big: bool, i: usize| {
        let pair = [b[i], b[i + 1]];
        i32::from(if big {
            i16::from_be_bytes(pair)
        } else {
            i16::from_le_bytes(pair)
        })
    };
    // The reference reads with the file's byte order, then tries the other one; a pattern
    // that fits either way is read big-endian first, which is what Motorola files use.
    for big in [true, false] {
        let (w, h) = (read(big, 0), read(big, 2));
        if 2 + i64::from(w) * i64::from(h) <= b.len() as i64 {
            out[0] = w;
            out[1] = h;
            for i in 4..b.len() {
                out[i - 2] = i32::from(b[i] as i8);
            }
            return Some(out);
        }
    }
    Some(out)
}

pub(super) fn cfa_pattern_2(dir: &Dir, v: &Raw) -> Option<String> {
    let values = v.byte_array()?;
    let Some(dim) = get(dir, 0x828d).and_then(Raw::int_array) else {
        return Some(format!(
            "Repeat Pattern not found for CFAPattern ({})",
            default_description(v)
        ));
    };
    if dim.len() == 2 && values.len() as i64 == i64::from(dim[0]) * i64::from(dim[1]) {
        let mut p = vec![dim[0], dim[1]];
        p.extend(values.iter().map(|&b| i32::from(b)));
        return format_cfa(Some(p));
    }
    Some(format!("Unknown Pattern ({})", default_description(v)))
}

pub(super) fn format_cfa(pattern: Option<Vec<i32>>) -> Option<String> {
    let p = pattern?;
    if p.len() < 2 {
        return Some("<truncated data>".to_string());
    }
    if p[0] == 0 && p[1] == 0 {
        return Some("<zero pattern size>".to_string());
    }
    let end = 2 + i64::from(p[0]) * i64::from(p[1]);
    if end > p.len() as i64 || end < 2 {
        return Some("<invalid pattern size>".to_string());
    }
    const COLOURS: [&str; 7] = ["Red", "Green", "Blue", "Cyan", "Magenta", "Yellow", "White"];
    let end = end as usize;
    let mut s = String::from("[");
    for pos in 2..end {
        let c = p[pos];
        s.push_str(if (0..COLOURS.len() as i32).contains(&c) {
            COLOURS[c as usize]
        } else {
            "Unknown"
        });
        if p[1] != 0 && (pos as i32 - 2) % p[1] == 0 {
            s.push(',');
        } else if pos != end - 1 {
            s.push_str("][");
        }
    }
    s.push(']');
    Some(s)
}

/// UTF-16LE text; an odd last byte becomes a replacement character, as in Java.
pub(super) fn utf16le(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| match c {
            [lo, hi] => u16::from_le_bytes([*lo, *hi]),
            _ => 0xFFFD,
        })
        .collect();
    String::from_utf16_lossy(&units)
}
