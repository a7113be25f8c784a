//! The decode kit: what a reader needs, besides the scan index, to decode crops of a JPEG
//! from byte ranges of it, never holding the whole file.
//!
//! A kit is a few pieces of the original file at their original offsets: every marker
//! segment before the scan data (APPn and COM segments only as their marker and length,
//! except the JFIF and Adobe segments colour conversion reads), and the few bytes of scan
//! data the index fingerprint samples. A [`SparseJpeg`] lays those pieces into a buffer of
//! the file's length (untouched pages of a zeroed allocation cost no memory), the reader
//! adds the byte ranges [`SparseJpeg::ranges_for`] names, and the ordinary decoder then
//! reads exactly the bytes it would read in the whole file: pixels are identical by
//! construction. Decoding refuses to run without a valid index ([`SparseJpeg::decode`]),
//! since a sequential decode would read bytes that were never fetched.
//!
//! Layout (little-endian), version 1:
//! ```text
//! "JKIT" version:u8 0:u8 0:u8 0:u8 jpeg_len:u64 pieces:u32
//! pieces x (offset:u64 len:u32)
//! piece bytes, in order
//! checksum:u64                  (hash of everything before it)
//! ```
//! A 12 MP camera JPEG's kit is about 700 bytes.

use std::ops::Range;

use super::hash::hash;
use super::index::{self, Index};
use super::markers::{self, Header};
use super::scan::Scan;
use super::{CropRect, JpegError, RgbImage};

const MAGIC: &[u8; 4] = b"JKIT";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 20;
/// Largest JPEG a kit may describe (guards the allocation against a damaged length).
const MAX_JPEG_LEN: u64 = 1 << 30;
/// Bytes fetched past the end of the last MCU a crop needs: the bit reader looks ahead.
const TAIL_SLACK: u64 = 8;

fn corrupt(msg: impl Into<String>) -> JpegError {
    JpegError::Corrupt(msg.into())
}

/// Builds the kit of a JPEG this decoder handles; `None` for kinds decoded whole by the
/// fallback (ranged reads cannot help them).
pub fn build_kit(jpeg: &[u8]) -> Result<Option<Vec<u8>>, JpegError> {
    let hdr = markers::parse(jpeg, false)?;
    if hdr.unsupported().is_some() {
        return Ok(None);
    }
    let mut pieces = header_pieces(jpeg, hdr.scan_start);
    for r in index::fingerprint_ranges(jpeg.len(), hdr.scan_start) {
        pieces.push(r);
    }
    let pieces = merge(pieces, 0);
    let mut out = Vec::with_capacity(HEADER_LEN + 12 * pieces.len() + 1024);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&(jpeg.len() as u64).to_le_bytes());
    out.extend_from_slice(&(pieces.len() as u32).to_le_bytes());
    for r in &pieces {
        out.extend_from_slice(&(r.start as u64).to_le_bytes());
        out.extend_from_slice(&((r.end - r.start) as u32).to_le_bytes());
    }
    for r in &pieces {
        out.extend_from_slice(&jpeg[r.clone()]);
    }
    let sum = hash(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(Some(out))
}

/// `[0, scan_start)` without the payloads of APPn and COM segments (other than JFIF and
/// Adobe, which decoding reads). `jpeg` has passed [`markers::parse`], so the walk is safe.
fn header_pieces(jpeg: &[u8], scan_start: usize) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut from = 0;
    let mut pos = 2;
    while pos < scan_start {
        while jpeg[pos] == 0xFF && pos + 1 < scan_start && jpeg[pos + 1] == 0xFF {
            pos += 1;
        }
        let marker = jpeg[pos + 1];
        pos += 2;
        if matches!(marker, 0x01 | 0xD0..=0xD7) {
            continue;
        }
        let len = u16::from_be_bytes([jpeg[pos], jpeg[pos + 1]]) as usize;
        let seg = &jpeg[pos + 2..pos + len];
        let needed = match marker {
            0xE0 => seg.starts_with(b"JFIF\0"),
            0xEE => seg.starts_with(b"Adobe"),
            0xE1..=0xED | 0xEF | 0xFE => false,
            _ => true,
        };
        if !needed {
            pieces.push(from..pos + 2);
            from = pos + len;
        }
        pos += len;
    }
    pieces.push(from..scan_start);
    pieces.retain(|r| !r.is_empty());
    pieces
}

/// Sorts ranges and joins those that overlap or lie less than `gap` bytes apart.
fn merge<T: Ord + Copy + std::ops::Add<Output = T>>(
    mut ranges: Vec<Range<T>>,
    gap: T,
) -> Vec<Range<T>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<T>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end + gap => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// A JPEG held as the pieces of it that were fetched, at their offsets.
pub struct SparseJpeg {
    buf: Vec<u8>,
}

impl SparseJpeg {
    /// The file as far as its kit knows it; fails on a damaged kit.
    pub fn from_kit(kit: &[u8]) -> Result<Self, JpegError> {
        if kit.len() < HEADER_LEN + 8 || &kit[..4] != MAGIC {
            return Err(corrupt("decode kit: bad magic or too short"));
        }
        let (payload, sum) = kit.split_at(kit.len() - 8);
        if hash(payload).to_le_bytes() != sum {
            return Err(corrupt("decode kit: checksum mismatch (damaged)"));
        }
        if kit[4] != VERSION {
            return Err(corrupt(format!("decode kit version {} unknown", kit[4])));
        }
        let u64_at = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u32::from_le_bytes(payload[at..at + 4].try_into().unwrap());
        let len = u64_at(8);
        let n = u32_at(16) as usize;
        if len > MAX_JPEG_LEN || HEADER_LEN + 12 * n > payload.len() {
            return Err(corrupt("decode kit: lengths out of range"));
        }
        let mut sparse = SparseJpeg {
            buf: vec![0; len as usize],
        };
        let mut data = HEADER_LEN + 12 * n;
        for i in 0..n {
            let at = HEADER_LEN + 12 * i;
            let (offset, plen) = (u64_at(at), u32_at(at + 8) as usize);
            let bytes = payload
                .get(data..data + plen)
                .ok_or_else(|| corrupt("decode kit: piece runs past its end"))?;
            sparse.fill(offset, bytes)?;
            data += plen;
        }
        if data != payload.len() {
            return Err(corrupt("decode kit: trailing bytes"));
        }
        Ok(sparse)
    }

    /// Length of the whole file.
    pub fn len(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Whether the file is empty (never, for a valid kit).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Puts `bytes`, fetched from offset `at` of the file, in place.
    pub fn fill(&mut self, at: u64, bytes: &[u8]) -> Result<(), JpegError> {
        let end = at
            .checked_add(bytes.len() as u64)
            .filter(|&e| e <= self.len())
            .ok_or_else(|| corrupt(format!("bytes at {at} lie outside the file")))?;
        self.buf[at as usize..end as usize].copy_from_slice(bytes);
        Ok(())
    }

    fn header(&self) -> Result<Header, JpegError> {
        let hdr = markers::parse(&self.buf, false)?;
        match hdr.unsupported() {
            Some(why) => Err(corrupt(format!("a kit for a JPEG decoded whole ({why})"))),
            None => Ok(hdr),
        }
    }

    /// The byte ranges of the file that decoding `rects` with `index` reads, beyond the
    /// kit: for each MCU row under a rect, from the index entry before the rect to the
    /// entry after it. Ranges less than `gap` bytes apart are joined (one request instead
    /// of two, when a request costs more than `gap` bytes).
    pub fn ranges_for(
        &self,
        index_bytes: &[u8],
        rects: &[CropRect],
        gap: u64,
    ) -> Result<Vec<Range<u64>>, JpegError> {
        let hdr = self.header()?;
        let scan = Scan::new(&self.buf, &hdr)?;
        let view = checked_index(&self.buf, &hdr, &scan, index_bytes)?;
        let start = hdr.scan_start as u64;
        let (total, mcus_x) = (scan.mcus_x * scan.mcus_y, scan.mcus_x);
        let mut ranges = Vec::new();
        for &rect in rects {
            super::check_rect(rect, hdr.width, hdr.height)?;
            let (mc, mr) = scan.mcu_span(
                rect.x as usize,
                rect.y as usize,
                rect.width as usize,
                rect.height as usize,
            );
            for my in mr.0..=mr.1 {
                let first = view
                    .entry_before(my * mcus_x + mc.0)
                    .map_err(JpegError::Corrupt)?;
                let end_mcu = my * mcus_x + mc.1 + 1;
                let end = match view.entry_at_or_after(end_mcu, total) {
                    Some(mcu) => {
                        let e = view.entry_before(mcu).map_err(JpegError::Corrupt)?;
                        (start + e.bitpos.div_ceil(8) + TAIL_SLACK).min(self.len())
                    }
                    None => self.len(),
                };
                ranges.push(start + first.bitpos / 8..end);
            }
        }
        Ok(merge(ranges, gap))
    }

    /// Decodes `rect`, which must lie inside ranges filled after [`Self::ranges_for`].
    /// Refuses to decode without a valid index.
    pub fn decode(&self, index_bytes: &[u8], rect: CropRect) -> Result<RgbImage, JpegError> {
        let hdr = self.header()?;
        super::check_rect(rect, hdr.width, hdr.height)?;
        let scan = Scan::new(&self.buf, &hdr)?;
        super::decode_with_index(&self.buf, &hdr, &scan, index_bytes, rect, false)
    }
}

fn checked_index<'i>(
    buf: &[u8],
    hdr: &Header,
    scan: &Scan,
    index_bytes: &'i [u8],
) -> Result<index::IndexView<'i>, JpegError> {
    match index::parse(index_bytes, index::fingerprint(buf, hdr), scan.geometry()) {
        Ok(Index::Entries(view)) => Ok(view),
        Ok(Index::Fallback) => Err(corrupt("scan index says to decode the JPEG whole")),
        Err(reason) => Err(corrupt(format!(
            "scan index unusable for ranged reads: {reason}"
        ))),
    }
}
