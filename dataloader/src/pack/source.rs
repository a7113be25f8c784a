//! What a pack run walks and where the photos' bytes are read: a local folder or file
//! list, every JPEG object under a URL, or YFCC100M (its metadata files and its photos in
//! a bucket under the mirror's hash layout). The walk is a blocking iterator of units,
//! photos to pack or lines skipped from the metadata alone, in a fixed order, so every
//! part of a parallel pack sees the same sequence and cuts the same blocks.

use std::path::PathBuf;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;

use super::input::{list_photos, make_key, photo_id, Input};
use super::photo::{Skip, SkipReason};
use super::PackError;
use crate::yfcc::{Corpus, Filter, Line, Lines, PhotoLayout};
use crate::TagMap;
use infra::store::{self, retry, RetryPolicy, StoreOptions, StoreUrl};

/// What to pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackInput {
    /// A local folder or file list.
    Local(Input),
    /// Every `*.jpg` / `*.jpeg` object under a URL prefix, in key order.
    Objects(String),
    /// YFCC100M.
    Yfcc(YfccInput),
}

impl From<&Input> for PackInput {
    fn from(i: &Input) -> Self {
        PackInput::Local(i.clone())
    }
}

impl From<Input> for PackInput {
    fn from(i: Input) -> Self {
        PackInput::Local(i)
    }
}

/// YFCC100M's files as a user has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YfccInput {
    /// The main metadata file (`yfcc100m_dataset[.bz2]`): a path or URL.
    pub dataset: String,
    /// The EXIF expansion (`yfcc100m_exif[.bz2]`): a path or URL.
    pub exif: String,
    /// The URL the photos lie under (`s3://multimedia-commons/data/images`).
    pub photos: String,
    /// Where each photo lies under it (default: the mirror's hash layout).
    pub layout: PhotoLayout,
    /// Licence codes to keep (`by`, `by-sa`, ...); empty: all.
    pub licences: Vec<String>,
}

impl PackInput {
    /// A short description for the manifest's `source`.
    pub fn describe(&self) -> String {
        match self {
            PackInput::Local(i) => i.describe(),
            PackInput::Objects(url) => format!("objects under {url}"),
            PackInput::Yfcc(y) => format!(
                "YFCC100M {} + {}, photos under {} as {}{}",
                y.dataset,
                y.exif,
                y.photos,
                y.layout,
                if y.licences.is_empty() {
                    String::new()
                } else {
                    format!(", licences {}", y.licences.join(","))
                }
            ),
        }
    }

    /// The URL photos are read from, when they are objects.
    pub fn photos_url(&self) -> Option<&str> {
        match self {
            PackInput::Local(_) => None,
            PackInput::Objects(url) => Some(url),
            PackInput::Yfcc(y) => Some(&y.photos),
        }
    }
}

/// Where one photo's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file.
    File(PathBuf),
    /// An object, by its path under the photos URL.
    Object(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Object(o) => f.write_str(o),
        }
    }
}

/// One photo to pack.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Where its bytes are.
    pub location: Location,
    /// Its sample key.
    pub key: String,
    /// Its id for tag lookups (the file name without extension).
    pub id: String,
    /// Its tags, when the metadata gives them (YFCC); else read from the file or looked
    /// up by id.
    pub tags: Option<TagMap>,
}

/// One step of the walk.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// A photo to fetch and pack.
    Photo(Box<Candidate>),
    /// A line of metadata left out, with the reason's name.
    Skipped(&'static str),
}

/// The walk over `input`: a blocking iterator (run it off the async runtime; remote
/// metadata is streamed through `runtime`).
pub fn walk(
    input: &PackInput,
    min_tags: usize,
    store_opts: &StoreOptions,
    runtime: &tokio::runtime::Handle,
) -> Result<Box<dyn Iterator<Item = Result<Unit, PackError>> + Send>, PackError> {
    match input {
        PackInput::Local(i) => {
            let units = list_photos(i)?.into_iter().map(|item| {
                Ok(Unit::Photo(Box::new(Candidate {
                    id: photo_id(&item.path),
                    location: Location::File(item.path),
                    key: item.key,
                    tags: None,
                })))
            });
            Ok(Box::new(units))
        }
        PackInput::Objects(url) => {
            let keys = runtime.block_on(list_objects(url, store_opts))?;
            let units = keys.into_iter().map(|rel| {
                let id = rel
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.rsplit_once('.').map(|(stem, _)| stem.to_string()))
                    .unwrap_or_default();
                Ok(Unit::Photo(Box::new(Candidate {
                    key: make_key(&rel),
                    id,
                    location: Location::Object(rel),
                    tags: None,
                })))
            });
            Ok(Box::new(units))
        }
        PackInput::Yfcc(y) => {
            let open = |source: &str| {
                Lines::open(source, store_opts, runtime).map_err(|e| PackError::Input {
                    path: PathBuf::from(&e.name),
                    reason: e.reason,
                })
            };
            let filter = Filter {
                min_tags,
                licences: y.licences.clone(),
            };
            let corpus = Corpus::new(open(&y.dataset)?, open(&y.exif)?, filter);
            Ok(Box::new(YfccUnits(corpus, y.layout.clone())))
        }
    }
}

struct YfccUnits(Corpus, PhotoLayout);

impl Iterator for YfccUnits {
    type Item = Result<Unit, PackError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.0.next_line() {
            Ok(None) => None,
            Ok(Some(Line::Skipped(reason))) => Some(Ok(Unit::Skipped(reason))),
            Ok(Some(Line::Photo { record, tags })) => Some(Ok(Unit::Photo(Box::new(Candidate {
                location: Location::Object(self.1.path(&record.id, &record.hash)),
                key: record.id.clone(),
                id: record.id,
                tags: Some(tags),
            })))),
            Err(e) => Some(Err(PackError::Input {
                path: PathBuf::from("YFCC metadata"),
                reason: e.to_string(),
            })),
        }
    }
}

/// The `*.jpg` / `*.jpeg` objects under `url`, as paths relative to it, sorted.
async fn list_objects(url: &str, opts: &StoreOptions) -> Result<Vec<String>, PackError> {
    let fail = |reason: String| PackError::Input {
        path: PathBuf::from(url),
        reason,
    };
    let s = store::open(url, opts).map_err(|e| fail(e.to_string()))?;
    let prefix = s.prefix.clone();
    let metas: Vec<_> = s
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| fail(format!("cannot list the photos: {e}")))?;
    let skip = prefix.as_ref().len() + usize::from(!prefix.as_ref().is_empty());
    let mut keys: Vec<String> = metas
        .into_iter()
        .map(|m| m.location.as_ref()[skip..].to_string())
        .filter(|k| {
            let lower = k.to_ascii_lowercase();
            lower.ends_with(".jpg") || lower.ends_with(".jpeg")
        })
        .collect();
    keys.sort();
    Ok(keys)
}

/// Reads photos' bytes: local files, or objects under the photos URL (retried).
pub struct PhotoReader {
    photos: Option<StoreUrl>,
    retry: RetryPolicy,
}

impl PhotoReader {
    /// A reader for `input`'s photos.
    pub fn new(input: &PackInput, opts: &StoreOptions) -> Result<Self, PackError> {
        let photos = match input.photos_url() {
            Some(url) => Some(store::open(url, opts).map_err(|e| PackError::Input {
                path: PathBuf::from(url),
                reason: e.to_string(),
            })?),
            None => None,
        };
        Ok(Self {
            photos,
            retry: opts.retry.clone(),
        })
    }

    /// The bytes at `location`; a missing or unreadable photo is a skip, a storage
    /// failure after retries an error.
    pub async fn read(&self, location: &Location) -> Result<Result<Vec<u8>, Skip>, PackError> {
        match (location, &self.photos) {
            (Location::File(path), _) => {
                let path = path.clone();
                let read = tokio::task::spawn_blocking(move || std::fs::read(path))
                    .await
                    .map_err(|e| PackError::Worker {
                        key: location.to_string(),
                        reason: e.to_string(),
                    })?;
                Ok(read.map_err(|e| skip(SkipReason::Unreadable, e.to_string())))
            }
            (Location::Object(rel), Some(photos)) => {
                let full = if photos.prefix.as_ref().is_empty() {
                    rel.clone()
                } else {
                    format!("{}/{rel}", photos.prefix.as_ref())
                };
                let path = ObjectPath::parse(&full).map_err(|e| PackError::Input {
                    path: PathBuf::from(rel),
                    reason: e.to_string(),
                })?;
                let what = format!("GET {}", photos.display(rel));
                let got = retry(&self.retry, &what, || async {
                    photos.store.get(&path).await?.bytes().await
                })
                .await;
                match got {
                    Ok(b) => Ok(Ok(b.to_vec())),
                    Err(e) if e.is_not_found() => Ok(Err(skip(
                        SkipReason::Missing,
                        format!("no photo at {}", photos.display(rel)),
                    ))),
                    Err(e) => Err(PackError::Storage(e.to_string())),
                }
            }
            (Location::Object(rel), None) => Err(PackError::Input {
                path: PathBuf::from(rel),
                reason: "an object photo without a photos URL".into(),
            }),
        }
    }
}

fn skip(reason: SkipReason, detail: String) -> Skip {
    Skip { reason, detail }
}
