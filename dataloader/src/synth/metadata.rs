//! The EXIF block of a simulated photo: IFD0 and Exif sub-IFD tags with their standard
//! TIFF types, encoded by kamadak-exif in the camera's byte order.

use super::cameras::Camera;
use super::shot::Shot;
use exif::experimental::Writer;
use exif::{Field, In, Rational, SRational, Tag, Value};

/// Calendar date (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Shift to a year that starts on March 1st of year 0, counted in 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// EXIF date-time text, `YYYY:MM:DD HH:MM:SS`.
pub(crate) fn exif_datetime(unix: i64) -> String {
    let (y, mo, d) = civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}:{mo:02}:{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn ascii(s: &str) -> Value {
    Value::Ascii(vec![s.as_bytes().to_vec()])
}

fn rational(v: f32, denom: u32) -> Value {
    Value::Rational(vec![Rational {
        num: (v * denom as f32).round() as u32,
        denom,
    }])
}

fn srational(v: f32, denom: i32) -> Value {
    Value::SRational(vec![SRational {
        num: (v * denom as f32).round() as i32,
        denom,
    }])
}

/// The tags of one photo, in no particular order (the writer sorts them).
pub(crate) fn fields(camera: &Camera, shot: &Shot, width: u32, height: u32) -> Vec<Field> {
    let t = shot.exposure.0 as f32 / shot.exposure.1 as f32;
    let date = exif_datetime(shot.unix_time);
    let dpi = Value::Rational(vec![Rational {
        num: camera.dpi,
        denom: 1,
    }]);
    let primary = [
        (Tag::Make, ascii(camera.make)),
        (Tag::Model, ascii(camera.model)),
        (Tag::Orientation, Value::Short(vec![shot.orientation])),
        (Tag::XResolution, dpi.clone()),
        (Tag::YResolution, dpi),
        (Tag::ResolutionUnit, Value::Short(vec![2])),
        (Tag::Software, ascii(shot.software)),
        (Tag::DateTime, ascii(&date)),
        (
            Tag::YCbCrPositioning,
            Value::Short(vec![camera.ycbcr_positioning]),
        ),
    ];
    let exif = [
        (
            Tag::ExposureTime,
            Value::Rational(vec![Rational {
                num: shot.exposure.0,
                denom: shot.exposure.1,
            }]),
        ),
        (Tag::FNumber, rational(shot.f_number, 10)),
        (Tag::ExposureProgram, Value::Short(vec![shot.program])),
        (Tag::PhotographicSensitivity, Value::Short(vec![shot.iso])),
        (
            Tag::ExifVersion,
            Value::Undefined(camera.exif_version.to_vec(), 0),
        ),
        (Tag::DateTimeOriginal, ascii(&date)),
        (Tag::DateTimeDigitized, ascii(&date)),
        (
            Tag::ComponentsConfiguration,
            Value::Undefined(vec![1, 2, 3, 0], 0),
        ),
        (Tag::ShutterSpeedValue, srational(-t.log2(), 1000)),
        (
            Tag::ApertureValue,
            rational(2.0 * shot.f_number.log2(), 1000),
        ),
        (
            Tag::ExposureBiasValue,
            srational(shot.bias_thirds as f32 / 3.0, 3),
        ),
        (
            Tag::MaxApertureValue,
            rational(2.0 * camera.max_aperture.0.log2(), 100),
        ),
        (Tag::MeteringMode, Value::Short(vec![shot.metering])),
        (Tag::Flash, Value::Short(vec![shot.flash])),
        (Tag::FocalLength, rational(shot.focal_mm, 10)),
        (Tag::FlashpixVersion, Value::Undefined(b"0100".to_vec(), 0)),
        (Tag::ColorSpace, Value::Short(vec![1])),
        (Tag::PixelXDimension, Value::Long(vec![width])),
        (Tag::PixelYDimension, Value::Long(vec![height])),
        (
            Tag::ExposureMode,
            Value::Short(vec![u16::from(shot.program == 1)]),
        ),
        (
            Tag::WhiteBalance,
            Value::Short(vec![u16::from(shot.manual_wb)]),
        ),
        (
            Tag::FocalLengthIn35mmFilm,
            Value::Short(vec![shot.focal_35mm]),
        ),
        (Tag::SceneCaptureType, Value::Short(vec![0])),
    ];
    primary
        .into_iter()
        .chain(exif)
        .map(|(tag, value)| Field {
            tag,
            ifd_num: In::PRIMARY,
            value,
        })
        .collect()
}

/// The TIFF-structured EXIF block (what follows `Exif\0\0` in APP1).
pub(crate) fn tiff_block(
    camera: &Camera,
    shot: &Shot,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, exif::Error> {
    let fields = fields(camera, shot, width, height);
    let mut writer = Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    writer.write(&mut buf, camera.exif_little_endian)?;
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::catalogue::cameras;
    use rand::SeedableRng;

    #[test]
    fn dates_format_like_cameras_write_them() {
        assert_eq!(exif_datetime(0), "1970:01:01 00:00:00");
        // 2000-02-29 is a leap day; 951782400 is its midnight.
        assert_eq!(exif_datetime(951_782_400 + 3_661), "2000:02:29 01:01:01");
        assert_eq!(exif_datetime(1_735_689_599), "2024:12:31 23:59:59");
    }

    #[test]
    fn block_reads_back_with_both_byte_orders() {
        for cam in &cameras()[..2] {
            let shot = Shot::new(cam, &mut rand_chacha::ChaCha8Rng::seed_from_u64(2));
            let block = tiff_block(cam, &shot, 640, 480).expect("encodes");
            let order: &[u8] = if cam.exif_little_endian { b"II" } else { b"MM" };
            assert_eq!(&block[..2], order);
            let parsed = exif::Reader::new().read_raw(block).expect("parses");
            let get = |t| {
                parsed
                    .get_field(t, In::PRIMARY)
                    .map(|f| f.display_value().to_string())
            };
            assert_eq!(
                get(Tag::Make).as_deref(),
                Some(format!("\"{}\"", cam.make).as_str())
            );
            assert_eq!(get(Tag::PixelXDimension).as_deref(), Some("640"));
            assert_eq!(
                get(Tag::PhotographicSensitivity),
                Some(shot.iso.to_string())
            );
            assert!(parsed.fields().count() >= 30, "{}", parsed.fields().count());
        }
    }
}
