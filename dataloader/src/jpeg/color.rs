//! From decoded component samples to RGB pixels: chroma upsampling and YCbCr -> RGB.
//!
//! Upsampling is libjpeg's "fancy" (triangular) filter, the default of libjpeg-turbo and
//! so of PIL: for a factor of two, each output sample is 3/4 of the nearer input sample
//! plus 1/4 of the next one (in both directions for 2x2), with the same rounding biases,
//! and the plane's edge sample repeated beyond its edges. Other integer factors (4:1:1)
//! repeat samples. Every output pixel depends only on samples within one chroma sample of
//! it, clamped to the component plane, so any crop renders exactly like the full image.
//!
//! Colour conversion is JFIF YCbCr with 16-bit fixed-point coefficients (as libjpeg).

/// Decoded samples of one component over a rectangle of whole blocks.
pub(crate) struct Plane {
    pub data: Vec<u8>,
    pub stride: usize,
    /// Component-plane coordinates of `data[0]`.
    pub x0: usize,
    pub y0: usize,
    /// Size of the whole component plane (edges for clamping).
    pub width: usize,
    pub height: usize,
    /// Upsampling factors to image pixels.
    pub rh: usize,
    pub rv: usize,
}

impl Plane {
    /// Samples of component row `y`, starting at component column `x0`.
    #[inline]
    fn row(&self, y: usize) -> &[u8] {
        let start = (y - self.y0) * self.stride;
        &self.data[start..start + self.stride]
    }

    /// Sample row `y` of this plane, columns `xs..=xe` (plane coordinates).
    #[inline]
    fn span(&self, y: usize, xs: usize, xe: usize) -> &[u8] {
        &self.row(y)[xs - self.x0..=xe - self.x0]
    }

    /// The row `y` +- 1 neighbour used by vertical fancy upsampling for output row `oy`.
    fn far_row(&self, oy: usize) -> usize {
        let near = oy / 2;
        if oy.is_multiple_of(2) {
            near.saturating_sub(1)
        } else {
            (near + 1).min(self.height - 1)
        }
    }

    /// Upsamples the samples covering image row `oy`, columns `ox..ox + out.len()`.
    fn upsample_row(
        &self,
        oy: usize,
        ox: usize,
        out: &mut [u8],
        sums: &mut Vec<u16>,
        wide: &mut Vec<u8>,
    ) {
        let w = out.len();
        match (self.rh, self.rv) {
            (1, 1) => out.copy_from_slice(self.span(oy, ox, ox + w - 1)),
            (1, 2) => {
                let (near, far) = (
                    self.span(oy / 2, ox, ox + w - 1),
                    self.span(self.far_row(oy), ox, ox + w - 1),
                );
                let bias = 1 + (oy % 2) as u16;
                for ((o, &n), &f) in out.iter_mut().zip(near).zip(far) {
                    *o = ((3 * n as u16 + f as u16 + bias) >> 2) as u8;
                }
            }
            (2, v @ 1..=2) => {
                // Chroma columns c0..=c1 cover the span; their neighbours are clamped to
                // the plane (edge replication), giving column sums c0-1..=c1+1.
                let (c0, c1) = (ox / 2, (ox + w - 1) / 2);
                let (lo, hi) = (c0.saturating_sub(1), (c1 + 1).min(self.width - 1));
                sums.clear();
                let near = self.span(if v == 1 { oy } else { oy / 2 }, lo, hi);
                if v == 1 {
                    sums.extend(near.iter().map(|&s| s as u16));
                } else {
                    let far = self.span(self.far_row(oy), lo, hi);
                    sums.extend(near.iter().zip(far).map(|(&n, &f)| 3 * n as u16 + f as u16));
                }
                if c0 == 0 {
                    sums.insert(0, sums[0]);
                }
                if c1 + 1 >= self.width {
                    sums.push(sums[sums.len() - 1]);
                }
                let (shift, bias_even, bias_odd) = if v == 1 { (2, 1, 2) } else { (4, 8, 7) };
                wide.clear();
                for win in sums.windows(3) {
                    let mid = 3 * win[1];
                    wide.push(((mid + win[0] + bias_even) >> shift) as u8);
                    wide.push(((mid + win[2] + bias_odd) >> shift) as u8);
                }
                out.copy_from_slice(&wide[ox - 2 * c0..][..w]);
            }
            (rh, rv) => {
                let row = self.row(oy / rv);
                for (i, o) in out.iter_mut().enumerate() {
                    *o = row[(ox + i) / rh - self.x0];
                }
            }
        }
    }
}

const fn fix(x_times_1e5: i64) -> i64 {
    // round(x * 2^16), x given in units of 1e-5
    (x_times_1e5 * 65536 + 50_000) / 100_000
}

const fn table(mul: i64, add: i64, shift: bool) -> [i32; 256] {
    let mut t = [0i32; 256];
    let mut i = 0;
    while i < 256 {
        let v = mul * (i as i64 - 128) + add;
        t[i] = if shift { (v >> 16) as i32 } else { v as i32 };
        i += 1;
    }
    t
}

const HALF: i64 = 1 << 15;
const CR_R_MUL: i64 = fix(140_200);
const CB_B_MUL: i64 = fix(177_200);
const CR_G_MUL: i64 = fix(71_414);
const CB_G_MUL: i64 = fix(34_414);
static CR_R: [i32; 256] = table(CR_R_MUL, HALF, true);
static CB_B: [i32; 256] = table(CB_B_MUL, HALF, true);
static CR_G: [i32; 256] = table(-CR_G_MUL, 0, false);
static CB_G: [i32; 256] = table(-CB_G_MUL, HALF, false);

#[inline(always)]
fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// Converts one row of Y, Cb, Cr samples to interleaved RGB.
fn ycc_to_rgb(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { ycc_to_rgb_avx2(y, cb, cr, out) };
        return;
    }
    ycc_to_rgb_lanes(y, cb, cr, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn ycc_to_rgb_avx2(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    ycc_to_rgb_lanes(y, cb, cr, out);
}

/// Sixteen pixels at a time into planar lanes (vectorisable), then interleaved. The
/// arithmetic equals the table form above: `(FIX(k) * (c - 128) + 2^15) >> 16`.
#[inline(always)]
fn ycc_to_rgb_lanes(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    const N: usize = 16;
    let n = y.len().min(cb.len()).min(cr.len()).min(out.len() / 3);
    let full = n - n % N;
    let (cr_r, cb_b) = (CR_R_MUL as i32, CB_B_MUL as i32);
    let (cr_g, cb_g) = (-CR_G_MUL as i32, -CB_G_MUL as i32);
    for i in (0..full).step_by(N) {
        let (mut r, mut g, mut b) = ([0u8; N], [0u8; N], [0u8; N]);
        for j in 0..N {
            let (yy, u, v) = (
                y[i + j] as i32,
                cb[i + j] as i32 - 128,
                cr[i + j] as i32 - 128,
            );
            r[j] = clamp(yy + ((cr_r * v + HALF as i32) >> 16));
            g[j] = clamp(yy + ((cb_g * u + cr_g * v + HALF as i32) >> 16));
            b[j] = clamp(yy + ((cb_b * u + HALF as i32) >> 16));
        }
        for (j, px) in out[3 * i..3 * (i + N)].chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&[r[j], g[j], b[j]]);
        }
    }
    for i in full..n {
        let (yy, u, v) = (y[i] as i32, cb[i] as usize, cr[i] as usize);
        out[3 * i] = clamp(yy + CR_R[v]);
        out[3 * i + 1] = clamp(yy + ((CB_G[u] + CR_G[v]) >> 16));
        out[3 * i + 2] = clamp(yy + CB_B[u]);
    }
}

/// Renders image rectangle `(x, y, w, h)` as interleaved RGB from one plane (grayscale)
/// or three (Y, Cb, Cr) that cover it.
pub(crate) fn render(planes: &[Plane], x: usize, y: usize, w: usize, h: usize) -> Vec<u8> {
    let mut out = vec![0u8; w * h * 3];
    let mut rows = vec![vec![0u8; w]; planes.len()];
    let mut sums = Vec::with_capacity(w / 2 + 3);
    let mut wide = Vec::with_capacity(w + 4);
    for (r, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        for (p, row) in planes.iter().zip(rows.iter_mut()) {
            p.upsample_row(y + r, x, row, &mut sums, &mut wide);
        }
        if let [yr, cb, cr] = &rows[..] {
            ycc_to_rgb(yr, cb, cr, dst);
        } else {
            for (px, &g) in dst.chunks_exact_mut(3).zip(&rows[0]) {
                px.fill(g);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(w: usize, h: usize, rh: usize, rv: usize, f: impl Fn(usize, usize) -> u8) -> Plane {
        let data = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Plane {
            data,
            stride: w,
            x0: 0,
            y0: 0,
            width: w,
            height: h,
            rh,
            rv,
        }
    }

    #[test]
    fn vector_and_table_colour_conversion_agree_on_every_input() {
        let ys: Vec<u8> = (0..=255).collect();
        for cb in (0..=255u8).step_by(3) {
            for cr in [0u8, 1, 77, 127, 128, 129, 200, 254, 255] {
                let (u, v) = ([cb; 256], [cr; 256]);
                let mut fast = vec![0u8; 256 * 3];
                ycc_to_rgb(&ys, &u, &v, &mut fast);
                let mut slow = vec![0u8; 3];
                for (i, &y) in ys.iter().enumerate() {
                    ycc_to_rgb_lanes(&[y], &[cb], &[cr], &mut slow);
                    assert_eq!(fast[3 * i..3 * i + 3], slow[..], "y {y} cb {cb} cr {cr}");
                }
            }
        }
    }

    #[test]
    fn neutral_chroma_gives_gray_and_primaries_convert() {
        let mut out = [0u8; 9];
        ycc_to_rgb(&[0, 100, 255], &[128; 3], &[128; 3], &mut out);
        assert_eq!(out, [0, 0, 0, 100, 100, 100, 255, 255, 255]);
        // Pure red in JFIF YCbCr: Y 76, Cb 85, Cr 255 -> close to (255, 0, 0).
        ycc_to_rgb(&[76], &[85], &[255], &mut out[..3]);
        assert!(
            out[0] >= 253 && out[1] <= 2 && out[2] <= 2,
            "{:?}",
            &out[..3]
        );
    }

    /// Direct formula for one output sample of 2x2 triangular upsampling.
    fn h2v2_reference(p: &Plane, x: usize, y: usize) -> u8 {
        let at = |cx: isize, cy: isize| {
            let cx = cx.clamp(0, p.width as isize - 1) as usize;
            let cy = cy.clamp(0, p.height as isize - 1) as usize;
            p.data[cy * p.stride + cx] as i32
        };
        let (cx, cy) = ((x / 2) as isize, (y / 2) as isize);
        let (dx, dy) = (
            if x.is_multiple_of(2) { -1 } else { 1 },
            if y.is_multiple_of(2) { -1 } else { 1 },
        );
        let col = |cx| 3 * at(cx, cy) + at(cx, cy + dy);
        ((3 * col(cx) + col(cx + dx) + if x.is_multiple_of(2) { 8 } else { 7 }) >> 4) as u8
    }

    #[test]
    fn triangular_2x2_matches_its_formula_everywhere_including_edges() {
        let p = plane(5, 4, 2, 2, |x, y| ((x * 53 + y * 97) % 256) as u8);
        let (w, h) = (9, 7); // odd image size: the last chroma column/row is half used
        let full = render(std::slice::from_ref(&p), 0, 0, w, h);
        for y in 0..h {
            for x in 0..w {
                assert_eq!(
                    full[(y * w + x) * 3],
                    h2v2_reference(&p, x, y),
                    "({x}, {y})"
                );
            }
        }
        // Every sub-rectangle renders exactly like the same part of the whole.
        for (x, y, cw, ch) in [(0, 0, 1, 1), (3, 2, 4, 3), (8, 6, 1, 1), (1, 1, 8, 6)] {
            let crop = render(std::slice::from_ref(&p), x, y, cw, ch);
            for r in 0..ch {
                assert_eq!(
                    crop[r * cw * 3..(r + 1) * cw * 3],
                    full[((y + r) * w + x) * 3..][..cw * 3]
                );
            }
        }
    }

    #[test]
    fn one_dimensional_factors_blend_three_to_one() {
        let p = plane(3, 2, 2, 1, |x, _| [0, 100, 200][x]);
        let out = render(std::slice::from_ref(&p), 0, 0, 6, 1);
        let gray: Vec<u8> = out.iter().step_by(3).copied().collect();
        assert_eq!(gray, vec![0, 25, 75, 125, 175, 200]);
        let p = plane(1, 3, 1, 2, |_, y| [0, 100, 200][y]);
        let out = render(std::slice::from_ref(&p), 0, 0, 1, 6);
        let gray: Vec<u8> = out.iter().step_by(3).copied().collect();
        assert_eq!(gray, vec![0, 25, 75, 125, 175, 200]);
    }
}
