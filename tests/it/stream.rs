//! The streaming reader: tokenizer against the Python reference, and streams over small
//! packed datasets (order across ranks, crops, resume, bad samples, storage errors).

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
    let python = support::venv_python();
    let tok = match TextTokenizer::discover(None) {
        Ok(t) if python.exists() => t,
        other => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI needs the Python environment (scripts/setup.sh): {other:?}"
            );
            eprintln!("skipping: no project Python environment ({other:?})");
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
