//! Human-readable descriptions of IFD0 / Exif sub-IFD values, written the way
//! metadata-extractor's `ExifDescriptorBase` writes them: `1/60 sec`, `f/2.8`, `18 mm`,
//! `Aperture priority`, `Flash fired, return detected`...
//!
//! Each rule reads the value through the same type conversions as metadata-extractor (see
//! `raw`), so a value of an unexpected type gives the same fallback (often no
//! description at all, which the reference prints as an empty value). `tables` holds the
//! code -> text lists, `values` the descriptions that compute.

mod tables;
mod values;

use super::javafmt::{decimal, java_trim, Rounding};
use super::raw::{Rational, Raw};
use values::*;

/// The tags of one IFD, in file order.
pub(crate) type Dir = [(u16, Raw)];

/// The value of tag `id` (the last one when the IFD repeats it, as the reference keeps).
fn get(dir: &Dir, id: u16) -> Option<&Raw> {
    dir.iter().rev().find(|(i, _)| *i == id).map(|(_, v)| v)
}

/// The description of tag `id` in `dir`; `None` where metadata-extractor has none.
pub(crate) fn describe(dir: &Dir, id: u16) -> Option<String> {
    let v = get(dir, id)?;
    if let Some((base, names)) = tables::indexed_names(id) {
        return indexed(v, base, names);
    }
    match id {
        0x0001 => {
            let s = v.string();
            Some(if java_trim(&s).eq_ignore_ascii_case("R98") {
                "Recommended Exif Interoperability Rules (ExifR98)".to_string()
            } else {
                format!("Unknown ({s})")
            })
        }
        0x0002 | 0x9000 | 0xa000 => version(v),
        0x0100 | 0x0101 => Some(format!("{} pixels", v.string())),
        0x0102 => Some(format!("{} bits/component/pixel", v.string())),
        0x0103 => v.integer().map(tables::compression),
        0x0106 => v.integer().map(tables::photometric),
        0x0115 => Some(format!("{} samples/pixel", v.string())),
        0x0116 => Some(format!("{} rows/strip", v.string())),
        0x0117 => Some(format!("{} bytes", v.string())),
        0x011a | 0x011b => {
            let r = v.rational()?;
            let unit = resolution_unit(dir).map(|u| u.to_lowercase());
            Some(format!(
                "{} dots per {}",
                r.simple_string(true),
                unit.as_deref().unwrap_or("unit")
            ))
        }
        0x0128 => resolution_unit(dir),
        0x0153 => Some(
            v.int_array()?
                .into_iter()
                .map(tables::sample_format)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        0x0200 => v.integer().map(|p| match p {
            1 => "Baseline".to_string(),
            14 => "Lossless".to_string(),
            _ => format!("Unknown ({p})"),
        }),
        0x0212 => {
            let p = v.int_array()?;
            let name = match p.get(..2)? {
                [2, 1] => "YCbCr4:2:2",
                [2, 2] => "YCbCr4:2:0",
                _ => "(Unknown)",
            };
            Some(name.to_string())
        }
        0x0214 => {
            let p = v.int_array()?;
            let p = p.get(..6)?;
            Some(format!(
                "[{},{},{}] [{},{},{}]",
                p[0], p[2], p[4], p[1], p[3], p[5]
            ))
        }
        0x828e => cfa_pattern_2(dir, v),
        0x829a => Some(format!("{} sec", v.string())),
        0x829d => v.rational().map(|r| fstop(r.to_f64())),
        0x8827 => v.integer().map(|i| i.to_string()),
        0x9101 => {
            let names = tables::COMPONENTS;
            let c = v.int_array()?;
            let valid = |j: &&i32| **j > 0 && (**j as usize) < names.len();
            Some(
                c.iter()
                    .take(4)
                    .filter(valid)
                    .map(|&j| names[j as usize])
                    .collect(),
            )
        }
        0x9102 => {
            let r = v.rational()?;
            let unit = if r.is_integer() && r.int_value() == 1 {
                "bit"
            } else {
                "bits"
            };
            Some(format!("{} {unit}/pixel", r.simple_string(true)))
        }
        0x9201 => v.float().map(shutter_speed),
        0x9202 | 0x9205 => v.double().map(|a| fstop(std::f64::consts::SQRT_2.powf(a))),
        0x9203 => {
            let r = v.rational()?;
            if r.num == 0xFFFF_FFFF {
                return Some("Unknown".to_string());
            }
            Some(decimal(r.to_f64(), 1, 3, Rounding::HalfEven))
        }
        0x9204 => v
            .rational()
            .map(|r| format!("{} EV", r.simple_string(true))),
        0x9206 => {
            let r = v.rational()?;
            Some(match r.num {
                0xFFFF_FFFF => "Infinity".to_string(),
                0 => "Unknown".to_string(),
                _ => format!("{} metres", decimal(r.to_f64(), 1, 3, Rounding::HalfEven)),
            })
        }
        0x9207 => v.integer().map(tables::metering_mode),
        0x9208 => v.integer().map(tables::white_balance),
        0x9209 => v.integer().map(flash),
        0x920a => v.rational().map(|r| focal_length(r.to_f64())),
        0x9286 => encoded_text(v),
        0x9400 => measured(v, 1, 1, " \u{b0}C"),
        0x9401 => measured(v, 1, 1, " %"),
        0x9402 => measured(v, 1, 1, " hPa"),
        0x9403 => measured(v, 1, 3, " metres"),
        0x9404 => measured(v, 1, 3, " mGal"),
        0x9405 => measured(v, 0, 2, " degrees"),
        0x9c9b..=0x9c9f => Some(java_trim(&utf16le(&v.byte_array()?)).to_string()),
        0xa001 => v.integer().map(|c| match c {
            1 => "sRGB".to_string(),
            65535 => "Undefined".to_string(),
            _ => format!("Unknown ({c})"),
        }),
        0xa002 | 0xa003 => v.integer().map(|i| format!("{i} pixels")),
        0xa20e | 0xa20f => {
            let r = v.rational()?;
            let unit = focal_plane_unit(dir).map(|u| format!(" {}", u.to_lowercase()));
            let reciprocal = Rational {
                num: r.den,
                den: r.num,
            };
            Some(format!(
                "{}{}",
                reciprocal.simple_string(true),
                unit.unwrap_or_default()
            ))
        }
        0xa210 => focal_plane_unit(dir),
        0xa302 => format_cfa(decode_cfa(v)),
        0xa404 => {
            let r = v.rational()?;
            Some(if r.num == 0 {
                "Digital zoom not used".to_string()
            } else {
                decimal(r.to_f64(), 0, 1, Rounding::HalfEven)
            })
        }
        0xa405 => v.integer().map(|i| {
            if i == 0 {
                "Unknown".to_string()
            } else {
                focal_length(f64::from(i))
            }
        }),
        0xa432 => lens_specification(v),
        _ => Some(default_description(v)),
    }
}

/// `TagDescriptor.getDescription`: long arrays as `[N values]`, otherwise the raw string.
pub(crate) fn default_description(v: &Raw) -> String {
    match v.array_len() {
        Some(n) if n > 16 => format!("[{n} values]"),
        _ => v.string(),
    }
}

/// The name at position `value - base`; `Unknown (value)` outside the list or in a gap.
fn indexed(v: &Raw, base: i64, names: &[&str]) -> Option<String> {
    let index = v.long()?;
    let name = usize::try_from(index.wrapping_sub(base))
        .ok()
        .and_then(|i| names.get(i));
    Some(match name {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => format!("Unknown ({index})"),
    })
}

fn resolution_unit(dir: &Dir) -> Option<String> {
    indexed(get(dir, 0x0128)?, 1, tables::RESOLUTION_UNIT)
}

fn focal_plane_unit(dir: &Dir) -> Option<String> {
    indexed(get(dir, 0xa210)?, 1, tables::FOCAL_PLANE_UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(id: u16, v: Raw) -> Option<String> {
        describe(&[(id, v)], id)
    }

    fn r(num: i64, den: i64) -> Rational {
        Rational { num, den }
    }

    #[test]
    fn versions_from_ascii_digits_or_small_numbers() {
        assert_eq!(
            one(0x9000, Raw::Bytes(b"0232".to_vec())).as_deref(),
            Some("2.32")
        );
        assert_eq!(
            one(0xa000, Raw::Bytes(vec![0, 1, 0, 0])).as_deref(),
            Some("1.00")
        );
        assert_eq!(
            one(0xa000, Raw::Bytes(vec![8, 9, 10, 11])).as_deref(),
            Some("89.:;")
        );
    }

    #[test]
    fn flash_bits() {
        let f = |x| one(0x9209, Raw::Int(x)).unwrap();
        assert_eq!(f(0), "Flash did not fire");
        assert_eq!(f(0x10), "Flash did not fire");
        assert_eq!(f(0x0f), "Flash fired, return detected");
        assert_eq!(
            f(0x5d),
            "Flash fired, return not detected, auto, red-eye reduction"
        );
        assert_eq!(f(0x41), "Flash fired, red-eye reduction");
    }

    #[test]
    fn indexed_values_outside_the_list_or_in_a_gap_are_unknown() {
        assert_eq!(
            one(0xa217, Raw::Int(2)).as_deref(),
            Some("One-chip color area sensor")
        );
        assert_eq!(one(0xa217, Raw::Int(6)).as_deref(), Some("Unknown (6)"));
        assert_eq!(one(0x8822, Raw::Int(0)).as_deref(), Some("Unknown (0)"));
        assert_eq!(
            one(0xa409, Raw::Int(65535)).as_deref(),
            Some("Unknown (65535)")
        );
        // A multi-value entry has no single index: no description.
        assert_eq!(one(0x0112, Raw::Ints(vec![1, 2])), None);
    }

    #[test]
    fn resolutions_use_the_unit_of_the_same_directory() {
        let dir = [(0x011a, Raw::Rational(r(72, 1))), (0x0128, Raw::Int(3))];
        assert_eq!(describe(&dir, 0x011a).as_deref(), Some("72 dots per cm"));
        assert_eq!(
            one(0x011a, Raw::Rational(r(145, 2))).as_deref(),
            Some("72.5 dots per unit")
        );
        let fp = [
            (0xa20e, Raw::Rational(r(2_000_000, 103))),
            (0xa210, Raw::Int(2)),
        ];
        assert_eq!(describe(&fp, 0xa20e).as_deref(), Some("103/2000000 inches"));
    }

    #[test]
    fn apex_values_and_measures() {
        assert_eq!(
            one(0x9201, Raw::Rational(r(1, 2))).as_deref(),
            Some("0.7 sec")
        );
        assert_eq!(
            one(0x9201, Raw::Rational(r(-1, 1))).as_deref(),
            Some("2 sec")
        );
        assert_eq!(
            one(0x9202, Raw::Rational(r(6, 1))).as_deref(),
            Some("f/8.0")
        );
        assert_eq!(
            one(0x9203, Raw::Rational(r(0xFFFF_FFFF, 1))).as_deref(),
            Some("Unknown")
        );
        assert_eq!(
            one(0x9203, Raw::Rational(r(-38, 100))).as_deref(),
            Some("-0.38")
        );
        assert_eq!(
            one(0x9206, Raw::Rational(r(0, 1))).as_deref(),
            Some("Unknown")
        );
        assert_eq!(
            one(0x9206, Raw::Rational(r(3, 2))).as_deref(),
            Some("1.5 metres")
        );
        assert_eq!(
            one(0xa404, Raw::Rational(r(0, 100))).as_deref(),
            Some("Digital zoom not used")
        );
        assert_eq!(
            one(0x9102, Raw::Rational(r(2, 2))).as_deref(),
            Some("1 bit/pixel")
        );
    }

    #[test]
    fn lens_specification_forms() {
        let spec = |v: [(i64, i64); 4]| {
            one(
                0xa432,
                Raw::Rationals(v.iter().map(|&(n, d)| r(n, d)).collect()),
            )
        };
        assert_eq!(
            spec([(415, 100), (415, 100), (22, 10), (22, 10)]).as_deref(),
            Some("4.15mm f/2.2")
        );
        assert_eq!(
            spec([(18, 1), (55, 1), (0, 1), (0, 1)]).as_deref(),
            Some("18-55mm")
        );
        assert_eq!(spec([(0, 1), (0, 1), (0, 1), (0, 1)]), None);
    }

    #[test]
    fn user_comment_encodings() {
        let uc = |b: &[u8]| one(0x9286, Raw::Bytes(b.to_vec())).unwrap();
        assert_eq!(uc(b"ASCII\0\0\0Hello there  "), "Hello there");
        assert_eq!(uc(b"UNICODE\0H\0i\0"), "Hi");
        assert_eq!(uc(b"\0\0\0\0\0\0\0\0\0\0\0\0"), "");
        assert_eq!(uc(b"plain text"), "plain text");
    }

    #[test]
    fn cfa_patterns() {
        // Exif 0xa302: 2x2 dimensions (big-endian here), then colour codes.
        let cfa = one(0xa302, Raw::Bytes(vec![0, 2, 0, 2, 1, 2, 0, 1])).unwrap();
        assert_eq!(cfa, "[Green,Blue][Red,Green]");
        let cfa = one(0xa302, Raw::Bytes(vec![2, 0, 2, 0, 0, 1, 1, 2])).unwrap();
        assert_eq!(cfa, "[Red,Green][Green,Blue]");
        // TIFF/EP 0x828e needs the repeat dimensions of 0x828d.
        let dir = [
            (0x828d, Raw::Ints(vec![2, 2])),
            (0x828e, Raw::Bytes(vec![0, 1, 1, 2])),
        ];
        assert_eq!(
            describe(&dir, 0x828e).as_deref(),
            Some("[Red,Green][Green,Blue]")
        );
        assert!(one(0x828e, Raw::Bytes(vec![0, 1, 1, 2]))
            .unwrap()
            .starts_with("Repeat Pattern not found"));
    }

    #[test]
    fn long_arrays_are_summarised() {
        assert_eq!(
            one(0xc4a6, Raw::Bytes(vec![0; 17])).as_deref(),
            Some("[17 values]")
        );
        assert_eq!(
            one(0x0214, Raw::Ints(vec![0, 255, 0, 255, 0, 255])).as_deref(),
            Some("[0,0,0] [255,255,255]")
        );
        assert_eq!(
            one(0x9101, Raw::Bytes(vec![4, 5, 6, 0])).as_deref(),
            Some("RGB")
        );
    }
}
