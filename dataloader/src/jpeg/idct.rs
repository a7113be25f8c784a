//! Inverse DCT of one 8x8 block: the accurate integer algorithm (Loeffler, Ligtenberg and
//! Moschytz, 1989) with 13-bit constants and two extra bits between the passes, which is
//! the "ISLOW" method of the IJG and libjpeg-turbo decoders. Using the same arithmetic
//! keeps our samples equal to theirs on valid files.
//!

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;

// Constants scaled by 2^13: round(x * 8192).
const FIX_0_298631336: i32 = 2446;
const FIX_0_390180644: i32 = 3196;
const FIX_0_541196100: i32 = 4433;
const FIX_0_765366865: i32 = 6270;
const FIX_0_899976223: i32 = 7373;
const FIX_1_175875602: i32 = 9633;
const FIX_1_501321110: i32 = 12299;
const FIX_1_847759065: i32 = 15137;
const FIX_1_961570560: i32 = 16069;
const FIX_2_053119869: i32 = 16819;
const FIX_2_562915447: i32 = 20995;
const FIX_3_072711026: i32 = 25172;

/// Eight lanes processed together (one per column in pass 1, one per row in pass 2),
/// which the compiler turns into vector instructions.
type Lanes = [i32; 8];

#[inline(always)]
fn map2(a: Lanes, b: Lanes, f: impl Fn(i32, i32) -> i32) -> Lanes {
    std::array::from_fn(|i| f(a[i], b[i]))
}

#[inline(always)]
fn add(a: Lanes, b: Lanes) -> Lanes {
    map2(a, b, i32::wrapping_add)
}

#[inline(always)]
fn sub(a: Lanes, b: Lanes) -> Lanes {
    map2(a, b, i32::wrapping_sub)
}

#[inline(always)]
fn mul(a: Lanes, k: i32) -> Lanes {
    a.map(|x| x.wrapping_mul(k))
}

/// Adds half of `2^n` and shifts right by `n` (rounding).
#[inline(always)]
fn descale(a: Lanes, n: u32) -> Lanes {
    a.map(|x| x.wrapping_add(1 << (n - 1)) >> n)
}

/// The 1-D transform of eight inputs `v[0..8]` in each lane; outputs before descaling.
#[inline(always)]
fn butterfly(v: [Lanes; 8]) -> [Lanes; 8] {
    // Even part.
    let z1 = mul(add(v[2], v[6]), FIX_0_541196100);
    let tmp2 = sub(z1, mul(v[6], FIX_1_847759065));
    let tmp3 = add(z1, mul(v[2], FIX_0_765366865));
    let tmp0 = mul(add(v[0], v[4]), 1 << CONST_BITS);
    let tmp1 = mul(sub(v[0], v[4]), 1 << CONST_BITS);
    let (tmp10, tmp13) = (add(tmp0, tmp3), sub(tmp0, tmp3));
    let (tmp11, tmp12) = (add(tmp1, tmp2), sub(tmp1, tmp2));
    // Odd part.
    let (t0, t1, t2, t3) = (v[7], v[5], v[3], v[1]);
    let z1 = add(t0, t3);
    let z2 = add(t1, t2);
    let z3 = add(t0, t2);
    let z4 = add(t1, t3);
    let z5 = mul(add(z3, z4), FIX_1_175875602);
    let t0 = mul(t0, FIX_0_298631336);
    let t1 = mul(t1, FIX_2_053119869);
    let t2 = mul(t2, FIX_3_072711026);
    let t3 = mul(t3, FIX_1_501321110);
    let z1 = mul(z1, -FIX_0_899976223);
    let z2 = mul(z2, -FIX_2_562915447);
    let z3 = add(mul(z3, -FIX_1_961570560), z5);
    let z4 = add(mul(z4, -FIX_0_390180644), z5);
    let t0 = add(t0, add(z1, z3));
    let t1 = add(t1, add(z2, z4));
    let t2 = add(t2, add(z2, z3));
    let t3 = add(t3, add(z1, z4));
    [
        add(tmp10, t3),
        add(tmp11, t2),
        add(tmp12, t1),
        add(tmp13, t0),
        sub(tmp13, t0),
        sub(tmp12, t1),
        sub(tmp11, t2),
        sub(tmp10, t3),
    ]
}

fn transpose(m: [Lanes; 8]) -> [Lanes; 8] {
    std::array::from_fn(|i| std::array::from_fn(|j| m[j][i]))
}

/// Inverse DCT of dequantised coefficients (natural order) into 8x8 samples at `out`
/// with row stride `stride`. `last` is the highest zig-zag index that may be non-zero
/// (0: the block is flat and only the DC term is used).
///
/// Arithmetic is 32-bit and wrapping, like libjpeg-turbo's SIMD code: exact for valid
/// data, and corrupt coefficients give garbage samples, never a panic.
pub(crate) fn idct8x8(coef: &[i32; 64], last: usize, out: &mut [u8], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if last != 0 && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { idct_avx2(coef, last, out, stride) };
        return;
    }
    idct_lanes(coef, last, out, stride);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn idct_avx2(coef: &[i32; 64], last: usize, out: &mut [u8], stride: usize) {
    idct_lanes(coef, last, out, stride);
}

#[inline(always)]
fn idct_lanes(coef: &[i32; 64], last: usize, out: &mut [u8], stride: usize) {
    if last == 0 {
        // Both passes of a DC-only block reduce to this value (same rounding).
        let dc = (coef[0] as i64 + 4) >> 3;
        let v = (dc + 128).clamp(0, 255) as u8;
        for row in out.chunks_mut(stride).take(8) {
            row[..8].fill(v);
        }
        return;
    }
    // Pass 1: columns (a lane per column), keeping PASS1_BITS extra bits.
    let rows: [Lanes; 8] = std::array::from_fn(|r| std::array::from_fn(|c| coef[r * 8 + c]));
    let ws = butterfly(rows).map(|o| descale(o, CONST_BITS - PASS1_BITS));
    // Pass 2: rows (a lane per row), removing the extra bits and the 2-D scale of 8.
    let o = butterfly(transpose(ws)).map(|o| descale(o, CONST_BITS + PASS1_BITS + 3));
    for (y, row) in out.chunks_mut(stride).take(8).enumerate() {
        for (x, px) in row[..8].iter_mut().enumerate() {
            *px = (o[x][y].wrapping_add(128)).clamp(0, 255) as u8;
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
    fn vector_and_portable_code_agree() {
        let mut coef = [0i32; 64];
        for (i, c) in coef.iter_mut().enumerate() {
            *c = (i as i32 * 7919 % 601) - 300;
        }
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        idct8x8(&coef, 63, &mut a, 8);
        idct_lanes(&coef, 63, &mut b, 8);
        assert_eq!(a, b);
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
