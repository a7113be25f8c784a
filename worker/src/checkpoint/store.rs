//! [`CheckpointStore`]: saving (files first, marker last), listing the complete
//! checkpoints, loading with verification, and pruning old and abandoned ones.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use infra::store::{self, retry, RetryPolicy, StoreOptions, StoreUrl};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use super::{
    dir_name, parse_dir_name, Checkpoint, CheckpointError, CheckpointRef, FileEntry, Marker,
    TrainState, CONFIG_FILE, FORMAT_VERSION, MARKER_FILE, OPTIMIZER_FILE, STATE_FILE, WEIGHTS_FILE,
};

/// Files larger than this are uploaded in parts.
const MULTIPART_THRESHOLD_BYTES: usize = 64 << 20;
/// Size of one uploaded part.
const PART_BYTES: usize = 16 << 20;
/// Parts uploaded at the same time.
const PARTS_IN_FLIGHT: usize = 4;

/// The checkpoints under one URL.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    root: StoreUrl,
    retry: RetryPolicy,
    keep_last: Option<u32>,
}

/// What a scan found in one `step-*` directory.
struct Scanned {
    step: u64,
    name: String,
    /// The marker, when it is readable and every file it lists is present at its size.
    complete: Option<Marker>,
}

impl CheckpointStore {
    /// Opens the checkpoint directory at `url` (nothing is read or created yet). By
    /// default every complete checkpoint is kept; see [`CheckpointStore::keep_last`].
    pub fn open(url: &str, opts: &StoreOptions) -> Result<CheckpointStore, CheckpointError> {
        Ok(CheckpointStore {
            root: store::open(url, opts)?,
            retry: opts.retry.clone(),
            keep_last: None,
        })
    }

    /// Keep only the newest `k` complete checkpoints (at least 1) after each save.
    pub fn keep_last(mut self, k: u32) -> Self {
        self.keep_last = Some(k.max(1));
        self
    }

    /// The URL of the checkpoint directory.
    pub fn url(&self) -> &str {
        &self.root.url
    }

    fn dir(&self, name: &str) -> Path {
        self.root.child(name)
    }

    fn file(&self, name: &str, file: &str) -> Path {
        self.dir(name).join(file)
    }

    fn display(&self, name: &str, file: &str) -> String {
        self.root.display(&format!("{name}/{file}"))
    }

    /// Writes `ck` as the checkpoint of `ck.state.step`: its files, then the marker;
    /// then prunes (see [`CheckpointStore::prune`]). A complete checkpoint already at that
    /// step is kept and returned (one of another config is a
    /// [`CheckpointError::DigestMismatch`]); an incomplete one is cleared and rewritten.
    pub async fn save(&self, ck: &Checkpoint) -> Result<CheckpointRef, CheckpointError> {
        let step = ck.state.step;
        let name = dir_name(step);
        // Never remove a complete checkpoint to write the same step again: a crash between
        // the removal and the new marker would lose it.
        if let Some(marker) = self.check_marker(&name, step).await? {
            let url = self.root.display(&name);
            if marker.config_digest != ck.state.config_digest {
                return Err(CheckpointError::DigestMismatch {
                    url,
                    found: marker.config_digest,
                    expected: ck.state.config_digest.clone(),
                });
            }
            tracing::info!(%url, step, "this step's checkpoint is already complete: kept as it is");
            return Ok(CheckpointRef {
                step,
                url,
                name,
                marker,
            });
        }
        self.delete_dir(&name).await?;
        let mut files = vec![(WEIGHTS_FILE, ck.weights.clone())];
        files.extend(ck.optimizer.clone().map(|o| (OPTIMIZER_FILE, o)));
        let state = serde_json::to_vec_pretty(&ck.state).expect("train state always serialises");
        files.push((STATE_FILE, Bytes::from(state)));
        files.extend(ck.config.clone().map(|c| (CONFIG_FILE, c)));
        let mut entries = Vec::new();
        for (file, body) in files {
            let sha256 = sha256_hex(body.clone()).await;
            self.put(&name, file, body.clone()).await?;
            entries.push(FileEntry {
                name: file.to_string(),
                size_bytes: body.len() as u64,
                sha256,
            });
        }
        let marker = Marker {
            format_version: FORMAT_VERSION,
            step,
            config_digest: ck.state.config_digest.clone(),
            files: entries,
        };
        let body = Bytes::from(serde_json::to_vec_pretty(&marker).expect("marker serialises"));
        self.put(&name, MARKER_FILE, body).await?;
        tracing::info!(url = %self.root.display(&name), step, "checkpoint committed");
        self.prune_keeping(Some(step)).await?;
        Ok(CheckpointRef {
            step,
            url: self.root.display(&name),
            name,
            marker,
        })
    }

    /// Writes an evaluation result as `eval/<suite>.json` inside checkpoint `r`'s
    /// directory (deleted with it; not part of its marker) and returns its URL.
    pub async fn put_eval_result(
        &self,
        r: &CheckpointRef,
        suite: &str,
        body: Bytes,
    ) -> Result<String, CheckpointError> {
        let file = format!("{suite}.json");
        let path = self.dir(&r.name).join("eval").join(file.as_str());
        let url = self.display(&r.name, &format!("eval/{file}"));
        let payload = PutPayload::from(body);
        let what = format!("PUT {url}");
        retry(&self.retry, &what, || {
            self.root.store.put(&path, payload.clone())
        })
        .await?;
        Ok(url)
    }

    async fn put(&self, name: &str, file: &str, body: Bytes) -> Result<(), CheckpointError> {
        let path = self.file(name, file);
        let what = format!("PUT {}", self.display(name, file));
        let store = &self.root.store;
        if body.len() <= MULTIPART_THRESHOLD_BYTES {
            let payload = PutPayload::from(body);
            retry(&self.retry, &what, || store.put(&path, payload.clone())).await?;
            return Ok(());
        }
        retry(&self.retry, &what, || async {
            let mut upload = store.put_multipart(&path).await?;
            let parts: Vec<_> = (0..body.len())
                .step_by(PART_BYTES)
                .map(|off| {
                    let end = (off + PART_BYTES).min(body.len());
                    upload.put_part(PutPayload::from(body.slice(off..end)))
                })
                .collect();
            let sent: Result<Vec<()>, _> = futures::stream::iter(parts)
                .buffer_unordered(PARTS_IN_FLIGHT)
                .try_collect()
                .await;
            match sent {
                Ok(_) => upload.complete().await.map(|_| ()),
                Err(e) => {
                    // Do not leave the parts behind (they cost storage until aborted).
                    let _ = upload.abort().await;
                    Err(e)
                }
            }
        })
        .await?;
        Ok(())
    }

    /// Every `step-*` directory with what its marker says.
    async fn scan(&self) -> Result<Vec<Scanned>, CheckpointError> {
        let store = &self.root.store;
        let prefix = &self.root.prefix;
        let what = format!("LIST {}", self.root.url);
        let top = retry(&self.retry, &what, || {
            store.list_with_delimiter(Some(prefix))
        })
        .await?;
        let mut out = Vec::new();
        for dir in top.common_prefixes {
            let Some(name) = dir.filename().map(str::to_string) else {
                continue;
            };
            let Some(step) = parse_dir_name(&name) else {
                continue;
            };
            let complete = self.check_marker(&name, step).await?;
            out.push(Scanned {
                step,
                name,
                complete,
            });
        }
        out.sort_by_key(|s| s.step);
        Ok(out)
    }

    /// The marker of directory `name` if it is readable, names `step`, and every file it
    /// lists is present with the recorded size.
    async fn check_marker(&self, name: &str, step: u64) -> Result<Option<Marker>, CheckpointError> {
        let store = &self.root.store;
        let dir = self.dir(name);
        let what = format!("LIST {}", self.root.display(name));
        let listing = retry(&self.retry, &what, || store.list_with_delimiter(Some(&dir))).await?;
        let size_of = |file: &str| {
            listing
                .objects
                .iter()
                .find(|o| o.location.filename() == Some(file))
                .map(|o| o.size)
        };
        let incomplete = |reason: String| {
            tracing::debug!(checkpoint = %self.root.display(name), reason, "incomplete checkpoint");
            Ok(None)
        };
        if size_of(MARKER_FILE).is_none() {
            return incomplete("no commit marker".into());
        }
        let path = self.file(name, MARKER_FILE);
        let what = format!("GET {}", self.display(name, MARKER_FILE));
        let body = match retry(&self.retry, &what, || async {
            store.get(&path).await?.bytes().await
        })
        .await
        {
            Ok(b) => b,
            // Deleted between the listing and the read: another process pruned it.
            Err(e) if e.is_not_found() => return incomplete("marker vanished".into()),
            Err(e) => return Err(e.into()),
        };
        let marker: Marker = match serde_json::from_slice(&body) {
            Ok(m) => m,
            Err(e) => return incomplete(format!("unreadable marker: {e}")),
        };
        if marker.step != step {
            return incomplete(format!("marker names step {}", marker.step));
        }
        for f in &marker.files {
            if size_of(&f.name) != Some(f.size_bytes) {
                return incomplete(format!(
                    "{} is {:?} bytes, the marker says {}",
                    f.name,
                    size_of(&f.name),
                    f.size_bytes
                ));
            }
        }
        Ok(Some(marker))
    }

    /// The complete checkpoints, oldest first.
    pub async fn list(&self) -> Result<Vec<CheckpointRef>, CheckpointError> {
        Ok(self
            .scan()
            .await?
            .into_iter()
            .filter_map(|s| {
                let marker = s.complete?;
                Some(CheckpointRef {
                    step: s.step,
                    url: self.root.display(&s.name),
                    name: s.name,
                    marker,
                })
            })
            .collect())
    }

    /// The newest complete checkpoint, if any.
    pub async fn latest(&self) -> Result<Option<CheckpointRef>, CheckpointError> {
        Ok(self.list().await?.pop())
    }

    /// Reads one file of checkpoint `r`, checking its size and SHA-256 against the
    /// marker; `Ok(None)` when the marker does not list it.
    async fn read_listed(
        &self,
        r: &CheckpointRef,
        file: &str,
    ) -> Result<Option<Bytes>, CheckpointError> {
        let Some(entry) = r.marker.files.iter().find(|e| e.name == file) else {
            return Ok(None);
        };
        let url = self.display(&r.name, file);
        let corrupt = |reason: String| CheckpointError::Corrupt {
            url: url.clone(),
            reason,
        };
        let path = self.file(&r.name, file);
        let store = &self.root.store;
        let body = retry(&self.retry, &format!("GET {url}"), || async {
            store.get(&path).await?.bytes().await
        })
        .await?;
        if body.len() as u64 != entry.size_bytes {
            return Err(corrupt(format!(
                "{} bytes, the marker says {}",
                body.len(),
                entry.size_bytes
            )));
        }
        let sha = sha256_hex(body.clone()).await;
        if sha != entry.sha256 {
            return Err(corrupt(format!(
                "SHA-256 {sha}, the marker says {}",
                entry.sha256
            )));
        }
        Ok(Some(body))
    }

    /// [`Self::read_listed`] of a file every checkpoint must have.
    async fn read_required(&self, r: &CheckpointRef, file: &str) -> Result<Bytes, CheckpointError> {
        self.read_listed(r, file)
            .await?
            .ok_or_else(|| CheckpointError::Corrupt {
                url: self.display(&r.name, file),
                reason: "the marker does not list this file".into(),
            })
    }

    /// Reads a checkpoint, checking every file's size and SHA-256 against the marker. A
    /// model-only checkpoint (no optimiser state) loads with `optimizer: None`.
    pub async fn load(&self, r: &CheckpointRef) -> Result<Checkpoint, CheckpointError> {
        let weights = self.read_required(r, WEIGHTS_FILE).await?;
        let optimizer = self.read_listed(r, OPTIMIZER_FILE).await?;
        let state = self.read_state(r).await?;
        let config = self.read_listed(r, CONFIG_FILE).await?;
        Ok(Checkpoint {
            weights,
            optimizer,
            state,
            config,
        })
    }

    /// What using a checkpoint's model needs: [`Self::load`] without the optimiser state.
    pub async fn load_model(&self, r: &CheckpointRef) -> Result<Checkpoint, CheckpointError> {
        Ok(Checkpoint {
            weights: self.read_required(r, WEIGHTS_FILE).await?,
            optimizer: None,
            state: self.read_state(r).await?,
            config: self.read_listed(r, CONFIG_FILE).await?,
        })
    }

    async fn read_state(&self, r: &CheckpointRef) -> Result<TrainState, CheckpointError> {
        let body = self.read_required(r, STATE_FILE).await?;
        let state_url = self.display(&r.name, STATE_FILE);
        let state: TrainState =
            serde_json::from_slice(&body).map_err(|e| CheckpointError::Corrupt {
                url: state_url.clone(),
                reason: format!("not a valid training state: {e}"),
            })?;
        if state.step != r.step || state.format_version > FORMAT_VERSION {
            return Err(CheckpointError::Corrupt {
                url: state_url,
                reason: format!(
                    "step {} format {} in a directory of step {} (this code reads format <= {FORMAT_VERSION})",
                    state.step, state.format_version, r.step
                ),
            });
        }
        Ok(state)
    }

    /// The complete checkpoint of `step`, to resume a run whose config digest is
    /// `expected` from exactly that step (the one a round chose): missing, corrupt or of
    /// another config, it is an error (never another checkpoint instead).
    pub async fn load_step_for_resume(
        &self,
        step: u64,
        expected: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        let found = self.list().await?.into_iter().find(|r| r.step == step);
        let r = found.ok_or_else(|| CheckpointError::NotFound {
            url: self.root.display(&dir_name(step)),
        })?;
        let ck = self.load(&r).await?;
        if ck.state.config_digest != expected || r.marker.config_digest != expected {
            return Err(CheckpointError::DigestMismatch {
                url: r.url,
                found: ck.state.config_digest,
                expected: expected.to_string(),
            });
        }
        Ok(ck)
    }

    /// The newest loadable checkpoint to resume a run whose config digest is `expected`:
    /// `Ok(None)` when there is none; a corrupt one is skipped for the one before it; a
    /// checkpoint of another config is refused with [`CheckpointError::DigestMismatch`].
    pub async fn load_for_resume(
        &self,
        expected: &str,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        for r in self.list().await?.into_iter().rev() {
            if r.marker.config_digest != expected {
                return Err(CheckpointError::DigestMismatch {
                    url: r.url,
                    found: r.marker.config_digest,
                    expected: expected.to_string(),
                });
            }
            match self.load(&r).await {
                Ok(ck) if ck.state.config_digest != expected => {
                    return Err(CheckpointError::DigestMismatch {
                        url: r.url,
                        found: ck.state.config_digest,
                        expected: expected.to_string(),
                    })
                }
                Ok(ck) => return Ok(Some(ck)),
                Err(e @ CheckpointError::Corrupt { .. }) => {
                    tracing::warn!(error = %e, "skipping corrupt checkpoint");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Deletes complete checkpoints beyond the newest `keep_last` (when set), and
    /// incomplete directories older than the newest complete checkpoint (a writer died
    /// there; a newer incomplete one may still be being written and is left alone).
    pub async fn prune(&self) -> Result<(), CheckpointError> {
        self.prune_keeping(None).await
    }

    /// [`CheckpointStore::prune`], never deleting the checkpoint of step `keep` (the one
    /// just saved, even when newer ones exist).
    async fn prune_keeping(&self, keep_step: Option<u64>) -> Result<(), CheckpointError> {
        let scanned = self.scan().await?;
        let complete: Vec<&Scanned> = scanned.iter().filter(|s| s.complete.is_some()).collect();
        let Some(newest) = complete.last().map(|s| s.step) else {
            return Ok(());
        };
        let keep = self.keep_last.map_or(complete.len(), |k| k as usize);
        let old = complete.len().saturating_sub(keep);
        let doomed = complete[..old]
            .iter()
            .copied()
            .chain(
                scanned
                    .iter()
                    .filter(|s| s.complete.is_none() && s.step < newest),
            )
            .filter(|s| Some(s.step) != keep_step);
        for s in doomed {
            tracing::info!(checkpoint = %self.root.display(&s.name), complete = s.complete.is_some(), "deleting checkpoint");
            self.delete_dir(&s.name).await?;
        }
        Ok(())
    }

    /// Deletes the directory `name`, its marker first (so a half-deleted checkpoint is
    /// never complete). A missing directory is not an error.
    async fn delete_dir(&self, name: &str) -> Result<(), CheckpointError> {
        let store = &self.root.store;
        let marker = self.file(name, MARKER_FILE);
        let what = format!("DELETE {}", self.display(name, MARKER_FILE));
        match retry(&self.retry, &what, || store.delete(&marker)).await {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
        if let Some(local) = &self.root.local_dir {
            // Also removes the staging files a killed writer leaves, which listings skip.
            let path = local.join(name);
            return match tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&path))
                .await
                .expect("remove_dir_all does not panic")
            {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CheckpointError::Local {
                    what: "remove",
                    path: local.join(name).display().to_string(),
                    source: e,
                }),
                _ => Ok(()),
            };
        }
        let dir = self.dir(name);
        let what = format!("LIST {}", self.root.display(name));
        let objects: Vec<_> =
            retry(&self.retry, &what, || store.list(Some(&dir)).try_collect()).await?;
        for o in objects {
            let what = format!("DELETE {}", o.location);
            match retry(&self.retry, &what, || store.delete(&o.location)).await {
                Err(e) if !e.is_not_found() => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// SHA-256 of `body` as lowercase hex, computed off the async runtime.
async fn sha256_hex(body: Bytes) -> String {
    tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&body)))
        .await
        .expect("hashing does not panic")
}
