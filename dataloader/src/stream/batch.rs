//! A batch as training receives it, and its assembly from prepared samples.

use super::sample::Prepared;
use crate::order::Position;
use crate::tokenize::TextTokenizer;

/// One rank's part of one global batch.
///
/// Samples skipped for bad input leave the batch smaller than the rank's share (possibly
/// empty); every rank still yields the same number of batches, so ranks stay in step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Number of the global batch, counted from the run's start position.
    pub index: u64,
    /// Sample keys.
    pub keys: Vec<String>,
    /// Global positions of the samples in the epoch's order.
    pub positions: Vec<u64>,
    /// Side of the square patches.
    pub patch: u32,
    /// Crops per sample (the stream's `crops_per_sample`).
    pub crops: u32,
    /// `len x crops x patch x patch x 3` bytes: RGB patches, HWC, row-major, sample-major
    /// (every crop of sample 0, then every crop of sample 1, ...).
    pub pixels: Vec<u8>,
    /// The EXIF texts.
    pub texts: Vec<String>,
    /// `len x seq_len` token ids, padded with `[PAD]`.
    pub input_ids: Vec<u32>,
    /// `len x seq_len`: 1 for tokens, 0 for padding.
    pub attention_mask: Vec<u8>,
    /// Length of each token row (the longest text of the batch).
    pub seq_len: usize,
    /// Where to resume to continue right after this global batch.
    pub resume: Position,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether every sample of this rank's share was skipped (or the share was empty).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes of one crop (`patch x patch x 3`).
    pub fn crop_len(&self) -> usize {
        self.patch as usize * self.patch as usize * 3
    }

    /// The pixels of every crop of sample `i` (`crops x patch x patch x 3`). Panics if `i`
    /// is not below [`len`](Self::len).
    pub fn patch_pixels(&self, i: usize) -> &[u8] {
        let n = self.crop_len() * self.crops as usize;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The pixels of crop `k` of sample `i` (`patch x patch x 3`). Panics if `i` is not
    /// below [`len`](Self::len) or `k` not below `crops`.
    pub fn crop_pixels(&self, i: usize, k: usize) -> &[u8] {
        assert!(
            k < self.crops as usize,
            "crop {k} of a batch with {} crops per sample",
            self.crops
        );
        let n = self.crop_len();
        let at = (i * self.crops as usize + k) * n;
        &self.pixels[at..at + n]
    }
}

/// Concatenates the samples' pixels and pads their token ids.
pub(crate) fn assemble(
    index: u64,
    patch: u32,
    crops: u32,
    resume: Position,
    mut samples: Vec<Prepared>,
    tok: &TextTokenizer,
) -> Batch {
    let ids: Vec<Vec<u32>> = samples
        .iter_mut()
        .map(|s| std::mem::take(&mut s.ids))
        .collect();
    let enc = tok.pad(&ids);
    let mut pixels =
        Vec::with_capacity(samples.len() * crops as usize * (patch * patch * 3) as usize);
    let (mut keys, mut positions, mut texts) = (Vec::new(), Vec::new(), Vec::new());
    for s in samples {
        pixels.extend_from_slice(&s.pixels);
        keys.push(s.key);
        positions.push(s.position);
        texts.push(s.text);
    }
    Batch {
        index,
        keys,
        positions,
        patch,
        crops,
        pixels,
        texts,
        input_ids: enc.input_ids,
        attention_mask: enc.attention_mask,
        seq_len: enc.seq_len,
        resume,
    }
}
