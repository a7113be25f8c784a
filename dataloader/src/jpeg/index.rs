//! The scan index: entry points into a JPEG's entropy-coded data, serialised compactly.
//!
//! An entry point is the decoder state at the start of an MCU: the bit offset of the next
//! unread bit in the entropy-coded data and the DC predictor of each component (after any
//! restart marker at that MCU has been read). There is one at the start of every MCU row
//! and then every `k` MCUs along it.
//!
//! Layout (little-endian), version 1:
//! ```text
//! "JCIX" version:u8 mode:u8 ncomp:u8 0:u8 fingerprint:u64
//! width:u32 height:u32 mcus_x:u32 mcus_y:u32 k:u32 body_len:u32
//! row_offsets: mcus_y x u32      (start of each MCU row's entries in the body)
//! body                           (per row: bit offset as a varint and the DC predictors
//!                                 as zig-zag varints, absolute for the row's first entry,
//!                                 deltas from the previous entry after that)
//! checksum:u64                   (hash of everything before it)
//! ```
//! Mode 1 ("full decode") has no rows and no body: the JPEG is of a kind this decoder
//! hands to the fallback. The fingerprint ties the index to one JPEG: it hashes the frame,
//! table and scan headers, the file length and samples of the entropy-coded data.

use super::hash::{hash, Hasher64};
use super::markers::Header;

const MAGIC: &[u8; 4] = b"JCIX";
/// Format version written by this code; other versions are rejected.
pub(crate) const VERSION: u8 = 1;
const HEADER_LEN: usize = 40;
const MODE_ENTRIES: u8 = 0;
const MODE_FALLBACK: u8 = 1;

/// Decoder state at the start of one MCU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub mcu: usize,
    pub bitpos: u64,
    pub preds: [i32; 3],
}

/// Geometry the index must agree with (from the JPEG's headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub width: u32,
    pub height: u32,
    pub mcus_x: usize,
    pub mcus_y: usize,
    pub ncomp: usize,
}

/// Identifies the JPEG an index belongs to; cheap (a few hundred bytes hashed).
pub(crate) fn fingerprint(jpeg: &[u8], header: &Header) -> u64 {
    let mut h = Hasher64::new();
    h.write_u64(header.tables_hash);
    h.write_u64(jpeg.len() as u64);
    h.write_u64(header.scan_start as u64);
    for r in fingerprint_ranges(jpeg.len(), header.scan_start) {
        h.write(&jpeg[r]);
    }
    h.finish()
}

/// The bytes of scan data the fingerprint samples: 16 at each eighth of the data and
/// the last 16 (a decode kit carries them, see `kit`).
pub(crate) fn fingerprint_ranges(
    jpeg_len: usize,
    scan_start: usize,
) -> impl Iterator<Item = std::ops::Range<usize>> {
    let start = scan_start.min(jpeg_len);
    let data_len = jpeg_len - start;
    (0..8)
        .map(move |i| {
            let at = data_len * i / 8;
            start + at..start + (at + 16).min(data_len)
        })
        .chain(std::iter::once(
            start + data_len.saturating_sub(16)..jpeg_len,
        ))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Collects entries in MCU order and serialises them.
pub(crate) struct IndexWriter {
    geometry: Geometry,
    k: usize,
    rows: Vec<u32>,
    body: Vec<u8>,
    prev: Option<Entry>,
}

impl IndexWriter {
    /// A writer for a scan of this geometry with an entry every `k` MCUs of a row.
    pub fn new(geometry: Geometry, k: usize) -> Self {
        Self {
            geometry,
            k,
            rows: Vec::with_capacity(geometry.mcus_y),
            body: Vec::new(),
            prev: None,
        }
    }

    /// Spacing of entries along a row, in MCUs.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Adds the entry of MCU `e.mcu` (which must be a row start or `k` MCUs past one).
    pub fn push(&mut self, e: Entry) {
        let n = self.geometry.ncomp;
        match self.prev {
            Some(p) if !e.mcu.is_multiple_of(self.geometry.mcus_x) => {
                put_varint(&mut self.body, e.bitpos - p.bitpos);
                for c in 0..n {
                    put_varint(
                        &mut self.body,
                        zigzag(e.preds[c] as i64 - p.preds[c] as i64),
                    );
                }
            }
            _ => {
                self.rows.push(self.body.len() as u32);
                put_varint(&mut self.body, e.bitpos);
                for c in 0..n {
                    put_varint(&mut self.body, zigzag(e.preds[c] as i64));
                }
            }
        }
        self.prev = Some(e);
    }

    /// The serialised index.
    pub fn finish(self, fingerprint: u64) -> Vec<u8> {
        let g = self.geometry;
        let mut out = header_bytes(MODE_ENTRIES, g, fingerprint, self.k, self.body.len());
        for r in &self.rows {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&self.body);
        let sum = hash(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }
}

fn header_bytes(mode: u8, g: Geometry, fingerprint: u64, k: usize, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 4 * g.mcus_y + body_len + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, mode, g.ncomp as u8, 0]);
    out.extend_from_slice(&fingerprint.to_le_bytes());
    for v in [
        g.width,
        g.height,
        g.mcus_x as u32,
        g.mcus_y as u32,
        k as u32,
        body_len as u32,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The index of a JPEG this decoder does not decode itself (decode it whole instead).
pub(crate) fn fallback_index(g: Geometry, fingerprint: u64) -> Vec<u8> {
    let g = Geometry {
        mcus_x: 0,
        mcus_y: 0,
        ..g
    };
    let mut out = header_bytes(MODE_FALLBACK, g, fingerprint, 0, 0);
    let sum = hash(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// A checked index.
#[derive(Debug)]
pub(crate) enum Index<'a> {
    /// Entry points, for a JPEG this decoder handles.
    Entries(IndexView<'a>),
    /// The JPEG is of a kind to decode whole with the fallback.
    Fallback,
}

/// Read access to the entry points of a checked index.
#[derive(Debug)]
pub(crate) struct IndexView<'a> {
    k: usize,
    mcus_x: usize,
    ncomp: usize,
    rows: &'a [u8],
    body: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks that `bytes` is an intact index of this version for the JPEG with this
/// fingerprint and geometry; says why not otherwise.
pub(crate) fn parse(bytes: &[u8], fingerprint: u64, g: Geometry) -> Result<Index<'_>, String> {
    if bytes.len() < HEADER_LEN + 8 || &bytes[..4] != MAGIC {
        return Err("not a scan index (bad magic or too short)".into());
    }
    if bytes[4] != VERSION {
        return Err(format!(
            "scan index version {} (this decoder reads {VERSION})",
            bytes[4]
        ));
    }
    let (payload, sum) = bytes.split_at(bytes.len() - 8);
    if hash(payload).to_le_bytes() != sum {
        return Err("scan index checksum mismatch (damaged index)".into());
    }
    let fp = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| "short index")?);
    if fp != fingerprint {
        return Err("scan index belongs to another JPEG (fingerprint mismatch)".into());
    }
    let field = |i: usize| u32_at(bytes, 16 + 4 * i);
    if (field(0), field(1)) != (g.width, g.height) || bytes[6] as usize != g.ncomp {
        return Err("scan index geometry does not match the JPEG".into());
    }
    match bytes[5] {
        MODE_FALLBACK => return Ok(Index::Fallback),
        MODE_ENTRIES => {}
        m => return Err(format!("unknown scan index mode {m}")),
    }
    let (mcus_x, mcus_y, k, body_len) = (
        field(2) as usize,
        field(3) as usize,
        field(4) as usize,
        field(5) as usize,
    );
    if (mcus_x, mcus_y) != (g.mcus_x, g.mcus_y) || k == 0 {
        return Err("scan index MCU grid does not match the JPEG".into());
    }
    if payload.len() != HEADER_LEN + 4 * mcus_y + body_len {
        return Err("scan index length does not match its header".into());
    }
    let rows = &payload[HEADER_LEN..HEADER_LEN + 4 * mcus_y];
    let body = &payload[HEADER_LEN + 4 * mcus_y..];
    Ok(Index::Entries(IndexView {
        k,
        mcus_x,
        ncomp: g.ncomp,
        rows,
        body,
    }))
}

impl IndexView<'_> {
    /// The MCU of the first entry point at or after MCU `mcu` (entries sit at row starts
    /// and every `k` MCUs along a row); `None` at or past the last of `total` MCUs.
    pub fn entry_at_or_after(&self, mcu: usize, total: usize) -> Option<usize> {
        if mcu >= total {
            return None;
        }
        let (row, col) = (mcu / self.mcus_x, mcu % self.mcus_x);
        let next = col.div_ceil(self.k) * self.k;
        if next < self.mcus_x {
            Some(row * self.mcus_x + next)
        } else {
            Some((row + 1) * self.mcus_x).filter(|&m| m < total)
        }
    }

    /// The last entry point at or before MCU `mcu` (always in the same MCU row).
    pub fn entry_before(&self, mcu: usize) -> Result<Entry, String> {
        let (row, col) = (mcu / self.mcus_x, mcu % self.mcus_x);
        if 4 * row + 4 > self.rows.len() {
            return Err(format!("scan index has no MCU row {row}"));
        }
        let mut at = u32_at(self.rows, 4 * row) as usize;
        let mut next = || -> Result<u64, String> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let b = *self
                    .body
                    .get(at)
                    .ok_or("scan index entry runs past its body")?;
                at += 1;
                v |= ((b & 0x7F) as u64) << shift;
                if b & 0x80 == 0 {
                    return Ok(v);
                }
            }
            Err("scan index varint too long".into())
        };
        let mut e = Entry {
            mcu: row * self.mcus_x,
            bitpos: 0,
            preds: [0; 3],
        };
        for i in 0..=col / self.k {
            let bits = next()?;
            e.bitpos = if i == 0 {
                bits
            } else {
                e.bitpos.wrapping_add(bits)
            };
            for c in 0..self.ncomp {
                let d = unzigzag(next()?) as i32;
                e.preds[c] = if i == 0 {
                    d
                } else {
                    e.preds[c].wrapping_add(d)
                };
            }
            e.mcu = row * self.mcus_x + i * self.k;
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Geometry = Geometry {
        width: 100,
        height: 40,
        mcus_x: 7,
        mcus_y: 3,
        ncomp: 3,
    };

    fn sample() -> (Vec<Entry>, Vec<u8>) {
        let mut w = IndexWriter::new(G, 3);
        let mut entries = Vec::new();
        let mut bit = 0u64;
        for m in 0..21 {
            bit += 1000 + m as u64 * 37;
            if (m % 7) % 3 == 0 {
                let e = Entry {
                    mcu: m,
                    bitpos: bit,
                    preds: [m as i32 * 5 - 40, -(m as i32), 2047],
                };
                w.push(e);
                entries.push(e);
            }
        }
        (entries, w.finish(0xABCD))
    }

    #[test]
    fn entries_round_trip_through_the_bytes() {
        let (entries, bytes) = sample();
        let Ok(Index::Entries(view)) = parse(&bytes, 0xABCD, G) else {
            panic!("index rejected")
        };
        for m in 0..21 {
            let want = entries.iter().rev().find(|e| e.mcu <= m).unwrap();
            assert_eq!(view.entry_before(m).unwrap(), *want, "mcu {m}");
        }
    }

    #[test]
    fn damaged_stale_or_foreign_indexes_are_rejected() {
        let (_, bytes) = sample();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(parse(&b, 0xABCD, G).is_err(), "flip at byte {i} accepted");
        }
        assert!(parse(&bytes, 0xABCE, G)
            .unwrap_err()
            .contains("another JPEG"));
        let other = Geometry { mcus_y: 4, ..G };
        assert!(parse(&bytes, 0xABCD, other).is_err());
        assert!(parse(&bytes[..bytes.len() - 1], 0xABCD, G).is_err());
        let mut newer = bytes.clone();
        newer[4] = VERSION + 1;
        assert!(parse(&newer, 0xABCD, G).unwrap_err().contains("version"));
    }

    #[test]
    fn fallback_index_says_so() {
        let bytes = fallback_index(G, 7);
        assert!(matches!(parse(&bytes, 7, G), Ok(Index::Fallback)));
        assert!(parse(&bytes, 8, G).is_err());
    }
}
