//! `manifest.json` from the records of a pack's parts: checks that every part finished
//! under the same settings and every block has its record, leaves photos whose bytes an
//! earlier block already holds out of the shard indexes (their bytes stay in the tar,
//! unlisted; readers go by the index), sums the skip counts and the tag counts, and writes
//! the manifest. Merging again gives the same manifest.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};

use super::records::{self, BlockRecord, Documents, PartRecord};
use super::PackError;
use crate::exif::frequency::{FrequencyCounter, DEFAULT_THRESHOLD};
use crate::shard::manifest::{FORMAT_VERSION, MANIFEST_NAME};
use crate::shard::{Compression, Manifest, ShardEntry, ShardIndex};
use infra::store::StoreOptions;

/// Merges the pack records under `url` into its manifest and returns it.
pub async fn merge(url: &str, opts: &StoreOptions) -> Result<Manifest, PackError> {
    let docs = Documents::open(url, opts)?;
    let part = finished_parts(&docs).await?;
    let blocks: Vec<BlockRecord> = futures::stream::iter(0..part.blocks)
        .map(|b| {
            let docs = &docs;
            async move { Ok::<_, PackError>((b, docs.get::<BlockRecord>(&records::block_record_name(b)).await?)) }
        })
        .buffered(16)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .map(|(b, r)| match r {
            Some(r) if r.settings == part.settings => Ok(r),
            Some(_) => Err(PackError::Records(format!(
                "block {b} at {url} was packed with other settings than its parts record: rerun part {} of {}",
                b % u64::from(part.parts),
                part.parts
            ))),
            None => Err(PackError::Records(format!(
                "block {b} at {url} has no record: part {} of {} did not finish it; rerun that part",
                b % u64::from(part.parts),
                part.parts
            ))),
        })
        .collect::<Result<_, _>>()?;

    let mut seen: HashSet<&str> = HashSet::new();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut frequencies = FrequencyCounter::new(part.settings.min_tags);
    let mut shards: Vec<ShardEntry> = Vec::new();
    let mut rewrites: Vec<(String, ShardIndex)> = Vec::new();
    for block in &blocks {
        for (reason, n) in &block.skipped {
            *skipped.entry(reason.clone()).or_default() += n;
        }
        frequencies.merge(&block.frequencies);
        let mut dropped: HashMap<usize, HashSet<&str>> = HashMap::new();
        for s in &block.samples {
            if !seen.insert(&s.sha256) {
                dropped.entry(s.shard).or_default().insert(&s.key);
                *skipped.entry("duplicate".into()).or_default() += 1;
            }
        }
        for (i, (entry, index)) in block.shards.iter().zip(&block.indexes).enumerate() {
            let mut entry = entry.clone();
            if let Some(keys) = dropped.get(&i) {
                let kept = ShardIndex {
                    samples: index
                        .samples
                        .iter()
                        .filter(|e| !keys.contains(e.key.as_str()))
                        .cloned()
                        .collect(),
                };
                entry.samples = kept.samples.len() as u64;
                rewrites.push((entry.index.clone(), kept));
            }
            if entry.samples > 0 {
                shards.push(entry);
            }
        }
    }
    futures::stream::iter(&rewrites)
        .map(|(name, index)| docs.put(name, index))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let tags = match &part.tag_list {
        Some(list) => list.clone(),
        None => frequencies.report(DEFAULT_THRESHOLD).tags,
    };
    let compression = match part.settings.compression.as_str() {
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    };
    if shards.is_empty() {
        return Err(PackError::NothingPacked {
            source_desc: part.source,
            skipped,
        });
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        compression,
        tags,
        samples: shards.iter().map(|s| s.samples).sum(),
        shards,
        skipped,
        created_by: format!("dataloader {}", env!("CARGO_PKG_VERSION")),
        source: part.source,
    };
    docs.put(MANIFEST_NAME, &manifest).await?;
    tracing::info!(
        url,
        shards = manifest.shards.len(),
        samples = manifest.samples,
        duplicates_left_out = manifest.skipped.get("duplicate").copied().unwrap_or(0),
        "manifest written"
    );
    Ok(manifest)
}

/// The record of part 0 of the one complete set of part records, checked against the
/// others of its set.
async fn finished_parts(docs: &Documents) -> Result<PartRecord, PackError> {
    let names = docs.names_starting("pack-part-").await?;
    let mut sets: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for name in &names {
        let parsed = name
            .strip_prefix("pack-part-")
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|r| r.split_once("-of-"))
            .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
        if let Some((i, n)) = parsed {
            sets.entry(n).or_default().push(i);
        }
    }
    let complete: Vec<u32> = sets
        .iter()
        .filter(|(n, parts)| parts.len() as u32 == **n)
        .map(|(n, _)| *n)
        .collect();
    let n = match complete.as_slice() {
        [n] => *n,
        [] if sets.is_empty() => {
            return Err(PackError::Records(format!(
                "no finished pack parts at {}: run `dataloader pack` (with --part I/N on each machine) first",
                docs.url()
            )))
        }
        [] => {
            let missing: Vec<String> = sets
                .iter()
                .flat_map(|(n, have)| {
                    (0..*n)
                        .filter(|i| !have.contains(i))
                        .map(move |i| format!("{i}/{n}"))
                })
                .collect();
            return Err(PackError::Records(format!(
                "parts not finished at {}: {}; run them (reruns keep finished blocks)",
                docs.url(),
                missing.join(", ")
            )));
        }
        several => {
            return Err(PackError::Records(format!(
                "finished packs with {several:?} parts both at {}: delete the pack-part-*.json records of the one that is not current",
                docs.url()
            )))
        }
    };
    let mut first: Option<PartRecord> = None;
    for i in 0..n {
        let name = records::part_record_name(i, n);
        let Some(r) = docs.get::<PartRecord>(&name).await? else {
            return Err(PackError::Records(format!("{name} vanished while merging")));
        };
        match &first {
            None => first = Some(r),
            Some(f) if f.settings != r.settings || f.blocks != r.blocks || f.tag_list != r.tag_list => {
                return Err(PackError::Records(format!(
                    "part {i} of {n} at {} was packed with other settings or input than part 0 ({} blocks against {}): rerun it with the same arguments",
                    docs.url(),
                    r.blocks,
                    f.blocks
                )))
            }
            Some(_) => {}
        }
    }
    Ok(first.expect("n >= 1"))
}
