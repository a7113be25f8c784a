//! The scan decoder: MCU geometry, walking the entropy-coded data (from the start, from a
//! scan-index entry or from a restart marker), decoding and inverse-transforming only the
//! blocks a region needs, and the one-pass walk that builds a scan index.

use super::color::Plane;
use super::huffman::{BitReader, HuffTable};
use super::idct::idct8x8;
use super::index::{Entry, Geometry, IndexView, IndexWriter};
use super::markers::Header;
use super::JpegError;

/// One component as the scan sees it.
pub(crate) struct Comp {
    /// Blocks per MCU horizontally and vertically (1x1 in a single-component scan).
    h: usize,
    v: usize,
    /// Size of the component plane in samples.
    plane_w: usize,
    plane_h: usize,
    /// Upsampling factors from the plane to image pixels.
    rh: usize,
    rv: usize,
    q: [u16; 64],
    dc: HuffTable,
    ac: HuffTable,
}

/// A supported scan, ready to decode.
pub(crate) struct Scan<'a> {
    pub width: usize,
    pub height: usize,
    /// Components in frame order (Y, Cb, Cr or one gray).
    comps: Vec<Comp>,
    /// Frame component indices in scan order.
    order: Vec<usize>,
    pub mcus_x: usize,
    pub mcus_y: usize,
    restart: usize,
    data: &'a [u8],
}

/// Why a region could not be decoded: the JPEG, or an index entry that does not fit.
pub(crate) enum Failure {
    Jpeg(JpegError),
    Index(String),
}

impl From<JpegError> for Failure {
    fn from(e: JpegError) -> Self {
        Failure::Jpeg(e)
    }
}

/// Inclusive block ranges per component and the MCU range that contains them.
struct Region {
    blocks: Vec<[usize; 4]>, // bx0, bx1, by0, by1
    mc: (usize, usize),
    mr: (usize, usize),
}

struct State<'a> {
    reader: BitReader<'a>,
    preds: [i32; 3],
    mcu: usize,
    /// The restart marker in front of `mcu` (if any) has already been read.
    restarted: bool,
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

impl<'a> Scan<'a> {
    /// Builds the decoder for a header that `Header::unsupported` accepted.
    pub fn new(jpeg: &'a [u8], hdr: &Header) -> Result<Self, JpegError> {
        let (width, height) = (hdr.width as usize, hdr.height as usize);
        let hmax = hdr
            .components
            .iter()
            .map(|c| c.h as usize)
            .max()
            .unwrap_or(1);
        let vmax = hdr
            .components
            .iter()
            .map(|c| c.v as usize)
            .max()
            .unwrap_or(1);
        let interleaved = hdr.components.len() > 1;
        let mut comps = Vec::with_capacity(hdr.components.len());
        for c in &hdr.components {
            let (h, v) = (c.h as usize, c.v as usize);
            let missing = || JpegError::Corrupt(format!("component {} lacks its tables", c.id));
            let q = hdr.qt[c.tq as usize].ok_or_else(missing)?;
            let dc = HuffTable::new(hdr.dc[c.td as usize].as_ref().ok_or_else(missing)?, false)?;
            let ac = HuffTable::new(hdr.ac[c.ta as usize].as_ref().ok_or_else(missing)?, true)?;
            comps.push(Comp {
                h: if interleaved { h } else { 1 },
                v: if interleaved { v } else { 1 },
                plane_w: ceil_div(width * h, hmax),
                plane_h: ceil_div(height * v, vmax),
                rh: hmax / h,
                rv: vmax / v,
                q,
                dc,
                ac,
            });
        }
        let (mcus_x, mcus_y) = if interleaved {
            (ceil_div(width, 8 * hmax), ceil_div(height, 8 * vmax))
        } else {
            (ceil_div(comps[0].plane_w, 8), ceil_div(comps[0].plane_h, 8))
        };
        let data = &jpeg[hdr.scan_start..];
        let restart = hdr.restart_interval as usize;
        Ok(Self {
            width,
            height,
            comps,
            order: hdr.scan.clone(),
            mcus_x,
            mcus_y,
            restart,
            data,
        })
    }

    /// What a scan index of this scan must agree with.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            width: self.width as u32,
            height: self.height as u32,
            mcus_x: self.mcus_x,
            mcus_y: self.mcus_y,
            ncomp: self.comps.len(),
        }
    }

    /// Width of an MCU in image pixels.
    pub fn mcu_width(&self) -> usize {
        self.comps[0].h * 8 * self.comps[0].rh
    }

    fn start_state(&self) -> State<'a> {
        State {
            reader: BitReader::start(self.data),
            preds: [0; 3],
            mcu: 0,
            restarted: false,
        }
    }

    fn state_at(&self, e: Entry) -> Result<State<'a>, Failure> {
        if e.mcu >= self.mcus_x * self.mcus_y || e.bitpos > self.data.len() as u64 * 8 {
            return Err(Failure::Index(format!(
                "entry for MCU {} lies outside the scan",
                e.mcu
            )));
        }
        let reader =
            BitReader::at(self.data, e.bitpos).map_err(|e| Failure::Index(e.to_string()))?;
        Ok(State {
            reader,
            preds: e.preds,
            mcu: e.mcu,
            restarted: true,
        })
    }

    /// Reads the restart marker in front of `state.mcu` when one is due.
    #[inline]
    fn maybe_restart(&self, s: &mut State<'a>) -> Result<(), JpegError> {
        let m = s.mcu;
        if self.restart > 0 && m > 0 && m.is_multiple_of(self.restart) && !s.restarted {
            s.reader.restart(((m / self.restart - 1) % 8) as u8)?;
            s.preds = [0; 3];
        }
        s.restarted = true;
        Ok(())
    }

    fn finish_mcu(&self, s: &mut State<'a>) -> Result<(), JpegError> {
        if s.reader.overran() {
            return Err(JpegError::Corrupt(format!(
                "entropy-coded data ends early, in MCU {} of {}",
                s.mcu,
                self.mcus_x * self.mcus_y
            )));
        }
        s.mcu += 1;
        s.restarted = false;
        Ok(())
    }

    fn skip_mcu(&self, s: &mut State<'a>) -> Result<(), JpegError> {
        self.maybe_restart(s)?;
        for &ci in &self.order {
            let c = &self.comps[ci];
            for _ in 0..c.h * c.v {
                s.reader.skip_block(&c.dc, &c.ac, &mut s.preds[ci])?;
            }
        }
        self.finish_mcu(s)
    }

    /// Decodes MCU `s.mcu`, inverse-transforming the blocks inside `region` into `planes`.
    fn decode_mcu(
        &self,
        s: &mut State<'a>,
        region: &Region,
        planes: &mut [Plane],
    ) -> Result<(), JpegError> {
        self.maybe_restart(s)?;
        let (mx, my) = (s.mcu % self.mcus_x, s.mcu / self.mcus_x);
        let mut coef = [0i32; 64];
        for &ci in &self.order {
            let c = &self.comps[ci];
            let [bx0, bx1, by0, by1] = region.blocks[ci];
            for bv in 0..c.v {
                for bh in 0..c.h {
                    let (bx, by) = (mx * c.h + bh, my * c.v + bv);
                    if bx < bx0 || bx > bx1 || by < by0 || by > by1 {
                        s.reader.skip_block(&c.dc, &c.ac, &mut s.preds[ci])?;
                        continue;
                    }
                    coef.fill(0);
                    let last =
                        s.reader
                            .decode_block(&c.dc, &c.ac, &c.q, &mut s.preds[ci], &mut coef)?;
                    let p = &mut planes[ci];
                    let at = (by - by0) * 8 * p.stride + (bx - bx0) * 8;
                    idct8x8(&coef, last, &mut p.data[at..], p.stride);
                }
            }
        }
        self.finish_mcu(s)
    }

    /// The blocks and MCUs that image rectangle `(x, y, w, h)` needs (`w, h >= 1`).
    fn region(&self, x: usize, y: usize, w: usize, h: usize) -> Region {
        // Samples reach one chroma sample beyond the rectangle for factor-2 upsampling.
        let lo = |p: usize, r: usize| {
            if r == 2 {
                (p / 2).saturating_sub(1)
            } else {
                p / r
            }
        };
        let hi = |p: usize, r: usize, n: usize| (p / r + usize::from(r == 2)).min(n - 1);
        let mut blocks = Vec::with_capacity(self.comps.len());
        let (mut mc, mut mr) = ((usize::MAX, 0), (usize::MAX, 0));
        for c in &self.comps {
            let b = [
                lo(x, c.rh) / 8,
                hi(x + w - 1, c.rh, c.plane_w) / 8,
                lo(y, c.rv) / 8,
                hi(y + h - 1, c.rv, c.plane_h) / 8,
            ];
            mc = (mc.0.min(b[0] / c.h), mc.1.max(b[1] / c.h));
            mr = (mr.0.min(b[2] / c.v), mr.1.max(b[3] / c.v));
            blocks.push(b);
        }
        Region { blocks, mc, mr }
    }

    /// The MCU columns and rows (inclusive) that decoding image rectangle `(x, y, w, h)`
    /// reads (`w, h >= 1`).
    pub fn mcu_span(
        &self,
        x: usize,
        y: usize,
        w: usize,
        h: usize,
    ) -> ((usize, usize), (usize, usize)) {
        let r = self.region(x, y, w, h);
        (r.mc, r.mr)
    }

    /// Decodes the component samples that image rectangle `(x, y, w, h)` needs, using
    /// `index` entry points when given (restart markers otherwise).
    pub fn decode_planes(
        &self,
        x: usize,
        y: usize,
        w: usize,
        h: usize,
        index: Option<&IndexView>,
    ) -> Result<Vec<Plane>, Failure> {
        let region = self.region(x, y, w, h);
        let mut planes: Vec<Plane> = self
            .comps
            .iter()
            .zip(&region.blocks)
            .map(|(c, &[bx0, bx1, by0, by1])| {
                let stride = (bx1 - bx0 + 1) * 8;
                Plane {
                    data: vec![0; stride * (by1 - by0 + 1) * 8],
                    stride,
                    x0: bx0 * 8,
                    y0: by0 * 8,
                    width: c.plane_w,
                    height: c.plane_h,
                    rh: c.rh,
                    rv: c.rv,
                }
            })
            .collect();
        let mut state: Option<State<'a>> = None;
        let mut seeker = RestartSeeker {
            data: self.data,
            pos: 0,
            interval: 0,
        };
        for my in region.mr.0..=region.mr.1 {
            let target = my * self.mcus_x + region.mc.0;
            let end = my * self.mcus_x + region.mc.1 + 1;
            let here = state.as_ref().map_or(0, |s| s.mcu);
            if let Some(ix) = index {
                let e = ix.entry_before(target).map_err(Failure::Index)?;
                if state.is_none() || e.mcu > here {
                    state = Some(self.state_at(e)?);
                }
            } else if let Some(n) = target.checked_div(self.restart) {
                if n * self.restart > here || (state.is_none() && n > 0) {
                    if let Some(pos) = seeker.seek(n) {
                        let reader = BitReader::at(self.data, pos as u64 * 8)?;
                        let mcu = n * self.restart;
                        state = Some(State {
                            reader,
                            preds: [0; 3],
                            mcu,
                            restarted: true,
                        });
                    }
                }
            }
            let s = state.get_or_insert_with(|| self.start_state());
            while s.mcu < target {
                self.skip_mcu(s)?;
            }
            while s.mcu < end {
                self.decode_mcu(s, &region, &mut planes)?;
            }
        }
        Ok(planes)
    }

    /// Walks the whole scan once (Huffman decoding only) and records an entry point at
    /// each MCU row start and every `writer.k()` MCUs along a row.
    pub fn build_entries(&self, writer: &mut IndexWriter) -> Result<(), JpegError> {
        let mut s = self.start_state();
        let k = writer.k();
        for m in 0..self.mcus_x * self.mcus_y {
            if (m % self.mcus_x).is_multiple_of(k) {
                self.maybe_restart(&mut s)?;
                writer.push(Entry {
                    mcu: m,
                    bitpos: s.reader.position(),
                    preds: s.preds,
                });
            }
            self.skip_mcu(&mut s)?;
        }
        Ok(())
    }
}

/// Finds restart intervals by scanning for RSTn markers (no Huffman decoding).
struct RestartSeeker<'a> {
    data: &'a [u8],
    /// Start of restart interval `interval`.
    pos: usize,
    interval: usize,
}

impl RestartSeeker<'_> {
    /// Byte offset where restart interval `n` starts, if the markers lead there in order.
    fn seek(&mut self, n: usize) -> Option<usize> {
        while self.interval < n {
            let p = next_marker(self.data, self.pos)?;
            if self.data[p + 1] != 0xD0 + (self.interval % 8) as u8 {
                return None;
            }
            self.pos = p + 2;
            self.interval += 1;
        }
        (self.interval == n).then_some(self.pos)
    }
}

/// Offset of the next marker (0xFF followed by neither 0x00 nor 0xFF) at or after `from`.
fn next_marker(data: &[u8], mut from: usize) -> Option<usize> {
    loop {
        // Eight bytes at a time while none of them is 0xFF.
        while from + 8 <= data.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&data[from..from + 8]);
            let inv = !u64::from_le_bytes(word);
            if inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080 != 0 {
                break;
            }
            from += 8;
        }
        let p = from + data.get(from..)?.iter().position(|&b| b == 0xFF)?;
        match data.get(p + 1) {
            None => return None,
            Some(0x00) => from = p + 2,
            Some(0xFF) => from = p + 1,
            Some(_) => return Some(p),
        }
    }
}
