//! How a sample's bytes are fetched, decided per sample from its shard index entry before
//! any byte is read.
//!
//! - Whole: one GET of the sample's whole range (tags, index, kit and the whole JPEG).
//! - Ranged: one GET of the sample's head (tags, scan index, decode kit: a few KB), then
//!   concurrent GETs of only the byte ranges of the JPEG that the crops' MCU rows need.
//!
//! The choice weighs bytes against requests: a request is counted as `request_cost`
//! bytes (its latency and per-request price expressed as the bytes that would stream in
//! the same time; default 64 KiB, about 1 ms at 0.5 Gbit/s per connection). Ranged costs
//! the head, the crops' MCU rows taken whole (an upper bound: the reader fetches from the
//! scan-index entry before each crop to the one after it, and joins ranges closer than
//! `request_cost`) and two requests; whole costs the sample and one request. So a 12 MP
//! photo (3 MB, ~190 MCU rows) is read by range, and a photo so small that a crop covers
//! most of its rows is read whole.

use std::ops::Range;

use crate::jpeg::CropRect;
use crate::shard::IndexEntry;

/// Which fetch [`plan`] may choose.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FetchMode {
    /// Per sample, by the cost model (see the module documentation).
    #[default]
    Auto,
    /// Always the whole sample.
    Whole,
    /// By range wherever the sample allows it (uncompressed shard, JPEG with a kit).
    Ranged,
}

/// How one sample will be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPlan {
    /// One GET of the whole sample.
    Whole,
    /// The head, then the photo's byte ranges.
    Ranged,
}

/// Default cost of one request, in bytes.
pub const DEFAULT_REQUEST_COST: u64 = 64 << 10;

/// Pixels added above and below a crop when estimating the MCU rows it needs: up to a
/// 32-pixel MCU on each side (4:2:0 MCUs are 16 pixels, vertical factor 4 gives 32).
const ROW_MARGIN_PX: u64 = 64;

/// The fetch for a sample with index entry `entry` whose crops are `rects`.
pub fn plan(
    entry: &IndexEntry,
    rects: &[CropRect],
    mode: FetchMode,
    request_cost: u64,
) -> FetchPlan {
    let (Some(head), Some(jpeg)) = (entry.head(), entry.jpeg) else {
        return FetchPlan::Whole;
    };
    match mode {
        FetchMode::Whole => return FetchPlan::Whole,
        FetchMode::Ranged => return FetchPlan::Ranged,
        FetchMode::Auto if entry.height == 0 => return FetchPlan::Whole,
        FetchMode::Auto => {}
    }
    let rows: u64 = rects
        .iter()
        .map(|r| {
            let px = (r.height as u64 + ROW_MARGIN_PX).min(entry.height as u64);
            jpeg.length.saturating_mul(px) / entry.height as u64
        })
        .sum();
    let ranged = span(&head) + rows.min(jpeg.length) + 2 * request_cost;
    let whole = entry.length + request_cost;
    if ranged < whole {
        FetchPlan::Ranged
    } else {
        FetchPlan::Whole
    }
}

fn span(r: &Range<u64>) -> u64 {
    r.end - r.start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::JpegSpan;

    fn entry(width: u32, height: u32, jpeg_len: u64, head: u64) -> IndexEntry {
        IndexEntry {
            key: "k".into(),
            offset: 1000,
            length: head + jpeg_len + 512,
            width,
            height,
            tags: 20,
            jpeg: Some(JpegSpan {
                offset: 1000 + head,
                length: jpeg_len,
            }),
        }
    }

    fn crops(n: usize) -> Vec<CropRect> {
        vec![
            CropRect {
                x: 0,
                y: 0,
                width: 124,
                height: 124
            };
            n
        ]
    }

    #[test]
    fn large_photos_are_read_by_range_and_small_ones_whole() {
        let r = DEFAULT_REQUEST_COST;
        let twelve_mp = entry(4000, 3000, 3_000_000, 25_000);
        let one_mp = entry(1152, 864, 300_000, 6_000);
        let tiny = entry(200, 150, 20_000, 2_000);
        assert_eq!(
            plan(&twelve_mp, &crops(1), FetchMode::Auto, r),
            FetchPlan::Ranged
        );
        assert_eq!(
            plan(&one_mp, &crops(1), FetchMode::Auto, r),
            FetchPlan::Ranged
        );
        assert_eq!(plan(&tiny, &crops(1), FetchMode::Auto, r), FetchPlan::Whole);
        // Many crops of a 1 MP photo cover most of it: whole wins.
        assert_eq!(
            plan(&one_mp, &crops(6), FetchMode::Auto, r),
            FetchPlan::Whole
        );
        // Expensive requests push toward whole.
        assert_eq!(
            plan(&one_mp, &crops(1), FetchMode::Auto, 1 << 20),
            FetchPlan::Whole
        );
        // The mode overrides the model; a sample without ranges is always whole.
        assert_eq!(
            plan(&tiny, &crops(1), FetchMode::Ranged, r),
            FetchPlan::Ranged
        );
        assert_eq!(
            plan(&twelve_mp, &crops(1), FetchMode::Whole, r),
            FetchPlan::Whole
        );
        let compressed = IndexEntry {
            jpeg: None,
            ..twelve_mp
        };
        assert_eq!(
            plan(&compressed, &crops(1), FetchMode::Ranged, r),
            FetchPlan::Whole
        );
    }
}
