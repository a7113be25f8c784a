use std::collections::HashSet;

use super::*;

fn photo(camera: &str, width: u32, height: u32) -> PhotoInfo {
    PhotoInfo {
        camera: camera.to_string(),
        width,
        height,
    }
}

/// Three cameras with one, two and three photos of different sizes.
fn photos() -> Vec<PhotoInfo> {
    vec![
        photo("canon eos 20d", 1024, 768),
        photo("nikon d70", 800, 1200),
        photo("nikon d70", 640, 480),
        photo("apple iphone 6", 1024, 1024),
        photo("apple iphone 6", 300, 900),
        photo("apple iphone 6", 2000, 1500),
    ]
}

fn opts(count: usize, seed: u64) -> PlanOptions {
    PlanOptions {
        count,
        seed,
        min_area: 0.05,
        max_area: 0.25,
    }
}

#[test]
fn cross_camera_pastes_never_pair_a_model_with_itself_and_same_camera_ones_always_do() {
    let photos = photos();
    for seed in 0..20 {
        let items = plan(&photos, &opts(40, seed)).unwrap();
        for item in &items {
            let target = &photos[item.target];
            match (item.kind, &item.paste) {
                (Kind::CrossCamera, Some(p)) => {
                    assert_ne!(photos[p.source].camera, target.camera, "{item:?}")
                }
                (Kind::SameCamera, Some(p)) => {
                    assert_eq!(photos[p.source].camera, target.camera, "{item:?}");
                    assert_ne!(p.source, item.target, "a photo pasted into itself");
                }
                (Kind::Untouched, None) => {}
                _ => panic!("kind and paste disagree: {item:?}"),
            }
        }
    }
}

#[test]
fn counts_are_balanced_and_names_unique_and_neutral() {
    let items = plan(&photos(), &opts(25, 3)).unwrap();
    let count = |k| items.iter().filter(|i| i.kind == k).count();
    assert_eq!(count(Kind::CrossCamera), 25);
    assert_eq!(count(Kind::SameCamera), 12);
    assert_eq!(count(Kind::Untouched), 13);
    let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "names must be unique and in order");
    assert_eq!(names[0], "img_0000");
    // Kinds are interleaved by the shuffled naming, not grouped.
    let first_half: HashSet<Kind> = items[..25].iter().map(|i| i.kind).collect();
    assert_eq!(first_half.len(), 3);
}

#[test]
fn regions_fit_both_photos_at_the_requested_size() {
    let photos = photos();
    let o = opts(200, 9);
    for item in plan(&photos, &o).unwrap() {
        let Some(p) = &item.paste else { continue };
        let (s, t, r) = (&photos[p.source], &photos[item.target], &p.region);
        assert!(r.width >= MIN_REGION_SIDE && r.height >= MIN_REGION_SIDE);
        assert!(r.source_x + r.width <= s.width && r.source_y + r.height <= s.height);
        assert!(r.target_x + r.width <= t.width && r.target_y + r.height <= t.height);
        let limited = r.width == s.width.min(t.width) || r.height == s.height.min(t.height);
        if !limited {
            let share =
                r.shape.fill() * f64::from(r.width * r.height) / f64::from(t.width * t.height);
            // Rounding the box to whole pixels moves the share a little.
            assert!((0.045..=0.26).contains(&share), "share {share} of {item:?}");
        }
    }
}

#[test]
fn targets_cycle_through_every_photo_before_repeating() {
    let photos = photos();
    let items = plan(&photos, &opts(6, 5)).unwrap();
    let cross: HashSet<usize> = items
        .iter()
        .filter(|i| i.kind == Kind::CrossCamera)
        .map(|i| i.target)
        .collect();
    assert_eq!(cross.len(), photos.len());
}

#[test]
fn plans_are_deterministic_per_seed() {
    let photos = photos();
    assert_eq!(
        plan(&photos, &opts(30, 1)).unwrap(),
        plan(&photos, &opts(30, 1)).unwrap()
    );
    assert_ne!(
        plan(&photos, &opts(30, 1)).unwrap(),
        plan(&photos, &opts(30, 2)).unwrap()
    );
}

#[test]
fn one_camera_model_is_refused_and_no_repeated_model_means_no_same_camera_pastes() {
    let one = vec![photo("a", 500, 500), photo("a", 500, 500)];
    assert_eq!(
        plan(&one, &opts(4, 0)),
        Err(PlanError::TooFewCameras {
            photos: 2,
            models: 1
        })
    );
    let singles = vec![photo("a", 500, 500), photo("b", 400, 600)];
    let items = plan(&singles, &opts(4, 0)).unwrap();
    assert_eq!(items.len(), 8);
    assert!(items.iter().all(|i| i.kind != Kind::SameCamera));
    assert_eq!(
        items.iter().filter(|i| i.kind == Kind::Untouched).count(),
        4
    );
}

#[test]
fn tiny_photos_give_regions_that_still_fit() {
    let tiny = vec![photo("a", 10, 12), photo("b", 9, 40)];
    for item in plan(&tiny, &opts(10, 4)).unwrap() {
        if let Some(p) = &item.paste {
            let r = &p.region;
            assert!(r.width <= 9 && r.height <= 12 && r.width > 0 && r.height > 0);
        }
    }
}
