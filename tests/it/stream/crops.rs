//! Several crops per sample (the CropCLR baseline's positive pairs) on real camera photos.

use super::{opts, Fixture, Spec};
use dataloader::jpeg::{self, CropRect};
use dataloader::order::{crop_origin, crop_seed};
use dataloader::stream::{Batch, BatchStream, StreamError};
use std::sync::Arc;

/// The first `n` real camera photos as fixture samples, or `None` to skip.
fn real_photos(n: usize) -> Option<Vec<Spec>> {
    let files = crate::shards::camera_photos(n)?;
    Some(
        files
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let jpeg = std::fs::read(p).unwrap();
                let size = jpeg::dimensions(&jpeg).unwrap();
                Spec {
                    key: format!("r{i:02}"),
                    jpeg,
                    size,
                    make: format!("cam{}", i % 3),
                }
            })
            .collect(),
    )
}

#[test]
fn two_crops_extend_the_one_crop_stream_with_a_second_window_at_its_documented_origin() {
    let Some(specs) = real_photos(6) else {
        return;
    };
    let photos: Vec<(Vec<u8>, (u32, u32))> =
        specs.iter().map(|s| (s.jpeg.clone(), s.size)).collect();
    assert!(
        photos.iter().all(|(_, (w, h))| (*w).min(*h) >= 512),
        "the test wants full-size photos"
    );
    let f = Fixture::new(specs, 100);
    let mut o = opts(3, 1, 0);
    o.epoch = 2;
    let one = f.batches(o.clone());
    o.crops_per_sample = 2;
    let two = f.batches(o.clone());
    assert_eq!((one.len(), two.len()), (2, 2));
    let n = 124 * 124 * 3;
    let full: Vec<_> = photos
        .iter()
        .map(|(j, _)| jpeg::decode_full(j).unwrap())
        .collect();
    for (a, b) in one.iter().zip(&two) {
        assert_eq!((&a.keys, &a.positions), (&b.keys, &b.positions));
        assert_eq!((a.crops, b.crops), (1, 2));
        assert_eq!(b.pixels.len(), b.len() * 2 * n);
        for i in 0..b.len() {
            assert!(
                b.crop_pixels(i, 0) == a.patch_pixels(i),
                "{}: crop 0 moved",
                b.keys[i]
            );
            assert!(
                b.crop_pixels(i, 1) != b.crop_pixels(i, 0),
                "{}: crops equal",
                b.keys[i]
            );
            assert!(b.patch_pixels(i) == [b.crop_pixels(i, 0), b.crop_pixels(i, 1)].concat());
            let photo: usize = b.keys[i][1..].parse().unwrap();
            let (w, h) = photos[photo].1;
            let (x, y) = crop_origin(crop_seed(5, 1), 2, b.positions[i], w, h, 124).unwrap();
            let rect = CropRect {
                x,
                y,
                width: 124,
                height: 124,
            };
            let want = full[photo].crop(rect).unwrap();
            assert!(
                b.crop_pixels(i, 1) == want.data,
                "{}: crop 1 is not the window at ({x}, {y})",
                b.keys[i]
            );
        }
    }
    assert!(two == f.batches(o), "a second run gives other crops");
}

#[test]
fn zero_crops_per_sample_is_refused_naming_the_option() {
    let f = Fixture::new((0..4).map(super::photo).collect(), 100);
    let dataset =
        f.rt.block_on(dataloader::shard::Dataset::open(
            &f.url(),
            &Default::default(),
        ))
        .unwrap();
    let mut o = opts(2, 1, 0);
    o.crops_per_sample = 0;
    let err = BatchStream::start(
        f.rt.handle(),
        Arc::new(dataset),
        Arc::clone(&f.tokenizer),
        o,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            StreamError::Option {
                name: "crops_per_sample",
                ..
            }
        ),
        "{err}"
    );
    // Every sample of a one-crop batch is one crop long.
    let b: Vec<Batch> = f.batches(opts(2, 1, 0));
    assert!(b
        .iter()
        .all(|b| b.crops == 1 && b.patch_pixels(0) == b.crop_pixels(0, 0)));
}
