//! Whether metadata-extractor decodes a maker note into a vendor directory.
//!
//! The reference lists the `Makernote` tag (as an opaque value) only when it does not
//! recognise the vendor format; recognised notes become vendor directories instead, which
//! this crate does not decode. To list the same tags, this module reproduces the
//! recognition test: the camera make and the first bytes of the note.

/// Whether the reference would decode a maker note starting with `head` (the TIFF bytes
/// from the note's start, at least 14 when available) on a camera of make `make`.
/// `little_endian` is the byte order of the EXIF block.
pub(crate) fn reference_decodes(make: Option<&str>, head: &[u8], little_endian: bool) -> bool {
    let starts = |prefix: &[u8]| head.len() >= prefix.len() && &head[..prefix.len()] == prefix;
    let starts_ci = |prefix: &[u8]| {
        head.len() >= prefix.len() && head[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let make_upper = make.map(str::to_uppercase);
    let make_starts = |p: &str| make_upper.as_deref().is_some_and(|m| m.starts_with(p));
    let make_is = |p: &str| make.is_some_and(|m| m.eq_ignore_ascii_case(p));

    if starts(b"OLYMP\0") || starts(b"EPSON") || starts(b"AGFA") {
        return true;
    }
    if starts(b"OLYMPUS\0II") || starts(b"OM SYSTEM\0\0\0II") || make_starts("MINOLTA") {
        return true;
    }
    // Nikon notes are taken (and possibly dropped as unsupported) whatever their header.
    if make.is_some_and(|m| m.trim().to_uppercase().starts_with("NIKON")) {
        return true;
    }
    if starts(b"SONY CAM") || starts(b"SONY DSC") {
        return true;
    }
    if make.is_some_and(|m| m.starts_with("SONY")) && !starts(&[0x01, 0x00]) {
        return true;
    }
    if starts(b"SEMC MS\0\0\0\0\0")
        || starts(b"SIGMA\0\0\0")
        || starts(b"FOVEON\0\0")
        || starts(b"KDK")
    {
        return true;
    }
    if make_is("Canon") || make_starts("CASIO") || starts(b"FUJIFILM") || make_is("Fujifilm") {
        return true;
    }
    if starts(b"KYOCERA") {
        return true;
    }
    if starts(b"LEICA") {
        let typed = [1u8, 4, 5, 6, 7]
            .iter()
            .any(|&t| starts(&[b'L', b'E', b'I', b'C', b'A', 0, t, 0]));
        return typed || make == Some("Leica Camera AG") || make == Some("LEICA");
    }
    if starts(b"Panasonic\0\0\0")
        || starts(b"AOC\0")
        || make_starts("PENTAX")
        || make_starts("ASAHI")
    {
        return true;
    }
    if starts(b"SANYO\0\x01\0") {
        return true;
    }
    if make.is_some_and(|m| m.to_lowercase().starts_with("ricoh")) {
        return !(starts(b"Rv") || starts(b"Rev"));
    }
    if starts(b"Apple iOS\0") {
        return true;
    }
    if head.len() >= 2 {
        let version = if little_endian {
            u16::from_le_bytes([head[0], head[1]])
        } else {
            u16::from_be_bytes([head[0], head[1]])
        };
        if version == 0xF101 {
            return true;
        }
    }
    starts_ci(b"RECONYXUF") || starts_ci(b"RECONYXH2") || make_is("SAMSUNG") || make_is("DJI")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vendors_are_decoded_and_others_listed() {
        assert!(reference_decodes(Some("Canon"), &[0, 1, 2], true));
        assert!(reference_decodes(
            Some("NIKON CORPORATION"),
            b"Nikon\0\x02\0",
            false
        ));
        assert!(reference_decodes(
            Some("OLYMPUS IMAGING CORP.  "),
            b"OLYMP\0\x01\0",
            true
        ));
        assert!(reference_decodes(
            Some("Apple"),
            b"Apple iOS\0\0\x01MM",
            false
        ));
        assert!(!reference_decodes(
            Some("Hewlett-Packard"),
            b"Hewlett-Packard",
            true
        ));
        assert!(!reference_decodes(Some("BlackBerry"), b"RIM0RD00\n", true));
        assert!(!reference_decodes(Some("RICOH"), b"Rev0101", true));
        assert!(!reference_decodes(None, &[], true));
    }
}
