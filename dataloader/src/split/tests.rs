use super::*;

/// `n` photos of each listed model, with paths naming their model.
fn photos(models: &[(&str, usize)]) -> Vec<(PathBuf, String)> {
    models
        .iter()
        .flat_map(|&(m, n)| {
            (0..n).map(move |i| (PathBuf::from(format!("/p/{m}/{i}.jpg")), m.to_string()))
        })
        .collect()
}

/// Twenty models of uneven sizes (1 to 20 photos).
fn corpus() -> Vec<(PathBuf, String)> {
    let names: Vec<String> = (0..20).map(|i| format!("cam{i:02}")).collect();
    let spec: Vec<(&str, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), 1 + (i * 7) % 20))
        .collect();
    photos(&spec)
}

fn model_of(p: &Path) -> String {
    p.parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn no_model_is_on_both_sides_and_every_photo_is_on_one() {
    let all = corpus();
    for seed in 0..10 {
        let s = assign(&all, 0.2, seed).unwrap();
        let train: HashSet<String> = s.train.photos.iter().map(|p| model_of(p)).collect();
        let held: HashSet<String> = s.holdout.photos.iter().map(|p| model_of(p)).collect();
        assert!(
            train.is_disjoint(&held),
            "seed {seed}: {:?}",
            train.intersection(&held)
        );
        assert_eq!(train, s.train.models.iter().cloned().collect());
        assert_eq!(held, s.holdout.models.iter().cloned().collect());
        let mut both: Vec<PathBuf> = s
            .train
            .photos
            .iter()
            .chain(&s.holdout.photos)
            .cloned()
            .collect();
        both.sort();
        let mut want: Vec<PathBuf> = all.iter().map(|(p, _)| p.clone()).collect();
        want.sort();
        assert_eq!(both, want, "seed {seed}: every photo exactly once");
    }
}

#[test]
fn held_out_side_reaches_the_fraction_with_whole_models_and_no_more() {
    let all = corpus();
    let total = all.len() as f64;
    for fraction in [0.05, 0.2, 0.5, 0.8] {
        for seed in 0..10 {
            let s = assign(&all, fraction, seed).unwrap();
            let held = s.holdout.photos.len() as f64;
            assert!(
                held >= fraction * total,
                "{fraction} seed {seed}: {held} of {total}"
            );
            // Whole models, taken only while short: without the last one taken the side
            // would fall short of the fraction.
            let count = |m: &String| {
                s.holdout
                    .photos
                    .iter()
                    .filter(|p| model_of(p) == *m)
                    .count()
            };
            assert!(
                s.holdout
                    .models
                    .iter()
                    .any(|m| held - (count(m) as f64) < fraction * total),
                "{fraction} seed {seed}: the held-out side took more models than needed"
            );
            assert!(!s.train.photos.is_empty());
        }
    }
}

#[test]
fn same_seed_same_split_whatever_the_input_order() {
    let all = corpus();
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(
        assign(&all, 0.3, 7).unwrap(),
        assign(&reversed, 0.3, 7).unwrap()
    );
}

#[test]
fn different_seeds_hold_out_different_models() {
    let all = corpus();
    let sides: HashSet<Vec<String>> = (0..8)
        .map(|seed| assign(&all, 0.2, seed).unwrap().holdout.models)
        .collect();
    assert!(
        sides.len() >= 6,
        "only {} different held-out sets over 8 seeds",
        sides.len()
    );
}

#[test]
fn bad_fractions_and_single_model_corpora_are_refused() {
    let all = corpus();
    for f in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
        assert!(
            matches!(assign(&all, f, 0), Err(SplitError::BadFraction(_))),
            "{f}"
        );
    }
    let one = photos(&[("only", 5)]);
    assert!(matches!(
        assign(&one, 0.2, 0),
        Err(SplitError::TooFewModels { models: 1, .. })
    ));
    assert!(matches!(
        assign(&[], 0.2, 0),
        Err(SplitError::TooFewModels { .. })
    ));
}

#[test]
fn camera_names_are_normalised() {
    let m = |a: Option<&str>, b: Option<&str>| camera_model(a, b);
    assert_eq!(m(Some("Canon"), Some("Canon EOS 20D")), "canon eos 20d");
    assert_eq!(
        m(Some("CANON "), Some("canon  eos 20d\0\0")),
        "canon eos 20d"
    );
    assert_eq!(
        m(Some("NIKON CORPORATION"), Some("NIKON D70")),
        "nikon corporation d70"
    );
    assert_eq!(m(Some("NIKON"), Some("E995")), "nikon e995");
    assert_eq!(m(Some("Apple"), Some("iPhone XR")), "apple iphone xr");
    // A model that only repeats the make keeps it; a prefix must end at a word boundary.
    assert_eq!(m(Some("Leica"), Some("Leica")), "leica leica");
    assert_eq!(m(Some("Sony"), Some("Sonyx 1")), "sony sonyx 1");
    assert_eq!(m(None, Some("E995")), "e995");
    assert_eq!(m(Some("Canon"), None), UNKNOWN_CAMERA);
    assert_eq!(m(Some("Canon"), Some("  ")), UNKNOWN_CAMERA);
    assert_eq!(m(None, None), UNKNOWN_CAMERA);
    let mut tags = TagMap::new();
    tags.insert("Make", "SONY");
    tags.insert("Model", "SLT-A57");
    assert_eq!(camera_model_of(&tags), "sony slt-a57");
}

#[test]
fn unreadable_files_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let no_exif = dir.path().join("plain.jpg");
    std::fs::write(
        &no_exif,
        crate::stream::sample::tests::gradient_jpeg(16, 16),
    )
    .unwrap();
    let garbage = dir.path().join("garbage.jpg");
    std::fs::write(&garbage, b"not a jpeg").unwrap();
    let missing = dir.path().join("missing.jpg");
    let scan = read_camera_models(&[no_exif, garbage, missing]);
    assert!(scan.photos.is_empty());
    let skipped: Vec<(&str, u64)> = scan.skipped.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        skipped,
        [("malformed_exif", 1), ("no_exif", 1), ("unreadable", 1)]
    );
}

#[test]
fn lists_hold_paths_pack_resolves_and_refuse_unlistable_names() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    let under = dir.path().join("images/d.jpg");
    write_list(&list, &[PathBuf::from("/a/b.jpg"), under.clone()]).unwrap();
    let text = std::fs::read_to_string(&list).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["/a/b.jpg", "images/d.jpg"]);
    // `pack` reads them back as the same files.
    let items = crate::pack::list_photos(&crate::pack::Input::FileList(list.clone())).unwrap();
    let paths: Vec<PathBuf> = items.into_iter().map(|i| i.path).collect();
    assert_eq!(paths, [PathBuf::from("/a/b.jpg"), under]);
    assert_eq!(check_fraction(0.2), Ok(()));
    let err = write_list(&list, &[PathBuf::from("/a/b\n.jpg")]).unwrap_err();
    assert!(matches!(err, SplitError::WriteList { .. }));
}
