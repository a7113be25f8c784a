//! Tests of `read_jpeg` on JPEGs built here with known EXIF values.

use super::*;
use exif::{experimental::Writer, Field, In, Tag, Value};

fn rational(num: u32, denom: u32) -> Value {
    Value::Rational(vec![exif::Rational { num, denom }])
}

/// A minimal JPEG (SOI, APP1 Exif, EOI) holding `fields`.
fn jpeg_with(fields: &[Field]) -> Vec<u8> {
    let mut writer = Writer::new();
    for f in fields {
        writer.push_field(f);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    writer.write(&mut tiff, false).expect("write TIFF");
    let tiff = tiff.into_inner();
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend_from_slice(&u16::try_from(tiff.len() + 8).unwrap().to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

fn field(tag: Tag, ifd: In, value: Value) -> Field {
    Field {
        tag,
        ifd_num: ifd,
        value,
    }
}

fn sample_fields() -> Vec<Field> {
    let p = In::PRIMARY;
    vec![
        field(
            Tag::Make,
            p,
            Value::Ascii(vec![b"NIKON CORPORATION".to_vec()]),
        ),
        field(Tag::Model, p, Value::Ascii(vec![b"NIKON D90".to_vec()])),
        field(Tag::Orientation, p, Value::Short(vec![6])),
        field(Tag::XResolution, p, rational(300, 1)),
        field(Tag::ResolutionUnit, p, Value::Short(vec![2])),
        field(
            Tag::DateTime,
            p,
            Value::Ascii(vec![b"2009:10:11 12:13:14".to_vec()]),
        ),
        field(Tag::ExposureTime, p, rational(10, 600)),
        field(Tag::FNumber, p, rational(28, 10)),
        field(Tag::ExposureProgram, p, Value::Short(vec![3])),
        field(Tag::PhotographicSensitivity, p, Value::Short(vec![200])),
        field(Tag::ExifVersion, p, Value::Undefined(b"0221".to_vec(), 0)),
        field(
            Tag::ComponentsConfiguration,
            p,
            Value::Undefined(vec![1, 2, 3, 0], 0),
        ),
        // APEX: Tv = log2(60), Av = 2 log2(2.8).
        field(
            Tag::ShutterSpeedValue,
            p,
            Value::SRational(vec![exif::SRational {
                num: 5_906_891,
                denom: 1_000_000,
            }]),
        ),
        field(Tag::ApertureValue, p, rational(297, 100)),
        field(
            Tag::ExposureBiasValue,
            p,
            Value::SRational(vec![exif::SRational { num: -2, denom: 6 }]),
        ),
        field(Tag::MeteringMode, p, Value::Short(vec![5])),
        field(Tag::Flash, p, Value::Short(vec![0x19])),
        field(Tag::FocalLength, p, rational(180, 10)),
        field(Tag::WhiteBalance, p, Value::Short(vec![0])),
        field(Tag::FocalLengthIn35mmFilm, p, Value::Short(vec![27])),
        field(
            Tag::LensSpecification,
            p,
            Value::Rational(vec![
                exif::Rational { num: 18, denom: 1 },
                exif::Rational { num: 105, denom: 1 },
                exif::Rational { num: 35, denom: 10 },
                exif::Rational { num: 56, denom: 10 },
            ]),
        ),
        field(Tag(exif::Context::Exif, 0xa460), p, Value::Short(vec![2])),
        field(Tag::GPSLatitudeRef, p, Value::Ascii(vec![b"N".to_vec()])),
        field(Tag::Compression, In::THUMBNAIL, Value::Short(vec![6])),
    ]
}

#[test]
fn values_are_described_as_metadata_extractor_does() {
    let map = read_jpeg(&jpeg_with(&sample_fields())).expect("readable EXIF");
    let expected = [
        ("Make", "NIKON CORPORATION"),
        ("Model", "NIKON D90"),
        ("Orientation", "Right side, top (Rotate 90 CW)"),
        ("X Resolution", "300 dots per inch"),
        ("Resolution Unit", "Inch"),
        ("Date/Time", "2009:10:11 12:13:14"),
        ("Exposure Time", "1/60 sec"),
        ("F-Number", "f/2.8"),
        ("Exposure Program", "Aperture priority"),
        ("ISO Speed Ratings", "200"),
        ("Exif Version", "2.21"),
        ("Components Configuration", "YCbCr"),
        ("Shutter Speed Value", "1/60 sec"),
        ("Aperture Value", "f/2.8"),
        ("Exposure Bias Value", "-1/3 EV"),
        ("Metering Mode", "Multi-segment"),
        ("Flash", "Flash fired, auto"),
        ("Focal Length", "18 mm"),
        ("White Balance Mode", "Auto white balance"),
        ("Focal Length 35", "27 mm"),
        ("Lens Specification", "18-105mm f/3.5-5.6"),
    ];
    let got: Vec<(&str, &str)> = map.iter().collect();
    // IFD0 first, then the sub-IFD; no GPS, thumbnail or unknown tag.
    assert_eq!(got, expected);
}

#[test]
fn missing_and_non_jpeg_inputs_are_errors() {
    let no_exif = [0xff, 0xd8, 0xff, 0xd9];
    assert!(matches!(read_jpeg(&no_exif), Err(ExifError::Missing)));
    assert!(matches!(
        read_jpeg(b"GIF89a not a jpeg"),
        Err(ExifError::Malformed(_))
    ));
    assert!(read_jpeg(&[]).is_err());
}

#[test]
fn garbled_exif_gives_errors_or_partial_maps_never_a_panic() {
    let good = jpeg_with(&sample_fields());
    // Every truncation.
    for len in 0..good.len() {
        let _ = read_jpeg(&good[..len]);
    }
    // Every byte of the EXIF block replaced by a few nasty values.
    for i in 4..good.len() {
        for b in [0x00, 0xff, 0x7f, 0x80, 0x01] {
            let mut bad = good.clone();
            bad[i] = b;
            if let Ok(map) = read_jpeg(&bad) {
                assert!(map.len() <= sample_fields().len());
            }
        }
    }
}
