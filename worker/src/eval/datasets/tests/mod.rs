//! Readers against tiny fake trees in each benchmark's real naming, and mask conversion
//! against masks written in each convention. Here: the helpers, what every layout shares
//! (missing masks and folders), the generic layout and the config table; [`layouts`]: one
//! test per benchmark layout.

mod layouts;

use std::path::{Path, PathBuf};

use image::{ImageEncoder, RgbImage};

use super::*;

/// Creates an (empty) file, and its folders.
pub(super) fn touch(root: &Path, rel: &str) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"").unwrap();
    path
}

pub(super) fn rgb(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
}

pub(super) fn write_png(root: &Path, rel: &str, img: &RgbImage) -> PathBuf {
    let path = touch(root, rel);
    img.save_with_format(&path, image::ImageFormat::Png)
        .unwrap();
    path
}

pub(super) fn write_jpeg(root: &Path, rel: &str, img: &RgbImage) -> PathBuf {
    let path = touch(root, rel);
    let file = std::fs::File::create(&path).unwrap();
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 75)
        .write_image(
            img,
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    path
}

pub(super) fn read(kind: DatasetKind, root: &Path) -> Result<Listing, DatasetError> {
    read_dataset(&DatasetConfig::new(kind, root))
}

pub(super) fn read_skipping(kind: DatasetKind, root: &Path) -> Listing {
    let mut config = DatasetConfig::new(kind, root);
    config.on_missing_mask = MissingMask::Skip;
    read_dataset(&config).unwrap()
}

/// (image path, label, mask path) relative to `root`.
pub(super) fn summary(listing: &Listing, root: &Path) -> Vec<(String, Label, Option<String>)> {
    let rel = |p: &Path| p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    listing
        .entries
        .iter()
        .map(|e| {
            (
                rel(&e.image),
                e.label,
                e.mask.as_ref().map(|m| rel(&m.path)),
            )
        })
        .collect()
}

pub(super) fn entry(
    image: &str,
    label: Label,
    mask: Option<&str>,
) -> (String, Label, Option<String>) {
    (image.to_string(), label, mask.map(str::to_string))
}

#[test]
fn a_splice_without_its_mask_is_an_error_or_is_skipped_and_counted() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    touch(r, "4cam_auth/canong3_02_sub_01.tif");
    touch(r, "4cam_splc/canong3_canonxt_sub_01.tif");
    touch(r, "4cam_splc/canong3_kodakdcs330_sub_02.tif");
    touch(r, "4cam_splc/edgemask/canong3_canonxt_sub_01_edgemask.jpg");
    let err = read(DatasetKind::Columbia, r).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::MissingMask { .. }), "{msg}");
    assert!(
        msg.contains("canong3_kodakdcs330_sub_02.tif")
            && msg.contains("canong3_kodakdcs330_sub_02_edgemask.jpg")
            && msg.contains("on_missing_mask"),
        "{msg}"
    );
    let listing = read_skipping(DatasetKind::Columbia, r);
    assert_eq!(listing.count(Label::Spliced), 1);
    assert_eq!(
        listing.skipped,
        vec![Skipped {
            path: r.join("4cam_splc/canong3_kodakdcs330_sub_02.tif"),
            reason: SkipReason::MissingMask
        }]
    );
}

#[test]
fn a_missing_folder_or_an_empty_dataset_names_what_path_must_be() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    touch(r, "4cam_auth/canong3_02_sub_01.tif");
    let err = read(DatasetKind::Columbia, r).unwrap_err();
    assert!(
        matches!(&err, DatasetError::MissingFolder { path, .. } if path.ends_with("4cam_splc")),
        "{err}"
    );
    assert!(
        err.to_string().contains("4cam_auth/ and 4cam_splc/"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("images")).unwrap();
    std::fs::create_dir_all(empty.path().join("masks")).unwrap();
    let err = read(DatasetKind::InTheWild, empty.path()).unwrap_err();
    assert!(matches!(err, DatasetError::NoImages { .. }), "{err}");
    let err = read(DatasetKind::Korus, &r.join("nowhere")).unwrap_err();
    assert!(matches!(err, DatasetError::MissingFolder { .. }), "{err}");
}

#[test]
fn generic_reads_labels_csv_and_names_the_bad_line() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    touch(r, "photos/a.jpg");
    touch(r, "photos/b.jpg");
    write_png(
        r,
        "masks/b.png",
        &rgb(2, 1, |x, _| if x == 0 { [255; 3] } else { [0; 3] }),
    );
    let write = |text: &str| std::fs::write(r.join("labels.csv"), text).unwrap();
    write("# splices\nlabel,image,mask\n\nphotos/a.jpg,authentic,\n photos/b.jpg , spliced , masks/b.png\n");
    // Columns in any order: the header says label comes first.
    let err = read(DatasetKind::Generic, r).unwrap_err();
    assert!(err.to_string().contains("labels.csv:4"), "{err}");
    write("# splices\nimage,label,mask\n\nphotos/a.jpg,authentic,\n photos/b.jpg , spliced , masks/b.png\n");
    let listing = read(DatasetKind::Generic, r).unwrap();
    assert_eq!(
        summary(&listing, r),
        vec![
            entry("photos/a.jpg", Label::Authentic, None),
            entry("photos/b.jpg", Label::Spliced, Some("masks/b.png")),
        ]
    );
    assert_eq!(listing.entries[1].mask_at(2, 1).unwrap(), vec![true, false]);
    for (text, line, needle) in [
        (
            "image,label,mask\nphotos/a.jpg,real,\n",
            2,
            "expected authentic or spliced",
        ),
        (
            "image,label,mask\nphotos/b.jpg,spliced,\n",
            2,
            "needs its mask",
        ),
        (
            "image,label,mask\nphotos/c.jpg,authentic,\n",
            2,
            "not found",
        ),
        (
            "image,label\nphotos/a.jpg,authentic\n",
            1,
            "expected the columns",
        ),
        (
            "image,label,mask\n\"photos/a.jpg,authentic,\n",
            2,
            "not closed",
        ),
        (
            "image,label,mask,camera\nphotos/a.jpg,authentic,\n",
            2,
            "the header has 4",
        ),
    ] {
        write(text);
        let err = read(DatasetKind::Generic, r).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("labels.csv:{line}: ")) && msg.contains(needle),
            "{msg}"
        );
    }
    // Quoted fields, extra columns, and the mask of an authentic row (ignored).
    write("camera,image,mask,label\n\"Olympus, Inc \"\"E-M1\"\"\",\"photos/a.jpg\",masks/b.png,authentic\nx,photos/b.jpg,masks/b.png,spliced\n");
    let listing = read(DatasetKind::Generic, r).unwrap();
    assert_eq!(
        summary(&listing, r),
        vec![
            entry("photos/a.jpg", Label::Authentic, None),
            entry("photos/b.jpg", Label::Spliced, Some("masks/b.png")),
        ]
    );
    write("image,label,mask\nphotos/b.jpg,spliced,masks/none.png\n");
    assert!(matches!(
        read(DatasetKind::Generic, r),
        Err(DatasetError::MissingMask { .. })
    ));
}

#[test]
fn dataset_tables_parse_from_toml_and_invalid_fields_are_named() {
    #[derive(serde::Deserialize)]
    struct Eval {
        datasets: Vec<DatasetConfig>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        eval: Eval,
    }
    let text = r#"
        [[eval.datasets]]
        kind = "columbia"
        path = "/data/columbia"

        [[eval.datasets]]
        kind = "casia2"
        path = "/data/CASIA2"
        name = "CASIA v2"
        masks = "/data/casia2groundtruth/CASIA 2 Groundtruth"
        on_missing_mask = "skip"
    "#;
    let file: File = toml::from_str(text).unwrap();
    let d = &file.eval.datasets;
    assert_eq!(
        d[0],
        DatasetConfig::new(DatasetKind::Columbia, "/data/columbia")
    );
    assert_eq!(d[0].name(), "columbia");
    assert_eq!(
        (d[1].kind, d[1].name(), d[1].on_missing_mask),
        (DatasetKind::Casia2, "CASIA v2", MissingMask::Skip)
    );
    for kind in ["dso1", "korus", "in_the_wild", "casia1", "generic"] {
        let one: DatasetConfig =
            toml::from_str(&format!("kind = \"{kind}\"\npath = \"x\"")).unwrap();
        assert_eq!(one.kind.as_str(), kind);
    }
    let err = toml::from_str::<DatasetConfig>("kind = \"hays\"\npath = \"x\"").unwrap_err();
    assert!(err.to_string().contains("unknown variant"), "{err}");
    let err =
        toml::from_str::<DatasetConfig>("kind = \"dso1\"\npath = \"x\"\nmask = \"y\"").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let mut bad = DatasetConfig::new(DatasetKind::Korus, "");
    bad.masks = Some("gt".into());
    let fields: Vec<String> = bad
        .validate("eval.datasets[2]")
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, ["eval.datasets[2].path", "eval.datasets[2].masks"]);
    assert!(matches!(read_dataset(&bad), Err(DatasetError::Invalid(_))));
}
