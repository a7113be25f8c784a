//! Region shapes and their pixel masks. A shape lives in the unit square; a region is a
//! shape stretched over a `width x height` box. A pixel belongs to the region when its
//! centre lies inside the stretched shape, and nothing else: masks are binary (255 or 0)
//! with no feathering, so the mask says exactly which pixels were pasted.

use image::GrayImage;
use serde::Serialize;

use super::random::Rng;

/// Mask value of a pasted pixel.
pub const INSIDE: u8 = 255;
/// Mask value of an untouched pixel.
pub const OUTSIDE: u8 = 0;

/// A region's shape, in unit-square coordinates (`x` right, `y` down, both in `[0, 1]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "vertices")]
pub enum Shape {
    /// The whole box.
    Rectangle,
    /// The ellipse inscribed in the box.
    Ellipse,
    /// A simple polygon whose vertices touch all four sides of the box, in order around
    /// it.
    Polygon(Vec<[f64; 2]>),
}

impl Shape {
    /// The shape's name (`rectangle`, `ellipse`, `polygon`).
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Rectangle => "rectangle",
            Shape::Ellipse => "ellipse",
            Shape::Polygon(_) => "polygon",
        }
    }

    /// The share of its box the shape covers (1, pi/4, or the polygon's area).
    pub fn fill(&self) -> f64 {
        match self {
            Shape::Rectangle => 1.0,
            Shape::Ellipse => std::f64::consts::FRAC_PI_4,
            Shape::Polygon(v) => polygon_area(v),
        }
    }

    /// Whether the unit-square point `(x, y)` lies inside the shape.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        match self {
            Shape::Rectangle => (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y),
            Shape::Ellipse => {
                let (dx, dy) = (2.0 * x - 1.0, 2.0 * y - 1.0);
                dx * dx + dy * dy <= 1.0
            }
            Shape::Polygon(v) => inside_polygon(v, x, y),
        }
    }

    /// The mask of the shape over a `width x height` box: [`INSIDE`] where the pixel's
    /// centre is inside, [`OUTSIDE`] elsewhere.
    pub fn mask(&self, width: u32, height: u32) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| {
            let cx = (f64::from(x) + 0.5) / f64::from(width);
            let cy = (f64::from(y) + 0.5) / f64::from(height);
            image::Luma([if self.contains(cx, cy) {
                INSIDE
            } else {
                OUTSIDE
            }])
        })
    }
}

/// A random rectangle, ellipse or polygon, each kind equally likely.
pub fn random_shape(rng: &mut Rng) -> Shape {
    match rng.below(3) {
        0 => Shape::Rectangle,
        1 => Shape::Ellipse,
        _ => random_polygon(rng),
    }
}

/// A random polygon of 5 to 10 vertices, star-shaped around the box centre (vertex `i` at
/// angle `2 pi (i + j) / n` with jitter `j` in `[-0.35, 0.35)` and radius in `[0.45, 1)`),
/// then stretched so that it touches all four sides of the unit square. The angles
/// increase strictly, so the polygon is simple.
pub fn random_polygon(rng: &mut Rng) -> Shape {
    let n = 5 + rng.below(6) as usize;
    let points: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let angle = std::f64::consts::TAU * (i as f64 + rng.range(-0.35, 0.35)) / n as f64;
            let radius = rng.range(0.45, 1.0);
            [radius * angle.cos(), radius * angle.sin()]
        })
        .collect();
    let bounds = |axis: usize| {
        points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
            (lo.min(p[axis]), hi.max(p[axis]))
        })
    };
    let ((x0, x1), (y0, y1)) = (bounds(0), bounds(1));
    Shape::Polygon(
        points
            .iter()
            .map(|p| [(p[0] - x0) / (x1 - x0), (p[1] - y0) / (y1 - y0)])
            .collect(),
    )
}

/// The area of a simple polygon (shoelace formula).
fn polygon_area(v: &[[f64; 2]]) -> f64 {
    let n = v.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let (a, b) = (v[i], v[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    twice.abs() / 2.0
}

/// Even-odd rule: whether a ray from `(x, y)` towards +x crosses the boundary an odd
/// number of times.
fn inside_polygon(v: &[[f64; 2]], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = v.len().wrapping_sub(1);
    for i in 0..v.len() {
        let (a, b) = (v[i], v[j]);
        if (a[1] > y) != (b[1] > y) && x < (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]) + a[0] {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_inside(mask: &GrayImage) -> usize {
        mask.pixels().filter(|p| p.0[0] == INSIDE).count()
    }

    #[test]
    fn masks_are_binary_and_cover_the_shapes_area() {
        let mut rng = Rng::new(11, &[0]);
        let mut shapes = vec![Shape::Rectangle, Shape::Ellipse];
        shapes.extend((0..20).map(|_| random_polygon(&mut rng)));
        for shape in shapes {
            let (w, h) = (301, 177);
            let mask = shape.mask(w, h);
            assert_eq!(mask.dimensions(), (w, h));
            assert!(mask.pixels().all(|p| p.0[0] == INSIDE || p.0[0] == OUTSIDE));
            let share = count_inside(&mask) as f64 / f64::from(w * h);
            assert!(
                (share - shape.fill()).abs() < 0.01,
                "{shape:?}: mask covers {share}, shape {}",
                shape.fill()
            );
        }
    }

    #[test]
    fn ellipse_mask_is_symmetric_and_leaves_the_corners_out() {
        let mask = Shape::Ellipse.mask(40, 24);
        for y in 0..24 {
            for x in 0..40 {
                assert_eq!(mask.get_pixel(x, y), mask.get_pixel(39 - x, y));
                assert_eq!(mask.get_pixel(x, y), mask.get_pixel(x, 23 - y));
            }
        }
        assert_eq!(mask.get_pixel(0, 0).0[0], OUTSIDE);
        assert_eq!(mask.get_pixel(20, 12).0[0], INSIDE);
        assert_eq!(mask.get_pixel(0, 12).0[0], INSIDE);
    }

    #[test]
    fn polygons_touch_every_side_and_keep_a_reasonable_area() {
        let mut rng = Rng::new(12, &[1]);
        for _ in 0..200 {
            let shape = random_polygon(&mut rng);
            let Shape::Polygon(v) = &shape else {
                unreachable!()
            };
            assert!((5..=10).contains(&v.len()));
            for axis in 0..2 {
                let lo = v.iter().map(|p| p[axis]).fold(f64::MAX, f64::min);
                let hi = v.iter().map(|p| p[axis]).fold(f64::MIN, f64::max);
                assert!(lo.abs() < 1e-12 && (hi - 1.0).abs() < 1e-12);
            }
            let fill = shape.fill();
            assert!((0.2..=1.0).contains(&fill), "fill {fill}");
            // A 16-pixel box, the smallest region, still holds pasted pixels.
            assert!(count_inside(&shape.mask(16, 16)) > 16);
        }
    }
}
