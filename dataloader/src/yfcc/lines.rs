//! Reading a metadata file line by line, streamed, never whole: from a local path or an
//! object-store URL, plain or bzip2-compressed (told by its `BZh` magic, so
//! `yfcc100m_dataset.bz2` and a decompressed copy both work; concatenated bzip2 streams,
//! as parallel compressors write them, are read through).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;

use infra::store::{self, StoreOptions};

/// Lines of one file, with the file's name for messages.
pub struct Lines {
    reader: Box<dyn BufRead + Send>,
    name: String,
    number: u64,
    buf: Vec<u8>,
}

/// A read failure, naming the file and line.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct LinesError {
    /// The file.
    pub name: String,
    /// What failed.
    pub reason: String,
}

impl Lines {
    /// Opens `source`: a local path, `file://`, or an object-store URL (`s3://...`),
    /// decompressing bzip2 on the fly. Remote files are streamed through `runtime`.
    pub fn open(
        source: &str,
        store_opts: &StoreOptions,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Lines, LinesError> {
        let fail = |reason: String| LinesError {
            name: source.to_string(),
            reason,
        };
        let raw: Box<dyn Read + Send> = if source.contains("://") && !source.starts_with("file://")
        {
            Box::new(remote(source, store_opts, runtime).map_err(fail)?)
        } else {
            let path = Path::new(source.strip_prefix("file://").unwrap_or(source));
            Box::new(std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?)
        };
        Ok(Self::from_reader(raw, source))
    }

    /// Lines of an already open reader (bzip2 detected as in [`Lines::open`]).
    pub fn from_reader(raw: Box<dyn Read + Send>, name: &str) -> Lines {
        let mut peek = BufReader::with_capacity(1 << 20, raw);
        let is_bz2 = peek.fill_buf().is_ok_and(|b| b.starts_with(b"BZh"));
        let reader: Box<dyn BufRead + Send> = if is_bz2 {
            Box::new(BufReader::with_capacity(
                1 << 20,
                bzip2::read::MultiBzDecoder::new(peek),
            ))
        } else {
            Box::new(peek)
        };
        Lines {
            reader,
            name: name.to_string(),
            number: 0,
            buf: Vec::new(),
        }
    }

    /// The file's name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of the line last returned (1-based).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The next line without its line ending; `None` at the end. Bytes that are not
    /// UTF-8 (the files are URL-encoded ASCII) are replaced.
    pub fn next_line(&mut self) -> Result<Option<String>, LinesError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| LinesError {
                name: self.name.clone(),
                reason: format!("cannot read line {}: {e}", self.number + 1),
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(Some(String::from_utf8_lossy(&self.buf).into_owned()))
    }
}

/// A blocking reader over an object's bytes, fetched by a task on `runtime` a few chunks
/// ahead.
fn remote(
    url: &str,
    opts: &StoreOptions,
    runtime: &tokio::runtime::Handle,
) -> Result<ChunkReader, String> {
    let (dir, name) = url
        .rsplit_once('/')
        .ok_or_else(|| format!("'{url}' names no object"))?;
    let store = store::open(dir, opts).map_err(|e| e.to_string())?;
    let path = store.child(name);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(8);
    let what = url.to_string();
    runtime.spawn(async move {
        let got = match store.store.get(&path).await {
            Ok(got) => got,
            Err(e) => {
                let _ = tx.send(Err(format!("GET {what}: {e}"))).await;
                return;
            }
        };
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let item = chunk.map_err(|e| format!("reading {what}: {e}"));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return; // the reader is gone, or the read failed (already sent)
            }
        }
    });
    Ok(ChunkReader {
        rx,
        current: Bytes::new(),
    })
}

/// Must be read from a thread outside the runtime (it blocks).
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0), // the sender is done: end of the object
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(l: &mut Lines) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = l.next_line().unwrap() {
            out.push(line);
        }
        out
    }

    #[test]
    fn plain_and_bzip2_files_give_the_same_lines() {
        let text = "1\ta\r\n2\tb\n\n3\tc";
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("m.txt");
        std::fs::write(&plain, text).unwrap();
        // Two concatenated bzip2 streams, as parallel compressors write them.
        let bz = dir.path().join("m.bz2");
        let mut f = std::fs::File::create(&bz).unwrap();
        for part in [&text[..6], &text[6..]] {
            let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            enc.write_all(part.as_bytes()).unwrap();
            f.write_all(&enc.finish().unwrap()).unwrap();
        }
        drop(f);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let opts = StoreOptions::default();
        let want = ["1\ta", "2\tb", "", "3\tc"];
        for p in [&plain, &bz] {
            let mut l = Lines::open(p.to_str().unwrap(), &opts, rt.handle()).unwrap();
            assert_eq!(read_all(&mut l), want, "{}", p.display());
            assert_eq!(l.number(), 4);
        }
        let missing = Lines::open("/no/such/file.bz2", &opts, rt.handle());
        assert!(missing
            .err()
            .unwrap()
            .to_string()
            .contains("/no/such/file.bz2"));
    }
}
