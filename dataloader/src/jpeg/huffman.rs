//! Entropy-coded data: a bit reader that removes byte stuffing and stops at markers, and
//! Huffman decoding of 8x8 blocks (with a cheaper variant that only skips a block).
//!
//! Positions are bit offsets into the entropy-coded data (counting the file's bytes,
//! stuffing included), so a reader can be saved and restored anywhere.

use super::markers::HuffSpec;
use super::JpegError;

/// Zig-zag position -> natural (row-major) position.
pub(crate) const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

const LUT_BITS: u32 = 9;
const SKIP_EOB: u16 = 1 << 15;
const SKIP_ZRL: u16 = 1 << 14;

/// The value of an `s`-bit magnitude category with raw bits `v` (JPEG "EXTEND").
#[inline(always)]
fn extend(v: u32, s: u32) -> i32 {
    if s == 0 {
        0
    } else if v < 1 << (s - 1) {
        v as i32 - (1 << s) + 1
    } else {
        v as i32
    }
}

/// A Huffman table ready for decoding: a lookup table for short codes, canonical code
/// ranges for the long ones.
pub(crate) struct HuffTable {
    /// `(length << 8) | symbol` for each `LUT_BITS`-bit prefix; 0 when the code is longer.
    lut: Vec<u16>,
    /// AC tables: per prefix, `value << 16 | run << 8 | bits` for a whole coefficient
    /// (code and magnitude) that fits the prefix; 0 otherwise.
    fast_ac: Vec<i32>,
    /// AC tables: per prefix whose code fits, the bits to skip for the whole coefficient
    /// (`& 31`), zig-zag positions it advances (`>> 5 & 31`), `SKIP_EOB` / `SKIP_ZRL`.
    skip_ac: Vec<u16>,
    /// Largest code of each length (-1 when none), index 1..=16.
    maxcode: [i32; 17],
    /// `values` index of a code of length l is `code + valoffset[l]`.
    valoffset: [i32; 17],
    values: Vec<u8>,
}

impl HuffTable {
    /// Builds the decoding tables; rejects specifications whose codes overflow.
    /// `ac` adds the whole-coefficient tables used for AC coefficients.
    pub fn new(spec: &HuffSpec, ac: bool) -> Result<Self, JpegError> {
        let mut lut = vec![0u16; 1 << LUT_BITS];
        let mut maxcode = [-1i32; 17];
        let mut valoffset = [0i32; 17];
        let mut code: u32 = 0;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = spec.counts[len as usize - 1] as u32;
            if n > 0 {
                valoffset[len as usize] = k as i32 - code as i32;
                for _ in 0..n {
                    if code >= (1 << len) {
                        return Err(JpegError::Corrupt(
                            "Huffman table has more codes than fit".into(),
                        ));
                    }
                    if len <= LUT_BITS {
                        let shift = LUT_BITS - len;
                        let entry = ((len as u16) << 8) | spec.values[k] as u16;
                        let base = (code << shift) as usize;
                        lut[base..base + (1 << shift)].fill(entry);
                    }
                    code += 1;
                    k += 1;
                }
                maxcode[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        let (mut fast_ac, mut skip_ac) = (Vec::new(), Vec::new());
        if ac {
            fast_ac = vec![0; 1 << LUT_BITS];
            skip_ac = vec![0; 1 << LUT_BITS];
            for (p, &e) in lut.iter().enumerate() {
                if e == 0 {
                    continue;
                }
                let (len, r, s) = ((e >> 8) as u32, (e as u32 >> 4) & 15, e as u32 & 15);
                skip_ac[p] = match (r, s) {
                    (15, 0) => len as u16 | SKIP_ZRL,
                    (_, 0) => len as u16 | SKIP_EOB,
                    _ => (len + s) as u16 | ((r + 1) << 5) as u16,
                };
                if s > 0 && len + s <= LUT_BITS {
                    let bits = (p as u32 >> (LUT_BITS - len - s)) & ((1 << s) - 1);
                    fast_ac[p] = (extend(bits, s) << 16) | (r << 8) as i32 | (len + s) as i32;
                }
            }
        }
        Ok(Self {
            lut,
            fast_ac,
            skip_ac,
            maxcode,
            valoffset,
            values: spec.values.clone(),
        })
    }
}

/// Reads bits MSB-first from entropy-coded data; past a marker or the end it yields
/// zeros and counts them, so running out of data is detected, not read as garbage.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte to load into `buf`.
    pos: usize,
    /// Unread bits, MSB-aligned; bits below `nbits` may hold the next byte's bits.
    buf: u64,
    nbits: u32,
    /// Zero bits appended after a marker or the end of the data (the lowest `padded` of
    /// the `nbits`).
    padded: u32,
}

impl<'a> BitReader<'a> {
    /// A reader at the start of `data`.
    pub fn start(data: &'a [u8]) -> Self {
        let mut r = Self {
            data,
            pos: 0,
            buf: 0,
            nbits: 0,
            padded: 0,
        };
        r.refill();
        r
    }

    /// A reader at bit `bitpos` of `data` (the entropy-coded data of a scan).
    pub fn at(data: &'a [u8], bitpos: u64) -> Result<Self, JpegError> {
        let byte = (bitpos / 8) as usize;
        if byte > data.len() {
            return Err(JpegError::Corrupt(format!(
                "bit position {bitpos} past the end of the scan"
            )));
        }
        let mut r = Self {
            data,
            pos: byte,
            buf: 0,
            nbits: 0,
            padded: 0,
        };
        r.refill();
        r.consume((bitpos % 8) as u32);
        Ok(r)
    }

    #[inline(always)]
    fn refill(&mut self) {
        // Fast path: eight bytes with no 0xFF among them.
        if self.pos + 8 <= self.data.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&self.data[self.pos..self.pos + 8]);
            let w = u64::from_be_bytes(word);
            let inv = !w;
            let has_ff = inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                let nbytes = (63 - self.nbits) >> 3;
                self.buf |= w >> self.nbits;
                self.pos += nbytes as usize;
                self.nbits += nbytes * 8;
                return;
            }
        }
        while self.nbits <= 56 {
            let byte = match self.data.get(self.pos) {
                Some(0xFF) if self.data.get(self.pos + 1) == Some(&0x00) => {
                    self.pos += 2;
                    0xFF
                }
                Some(&b) if b != 0xFF => {
                    self.pos += 1;
                    b
                }
                // A marker (or fill bytes before one), or the end: stay here, yield zeros.
                _ => {
                    self.padded += 8;
                    0
                }
            };
            self.buf |= (byte as u64) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.nbits -= n;
    }

    #[inline(always)]
    fn ensure(&mut self) {
        if self.nbits < 32 {
            self.refill();
        }
    }

    /// Takes `n` (1..=16) bits as an unsigned number; `ensure` must have run.
    #[inline(always)]
    fn bits(&mut self, n: u32) -> u32 {
        let v = (self.buf >> (64 - n)) as u32;
        self.consume(n);
        v
    }

    /// True when decoding has consumed bits that were not in the data.
    #[inline(always)]
    pub fn overran(&self) -> bool {
        self.nbits < self.padded
    }

    /// Bit offset of the next unread bit in the data.
    pub fn position(&self) -> u64 {
        let mut real = self.nbits.saturating_sub(self.padded);
        let mut p = self.pos;
        // Walk back over the bytes still (partly) in the buffer; a 0x00 after 0xFF is
        // stuffing and holds no bits.
        while real > 0 && p > 0 {
            p -= 1;
            if self.data[p] == 0x00 && p > 0 && self.data[p - 1] == 0xFF {
                continue;
            }
            if real < 8 {
                return p as u64 * 8 + (8 - real) as u64;
            }
            real -= 8;
        }
        p as u64 * 8
    }

    /// Handles a restart marker: drops the rest of the current byte, skips anything up to
    /// the next marker, and checks that it is `RSTn` with `n == expected`.
    pub fn restart(&mut self, expected: u8) -> Result<(), JpegError> {
        let mut p = self.pos;
        self.buf = 0;
        self.nbits = 0;
        self.padded = 0;
        loop {
            if p + 1 >= self.data.len() {
                return Err(JpegError::Corrupt(format!(
                    "missing restart marker RST{expected}"
                )));
            }
            if self.data[p] == 0xFF && self.data[p + 1] != 0x00 && self.data[p + 1] != 0xFF {
                break;
            }
            p += if self.data[p] == 0xFF && self.data[p + 1] == 0x00 {
                2
            } else {
                1
            };
        }
        let marker = self.data[p + 1];
        if marker != 0xD0 + expected {
            return Err(JpegError::Corrupt(format!(
                "expected restart marker RST{expected}, found marker 0xFF{marker:02X}"
            )));
        }
        self.pos = p + 2;
        Ok(())
    }

    #[inline(always)]
    fn symbol(&mut self, t: &HuffTable) -> Result<u8, JpegError> {
        let e = t.lut[(self.buf >> (64 - LUT_BITS)) as usize];
        if e != 0 {
            self.consume((e >> 8) as u32);
            return Ok(e as u8);
        }
        for len in LUT_BITS + 1..=16 {
            let code = (self.buf >> (64 - len)) as i32;
            if code <= t.maxcode[len as usize] {
                self.consume(len);
                let idx = (code + t.valoffset[len as usize]) as usize;
                return t.values.get(idx).copied().ok_or_else(bad_code);
            }
        }
        Err(bad_code())
    }

    /// Reads an `s`-bit magnitude category value (JPEG "EXTEND").
    #[inline(always)]
    fn value(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.bits(s);
        extend(v, s)
    }

    /// Decodes the DC difference of a block.
    #[inline(always)]
    fn dc_diff(&mut self, dc: &HuffTable) -> Result<i32, JpegError> {
        self.ensure();
        let s = self.symbol(dc)? as u32;
        if s > 15 {
            return Err(JpegError::Corrupt(format!(
                "DC magnitude category {s} out of range"
            )));
        }
        Ok(self.value(s))
    }

    /// Decodes one block into dequantised coefficients in natural order (`out` must be
    /// zero on entry); updates the DC predictor. Returns how many AC zig-zag positions
    /// may be non-zero (0 means the block is flat).
    #[inline]
    pub fn decode_block(
        &mut self,
        dc: &HuffTable,
        ac: &HuffTable,
        q: &[u16; 64],
        pred: &mut i32,
        out: &mut [i32; 64],
    ) -> Result<usize, JpegError> {
        *pred = pred.wrapping_add(self.dc_diff(dc)?);
        out[0] = (*pred as i16) as i32 * q[0] as i32;
        let mut k = 1;
        let mut last = 0;
        while k < 64 {
            self.ensure();
            let f = ac.fast_ac[(self.buf >> (64 - LUT_BITS)) as usize];
            if f != 0 {
                self.consume((f & 0xFF) as u32);
                k += ((f >> 8) & 15) as usize;
                if k > 63 {
                    return Err(too_many_coefficients());
                }
                out[ZIGZAG[k]] = (f >> 16) * q[k] as i32;
                last = k;
                k += 1;
                continue;
            }
            let rs = self.symbol(ac)? as u32;
            let (r, s) = ((rs >> 4) as usize, rs & 15);
            if s == 0 {
                if r != 15 {
                    break;
                }
                k += 16;
                continue;
            }
            k += r;
            if k > 63 {
                return Err(too_many_coefficients());
            }
            out[ZIGZAG[k]] = self.value(s) * q[k] as i32;
            last = k;
            k += 1;
        }
        Ok(last)
    }

    /// Reads past one block, keeping only the DC predictor.
    #[inline]
    pub fn skip_block(
        &mut self,
        dc: &HuffTable,
        ac: &HuffTable,
        pred: &mut i32,
    ) -> Result<(), JpegError> {
        *pred = pred.wrapping_add(self.dc_diff(dc)?);
        let mut k = 1;
        while k < 64 {
            self.ensure();
            let e = ac.skip_ac[(self.buf >> (64 - LUT_BITS)) as usize];
            if e != 0 {
                self.consume((e & 31) as u32);
                if e & SKIP_EOB != 0 {
                    break;
                }
                if e & SKIP_ZRL != 0 {
                    k += 16;
                    continue;
                }
                k += ((e >> 5) & 31) as u32;
                if k > 64 {
                    return Err(too_many_coefficients());
                }
                continue;
            }
            let rs = self.symbol(ac)? as u32;
            let (r, s) = (rs >> 4, rs & 15);
            if s == 0 {
                if r != 15 {
                    break;
                }
                k += 16;
                continue;
            }
            k += r;
            if k > 63 {
                return Err(too_many_coefficients());
            }
            self.consume(s);
            k += 1;
        }
        Ok(())
    }
}

fn bad_code() -> JpegError {
    JpegError::Corrupt("invalid Huffman code in the entropy-coded data".into())
}

fn too_many_coefficients() -> JpegError {
    JpegError::Corrupt("more than 64 coefficients in a block".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DC-style table: symbols 0..=5 with lengths 2,3,3,3,3,3 (codes 00, 010..110).
    fn small_table() -> HuffTable {
        let mut counts = [0u8; 16];
        counts[1] = 1;
        counts[2] = 5;
        HuffTable::new(
            &HuffSpec {
                counts,
                values: vec![0, 1, 2, 3, 4, 5],
            },
            false,
        )
        .unwrap()
    }

    #[test]
    fn decodes_canonical_codes_and_values() {
        let t = small_table();
        // 010 (sym 1) 1 | 110 (sym 5) 10110 | 00 (sym 0), then padding ones.
        let data = [0b0101_1101, 0b0110_0011];
        let mut r = BitReader::at(&data, 0).unwrap();
        assert_eq!(r.dc_diff(&t).unwrap(), 1);
        assert_eq!(r.dc_diff(&t).unwrap(), 22);
        assert_eq!(r.dc_diff(&t).unwrap(), 0);
        assert_eq!(r.position(), 14);
        assert!(!r.overran());
        // Negative values: category 3, bits 010 -> 2 - 7 = -5.
        let data = [0b1000_1011];
        let mut r = BitReader::at(&data, 0).unwrap();
        assert_eq!(r.dc_diff(&t).unwrap(), -5);
    }

    /// An AC table with all 162 baseline symbols, codes 2 to 16 bits long.
    fn full_ac_table() -> HuffTable {
        let mut values = vec![0x00, 0xF0];
        for r in 0..16u8 {
            values.extend((1..=10u8).map(|s| r << 4 | s));
        }
        let (mut counts, mut left, mut free) = ([0u8; 16], values.len(), 1usize);
        for (i, c) in counts.iter_mut().enumerate() {
            free *= 2;
            let take = if i < 9 { free / 4 } else { free - 1 }.min(left);
            *c = take as u8;
            left -= take;
            free -= take;
        }
        assert_eq!(left, 0);
        HuffTable::new(&HuffSpec { counts, values }, true).unwrap()
    }

    #[test]
    fn skipping_a_block_reads_exactly_what_decoding_reads() {
        let (dc, ac) = (small_table(), full_ac_table());
        let q = [1u16; 64];
        let mut seed = 99u64;
        let (mut agreed, mut decoded) = (0, 0);
        for _ in 0..2000 {
            let data: Vec<u8> = (0..64)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .filter(|&b| b != 0xFF)
                .collect();
            let (mut a, mut b) = (BitReader::start(&data), BitReader::start(&data));
            let (mut pa, mut pb) = (5, 5);
            let mut coef = [0i32; 64];
            let ra = a.decode_block(&dc, &ac, &q, &mut pa, &mut coef).map(|_| ());
            let rb = b.skip_block(&dc, &ac, &mut pb);
            assert_eq!(ra.is_ok(), rb.is_ok());
            if ra.is_ok() {
                assert_eq!((a.position(), pa), (b.position(), pb));
                decoded += 1;
            }
            agreed += 1;
        }
        assert!(
            decoded > 100,
            "only {decoded} of {agreed} random blocks decoded"
        );
    }

    #[test]
    fn overlong_table_is_rejected() {
        let mut counts = [0u8; 16];
        counts[0] = 3; // three 1-bit codes cannot exist
        assert!(HuffTable::new(
            &HuffSpec {
                counts,
                values: vec![0, 1, 2]
            },
            false
        )
        .is_err());
    }

    #[test]
    fn stuffing_is_removed_and_positions_round_trip() {
        let data = [
            0x12, 0xFF, 0x00, 0x34, 0xFF, 0x00, 0xFF, 0x00, 0x56, 0xFF, 0xD9,
        ];
        let payload = [0x12u8, 0xFF, 0x34, 0xFF, 0xFF, 0x56];
        let mut r = BitReader::at(&data, 0).unwrap();
        for (i, &b) in payload.iter().enumerate() {
            for bit in 0..8 {
                // Restoring at the reported position gives the same remaining bits.
                let mut again = BitReader::at(&data, r.position()).unwrap();
                again.ensure();
                r.ensure();
                assert_eq!(again.buf >> 40, r.buf >> 40, "byte {i} bit {bit}");
                let expected = (b >> (7 - bit)) & 1;
                assert_eq!(r.bits(1) as u8, expected, "byte {i} bit {bit}");
            }
        }
        assert!(!r.overran());
        r.ensure();
        assert_eq!(r.bits(8), 0, "zeros past the marker");
        assert!(r.overran());
    }

    #[test]
    fn restart_finds_the_expected_marker_only() {
        let data = [0xAB, 0xCD, 0xFF, 0xD3, 0x77];
        let mut r = BitReader::at(&data, 3).unwrap();
        r.restart(3).unwrap();
        assert_eq!(r.position(), 32);
        r.ensure();
        assert_eq!(r.bits(8), 0x77);
        let mut r = BitReader::at(&data, 3).unwrap();
        assert!(r.restart(4).is_err());
        let mut r = BitReader::at(&data[..2], 0).unwrap();
        assert!(r.restart(0).is_err());
    }
}
