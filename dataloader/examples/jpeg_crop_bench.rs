//! Crops per second on one core: `decode_crop` with a scan index, without one, and a full
//! decode with the `image` crate followed by a crop (what a plain loader does).
//!
//! Usage: `jpeg_crop_bench FILE.jpg [SECONDS_PER_RUN] [RUNS] [MODES]` (defaults 2, 5 and
//! `index,noindex,image`). Crops are
//! 124x124 at pseudo-random positions (fixed seed); each figure is the median of RUNS
//! timed runs. The file is read into memory first, so no disk I/O is timed.

use std::time::{Duration, Instant};

use dataloader::jpeg::{self, CropRect};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `crop` on fresh positions until `secs` have passed; returns crops per second.
fn rate(secs: f64, w: u32, h: u32, seed: &mut u64, mut crop: impl FnMut(CropRect)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) || n < 3 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let x = ((*seed >> 33) % (w as u64 - 123)) as u32;
        let y = ((*seed >> 13) % (h as u64 - 123)) as u32;
        crop(CropRect {
            x,
            y,
            width: 124,
            height: 124,
        });
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: jpeg_crop_bench FILE.jpg [SECONDS_PER_RUN] [RUNS]")?;
    let secs: f64 = args.get(2).map_or(Ok(2.0), |s| s.parse())?;
    let runs: usize = args.get(3).map_or(Ok(5), |s| s.parse())?;
    let modes = args.get(4).map_or("index,noindex,image", String::as_str);
    let data = std::fs::read(path)?;
    let (w, h) = jpeg::dimensions(&data)?;
    let t = Instant::now();
    let index = jpeg::build_index(&data)?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{path}: {w}x{h} ({:.1} MP), {} bytes; index {} bytes ({:.2}% of the file), built in {build_ms:.1} ms",
        (w * h) as f64 / 1e6,
        data.len(),
        index.len(),
        100.0 * index.len() as f64 / data.len() as f64
    );
    let mut seed = 1u64;
    let all = [
        ("index", "decode_crop with index"),
        ("noindex", "decode_crop without index"),
        ("image", "image crate full decode + crop"),
    ];
    for (_, name) in all
        .into_iter()
        .filter(|(m, _)| modes.split(',').any(|x| x == *m))
    {
        let mut rates = Vec::new();
        for _ in 0..runs {
            rates.push(match name {
                "decode_crop with index" => rate(secs, w, h, &mut seed, |r| {
                    std::hint::black_box(
                        jpeg::decode_crop(&data, Some(&index), r).expect("decode"),
                    );
                }),
                "decode_crop without index" => rate(secs, w, h, &mut seed, |r| {
                    std::hint::black_box(jpeg::decode_crop(&data, None, r).expect("decode"));
                }),
                _ => rate(secs, w, h, &mut seed, |r| {
                    let img = image::load_from_memory_with_format(&data, image::ImageFormat::Jpeg)
                        .expect("decode");
                    std::hint::black_box(img.crop_imm(r.x, r.y, r.width, r.height).to_rgb8());
                }),
            });
        }
        let m = median(rates.clone());
        let spread: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!("  {name:32} {m:9.1} crops/s  (runs: {})", spread.join(", "));
    }
    Ok(())
}
