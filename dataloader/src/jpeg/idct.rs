//! Inverse DCT of one 8x8 block: the accurate integer algorithm (Loeffler, Ligtenberg and
//! Moschytz, 1989) with 13-bit constants and two extra bits between the passes, which is
//! the "ISLOW" method of the IJG and libjpeg-turbo decoders. Using the same arithmetic
//! keeps our samples equal to theirs on valid files.
//!
//! Intermediates are 64-bit so that no input, however corrupt, can overflow.

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;

// Constants scaled by 2^13: round(x * 8192).
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

#[inline(always)]
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// One 1-D pass on eight values `v[0..8]` (already dequantised); returns the eight
/// outputs before the final descale, as (tmp10, tmp11, tmp12, tmp13, tmp0..tmp3) sums.
#[inline(always)]
fn butterfly(v: [i64; 8]) -> [i64; 8] {
    // Even part.
    let z1 = (v[2] + v[6]) * FIX_0_541196100;
    let tmp2 = z1 - v[6] * FIX_1_847759065;
    let tmp3 = z1 + v[2] * FIX_0_765366865;
    let tmp0 = (v[0] + v[4]) << CONST_BITS;
    let tmp1 = (v[0] - v[4]) << CONST_BITS;
    let (tmp10, tmp13) = (tmp0 + tmp3, tmp0 - tmp3);
    let (tmp11, tmp12) = (tmp1 + tmp2, tmp1 - tmp2);
    // Odd part.
    let (t0, t1, t2, t3) = (v[7], v[5], v[3], v[1]);
    let z1 = t0 + t3;
    let z2 = t1 + t2;
    let z3 = t0 + t2;
    let z4 = t1 + t3;
    let z5 = (z3 + z4) * FIX_1_175875602;
    let (t0, t1, t2, t3) = (
        t0 * FIX_0_298631336,
        t1 * FIX_2_053119869,
        t2 * FIX_3_072711026,
        t3 * FIX_1_501321110,
    );
    let z1 = -z1 * FIX_0_899976223;
    let z2 = -z2 * FIX_2_562915447;
    let z3 = -z3 * FIX_1_961570560 + z5;
    let z4 = -z4 * FIX_0_390180644 + z5;
    let t0 = t0 + z1 + z3;
    let t1 = t1 + z2 + z4;
    let t2 = t2 + z2 + z3;
    let t3 = t3 + z1 + z4;
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
}

/// Inverse DCT of dequantised coefficients (natural order) into 8x8 samples at `out`
/// with row stride `stride`. `last` is the highest zig-zag index that may be non-zero
/// (0: the block is flat and only the DC term is used).
pub(crate) fn idct8x8(coef: &[i32; 64], last: usize, out: &mut [u8], stride: usize) {
    if last == 0 {
        // Both passes of a DC-only block reduce to this value (same rounding).
        let dc = descale(coef[0] as i64, 3);
        let v = (dc + 128).clamp(0, 255) as u8;
        for row in out.chunks_mut(stride).take(8) {
            row[..8].fill(v);
        }
        return;
    }
    let mut ws = [0i64; 64];
    // Pass 1: columns, keeping PASS1_BITS extra bits.
    for c in 0..8 {
        let col = |r: usize| coef[r * 8 + c] as i64;
        if (1..8).all(|r| coef[r * 8 + c] == 0) {
            let dc = col(0) << PASS1_BITS;
            for r in 0..8 {
                ws[r * 8 + c] = dc;
            }
            continue;
        }
        let o = butterfly([
            col(0),
            col(1),
            col(2),
            col(3),
            col(4),
            col(5),
            col(6),
            col(7),
        ]);
        for r in 0..8 {
            ws[r * 8 + c] = descale(o[r], CONST_BITS - PASS1_BITS);
        }
    }
    // Pass 2: rows, removing the extra bits and the 8x scale of the 2-D transform.
    for (r, row) in out.chunks_mut(stride).take(8).enumerate() {
        let w = &ws[r * 8..r * 8 + 8];
        let o = butterfly([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        for (x, v) in row[..8].iter_mut().zip(o) {
            *x = (descale(v, CONST_BITS + PASS1_BITS + 3) + 128).clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Textbook floating-point 2-D inverse DCT, rounded, level-shifted, clamped.
    fn reference(coef: &[i32; 64]) -> [u8; 64] {
        let mut out = [0u8; 64];
        let c = |u: usize| {
            if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            }
        };
        for y in 0..8 {
            for x in 0..8 {
                let mut s = 0.0;
                for v in 0..8 {
                    for u in 0..8 {
                        s += c(u)
                            * c(v)
                            * coef[v * 8 + u] as f64
                            * (((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI) / 16.0).cos()
                            * (((2 * y + 1) as f64 * v as f64 * std::f64::consts::PI) / 16.0).cos();
                    }
                }
                out[y * 8 + x] = (s / 4.0 + 128.0).round().clamp(0.0, 255.0) as u8;
            }
        }
        out
    }

    #[test]
    fn matches_the_floating_point_transform_within_one() {
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i32
        };
        for trial in 0..200 {
            let mut coef = [0i32; 64];
            let n = 1 + trial % 64;
            for &k in &super::super::huffman::ZIGZAG[..n] {
                coef[k] = next() % 200 - 100;
            }
            coef[0] = next() % 1600 - 800;
            let mut out = [0u8; 64];
            idct8x8(&coef, n - 1, &mut out, 8);
            let want = reference(&coef);
            for i in 0..64 {
                assert!(
                    (out[i] as i32 - want[i] as i32).abs() <= 1,
                    "trial {trial} sample {i}"
                );
            }
        }
    }

    #[test]
    fn flat_shortcut_equals_the_full_transform() {
        for dc in [-1030, -1024, -9, -8, -7, -1, 0, 1, 3, 4, 5, 12, 1016, 1100] {
            let mut coef = [0i32; 64];
            coef[0] = dc;
            let (mut fast, mut full) = ([0u8; 64], [0u8; 64]);
            idct8x8(&coef, 0, &mut fast, 8);
            idct8x8(&coef, 63, &mut full, 8);
            assert_eq!(fast, full, "dc {dc}");
        }
    }

    #[test]
    fn writes_with_a_stride_and_survives_huge_inputs() {
        let mut coef = [i32::MAX; 64];
        coef[1] = i32::MIN;
        let mut out = vec![7u8; 8 * 20];
        idct8x8(&coef, 63, &mut out, 20);
        assert!(out.chunks(20).all(|r| r[8..].iter().all(|&b| b == 7)));
    }
}
