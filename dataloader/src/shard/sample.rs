//! One sample's bytes in a shard: its tar members (`KEY.jpg`, `KEY.exif.json`, optionally
//! `KEY.jpgidx`), as one zstd frame when the shard is compressed. Encoding for the writer,
//! decoding and validation for the reader.

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
    let mut members: Vec<(String, &[u8])> = vec![
        (format!("{}.jpg", sample.key), &sample.jpeg),
        (format!("{}.exif.json", sample.key), &tags_json),
    ];
    if let Some(idx) = &sample.jpeg_index {
        members.push((format!("{}.jpgidx", sample.key), idx));
    }
    let total: usize = members
        .iter()
        .map(|(_, d)| BLOCK + d.len().div_ceil(BLOCK) * BLOCK)
        .sum();
    let mut tar = Vec::with_capacity(total);
    for (name, data) in &members {
        append_member(&mut tar, name, data).map_err(|e| enc_err(e.to_string()))?;
    }
    let bytes = match compression {
        Compression::None => tar,
        Compression::Zstd => compress_frame(&tar).map_err(|e| enc_err(format!("zstd: {e}")))?,
    };
    Ok(EncodedSample {
        key: sample.key.clone(),
        bytes: Bytes::from(bytes),
        width: sample.width,
        height: sample.height,
        tags: sample.tags.len() as u32,
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
    let mut archive = tar::Archive::new(std::io::Cursor::new(&tar[..]));
    let entries = archive
        .entries()
        .map_err(|e| SampleError::Tar(e.to_string()))?;
    let (mut jpeg, mut tags_json, mut index) = (None, None, None);
    for entry in entries {
        let entry = entry.map_err(|e| SampleError::Tar(e.to_string()))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let size = entry
            .header()
            .entry_size()
            .map_err(|e| SampleError::Tar(e.to_string()))?;
        let start = entry.raw_file_position();
        let end = start.saturating_add(size);
        if end > tar.len() as u64 {
            return Err(SampleError::Tar(format!(
                "member '{name}' needs {size} bytes, only {} remain",
                (tar.len() as u64).saturating_sub(start)
            )));
        }
        let data = tar.slice(start as usize..end as usize);
        let slot = match name
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('.'))
        {
            Some("jpg") => &mut jpeg,
            Some("exif.json") => &mut tags_json,
            Some("jpgidx") => &mut index,
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
    let jpeg = jpeg.ok_or_else(|| SampleError::MissingMember(format!("{key}.jpg")))?;
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(SampleError::NotJpeg(format!("{key}.jpg")));
    }
    let tags_json =
        tags_json.ok_or_else(|| SampleError::MissingMember(format!("{key}.exif.json")))?;
    let tags: TagMap = serde_json::from_slice(&tags_json).map_err(|e| SampleError::BadTags {
        member: format!("{key}.exif.json"),
        reason: e.to_string(),
    })?;
    Ok(RawSample {
        key: key.to_string(),
        jpeg,
        tags,
        jpeg_index: index,
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
