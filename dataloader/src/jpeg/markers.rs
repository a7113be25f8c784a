//! JPEG marker segments up to the first scan: frame header, quantisation and Huffman
//! tables, restart interval, colour-transform hints and the scan header.
//!
//! The parser never decodes entropy-coded data; it only says where the first scan's data
//! starts and whether this decoder supports the file (baseline or extended sequential,
//! Huffman, 8-bit, one scan with every component) or it must be handed to the fallback.

use super::{hash::Hasher64, JpegError};

/// Raw Huffman table specification as stored in a DHT segment.
#[derive(Clone)]
pub(crate) struct HuffSpec {
    /// Number of codes of each length 1..=16.
    pub counts: [u8; 16],
    /// Symbols in code order.
    pub values: Vec<u8>,
}

/// One frame component and the tables its scan uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Component {
    pub id: u8,
    /// Horizontal and vertical sampling factors (1..=4).
    pub h: u8,
    pub v: u8,
    /// Quantisation table slot.
    pub tq: u8,
    /// DC and AC Huffman table slots (set by the scan header).
    pub td: u8,
    pub ta: u8,
}

/// Everything before the first scan's entropy-coded data.
pub(crate) struct Header {
    pub width: u32,
    pub height: u32,
    /// SOFn marker byte (0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...).
    pub sof: u8,
    pub precision: u8,
    pub components: Vec<Component>,
    /// Quantisation tables in zig-zag order.
    pub qt: [Option<[u16; 64]>; 4],
    pub dc: [Option<HuffSpec>; 4],
    pub ac: [Option<HuffSpec>; 4],
    pub restart_interval: u16,
    /// Frame component indices in the order the scan lists them.
    pub scan: Vec<usize>,
    /// Spectral selection and successive approximation of the scan.
    pub ss: u8,
    pub se: u8,
    pub ah_al: u8,
    /// Byte offset of the first scan's entropy-coded data.
    pub scan_start: usize,
    pub jfif: bool,
    pub adobe_transform: Option<u8>,
    /// Hash of the frame, table, restart and scan segments (what decoding depends on).
    pub tables_hash: u64,
}

impl Header {
    /// Why this decoder cannot decode the file itself, or `None` when it can.
    pub fn unsupported(&self) -> Option<String> {
        let kind = match self.sof {
            0xC0 | 0xC1 => None,
            0xC2 | 0xC6 | 0xCA | 0xCE => Some("progressive"),
            0xC3 | 0xC7 | 0xCB | 0xCF => Some("lossless"),
            0xC5 => Some("hierarchical"),
            _ => Some("arithmetic-coded"),
        };
        if let Some(kind) = kind {
            return Some(format!("{kind} JPEG (SOF marker 0x{:02X})", self.sof));
        }
        if self.precision != 8 {
            return Some(format!("{}-bit samples", self.precision));
        }
        let n = self.components.len();
        if n != 1 && n != 3 {
            return Some(format!("{n} colour components"));
        }
        if n == 3 && self.is_rgb() {
            return Some("RGB (not YCbCr) colour space".into());
        }
        if self.scan.len() != n {
            return Some("components in separate scans".into());
        }
        if self.ss != 0 || self.se != 63 || self.ah_al != 0 {
            return Some("scan with spectral selection or successive approximation".into());
        }
        let hmax = self.components.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = self.components.iter().map(|c| c.v).max().unwrap_or(1);
        let mut blocks = 0;
        for c in &self.components {
            if hmax % c.h != 0 || vmax % c.v != 0 {
                return Some(format!("non-integral sampling factors {}x{}", c.h, c.v));
            }
            blocks += c.h as u32 * c.v as u32;
        }
        if n > 1 && blocks > 10 {
            return Some(format!("{blocks} blocks per MCU (at most 10 allowed)"));
        }
        for &ci in &self.scan {
            let c = &self.components[ci];
            if self.qt[c.tq as usize].is_none() {
                return Some(format!("no quantisation table {} defined", c.tq));
            }
            if self.dc[c.td as usize].is_none() || self.ac[c.ta as usize].is_none() {
                return Some("no Huffman tables defined (default tables)".into());
            }
        }
        None
    }

    /// Three components stored as RGB rather than YCbCr (Adobe transform 0, or
    /// component ids 'R','G','B' without a JFIF marker).
    fn is_rgb(&self) -> bool {
        if let Some(t) = self.adobe_transform {
            return t == 0;
        }
        let ids: Vec<u8> = self.components.iter().map(|c| c.id).collect();
        !self.jfif && ids == b"RGB"
    }
}

fn corrupt(msg: impl Into<String>) -> JpegError {
    JpegError::Corrupt(msg.into())
}

fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Parses marker segments from SOI. With `frame_only`, stops after the frame header
/// (the scan fields stay empty); otherwise stops at the first SOS.
pub(crate) fn parse(jpeg: &[u8], frame_only: bool) -> Result<Header, JpegError> {
    if jpeg.len() < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
        return Err(corrupt("no SOI marker at the start: not a JPEG file"));
    }
    let mut h = Header {
        width: 0,
        height: 0,
        sof: 0,
        precision: 0,
        components: Vec::new(),
        qt: [None; 4],
        dc: [None, None, None, None],
        ac: [None, None, None, None],
        restart_interval: 0,
        scan: Vec::new(),
        ss: 0,
        se: 0,
        ah_al: 0,
        scan_start: 0,
        jfif: false,
        adobe_transform: None,
        tables_hash: 0,
    };
    let mut hasher = Hasher64::new();
    let mut pos = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        if pos >= jpeg.len() || jpeg[pos] != 0xFF {
            return Err(corrupt(format!(
                "expected a marker at byte {pos}, found none before the scan"
            )));
        }
        while pos < jpeg.len() && jpeg[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = jpeg.get(pos) else {
            return Err(corrupt("file ends inside a marker"));
        };
        pos += 1;
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 => return Err(corrupt("EOI marker before any scan")),
            0xD8 => return Err(corrupt("second SOI marker before any scan")),
            0x00 => {
                return Err(corrupt(format!(
                    "invalid marker 0xFF00 at byte {}",
                    pos - 2
                )))
            }
            _ => {}
        }
        if pos + 2 > jpeg.len() {
            return Err(corrupt(format!(
                "file ends in the length of marker 0x{marker:02X}"
            )));
        }
        let len = be16(jpeg, pos) as usize;
        if len < 2 || pos + len > jpeg.len() {
            return Err(corrupt(format!(
                "marker 0x{marker:02X} segment of length {len} overruns the file"
            )));
        }
        let seg = &jpeg[pos + 2..pos + len];
        if matches!(marker, 0xC0..=0xCF | 0xDA | 0xDB | 0xDD) {
            hasher.write(&[marker]);
            hasher.write(seg);
        }
        match marker {
            0xC4 => parse_dht(seg, &mut h)?,
            0xCC => {} // arithmetic conditioning: only matters to arithmetic-coded files
            0xC0..=0xCF => {
                parse_sof(seg, marker, &mut h)?;
                if frame_only {
                    return Ok(h);
                }
            }
            0xDB => parse_dqt(seg, &mut h)?,
            0xDD => {
                if seg.len() < 2 {
                    return Err(corrupt("DRI segment too short"));
                }
                h.restart_interval = be16(seg, 0);
            }
            0xE0 if seg.starts_with(b"JFIF\0") => h.jfif = true,
            0xEE if seg.starts_with(b"Adobe") && seg.len() >= 12 => {
                h.adobe_transform = Some(seg[11])
            }
            0xDA => {
                if h.components.is_empty() {
                    return Err(corrupt("scan (SOS) before the frame header (SOF)"));
                }
                parse_sos(seg, &mut h)?;
                h.scan_start = pos + len;
                h.tables_hash = hasher.finish();
                return Ok(h);
            }
            _ => {}
        }
        pos += len;
    }
}

fn parse_sof(seg: &[u8], marker: u8, h: &mut Header) -> Result<(), JpegError> {
    if !h.components.is_empty() {
        return Err(corrupt("more than one frame header (SOF)"));
    }
    if seg.len() < 6 {
        return Err(corrupt("frame header (SOF) too short"));
    }
    h.sof = marker;
    h.precision = seg[0];
    h.height = be16(seg, 1) as u32;
    h.width = be16(seg, 3) as u32;
    let n = seg[5] as usize;
    if h.width == 0 || h.height == 0 {
        return Err(corrupt(format!(
            "frame size {}x{} (zero or DNL-defined height)",
            h.width, h.height
        )));
    }
    if n == 0 || seg.len() < 6 + 3 * n {
        return Err(corrupt(format!(
            "frame header with {n} components is too short or empty"
        )));
    }
    for i in 0..n {
        let c = &seg[6 + 3 * i..9 + 3 * i];
        let (hs, vs) = (c[1] >> 4, c[1] & 15);
        if !(1..=4).contains(&hs) || !(1..=4).contains(&vs) || c[2] > 3 {
            return Err(corrupt(format!(
                "component {} has sampling {hs}x{vs} / table {}",
                c[0], c[2]
            )));
        }
        h.components.push(Component {
            id: c[0],
            h: hs,
            v: vs,
            tq: c[2],
            td: 0,
            ta: 0,
        });
    }
    Ok(())
}

fn parse_dht(mut seg: &[u8], h: &mut Header) -> Result<(), JpegError> {
    while !seg.is_empty() {
        if seg.len() < 17 {
            return Err(corrupt("Huffman table (DHT) segment too short"));
        }
        let (class, slot) = (seg[0] >> 4, (seg[0] & 15) as usize);
        if class > 1 || slot > 3 {
            return Err(corrupt(format!(
                "Huffman table class {class} slot {slot} out of range"
            )));
        }
        let mut counts = [0u8; 16];
        counts.copy_from_slice(&seg[1..17]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 || seg.len() < 17 + total {
            return Err(corrupt(format!(
                "Huffman table with {total} symbols overruns its segment"
            )));
        }
        let spec = HuffSpec {
            counts,
            values: seg[17..17 + total].to_vec(),
        };
        if class == 0 {
            h.dc[slot] = Some(spec);
        } else {
            h.ac[slot] = Some(spec);
        }
        seg = &seg[17 + total..];
    }
    Ok(())
}

fn parse_dqt(mut seg: &[u8], h: &mut Header) -> Result<(), JpegError> {
    while !seg.is_empty() {
        let (wide, slot) = (seg[0] >> 4, (seg[0] & 15) as usize);
        if wide > 1 || slot > 3 {
            return Err(corrupt(format!(
                "quantisation table precision {wide} slot {slot} out of range"
            )));
        }
        let size = if wide == 1 { 128 } else { 64 };
        if seg.len() < 1 + size {
            return Err(corrupt("quantisation table (DQT) segment too short"));
        }
        let mut table = [0u16; 64];
        for (k, q) in table.iter_mut().enumerate() {
            *q = if wide == 1 {
                be16(seg, 1 + 2 * k)
            } else {
                seg[1 + k] as u16
            };
        }
        h.qt[slot] = Some(table);
        seg = &seg[1 + size..];
    }
    Ok(())
}

fn parse_sos(seg: &[u8], h: &mut Header) -> Result<(), JpegError> {
    let n = *seg
        .first()
        .ok_or_else(|| corrupt("empty scan header (SOS)"))? as usize;
    if n == 0 || n > 4 || seg.len() < 1 + 2 * n + 3 {
        return Err(corrupt(format!(
            "scan header (SOS) with {n} components is malformed"
        )));
    }
    for i in 0..n {
        let (id, tables) = (seg[1 + 2 * i], seg[2 + 2 * i]);
        let Some(ci) = h.components.iter().position(|c| c.id == id) else {
            return Err(corrupt(format!(
                "scan names component {id}, which the frame lacks"
            )));
        };
        if h.scan.contains(&ci) {
            return Err(corrupt(format!("scan names component {id} twice")));
        }
        let (td, ta) = (tables >> 4, tables & 15);
        if td > 3 || ta > 3 {
            return Err(corrupt(format!(
                "scan component {id} uses Huffman tables {td}/{ta}"
            )));
        }
        h.components[ci].td = td;
        h.components[ci].ta = ta;
        h.scan.push(ci);
    }
    let rest = &seg[1 + 2 * n..];
    h.ss = rest[0];
    h.se = rest[1];
    h.ah_al = rest[2];
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn minimal_baseline() -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        // SOF0: 8-bit, 16x8, 1 component id 1, 1x1, table 0.
        j.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 16, 1, 1, 0x11, 0]);
        // DQT table 0, all ones.
        j.extend_from_slice(&[0xFF, 0xDB, 0, 67, 0]);
        j.extend_from_slice(&[1; 64]);
        // DHT: DC and AC table 0, one 1-bit code each (DC category 0, AC end-of-block).
        j.extend_from_slice(&[
            0xFF, 0xC4, 0, 38, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        j.extend_from_slice(&[0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // DRI 4.
        j.extend_from_slice(&[0xFF, 0xDD, 0, 4, 0, 4]);
        // SOS: 1 component id 1, tables 0/0, 0..63.
        j.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0x00, 0, 63, 0]);
        // Two blocks of 2 bits each, padded with ones.
        j.extend_from_slice(&[0x0F, 0xFF, 0xD9]);
        j
    }

    #[test]
    fn parses_frame_tables_and_scan() {
        let j = minimal_baseline();
        let h = parse(&j, false).unwrap();
        assert_eq!((h.width, h.height, h.precision, h.sof), (16, 8, 8, 0xC0));
        assert_eq!(h.components.len(), 1);
        assert_eq!(h.restart_interval, 4);
        assert_eq!(h.qt[0].unwrap()[5], 1);
        assert_eq!(h.scan, vec![0]);
        assert_eq!(h.scan_start, j.len() - 3);
        assert_eq!(h.unsupported(), None);
    }

    #[test]
    fn every_truncation_of_the_header_is_an_error() {
        let j = minimal_baseline();
        let scan_start = parse(&j, false).unwrap().scan_start;
        for cut in 0..scan_start {
            assert!(
                matches!(parse(&j[..cut], false), Err(JpegError::Corrupt(_))),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn progressive_and_twelve_bit_are_unsupported() {
        let mut j = minimal_baseline();
        j[3] = 0xC2;
        assert!(parse(&j, false)
            .unwrap()
            .unsupported()
            .unwrap()
            .contains("progressive"));
        let mut j = minimal_baseline();
        j[6] = 12;
        assert!(parse(&j, false)
            .unwrap()
            .unsupported()
            .unwrap()
            .contains("12-bit"));
    }

    #[test]
    fn table_changes_change_the_hash_but_app_segments_do_not() {
        let j = minimal_baseline();
        let base = parse(&j, false).unwrap().tables_hash;
        let mut q = j.clone();
        q[25] = 2; // a quantisation value
        assert_ne!(parse(&q, false).unwrap().tables_hash, base);
        let mut with_app = j[..2].to_vec();
        with_app.extend_from_slice(&[0xFF, 0xE1, 0, 5, b'a', b'b', b'c']);
        with_app.extend_from_slice(&j[2..]);
        assert_eq!(parse(&with_app, false).unwrap().tables_hash, base);
    }
}
