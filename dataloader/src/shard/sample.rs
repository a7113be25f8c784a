//! One sample's bytes in a shard: its tar members (`KEY.exif.json`, optionally
//! `KEY.jpgidx` and `KEY.jpgkit`, then `KEY.jpg`), as one zstd frame when the shard is
//! compressed. Encoding for the writer, decoding and validation for the reader.
//!
//! The photo comes last so that, in an uncompressed shard, everything but the photo is
//! one contiguous head: a ranged reader fetches the head (tags, scan index, decode kit),
//! then only the bytes of the photo its crops need ([`decode_head`]).

use std::cell::RefCell;

use bytes::Bytes;

use super::manifest::Compression;
use crate::TagMap;

/// Tar block size.
const BLOCK: usize = 512;
/// Longest member name a plain ustar header holds.
const MAX_NAME: usize = 100;
/// Longest member suffix (`.exif.json`), so keys up to `MAX_NAME - 10` bytes fit.
pub const MAX_KEY_LEN: usize = MAX_NAME - ".exif.json".len();
/// Largest decompressed sample accepted (guards against corrupt frame headers).
const MAX_SAMPLE_BYTES: u64 = 1 << 30;
/// zstd level used for sample frames.
pub const ZSTD_LEVEL: i32 = 3;

/// A photo ready to be written into a shard.
#[derive(Debug, Clone)]
pub struct SampleInput {
    /// Unique key within the dataset (at most [`MAX_KEY_LEN`] bytes, no `.`).
    pub key: String,
    /// The original JPEG bytes, stored unchanged.
    pub jpeg: Bytes,
    /// The photo's EXIF tags.
    pub tags: TagMap,
    /// The serialised JPEG scan index, if one could be built.
    pub jpeg_index: Option<Bytes>,
    /// The JPEG decode kit ([`crate::jpeg::build_kit`]), for JPEGs decodable from ranges.
    pub jpeg_kit: Option<Bytes>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

/// A sample encoded as it will appear in the shard, plus what its index entry needs.
#[derive(Debug, Clone)]
pub struct EncodedSample {
    /// The sample key.
    pub key: String,
    /// Its bytes in the shard: tar members, or one zstd frame of them.
    pub bytes: Bytes,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Number of EXIF tags.
    pub tags: u32,
    /// Where the JPEG's bytes start in [`Self::bytes`], when a reader can fetch parts of
    /// it by range (an uncompressed sample with a scan index and a decode kit).
    pub jpeg_at: Option<u64>,
    /// Length of the JPEG.
    pub jpeg_len: u64,
}

/// A sample read back from a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample {
    /// The sample key.
    pub key: String,
    /// The original JPEG bytes.
    pub jpeg: Bytes,
    /// The photo's EXIF tags.
    pub tags: TagMap,
    /// The JPEG scan index, when the shard has one for this photo.
    pub jpeg_index: Option<Bytes>,
}

/// The members before the photo of an uncompressed sample ([`decode_head`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleHead {
    /// The photo's EXIF tags.
    pub tags: TagMap,
    /// The JPEG scan index.
    pub jpeg_index: Bytes,
    /// The JPEG decode kit.
    pub jpeg_kit: Bytes,
}

/// What is wrong with one sample's bytes. The reader skips such a sample and counts it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SampleError {
    /// The shard object ends before the sample does.
    #[error(
        "shard object is truncated: sample needs bytes up to {needed}, object has {available}"
    )]
    Truncated {
        /// End of the sample's range.
        needed: u64,
        /// Size of the object.
        available: u64,
    },
    /// The zstd frame does not decompress.
    #[error("corrupt zstd frame: {0}")]
    Decompress(String),
    /// The tar members do not parse (bad header checksum, cut-off member, ...).
    #[error("corrupt tar members: {0}")]
    Tar(String),
    /// A member belongs to another key than the index says.
    #[error("member '{member}' does not belong to key '{key}'")]
    WrongKey {
        /// The expected key.
        key: String,
        /// The member name found.
        member: String,
    },
    /// A required member is absent.
    #[error("member '{0}' is missing")]
    MissingMember(String),
    /// The `.jpg` member is not a JPEG.
    #[error("'{0}' does not start with a JPEG marker")]
    NotJpeg(String),
    /// The `.exif.json` member is not a tag map.
    #[error("'{member}' is not a tag map: {reason}")]
    BadTags {
        /// The member name.
        member: String,
        /// The JSON error.
        reason: String,
    },
}

/// Why a sample could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The key is empty, too long, or has characters a key may not have.
    #[error("invalid sample key '{key}': {reason}")]
    BadKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The tar header could not be built or zstd failed.
    #[error("cannot encode sample '{key}': {reason}")]
    Encode {
        /// The key.
        key: String,
        /// What failed.
        reason: String,
    },
}

/// Checks that `key` can name tar members and reads back as the same webdataset key:
/// non-empty, at most [`MAX_KEY_LEN`] bytes, ASCII letters, digits, `_`, `-` and `/`
/// (not leading, trailing or doubled).
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("longer than {MAX_KEY_LEN} bytes"));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/')))
    {
        return Err(format!(
            "character {c:?} not allowed (letters, digits, _ - / only)"
        ));
    }
    if key.starts_with('/') || key.ends_with('/') || key.contains("//") {
        return Err("empty path component".into());
    }
    Ok(())
}

/// Encodes a sample's members (and, with zstd, compresses them into one frame).
pub fn encode(
    sample: &SampleInput,
    compression: Compression,
) -> Result<EncodedSample, EncodeError> {
    check_key(&sample.key).map_err(|reason| EncodeError::BadKey {
        key: sample.key.clone(),
        reason,
    })?;
    let enc_err = |reason: String| EncodeError::Encode {
        key: sample.key.clone(),
        reason,
    };
    let tags_json = serde_json::to_vec(&sample.tags).map_err(|e| enc_err(e.to_string()))?;
    let mut members: Vec<(String, &[u8])> = vec![(format!("{}.exif.json", sample.key), &tags_json)];
    if let Some(idx) = &sample.jpeg_index {
        members.push((format!("{}.jpgidx", sample.key), idx));
    }
    if let Some(kit) = &sample.jpeg_kit {
        members.push((format!("{}.jpgkit", sample.key), kit));
    }
    members.push((format!("{}.jpg", sample.key), &sample.jpeg));
    let total: usize = members
        .iter()
        .map(|(_, d)| BLOCK + d.len().div_ceil(BLOCK) * BLOCK)
        .sum();
    let mut tar = Vec::with_capacity(total);
    let mut jpeg_at = 0;
    for (name, data) in &members {
        jpeg_at = tar.len() + BLOCK;
        append_member(&mut tar, name, data).map_err(|e| enc_err(e.to_string()))?;
    }
    let rangeable = sample.jpeg_index.is_some() && sample.jpeg_kit.is_some();
    let (bytes, jpeg_at) = match compression {
        Compression::None => (tar, rangeable.then_some(jpeg_at as u64)),
        Compression::Zstd => (
            compress_frame(&tar).map_err(|e| enc_err(format!("zstd: {e}")))?,
            None,
        ),
    };
    Ok(EncodedSample {
        key: sample.key.clone(),
        bytes: Bytes::from(bytes),
        width: sample.width,
        height: sample.height,
        tags: sample.tags.len() as u32,
        jpeg_at,
        jpeg_len: sample.jpeg.len() as u64,
    })
}

/// The end of a tar archive (two zero blocks), as its own frame when compressed.
pub fn end_of_archive(compression: Compression) -> std::io::Result<Vec<u8>> {
    let zeros = vec![0u8; 2 * BLOCK];
    match compression {
        Compression::None => Ok(zeros),
        Compression::Zstd => compress_frame(&zeros),
    }
}

fn append_member(out: &mut Vec<u8>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    Ok(())
}

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// One zstd frame with content size and checksum, so a flipped byte is detected.
fn compress_frame(data: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
            c.include_checksum(true)?;
            c.include_contentsize(true)?;
            *slot = Some(c);
        }
        slot.as_mut().expect("set above").compress(data)
    })
}

/// Decodes and validates one sample's bytes as fetched from the shard.
pub fn decode(key: &str, bytes: Bytes, compression: Compression) -> Result<RawSample, SampleError> {
    let tar = match compression {
        Compression::None => bytes,
        Compression::Zstd => Bytes::from(decompress_frame(&bytes)?),
    };
    let m = members(key, &tar, None)?;
    let jpeg = m
        .jpeg
        .ok_or_else(|| SampleError::MissingMember(format!("{key}.jpg")))?;
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(SampleError::NotJpeg(format!("{key}.jpg")));
    }
    Ok(RawSample {
        key: key.to_string(),
        jpeg,
        tags: parse_tags(key, m.tags_json)?,
        jpeg_index: m.index,
    })
}

/// Decodes the head of an uncompressed sample: its bytes up to where the photo's data
/// starts, ending with the photo's tar header, which must record `jpeg_len` bytes. The
/// head must hold the scan index and the decode kit.
pub fn decode_head(key: &str, head: Bytes, jpeg_len: u64) -> Result<SampleHead, SampleError> {
    let m = members(key, &head, Some(jpeg_len))?;
    let missing = |what: &str| SampleError::MissingMember(format!("{key}.{what}"));
    Ok(SampleHead {
        tags: parse_tags(key, m.tags_json)?,
        jpeg_index: m.index.ok_or_else(|| missing("jpgidx"))?,
        jpeg_kit: m.kit.ok_or_else(|| missing("jpgkit"))?,
    })
}

/// The members of one sample found in `tar`.
#[derive(Default)]
struct Members {
    jpeg: Option<Bytes>,
    tags_json: Option<Bytes>,
    index: Option<Bytes>,
    kit: Option<Bytes>,
}

/// Reads the members of sample `key` from `tar`. With `head_of = Some(len)`, `tar` ends
/// right after the header of the `.jpg` member, which must announce `len` bytes.
fn members(key: &str, tar: &Bytes, head_of: Option<u64>) -> Result<Members, SampleError> {
    let mut archive = tar::Archive::new(std::io::Cursor::new(&tar[..]));
    let entries = archive
        .entries()
        .map_err(|e| SampleError::Tar(e.to_string()))?;
    let mut m = Members::default();
    for entry in entries {
        let entry = entry.map_err(|e| SampleError::Tar(e.to_string()))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let size = entry
            .header()
            .entry_size()
            .map_err(|e| SampleError::Tar(e.to_string()))?;
        let start = entry.raw_file_position();
        let suffix = name
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('.'));
        if let (Some(len), Some("jpg")) = (head_of, suffix) {
            if size != len || start != tar.len() as u64 {
                return Err(SampleError::Tar(format!(
                    "head ends with member '{name}' of {size} bytes at {start}; the index says {len} bytes at {}",
                    tar.len()
                )));
            }
            return Ok(m);
        }
        let end = start.saturating_add(size);
        if end > tar.len() as u64 {
            return Err(SampleError::Tar(format!(
                "member '{name}' needs {size} bytes, only {} remain",
                (tar.len() as u64).saturating_sub(start)
            )));
        }
        let data = tar.slice(start as usize..end as usize);
        let slot = match suffix {
            Some("jpg") => &mut m.jpeg,
            Some("exif.json") => &mut m.tags_json,
            Some("jpgidx") => &mut m.index,
            Some("jpgkit") => &mut m.kit,
            Some(_) => continue,
            None => {
                return Err(SampleError::WrongKey {
                    key: key.to_string(),
                    member: name,
                })
            }
        };
        if slot.replace(data).is_some() {
            return Err(SampleError::Tar(format!("member '{name}' appears twice")));
        }
    }
    match head_of {
        Some(_) => Err(SampleError::MissingMember(format!("{key}.jpg"))),
        None => Ok(m),
    }
}

fn parse_tags(key: &str, json: Option<Bytes>) -> Result<TagMap, SampleError> {
    let json = json.ok_or_else(|| SampleError::MissingMember(format!("{key}.exif.json")))?;
    serde_json::from_slice(&json).map_err(|e| SampleError::BadTags {
        member: format!("{key}.exif.json"),
        reason: e.to_string(),
    })
}

fn decompress_frame(frame: &[u8]) -> Result<Vec<u8>, SampleError> {
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .map_err(|_| SampleError::Decompress("not a zstd frame".into()))?
        .ok_or_else(|| SampleError::Decompress("frame does not record its size".into()))?;
    if size > MAX_SAMPLE_BYTES {
        return Err(SampleError::Decompress(format!(
            "frame claims {size} bytes"
        )));
    }
    zstd::bulk::decompress(frame, size as usize).map_err(|e| SampleError::Decompress(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &str, index: bool) -> SampleInput {
        let mut tags = TagMap::new();
        tags.insert("Make", "Canon");
        tags.insert("Exposure Time", "1/60 sec");
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend((0..1000u32).map(|i| (i * 7) as u8));
        SampleInput {
            key: key.into(),
            jpeg: Bytes::from(jpeg),
            tags,
            jpeg_index: index.then(|| Bytes::from_static(b"idx")),
            jpeg_kit: index.then(|| Bytes::from_static(b"kit")),
            width: 200,
            height: 150,
        }
    }

    #[test]
    fn round_trip_both_compressions() {
        for c in [Compression::None, Compression::Zstd] {
            for index in [false, true] {
                let s = sample("dir/photo_1", index);
                let e = encode(&s, c).unwrap();
                let back = decode("dir/photo_1", e.bytes.clone(), c).unwrap();
                assert_eq!(back.jpeg, s.jpeg);
                assert_eq!(back.tags, s.tags);
                assert_eq!(back.jpeg_index, s.jpeg_index);
                assert_eq!(e.tags, 2);
            }
        }
    }

    #[test]
    fn the_head_of_an_uncompressed_sample_reads_alone() {
        let s = sample("dir/p", true);
        let e = encode(&s, Compression::None).unwrap();
        let at = e.jpeg_at.expect("uncompressed with index and kit") as usize;
        assert_eq!(&e.bytes[at..at + s.jpeg.len()], &s.jpeg[..]);
        let head = decode_head("dir/p", e.bytes.slice(..at), s.jpeg.len() as u64).unwrap();
        assert_eq!(head.tags, s.tags);
        assert_eq!(Some(head.jpeg_index), s.jpeg_index.clone());
        assert_eq!(Some(head.jpeg_kit), s.jpeg_kit.clone());
        // A head cut short, one running into the photo, or a wrong photo length.
        for (cut, len) in [(at - 512, s.jpeg.len()), (at + 1, s.jpeg.len()), (at, 5)] {
            let got = decode_head("dir/p", e.bytes.slice(..cut), len as u64);
            assert!(got.is_err(), "cut {cut} len {len}: {got:?}");
        }
        // Without index and kit, or compressed, the photo cannot be read by range.
        assert_eq!(
            encode(&sample("k", false), Compression::None)
                .unwrap()
                .jpeg_at,
            None
        );
        assert_eq!(encode(&s, Compression::Zstd).unwrap().jpeg_at, None);
    }

    #[test]
    fn uncompressed_members_are_block_aligned() {
        let e = encode(&sample("k", true), Compression::None).unwrap();
        assert_eq!(e.bytes.len() % BLOCK, 0);
    }

    #[test]
    fn flipped_byte_in_a_frame_is_detected() {
        let e = encode(&sample("k", false), Compression::Zstd).unwrap();
        let mut b = e.bytes.to_vec();
        let mid = b.len() / 2;
        b[mid] ^= 0x55;
        let err = decode("k", Bytes::from(b), Compression::Zstd).unwrap_err();
        assert!(matches!(err, SampleError::Decompress(_)), "{err}");
    }

    #[test]
    fn corrupt_header_and_cut_members_are_detected() {
        let e = encode(&sample("k", false), Compression::None).unwrap();
        let mut b = e.bytes.to_vec();
        b[10] ^= 0x01; // inside the first member name: checksum no longer matches
        assert!(matches!(
            decode("k", Bytes::from(b), Compression::None),
            Err(SampleError::Tar(_))
        ));
        let cut = e.bytes.slice(0..700);
        assert!(matches!(
            decode("k", cut, Compression::None),
            Err(SampleError::Tar(_))
        ));
    }

    #[test]
    fn members_of_another_key_are_rejected() {
        let e = encode(&sample("a", false), Compression::None).unwrap();
        let err = decode("b", e.bytes, Compression::None).unwrap_err();
        assert!(matches!(err, SampleError::WrongKey { .. }), "{err}");
    }

    #[test]
    fn keys_that_would_not_read_back_are_refused() {
        for bad in ["", "a.b", "/a", "a//b", "a b", &"x".repeat(MAX_KEY_LEN + 1)] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_key("cams/canon-eos_5D/IMG_0001").is_ok());
    }
}
