//! The streaming reader: tokenizer against the Python reference, and streams over small
//! packed datasets (order across ranks, crops, resume, bad samples, storage errors);
//! several crops per sample in `crops`.

mod crops;

use crate::support;
use dataloader::tokenize::{TextTokenizer, MAX_LEN};
use std::process::Command;

/// Training-style texts (`Name: value, ...`) built from the metadata-extractor dumps of the
/// real photos, every directory included (maker notes make some texts longer than 512
/// tokens, and a few dumps hold raw bytes), plus hand-picked hard cases.
fn real_exif_texts(cameras: &std::path::Path) -> Vec<String> {
    let mut dumps: Vec<_> = std::fs::read_dir(cameras.join("exif_dumps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dumps.sort();
    let mut texts: Vec<String> = dumps
        .iter()
        .map(|p| {
            let raw = std::fs::read(p).unwrap();
            String::from_utf8_lossy(&raw)
                .lines()
                .filter_map(|l| {
                    let (_, tag) = l.strip_prefix('[')?.split_once("] ")?;
                    let (name, value) = tag.split_once(" = ")?;
                    Some(format!("{name}: {value}"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    texts.extend(
        [
            "",
            "Make: NIKON CORPORATION, Model: NIKON D90, F-Number: f/2.8",
            "Model: Canon EOS 5D Mark II\tSoftware: Adobe Photoshop CS5 (Macintosh)",
            "Artist: Zoë Ångström 東京 ｆｕｌｌｗｉｄｔｈ naïve café \u{200b}zero\u{0007}bell",
            "Unknown tag (0x9c9b): 0x00000000, Lens Model: EF24-105mm f/4L IS USM",
        ]
        .map(String::from),
    );
    texts
}

#[test]
fn tokenizer_matches_hugging_face_on_real_exif_texts() {
    let Some(cameras) = support::cameras_dir() else {
        return;
    };
    let Some(python) = testkit::python_with("tokenizers") else {
        return;
    };
    let tok = match TextTokenizer::discover(None) {
        Ok(t) => t,
        Err(e) => {
            testkit::skip(&format!(
                "no tokenizer vocabulary ({e}): run scripts/setup.sh"
            ));
            return;
        }
    };
    let texts = real_exif_texts(&cameras);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("texts.json");
    std::fs::write(&input, serde_json::to_vec(&texts).unwrap()).unwrap();
    let script = r#"
import json, sys
from tokenizers import BertWordPieceTokenizer
vocab, path = sys.argv[1], sys.argv[2]
texts = json.load(open(path, encoding="utf-8"))
tok = BertWordPieceTokenizer(vocab, lowercase=True)
tok.enable_truncation(512)
out = {"tokenizers": [e.ids for e in tok.encode_batch(texts)]}
try:
    from transformers import BertTokenizer
    bt = BertTokenizer(vocab, do_lower_case=True)
    out["transformers"] = [bt(t, truncation=True, max_length=512)["input_ids"] for t in texts]
except ImportError:
    pass
json.dump(out, sys.stdout)
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(tok.vocab_path())
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: std::collections::BTreeMap<String, Vec<Vec<u32>>> =
        serde_json::from_slice(&out.stdout).unwrap();
    let ours: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t).unwrap()).collect();
    assert!(
        ours.iter().any(|ids| ids.len() == MAX_LEN),
        "no text reached the truncation limit"
    );
    for (name, theirs) in &reference {
        assert_eq!(theirs.len(), texts.len());
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            assert_eq!(a, b, "{name} differs on text {i}: {:?}", texts[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Streams over small packed datasets.

use dataloader::order::{RankPlan, TailPolicy};
use dataloader::shard::{
    Compression, Dataset, DatasetInfo, DatasetWriter, SampleInput, WriterOptions,
};
use dataloader::stream::{
    Batch, BatchStream, CropDecode, FetchMode, SkipReason, StreamError, StreamOptions,
};
use dataloader::TagMap;
use infra::store::{RetryPolicy, StoreOptions};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// A packed dataset in a temporary folder, a runtime, and a toy vocabulary.
struct Fixture {
    dir: tempfile::TempDir,
    keys: Vec<String>,
    shards: usize,
    rt: tokio::runtime::Runtime,
    tokenizer: Arc<TextTokenizer>,
    _vocab: tempfile::NamedTempFile,
}

/// A sample the fixture writes: a key, a photo size (or raw JPEG bytes) and a Make tag.
struct Spec {
    key: String,
    jpeg: Vec<u8>,
    size: (u32, u32),
    make: String,
}

fn photo(i: usize) -> Spec {
    let (w, h) = (130 + (i as u32 * 7) % 40, 126 + (i as u32 * 11) % 30);
    Spec {
        key: format!("s{i:03}"),
        jpeg: dataloader::bench::noisy_jpeg(w as u16, h as u16, i as u64).unwrap(),
        size: (w, h),
        make: format!("cam{}", i % 3),
    }
}

impl Fixture {
    /// Writes `specs` into shards of about `per_shard` samples each.
    fn new(specs: Vec<Spec>, per_shard: usize) -> Self {
        Self::with_compression(specs, per_shard, Compression::None)
    }

    fn with_compression(specs: Vec<Spec>, per_shard: usize, compression: Compression) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mean = specs.iter().map(|s| s.jpeg.len() + 1536).sum::<usize>() / specs.len();
        let writer = WriterOptions {
            compression,
            shard_size_bytes: (mean * per_shard) as u64,
            ..Default::default()
        };
        let url = dir.path().to_str().unwrap().to_string();
        let keys: Vec<String> = specs.iter().map(|s| s.key.clone()).collect();
        let manifest = rt.block_on(async {
            let mut w = DatasetWriter::create(&url, &StoreOptions::default(), writer)
                .await
                .unwrap();
            for s in specs {
                let tags: TagMap = [
                    ("Make".to_string(), s.make),
                    ("Model".to_string(), "x1".to_string()),
                ]
                .into_iter()
                .collect();
                // With the scan index, as `pack` writes it: crops decode partially.
                let jpeg_index = dataloader::jpeg::build_index(&s.jpeg).ok().map(Into::into);
                let jpeg_kit = dataloader::jpeg::build_kit(&s.jpeg)
                    .ok()
                    .flatten()
                    .map(Into::into);
                let input = SampleInput {
                    key: s.key,
                    jpeg: s.jpeg.into(),
                    tags,
                    jpeg_index,
                    jpeg_kit,
                    width: s.size.0,
                    height: s.size.1,
                };
                w.append(&input).await.unwrap();
            }
            let info = DatasetInfo {
                tags: vec!["Make".into(), "Model".into()],
                ..Default::default()
            };
            w.finish(info).await.unwrap()
        });
        let mut vocab = tempfile::NamedTempFile::new().unwrap();
        use std::io::Write;
        writeln!(
            vocab,
            "[PAD]\n[UNK]\n[CLS]\n[SEP]\nmake\n:\ncam\n##0\n##1\n##2\n,\nmodel\nx\n##1"
        )
        .unwrap();
        let tokenizer = Arc::new(TextTokenizer::from_vocab(vocab.path()).unwrap());
        Fixture {
            shards: manifest.shards.len(),
            dir,
            keys,
            rt,
            tokenizer,
            _vocab: vocab,
        }
    }

    fn url(&self) -> String {
        self.dir.path().to_str().unwrap().to_string()
    }

    fn start(&self, opts: StreamOptions) -> BatchStream {
        let store = StoreOptions {
            retry: RetryPolicy::fast(2),
            ..Default::default()
        };
        let dataset = self
            .rt
            .block_on(Dataset::open(&self.url(), &store))
            .unwrap();
        BatchStream::start(
            self.rt.handle(),
            Arc::new(dataset),
            Arc::clone(&self.tokenizer),
            opts,
        )
        .unwrap()
    }

    /// Every batch of a run, or the error that ended it (with the batches before it).
    fn run(&self, opts: StreamOptions) -> (Vec<Batch>, Option<StreamError>, BatchStream) {
        let mut s = self.start(opts);
        let mut batches = Vec::new();
        while let Some(b) = s.next_blocking() {
            match b {
                Ok(b) => batches.push(b),
                Err(e) => return (batches, Some(e), s),
            }
        }
        (batches, None, s)
    }

    fn batches(&self, opts: StreamOptions) -> Vec<Batch> {
        let (b, err, _) = self.run(opts);
        assert!(err.is_none(), "{err:?}");
        b
    }
}

fn opts(batch: usize, world: usize, rank: usize) -> StreamOptions {
    let mut o = StreamOptions::new(RankPlan::new(batch, world, rank).unwrap());
    o.window_shards = 2;
    o.prefetch = 6;
    o.decode_threads = 2;
    o.seed = 5;
    o
}

/// Joins the ranks' parts of each global batch in rank order.
fn join_ranks(per_rank: &[Vec<Batch>]) -> Vec<(Vec<String>, Vec<u64>, Vec<u8>)> {
    (0..per_rank[0].len())
        .map(|b| {
            let mut joined = (Vec::new(), Vec::new(), Vec::new());
            for rank in per_rank {
                joined.0.extend(rank[b].keys.iter().cloned());
                joined.1.extend(rank[b].positions.iter().copied());
                joined.2.extend(rank[b].pixels.iter().copied());
            }
            joined
        })
        .collect()
}

#[test]
fn every_sample_is_read_once_per_epoch_across_ranks() {
    let f = Fixture::new((0..23).map(photo).collect(), 4);
    assert!(
        f.shards >= 3,
        "the fixture should span several shards, has {}",
        f.shards
    );
    let per_rank: Vec<Vec<Batch>> = (0..2).map(|r| f.batches(opts(4, 2, r))).collect();
    for rank in &per_rank {
        assert_eq!(rank.len(), 5, "23 samples make 5 global batches of 4");
        assert!(rank
            .iter()
            .all(|b| b.len() == 2 && b.pixels.len() == 2 * 124 * 124 * 3));
        assert!(rank
            .iter()
            .all(|b| b.input_ids.len() == 2 * b.seq_len
                && b.attention_mask.len() == b.input_ids.len()));
    }
    let keys: Vec<String> = per_rank
        .iter()
        .flatten()
        .flat_map(|b| b.keys.clone())
        .collect();
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(
        (keys.len(), unique.len()),
        (20, 20),
        "each sample at most once"
    );
    assert!(unique.iter().all(|k| f.keys.contains(k)));
    let (_, _, s) = f.run(opts(4, 2, 0));
    assert_eq!(s.counters().dropped_tail, 3);
    // The same global batches, sample for sample and pixel for pixel, with one rank.
    let single = f.batches(opts(4, 1, 0));
    let joined = join_ranks(&per_rank);
    for (b, one) in single.iter().enumerate() {
        assert_eq!(
            (&one.keys, &one.positions, &one.pixels),
            (&joined[b].0, &joined[b].1, &joined[b].2),
            "batch {b}"
        );
    }
    // Keeping the tail reads all 23.
    let mut keep = opts(4, 1, 0);
    keep.tail = TailPolicy::Keep;
    let all: HashSet<String> = f.batches(keep).into_iter().flat_map(|b| b.keys).collect();
    assert_eq!(all, f.keys.iter().cloned().collect());
}

#[test]
fn crops_are_fixed_by_seed_and_epoch_and_change_across_epochs() {
    let f = Fixture::new((0..12).map(photo).collect(), 4);
    let by_key = |epoch: u64| -> BTreeMap<String, Vec<u8>> {
        let mut o = opts(4, 1, 0);
        o.epoch = epoch;
        f.batches(o)
            .iter()
            .flat_map(|b| {
                (0..b.len()).map(move |i| (b.keys[i].clone(), b.patch_pixels(i).to_vec()))
            })
            .collect()
    };
    let (a, again, next) = (by_key(0), by_key(0), by_key(1));
    assert_eq!(a.len(), 12);
    assert_eq!(a, again);
    let changed = a.iter().filter(|(k, px)| next.get(*k) != Some(*px)).count();
    assert!(
        changed >= 9,
        "only {changed} of 12 crops changed with the epoch"
    );
}

#[test]
fn resuming_from_a_position_yields_the_tail_of_the_stream() {
    let f = Fixture::new((0..22).map(photo).collect(), 5);
    let full = f.batches(opts(4, 1, 0));
    assert_eq!(full.len(), 5);
    let k = 2;
    let resume = full[k - 1].resume;
    assert_eq!(resume.consumed, 8);
    for world in [1, 2] {
        let per_rank: Vec<Vec<Batch>> = (0..world)
            .map(|r| {
                let mut o = opts(4, world, r);
                o.resume_from(resume);
                f.batches(o)
            })
            .collect();
        let joined = join_ranks(&per_rank);
        assert_eq!(joined.len(), full.len() - k);
        for (i, b) in full[k..].iter().enumerate() {
            assert_eq!(
                (&b.keys, &b.positions, &b.pixels),
                (&joined[i].0, &joined[i].1, &joined[i].2),
                "world {world}"
            );
            assert_eq!(per_rank[0][i].resume, b.resume);
        }
        // Token ids of the resumed run are those of the full run.
        if world == 1 {
            for (i, b) in full[k..].iter().enumerate() {
                assert_eq!(
                    (&b.input_ids, &b.attention_mask, &b.texts),
                    (
                        &per_rank[0][i].input_ids,
                        &per_rank[0][i].attention_mask,
                        &per_rank[0][i].texts
                    )
                );
            }
        }
    }
}

/// Offset of the only occurrence of `needle` in a file.
fn find(path: &std::path::Path, needle: &[u8]) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let mut hits =
        (0..bytes.len().saturating_sub(needle.len())).filter(|&i| bytes[i..].starts_with(needle));
    let at = hits
        .next()
        .unwrap_or_else(|| panic!("{needle:?} not in {}", path.display()));
    assert!(hits.next().is_none(), "{needle:?} occurs twice");
    at
}

/// Overwrites a file's bytes at `offset`.
fn overwrite(path: &std::path::Path, offset: usize, with: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset..offset + with.len()].copy_from_slice(with);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_samples_are_skipped_and_counted_by_reason() {
    let mut specs: Vec<Spec> = (0..10).map(photo).collect();
    specs[2].key = "badjpeg".into();
    specs[2].jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0x5A; 400]].concat();
    specs[4] = Spec {
        key: "small".into(),
        jpeg: dataloader::bench::noisy_jpeg(60, 200, 1).unwrap(),
        size: (60, 200),
        make: "cam1".into(),
    };
    specs[6].key = "badexif".into();
    specs[6].make = "garbled".into();
    specs[8].key = "badtar".into();
    let f = Fixture::new(specs, 100);
    assert_eq!(f.shards, 1);
    let shard = f.dir.path().join("shard-000000.tar");
    // Garbled EXIF JSON: an array where the tag map's object starts.
    overwrite(&shard, find(&shard, br#"{"Make":"garbled""#), b"[");
    // A broken tar header: its checksum field (bytes 148..156) no longer matches.
    let header = find(&shard, b"badtar.jpg\0");
    assert_eq!(header % 512, 0, "member names start tar headers");
    overwrite(&shard, header + 148, b"0000000\0");
    let mut o = opts(10, 1, 0);
    o.tail = TailPolicy::Keep;
    let (batches, err, s) = f.run(o);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(batches.len(), 1);
    let keys: HashSet<&str> = batches[0].keys.iter().map(String::as_str).collect();
    assert_eq!(keys.len(), 6);
    assert!(keys.is_disjoint(&HashSet::from(["badjpeg", "small", "badexif", "badtar"])));
    let c = s.counters();
    let want: BTreeMap<SkipReason, u64> = [
        (SkipReason::CorruptJpeg, 1),
        (SkipReason::TooSmall, 1),
        (SkipReason::BadExif, 1),
        (SkipReason::BadTar, 1),
    ]
    .into();
    assert_eq!(c.skipped, want);
    assert_eq!(c.samples, 6);
    assert_eq!(batches[0].pixels.len(), 6 * 124 * 124 * 3);
}

#[test]
fn a_missing_shard_object_ends_the_stream_with_an_error_naming_it() {
    let f = Fixture::new((0..12).map(photo).collect(), 4);
    assert!(f.shards >= 2);
    std::fs::remove_file(f.dir.path().join("shard-000001.tar")).unwrap();
    let (batches, err, _) = f.run(opts(4, 1, 0));
    let err = err.expect("the stream should fail");
    assert!(matches!(err, StreamError::Storage { .. }), "{err:?}");
    assert!(err.to_string().contains("shard-000001.tar"), "{err}");
    assert!(batches.len() < 3);
}

#[test]
fn zstd_shards_stream_the_same_batches_as_plain_tar() {
    // One shard each, so that both datasets have the same order.
    let tar = Fixture::new((0..10).map(photo).collect(), 100);
    let zst = Fixture::with_compression((0..10).map(photo).collect(), 100, Compression::Zstd);
    assert!(zst.dir.path().join("shard-000000.tar.zst").exists());
    let (a, b) = (tar.batches(opts(4, 1, 0)), zst.batches(opts(4, 1, 0)));
    assert_eq!(a.len(), 2);
    assert!(a == b, "zstd batches differ from plain tar batches");
}

#[test]
fn every_crop_decode_mode_gives_the_same_batches() {
    let fx = Fixture::new((0..10).map(photo).collect(), 100);
    let with = |decode: CropDecode| {
        let mut o = opts(4, 1, 0);
        o.decode = decode;
        fx.batches(o)
    };
    let indexed = with(CropDecode::Indexed);
    assert_eq!(indexed.len(), 2);
    assert!(
        indexed == with(CropDecode::Sequential),
        "sequential decode differs"
    );
    assert!(
        indexed == with(CropDecode::Whole),
        "whole-photo decode differs"
    );
}

#[test]
fn fetching_whole_or_by_range_gives_the_same_batches() {
    // Small photos (a crop covers most rows: whole wins) and 1 MP ones (ranges win).
    let mut specs: Vec<Spec> = (0..6).map(photo).collect();
    for i in 6..10 {
        let (w, h) = (1152 + i as u32 * 16, 864);
        specs.push(Spec {
            key: format!("s{i:03}"),
            jpeg: dataloader::bench::noisy_jpeg(w as u16, h as u16, i as u64).unwrap(),
            size: (w, h),
            make: format!("cam{}", i % 3),
        });
    }
    let fx = Fixture::new(specs, 100);
    // A damaged scan index: whole reads decode without it; ranged reads fall back to a
    // whole read of that sample, so every mode still gives the same batches.
    let shard = fx.dir.path().join("shard-000000.tar");
    let member = find(&shard, b"s007.jpgidx\0");
    overwrite(&shard, member + 512 + 60, b"\xAA\x55");
    let run = |fetch: FetchMode| {
        let mut o = opts(5, 1, 0);
        o.crops_per_sample = 2;
        o.fetch = fetch;
        let (batches, err, s) = fx.run(o);
        assert!(err.is_none(), "{fetch:?}: {err:?}");
        (batches, s.counters())
    };
    let (whole, cw) = run(FetchMode::Whole);
    let (ranged, cr) = run(FetchMode::Ranged);
    let (auto, ca) = run(FetchMode::Auto);
    assert_eq!(whole.len(), 2);
    assert!(ranged == whole, "ranged reads give other batches");
    assert!(auto == whole, "the per-sample choice gives other batches");
    assert_eq!((cw.samples, cw.ranged, cw.requests), (10, 0, 10));
    assert_eq!(
        (cr.samples, cr.ranged),
        (10, 9),
        "all by range but the damaged one"
    );
    assert!(
        cr.requests >= 9 * 2 + 2,
        "a head and at least one range each"
    );
    assert_eq!(
        ca.ranged, 3,
        "only the intact 1 MP photos are read by range"
    );
    // Ranges cut the bytes; auto spends a few more on the small photos to save requests.
    assert!(
        cr.bytes_read * 10 < cw.bytes_read * 6 && ca.bytes_read * 10 < cw.bytes_read * 6,
        "auto {} ranged {} whole {}",
        ca.bytes_read,
        cr.bytes_read,
        cw.bytes_read
    );
    assert!(ca.requests < cr.requests);
}
