//! One test per benchmark layout: what each reader yields from a fake tree named as the
//! real dataset is, and how its masks convert.

use super::*;

#[test]
fn columbia_labels_each_folder_and_pairs_splices_with_their_edgemask() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    touch(r, "4cam_auth/canong3_02_sub_01.tif");
    touch(r, "4cam_auth/nikond70_05_sub_03.TIF");
    touch(r, "4cam_auth/README.txt");
    touch(r, "4cam_splc/canong3_canonxt_sub_01.tif");
    touch(r, "4cam_splc/edgemask/canong3_canonxt_sub_01_edgemask.jpg");
    touch(
        r,
        "4cam_splc/edgemask/canong3_canonxt_sub_01_edgemask_3.jpg",
    );
    let listing = read(DatasetKind::Columbia, r).unwrap();
    assert_eq!(
        summary(&listing, r),
        vec![
            entry("4cam_auth/canong3_02_sub_01.tif", Label::Authentic, None),
            entry("4cam_auth/nikond70_05_sub_03.TIF", Label::Authentic, None),
            entry(
                "4cam_splc/canong3_canonxt_sub_01.tif",
                Label::Spliced,
                Some("4cam_splc/edgemask/canong3_canonxt_sub_01_edgemask.jpg")
            ),
        ]
    );
    assert_eq!(
        listing.entries[2].mask.as_ref().unwrap().encoding,
        MaskEncoding::ColumbiaEdgemask
    );
    assert!(listing.skipped.is_empty());
}

#[test]
fn columbia_accepts_folders_doubled_by_unpacking() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    touch(r, "4cam_auth/4cam_auth/canong3_02_sub_01.tif");
    touch(r, "4cam_splc/4cam_splc/canong3_canonxt_sub_01.tif");
    touch(
        r,
        "4cam_splc/4cam_splc/edgemask/canong3_canonxt_sub_01_edgemask.jpg",
    );
    let listing = read(DatasetKind::Columbia, r).unwrap();
    assert_eq!(
        (
            listing.count(Label::Authentic),
            listing.count(Label::Spliced)
        ),
        (1, 1)
    );
}

#[test]
fn columbia_edgemask_green_region_is_the_splice_after_jpeg_compression() {
    let t = tempfile::tempdir().unwrap();
    // 32x16: left half the first camera (regular red), right half the second (regular
    // green), with the bright shades in an 8-pixel band on each side of the boundary.
    let img = rgb(32, 16, |x, _| match x {
        0..=7 => [200, 0, 0],
        8..=15 => [255, 0, 0],
        16..=23 => [0, 255, 0],
        _ => [0, 200, 0],
    });
    let path = write_jpeg(t.path(), "m_edgemask.jpg", &img);
    let spec = MaskSpec {
        path,
        encoding: MaskEncoding::ColumbiaEdgemask,
        resize: MaskResize::Exact,
    };
    let mask = load_mask(&spec, 32, 16).unwrap();
    let expected: Vec<bool> = (0..16).flat_map(|_| (0..32).map(|x| x >= 16)).collect();
    assert_eq!(mask, expected);
    let err = load_mask(&spec, 16, 16).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::MaskSize {
                mask_width: 32,
                width: 16,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn dso1_labels_by_name_and_reads_black_on_white_masks_at_the_image_size() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("tifs-database");
    touch(&r, "DSO-1/normal-01.png");
    touch(&r, "DSO-1/splicing-01.png");
    touch(&r, "DSO-1/thumbs.png");
    // Mask at half the image's resolution: 4x2, black (spliced) in the right half.
    write_png(
        &r,
        "DSO-1-Fake-Images-Masks/splicing-01.png",
        &rgb(
            4,
            2,
            |x, _| {
                if x >= 2 {
                    [0, 0, 0]
                } else {
                    [255, 255, 255]
                }
            },
        ),
    );
    // `path` may also be the folder that holds tifs-database/.
    let listing = read(DatasetKind::Dso1, t.path()).unwrap();
    assert_eq!(
        summary(&listing, &r),
        vec![
            entry("DSO-1/normal-01.png", Label::Authentic, None),
            entry(
                "DSO-1/splicing-01.png",
                Label::Spliced,
                Some("DSO-1-Fake-Images-Masks/splicing-01.png")
            ),
        ]
    );
    assert_eq!(
        listing
            .skipped_by_reason()
            .get(&SkipReason::UnrecognisedName),
        Some(&1)
    );
    let mask = listing.entries[1].mask_at(8, 4).unwrap();
    let expected: Vec<bool> = (0..4).flat_map(|_| (0..8).map(|x| x >= 4)).collect();
    assert_eq!(mask, expected);
    assert_eq!(listing.entries[0].mask_at(3, 2).unwrap(), vec![false; 6]);
}

#[test]
fn korus_reads_every_camera_and_counts_grey_collateral_damage_as_spliced() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("data-images");
    for cam in ["Canon_60D", "Sony_A57"] {
        touch(&r, &format!("{cam}/pristine/r36610622t.TIF"));
        touch(&r, &format!("{cam}/tampered-realistic/r36610622t.TIF"));
        write_png(
            &r,
            &format!("{cam}/ground-truth/r36610622t.PNG"),
            &rgb(3, 1, |x, _| {
                [[0, 0, 0], [128, 128, 128], [255, 255, 255]][x as usize]
            }),
        );
    }
    std::fs::create_dir_all(r.join("readme-files")).unwrap();
    let listing = read(DatasetKind::Korus, &r).unwrap();
    let s = summary(&listing, &r);
    assert_eq!(s.len(), 4);
    assert_eq!(
        s[0],
        entry("Canon_60D/pristine/r36610622t.TIF", Label::Authentic, None)
    );
    assert_eq!(
        s[1],
        entry(
            "Canon_60D/tampered-realistic/r36610622t.TIF",
            Label::Spliced,
            Some("Canon_60D/ground-truth/r36610622t.PNG")
        )
    );
    assert_eq!(
        listing.entries[3].mask_at(3, 1).unwrap(),
        vec![false, true, true]
    );
}

#[test]
fn in_the_wild_has_only_spliced_images() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("label_in_wild");
    touch(&r, "images/2251.jpg");
    touch(&r, "images/2508.jpg");
    touch(&r, "masks/2251.png");
    touch(&r, "masks/2508.png");
    let listing = read(DatasetKind::InTheWild, t.path()).unwrap();
    assert_eq!(
        summary(&listing, &r),
        vec![
            entry("images/2251.jpg", Label::Spliced, Some("masks/2251.png")),
            entry("images/2508.jpg", Label::Spliced, Some("masks/2508.png")),
        ]
    );
}

#[test]
fn casia1_labels_by_name_skips_copy_move_and_resizes_masks() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    touch(r, "Au/Au_ani_0001.jpg");
    touch(r, "Tp/Sp/Sp_D_CND_A_pla0005_pla0023_0281.jpg");
    touch(r, "Tp/CM/Sp_S_CND_A_pla0016_pla0016_0196.jpg");
    // Misfiled: a copy-move image in Sp/ is still a copy-move.
    touch(r, "Tp/Sp/Sp_S_NND_A_nat0054_nat0054_0189.jpg");
    write_png(
        r,
        "CASIA 1.0 groundtruth/Sp/Sp_D_CND_A_pla0005_pla0023_0281_gt.png",
        &rgb(
            2,
            2,
            |x, y| if x == 1 && y == 1 { [255; 3] } else { [10; 3] },
        ),
    );
    // Known in the release: a splice without a mask.
    touch(r, "Tp/Sp/Sp_D_NRN_A_cha0011_sec0011_0542.jpg");
    let err = read(DatasetKind::Casia1, r).unwrap_err();
    assert!(
        err.to_string()
            .contains("Sp_D_NRN_A_cha0011_sec0011_0542_gt.png"),
        "{err}"
    );
    let listing = read_skipping(DatasetKind::Casia1, r);
    assert_eq!(
        summary(&listing, r),
        vec![
            entry("Au/Au_ani_0001.jpg", Label::Authentic, None),
            entry(
                "Tp/Sp/Sp_D_CND_A_pla0005_pla0023_0281.jpg",
                Label::Spliced,
                Some("CASIA 1.0 groundtruth/Sp/Sp_D_CND_A_pla0005_pla0023_0281_gt.png")
            ),
        ]
    );
    let by_reason = listing.skipped_by_reason();
    assert_eq!(by_reason.get(&SkipReason::CopyMove), Some(&2));
    assert_eq!(by_reason.get(&SkipReason::MissingMask), Some(&1));
    // 2x2 -> 4x4: the bottom-right quarter.
    let mask = listing.entries[1].mask_at(4, 4).unwrap();
    let expected: Vec<bool> = (0..4)
        .flat_map(|y| (0..4).map(move |x| x >= 2 && y >= 2))
        .collect();
    assert_eq!(mask, expected);
}

#[test]
fn casia2_finds_its_ground_truth_folder_or_takes_it_from_the_config() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("CASIA2");
    touch(&r, "Au/Au_ani_00001.jpg");
    touch(&r, "Au/Au_txt_30029.bmp");
    touch(&r, "Tp/Tp_D_CRN_S_N_cha00063_art00014_11818.jpg");
    touch(&r, "Tp/Tp_D_CND_M_N_ani00018_sec00096_00138.tif");
    touch(&r, "Tp/Tp_S_NRN_M_N_pla00020_pla00020_10988.jpg");
    let gt = t.path().join("casia2groundtruth/CASIA 2 Groundtruth");
    touch(&gt, "Tp_D_CRN_S_N_cha00063_art00014_11818_gt.png");
    touch(&gt, "Tp_D_CND_M_N_ani00018_sec00096_00138_gt.png");
    let err = read(DatasetKind::Casia2, &r).unwrap_err();
    assert!(
        matches!(&err, DatasetError::MissingFolder { path, .. } if path.ends_with("CASIA 2 Groundtruth")),
        "{err}"
    );
    let mut config = DatasetConfig::new(DatasetKind::Casia2, &r);
    config.masks = Some(gt.clone());
    let listing = read_dataset(&config).unwrap();
    assert_eq!(
        (
            listing.count(Label::Authentic),
            listing.count(Label::Spliced)
        ),
        (2, 2)
    );
    assert_eq!(
        listing.skipped_by_reason().get(&SkipReason::CopyMove),
        Some(&1)
    );
    let spliced = &listing.entries[2];
    assert!(spliced
        .image
        .ends_with("Tp_D_CND_M_N_ani00018_sec00096_00138.tif"));
    assert_eq!(
        spliced.mask.as_ref().unwrap().path,
        gt.join("Tp_D_CND_M_N_ani00018_sec00096_00138_gt.png")
    );
    // The reference naming inside the dataset folder is found without `masks`.
    std::fs::rename(&gt, r.join("CASIA2.0_Groundtruth")).unwrap();
    assert_eq!(
        read(DatasetKind::Casia2, &r).unwrap().count(Label::Spliced),
        2
    );
}
