//! Scalars for TensorBoard: [`EventWriter`] writes event files (`record.rs`) into a folder
//! or an object-store prefix (`logging.tensorboard`): training rank 0 writes `train/*`,
//! `time/*`, `memory/*` and `data/*` series, evaluation agents `eval/<suite>/<metric>` at
//! their checkpoint's step, each process to files of its own.
//!
//! A file is kept whole in memory and put again at each flush (object stores cannot
//! append); past [`ROTATE_BYTES`] the next flush starts a new file, so memory and each put
//! stay small whatever the run's length. A run that resumes at step S first takes every
//! training event after S out of the folder's training files (events a run wrote after
//! its last checkpoint, before it died): the resumed run writes those steps again, once.

mod record;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use infra::store::{self, retry, RetryPolicy, StoreOptions, StoreUrl};
use object_store::ObjectStoreExt;
use prost::Message;

pub use record::{read_records, Event, Summary, SummaryValue, What};

/// Size past which the writer starts a new file.
pub const ROTATE_BYTES: usize = 1 << 20;

/// The file-name marker of training files (evaluation agents' files carry `eval`).
const TRAIN_KIND: &str = "train";

/// Writing event files failed.
#[derive(Debug, thiserror::Error)]
pub enum TensorBoardError {
    /// The URL cannot be opened.
    #[error("logging.tensorboard: {0}")]
    Url(#[from] store::StoreError),
    /// Reading, writing or listing failed (after retries).
    #[error("TensorBoard events at {url}: {source}")]
    Storage {
        /// The folder.
        url: String,
        /// What failed.
        source: store::RetryError,
    },
    /// The local folder cannot be made.
    #[error("cannot create the TensorBoard folder {path}: {source}")]
    Folder {
        /// The folder.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Writes one process's event files; see the module documentation.
#[derive(Debug)]
pub struct EventWriter {
    root: StoreUrl,
    retry: RetryPolicy,
    kind: String,
    /// The current file's name and contents.
    name: String,
    file: Vec<u8>,
    /// Files started by this writer.
    files: u32,
    /// Bytes of `file` already stored.
    stored: usize,
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl EventWriter {
    /// Opens the folder at `url` for a writer of `kind` (`train`, or `eval` for agents).
    /// With `resume_from` (training only), training events after that step are first
    /// taken out of the folder's training files.
    pub async fn open(
        url: &str,
        opts: &StoreOptions,
        kind: &str,
        resume_from: Option<u64>,
    ) -> Result<Self, TensorBoardError> {
        let root = store::open(url, opts)?;
        if let Some(dir) = &root.local_dir {
            std::fs::create_dir_all(dir).map_err(|source| TensorBoardError::Folder {
                path: dir.clone(),
                source,
            })?;
        }
        let mut writer = Self {
            root,
            retry: opts.retry.clone(),
            kind: kind.to_string(),
            name: String::new(),
            file: Vec::new(),
            files: 0,
            stored: 0,
        };
        if let Some(step) = resume_from {
            writer.drop_events_after(step).await?;
        }
        writer.start_file();
        Ok(writer)
    }

    /// The folder's URL.
    pub fn url(&self) -> &str {
        &self.root.url
    }

    fn start_file(&mut self) {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().replace(['/', '.'], "-"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        self.files += 1;
        self.name = format!(
            "events.out.tfevents.{}.{host}.{}.{}.{}",
            now_s() as u64,
            std::process::id(),
            self.kind,
            self.files
        );
        self.file.clear();
        self.stored = 0;
        let version = Event {
            wall_time: now_s(),
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        };
        record::write_record(&mut self.file, &version.encode_to_vec());
    }

    /// Adds the scalars `values` (tag, value) at `step`; non-finite values are left out.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) {
        let value = values
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|&(tag, v)| SummaryValue {
                tag: tag.to_string(),
                simple_value: Some(v as f32),
            })
            .collect();
        let event = Event {
            wall_time: now_s(),
            step: step as i64,
            what: Some(What::Summary(Summary { value })),
        };
        record::write_record(&mut self.file, &event.encode_to_vec());
    }

    /// Stores what was added since the last flush; past [`ROTATE_BYTES`], the next
    /// scalars go to a new file.
    pub async fn flush(&mut self) -> Result<(), TensorBoardError> {
        if self.stored == self.file.len() {
            return Ok(());
        }
        let path = self.root.child(&self.name);
        let what = format!("PUT {}", self.root.display(&self.name));
        let body = Bytes::from(self.file.clone());
        let store = &self.root.store;
        retry(&self.retry, &what, || store.put(&path, body.clone().into()))
            .await
            .map_err(|source| self.storage(source))?;
        self.stored = self.file.len();
        if self.file.len() > ROTATE_BYTES {
            self.start_file();
        }
        Ok(())
    }

    fn storage(&self, source: store::RetryError) -> TensorBoardError {
        TensorBoardError::Storage {
            url: self.root.url.clone(),
            source,
        }
    }

    /// Rewrites every training file that holds events after `step` without them (a file
    /// left with nothing but its version record is deleted).
    async fn drop_events_after(&self, step: u64) -> Result<(), TensorBoardError> {
        let store = &self.root.store;
        let what = format!("LIST {}", self.root.url);
        let prefix = self.root.prefix.clone();
        let listing: Vec<object_store::ObjectMeta> = retry(&self.retry, &what, || {
            store.list(Some(&prefix)).try_collect()
        })
        .await
        .map_err(|source| self.storage(source))?;
        let marker = format!(".{TRAIN_KIND}.");
        for meta in listing {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if !name.contains("tfevents") || !name.contains(&marker) {
                continue;
            }
            let what = format!("GET {}", self.root.display(name));
            let location = meta.location.clone();
            let bytes = retry(&self.retry, &what, || async {
                store.get(&location).await?.bytes().await
            })
            .await
            .map_err(|source| self.storage(source))?;
            let (records, _) = read_records(&bytes);
            let mut kept = Vec::with_capacity(bytes.len());
            let (mut events, mut dropped) = (0, 0);
            for data in records {
                match Event::decode(data) {
                    Ok(e) if e.step as u64 > step && matches!(e.what, Some(What::Summary(_))) => {
                        dropped += 1;
                    }
                    Ok(e) => {
                        events += usize::from(matches!(e.what, Some(What::Summary(_))));
                        record::write_record(&mut kept, data);
                    }
                    Err(_) => dropped += 1,
                }
            }
            if dropped == 0 && kept.len() == bytes.len() {
                continue;
            }
            tracing::info!(
                file = %self.root.display(name),
                dropped,
                resumed_at = step,
                "TensorBoard: events after the resumed step taken out (the run writes them again)"
            );
            if events == 0 {
                let what = format!("DELETE {}", self.root.display(name));
                retry(&self.retry, &what, || store.delete(&location))
                    .await
                    .map_err(|source| self.storage(source))?;
            } else {
                let what = format!("PUT {}", self.root.display(name));
                let body = Bytes::from(kept);
                retry(&self.retry, &what, || {
                    store.put(&location, body.clone().into())
                })
                .await
                .map_err(|source| self.storage(source))?;
            }
        }
        Ok(())
    }
}

/// The steps of every scalar event in the folder's files (for tests and checks).
pub async fn read_folder(
    url: &str,
    opts: &StoreOptions,
) -> Result<Vec<(String, Vec<Event>)>, TensorBoardError> {
    let root = store::open(url, opts)?;
    let storage = |source| TensorBoardError::Storage {
        url: root.url.clone(),
        source,
    };
    let what = format!("LIST {url}");
    let listing: Vec<object_store::ObjectMeta> = retry(&opts.retry, &what, || {
        root.store.list(Some(&root.prefix)).try_collect()
    })
    .await
    .map_err(storage)?;
    let mut files = Vec::new();
    for meta in listing {
        let name = meta.location.filename().unwrap_or_default().to_string();
        let what = format!("GET {}", root.display(&name));
        let bytes = retry(&opts.retry, &what, || async {
            root.store.get(&meta.location).await?.bytes().await
        })
        .await
        .map_err(storage)?;
        let events = read_records(&bytes)
            .0
            .into_iter()
            .filter_map(|d| Event::decode(d).ok())
            .collect();
        files.push((name, events));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}
