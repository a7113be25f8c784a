//! Human-readable descriptions of IFD0 / Exif sub-IFD values, written the way
//! metadata-extractor's `ExifDescriptorBase` writes them: `1/60 sec`, `f/2.8`, `18 mm`,
//! `Aperture priority`, `Flash fired, return detected`...
//!
//! Each rule reads the value through the same type conversions as metadata-extractor (see
//! `raw`), so a value of an unexpected type gives the same fallback (often no
//! description at all, which the reference prints as an empty value).

use super::javafmt::{self, decimal, java_trim, Rounding};
use super::raw::{Rational, Raw};

/// The tags of one IFD, in file order.
pub(crate) type Dir = [(u16, Raw)];

fn get(dir: &Dir, id: u16) -> Option<&Raw> {
    dir.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
}

/// The description of tag `id` in `dir`; `None` where metadata-extractor has none.
pub(crate) fn describe(dir: &Dir, id: u16) -> Option<String> {
    let v = get(dir, id)?;
    let indexed = |base: i64, names: &[Option<&str>]| indexed(v, base, names);
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
        0x00fe => indexed(
            0,
            &s(&[
                "Full-resolution image",
                "Reduced-resolution image",
                "Single page of multi-page image",
                "Single page of multi-page reduced-resolution image",
                "Transparency mask",
                "Transparency mask of reduced-resolution image",
                "Transparency mask of multi-page image",
                "Transparency mask of reduced-resolution multi-page image",
            ]),
        ),
        0x00ff => indexed(
            1,
            &s(&[
                "Full-resolution image",
                "Reduced-resolution image",
                "Single page of multi-page image",
            ]),
        ),
        0x0100 | 0x0101 => Some(format!("{} pixels", v.string())),
        0x0102 => Some(format!("{} bits/component/pixel", v.string())),
        0x0103 => v.integer().map(compression),
        0x0106 => v.integer().map(photometric),
        0x0107 => indexed(
            1,
            &s(&[
                "No dithering or halftoning",
                "Ordered dither or halftone",
                "Randomized dither",
            ]),
        ),
        0x010a => indexed(1, &s(&["Normal", "Reversed"])),
        0x0112 => indexed(
            1,
            &s(&[
                "Top, left side (Horizontal / normal)",
                "Top, right side (Mirror horizontal)",
                "Bottom, right side (Rotate 180)",
                "Bottom, left side (Mirror vertical)",
                "Left side, top (Mirror horizontal and rotate 270 CW)",
                "Right side, top (Rotate 90 CW)",
                "Right side, bottom (Mirror horizontal and rotate 90 CW)",
                "Left side, bottom (Rotate 270 CW)",
            ]),
        ),
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
        0x011c => indexed(
            1,
            &s(&[
                "Chunky (contiguous for each subsampling pixel)",
                "Separate (Y-plane/Cb-plane/Cr-plane format)",
            ]),
        ),
        0x0128 => resolution_unit(dir),
        0x0200 => v.integer().map(|p| match p {
            1 => "Baseline".to_string(),
            14 => "Lossless".to_string(),
            _ => format!("Unknown ({p})"),
        }),
        0x0212 => {
            let p = v.int_array()?;
            if p.len() < 2 {
                return None;
            }
            Some(
                match (p[0], p[1]) {
                    (2, 1) => "YCbCr4:2:2",
                    (2, 2) => "YCbCr4:2:0",
                    _ => "(Unknown)",
                }
                .to_string(),
            )
        }
        0x0213 => indexed(1, &s(&["Center of pixel array", "Datum point"])),
        0x0214 => {
            let p = v.int_array()?;
            if p.len() < 6 {
                return None;
            }
            Some(format!(
                "[{},{},{}] [{},{},{}]",
                p[0], p[2], p[4], p[1], p[3], p[5]
            ))
        }
        0x828e => cfa_pattern_2(dir, v),
        0x829a => Some(format!("{} sec", v.string())),
        0x829d => v.rational().map(|r| fstop(r.to_f64())),
        0x8822 => indexed(
            1,
            &s(&[
                "Manual control",
                "Program normal",
                "Aperture priority",
                "Shutter priority",
                "Program creative (slow program)",
                "Program action (high-speed program)",
                "Portrait mode",
                "Landscape mode",
            ]),
        ),
        0x8827 => v.integer().map(|i| i.to_string()),
        0x8830 => indexed(
            0,
            &s(&[
                "Unknown",
                "Standard Output Sensitivity",
                "Recommended Exposure Index",
                "ISO Speed",
                "Standard Output Sensitivity and Recommended Exposure Index",
                "Standard Output Sensitivity and ISO Speed",
                "Recommended Exposure Index and ISO Speed",
                "Standard Output Sensitivity, Recommended Exposure Index and ISO Speed",
            ]),
        ),
        0x9101 => {
            let c = v.int_array()?;
            const NAMES: [&str; 7] = ["", "Y", "Cb", "Cr", "R", "G", "B"];
            Some(
                c.iter()
                    .take(4)
                    .filter(|&&j| j > 0 && (j as usize) < NAMES.len())
                    .map(|&j| NAMES[j as usize])
                    .collect(),
            )
        }
        0x9102 => {
            let r = v.rational()?;
            let ratio = r.simple_string(true);
            Some(if r.is_integer() && r.int_value() == 1 {
                format!("{ratio} bit/pixel")
            } else {
                format!("{ratio} bits/pixel")
            })
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
        0x9207 => v.integer().map(metering_mode),
        0x9208 => v.integer().map(white_balance),
        0x9209 => v.integer().map(flash),
        0x920a => v.rational().map(|r| focal_length(r.to_f64())),
        0x9286 => encoded_text(v),
        0x9400 => measured(v, 1, 1, " \u{b0}C"),
        0x9401 => measured(v, 1, 1, " %"),
        0x9402 => measured(v, 1, 1, " hPa"),
        0x9403 => measured(v, 1, 3, " metres"),
        0x9404 => measured(v, 1, 3, " mGal"),
        0x9405 => measured(v, 0, 2, " degrees"),
        0x9c9b..=0x9c9f => {
            let b = v.byte_array()?;
            let units: Vec<u16> = b
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            Some(java_trim(&String::from_utf16_lossy(&units)).to_string())
        }
        0xa001 => v.integer().map(|c| match c {
            1 => "sRGB".to_string(),
            65535 => "Undefined".to_string(),
            _ => format!("Unknown ({c})"),
        }),
        0xa002 | 0xa003 => v.integer().map(|i| format!("{i} pixels")),
        0xa20e | 0xa20f => {
            let r = v.rational()?;
            let unit = focal_plane_unit(dir).map(|u| format!(" {}", u.to_lowercase()));
            let recip = Rational {
                num: r.den,
                den: r.num,
            };
            Some(format!(
                "{}{}",
                recip.simple_string(true),
                unit.unwrap_or_default()
            ))
        }
        0xa210 => focal_plane_unit(dir),
        0xa217 => indexed(
            1,
            &[
                Some("(Not defined)"),
                Some("One-chip color area sensor"),
                Some("Two-chip color area sensor"),
                Some("Three-chip color area sensor"),
                Some("Color sequential area sensor"),
                None,
                Some("Trilinear sensor"),
                Some("Color sequential linear sensor"),
            ],
        ),
        0xa300 => indexed(
            1,
            &s(&[
                "Film Scanner",
                "Reflection Print Scanner",
                "Digital Still Camera (DSC)",
            ]),
        ),
        0xa301 => indexed(1, &s(&["Directly photographed image"])),
        0xa302 => format_cfa(decode_cfa(v)),
        0xa401 => indexed(0, &s(&["Normal process", "Custom process"])),
        0xa402 => indexed(0, &s(&["Auto exposure", "Manual exposure", "Auto bracket"])),
        0xa403 => indexed(0, &s(&["Auto white balance", "Manual white balance"])),
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
        0xa406 => indexed(0, &s(&["Standard", "Landscape", "Portrait", "Night scene"])),
        0xa407 => indexed(
            0,
            &s(&[
                "None",
                "Low gain up",
                "Low gain down",
                "High gain up",
                "High gain down",
            ]),
        ),
        0xa408 => indexed(0, &s(&["None", "Soft", "Hard"])),
        0xa409 => indexed(0, &s(&["None", "Low saturation", "High saturation"])),
        0xa40a => indexed(0, &s(&["None", "Low", "Hard"])),
        0xa40c => indexed(0, &s(&["Unknown", "Macro", "Close view", "Distant view"])),
        0xa432 => lens_specification(v),
        0x0152 => indexed(
            0,
            &s(&["Unspecified", "Associated alpha", "Unassociated alpha"]),
        ),
        0x0153 => {
            let vals = v.int_array()?;
            Some(
                vals.iter()
                    .map(|&x| match x {
                        1 => "Unsigned".to_string(),
                        2 => "Signed".to_string(),
                        3 => "Float".to_string(),
                        4 => "Undefined".to_string(),
                        5 => "Complex int".to_string(),
                        6 => "Complex float".to_string(),
                        _ => format!("Unknown ({x})"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        }
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

/// Wraps names that all exist (no gap in the index table).
fn s<'a>(names: &[&'a str]) -> Vec<Option<&'a str>> {
    names.iter().map(|n| Some(*n)).collect()
}

fn indexed(v: &Raw, base: i64, names: &[Option<&str>]) -> Option<String> {
    let index = v.long()?;
    let i = index.wrapping_sub(base);
    if i >= 0 && (i as usize) < names.len() {
        if let Some(name) = names[i as usize] {
            return Some(name.to_string());
        }
    }
    Some(format!("Unknown ({index})"))
}

fn version(v: &Raw) -> Option<String> {
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

fn resolution_unit(dir: &Dir) -> Option<String> {
    indexed(
        get(dir, 0x0128)?,
        1,
        &[Some("(No unit)"), Some("Inch"), Some("cm")],
    )
}

fn focal_plane_unit(dir: &Dir) -> Option<String> {
    indexed(
        get(dir, 0xa210)?,
        1,
        &[Some("(No unit)"), Some("Inches"), Some("cm")],
    )
}

fn fstop(f: f64) -> String {
    format!("f/{}", decimal(f, 1, 1, Rounding::HalfUp))
}

fn focal_length(mm: f64) -> String {
    format!("{} mm", decimal(mm, 0, 1, Rounding::HalfUp))
}

fn shutter_speed(apex: f32) -> String {
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

fn measured(v: &Raw, min: usize, max: usize, unit: &str) -> Option<String> {
    let r = v.rational()?;
    if r.den == 0xFFFF_FFFF {
        return Some("Unknown".to_string());
    }
    Some(format!(
        "{}{unit}",
        decimal(r.to_f64(), min, max, Rounding::HalfEven)
    ))
}

fn metering_mode(m: i32) -> String {
    match m {
        0 => "Unknown",
        1 => "Average",
        2 => "Center weighted average",
        3 => "Spot",
        4 => "Multi-spot",
        5 => "Multi-segment",
        6 => "Partial",
        255 => "(Other)",
        _ => return format!("Unknown ({m})"),
    }
    .to_string()
}

fn white_balance(w: i32) -> String {
    match w {
        0 => "Unknown",
        1 => "Daylight",
        2 => "Florescent",
        3 => "Tungsten (Incandescent)",
        4 => "Flash",
        9 => "Fine Weather",
        10 => "Cloudy",
        11 => "Shade",
        12 => "Daylight Fluorescent",
        13 => "Day White Fluorescent",
        14 => "Cool White Fluorescent",
        15 => "White Fluorescent",
        16 => "Warm White Fluorescent",
        17 => "Standard light A",
        18 => "Standard light B",
        19 => "Standard light C",
        20 => "D55",
        21 => "D65",
        22 => "D75",
        23 => "D50",
        24 => "ISO Studio Tungsten",
        255 => "Other",
        _ => return format!("Unknown ({w})"),
    }
    .to_string()
}

fn flash(f: i32) -> String {
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
fn encoded_text(v: &Raw) -> Option<String> {
    let b = v.byte_array()?;
    if b.is_empty() {
        return Some(String::new());
    }
    let decode = |bytes: &[u8], unicode: bool| {
        let s = if unicode {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
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

fn lens_specification(v: &Raw) -> Option<String> {
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
fn decode_cfa(v: &Raw) -> Option<Vec<i32>> {
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

fn cfa_pattern_2(dir: &Dir, v: &Raw) -> Option<String> {
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

fn format_cfa(pattern: Option<Vec<i32>>) -> Option<String> {
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

fn compression(c: i32) -> String {
    let name = match c {
        1 => "Uncompressed",
        2 => "CCITT 1D",
        3 => "T4/Group 3 Fax",
        4 => "T6/Group 4 Fax",
        5 => "LZW",
        6 => "JPEG (old-style)",
        7 | 99 => "JPEG",
        8 => "Adobe Deflate",
        9 => "JBIG B&W",
        10 => "JBIG Color",
        262 => "Kodak 262",
        32766 => "Next",
        32767 => "Sony ARW Compressed",
        32769 => "Packed RAW",
        32770 => "Samsung SRW Compressed",
        32771 => "CCIRLEW",
        32772 => "Samsung SRW Compressed 2",
        32773 => "PackBits",
        32809 => "Thunderscan",
        32867 => "Kodak KDC Compressed",
        32895 => "IT8CTPAD",
        32896 => "IT8LW",
        32897 => "IT8MP",
        32898 => "IT8BL",
        32908 => "PixarFilm",
        32909 => "PixarLog",
        32946 => "Deflate",
        32947 => "DCS",
        34661 => "JBIG",
        34676 => "SGILog",
        34677 => "SGILog24",
        34712 => "JPEG 2000",
        34713 => "Nikon NEF Compressed",
        34715 => "JBIG2 TIFF FX",
        34718 => "Microsoft Document Imaging (MDI) Binary Level Codec",
        34719 => "Microsoft Document Imaging (MDI) Progressive Transform Codec",
        34720 => "Microsoft Document Imaging (MDI) Vector",
        34892 => "Lossy JPEG",
        65000 => "Kodak DCR Compressed",
        65535 => "Pentax PEF Compressed",
        _ => return format!("Unknown ({c})"),
    };
    name.to_string()
}

fn photometric(p: i32) -> String {
    match p {
        0 => "WhiteIsZero",
        1 => "BlackIsZero",
        2 => "RGB",
        3 => "RGB Palette",
        4 => "Transparency Mask",
        5 => "CMYK",
        6 => "YCbCr",
        8 => "CIELab",
        9 => "ICCLab",
        10 => "ITULab",
        32803 => "Color Filter Array",
        32844 => "Pixar LogL",
        32845 => "Pixar LogLuv",
        32892 => "Linear Raw",
        _ => "Unknown colour space",
    }
    .to_string()
}
