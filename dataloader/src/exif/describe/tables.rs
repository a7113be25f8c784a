//! Value -> text tables of the descriptions: which tags are plain index lookups (with
//! their names and first index), and the tables of tags whose codes are sparse.

/// For a tag described by position in a list: the value of the first name and the
/// names (an empty name is a gap: `Unknown (n)`).
pub(super) fn indexed_names(id: u16) -> Option<(i64, &'static [&'static str])> {
    Some(match id {
        0x00fe => (0, NEW_SUBFILE_TYPE),
        0x00ff => (
            1,
            &[
                "Full-resolution image",
                "Reduced-resolution image",
                "Single page of multi-page image",
            ],
        ),
        0x0107 => (
            1,
            &[
                "No dithering or halftoning",
                "Ordered dither or halftone",
                "Randomized dither",
            ],
        ),
        0x010a => (1, &["Normal", "Reversed"]),
        0x0112 => (1, ORIENTATION),
        0x011c => (
            1,
            &[
                "Chunky (contiguous for each subsampling pixel)",
                "Separate (Y-plane/Cb-plane/Cr-plane format)",
            ],
        ),
        0x0152 => (
            0,
            &["Unspecified", "Associated alpha", "Unassociated alpha"],
        ),
        0x0213 => (1, &["Center of pixel array", "Datum point"]),
        0x8822 => (1, EXPOSURE_PROGRAM),
        0x8830 => (0, SENSITIVITY_TYPE),
        0xa217 => (1, SENSING_METHOD),
        0xa300 => (
            1,
            &[
                "Film Scanner",
                "Reflection Print Scanner",
                "Digital Still Camera (DSC)",
            ],
        ),
        0xa301 => (1, &["Directly photographed image"]),
        0xa401 => (0, &["Normal process", "Custom process"]),
        0xa402 => (0, &["Auto exposure", "Manual exposure", "Auto bracket"]),
        0xa403 => (0, &["Auto white balance", "Manual white balance"]),
        0xa406 => (0, &["Standard", "Landscape", "Portrait", "Night scene"]),
        0xa407 => (
            0,
            &[
                "None",
                "Low gain up",
                "Low gain down",
                "High gain up",
                "High gain down",
            ],
        ),
        0xa408 => (0, &["None", "Soft", "Hard"]),
        0xa409 => (0, &["None", "Low saturation", "High saturation"]),
        0xa40a => (0, &["None", "Low", "Hard"]),
        0xa40c => (0, &["Unknown", "Macro", "Close view", "Distant view"]),
        _ => return None,
    })
}

/// Resolution units (0x0128), from 1.
pub(super) const RESOLUTION_UNIT: &[&str] = &["(No unit)", "Inch", "cm"];
/// Focal-plane resolution units (0xa210), from 1.
pub(super) const FOCAL_PLANE_UNIT: &[&str] = &["(No unit)", "Inches", "cm"];
/// Components configuration codes (0x9101), from 0.
pub(super) const COMPONENTS: &[&str] = &["", "Y", "Cb", "Cr", "R", "G", "B"];

const NEW_SUBFILE_TYPE: &[&str] = &[
    "Full-resolution image",
    "Reduced-resolution image",
    "Single page of multi-page image",
    "Single page of multi-page reduced-resolution image",
    "Transparency mask",
    "Transparency mask of reduced-resolution image",
    "Transparency mask of multi-page image",
    "Transparency mask of reduced-resolution multi-page image",
];

const ORIENTATION: &[&str] = &[
    "Top, left side (Horizontal / normal)",
    "Top, right side (Mirror horizontal)",
    "Bottom, right side (Rotate 180)",
    "Bottom, left side (Mirror vertical)",
    "Left side, top (Mirror horizontal and rotate 270 CW)",
    "Right side, top (Rotate 90 CW)",
    "Right side, bottom (Mirror horizontal and rotate 90 CW)",
    "Left side, bottom (Rotate 270 CW)",
];

const EXPOSURE_PROGRAM: &[&str] = &[
    "Manual control",
    "Program normal",
    "Aperture priority",
    "Shutter priority",
    "Program creative (slow program)",
    "Program action (high-speed program)",
    "Portrait mode",
    "Landscape mode",
];

const SENSITIVITY_TYPE: &[&str] = &[
    "Unknown",
    "Standard Output Sensitivity",
    "Recommended Exposure Index",
    "ISO Speed",
    "Standard Output Sensitivity and Recommended Exposure Index",
    "Standard Output Sensitivity and ISO Speed",
    "Recommended Exposure Index and ISO Speed",
    "Standard Output Sensitivity, Recommended Exposure Index and ISO Speed",
];

const SENSING_METHOD: &[&str] = &[
    "(Not defined)",
    "One-chip color area sensor",
    "Two-chip color area sensor",
    "Three-chip color area sensor",
    "Color sequential area sensor",
    "",
    "Trilinear sensor",
    "Color sequential linear sensor",
];

/// Sample format codes (0x0153).
pub(super) fn sample_format(x: i32) -> String {
    match x {
        1 => "Unsigned",
        2 => "Signed",
        3 => "Float",
        4 => "Undefined",
        5 => "Complex int",
        6 => "Complex float",
        _ => return format!("Unknown ({x})"),
    }
    .to_string()
}

pub(super) fn metering_mode(m: i32) -> String {
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

pub(super) fn white_balance(w: i32) -> String {
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

pub(super) fn compression(c: i32) -> String {
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

pub(super) fn photometric(p: i32) -> String {
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
