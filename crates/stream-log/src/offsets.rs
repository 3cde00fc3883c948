//! Committed consumer-group offsets, durable across restart.
//!
//! `<data_dir>/offsets/commits.log` is an append-only log of entries
//! `u32 LE payload_len, u32 LE crc32(payload), payload` with payload
//! `u8 kind, u32 group_len, group, u32 topic_len, topic, u32 partition, u64 offset`
//! (kind 1 = commit, kind 2 = remove every commit of `topic`). Each commit is fsynced before it
//! is acknowledged. On open the valid prefix is replayed (a torn tail is dropped) and the file
//! is compacted to one entry per key through a temp file and a rename.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::error::{IoContext, Result};

const KIND_COMMIT: u8 = 1;
const KIND_REMOVE_TOPIC: u8 = 2;

type Key = (String, String, u32);

struct Inner {
    file: File,
    map: HashMap<Key, u64>,
    entries_in_file: usize,
}

/// Committed consumer-group offsets.
pub struct OffsetStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for OffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetStore")
            .field("path", &self.path)
            .finish()
    }
}

fn encode(buf: &mut Vec<u8>, kind: u8, group: &str, topic: &str, partition: u32, offset: u64) {
    let mut p = Vec::with_capacity(1 + 8 + group.len() + topic.len() + 12);
    p.push(kind);
    p.extend_from_slice(&(group.len() as u32).to_le_bytes());
    p.extend_from_slice(group.as_bytes());
    p.extend_from_slice(&(topic.len() as u32).to_le_bytes());
    p.extend_from_slice(topic.as_bytes());
    p.extend_from_slice(&partition.to_le_bytes());
    p.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    buf.extend_from_slice(&p);
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (h, t) = b.split_at(n);
    *b = t;
    Some(h)
}

fn take_u32(b: &mut &[u8]) -> Option<u32> {
    take(b, 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn take_str(b: &mut &[u8]) -> Option<String> {
    let n = take_u32(b)? as usize;
    String::from_utf8(take(b, n)?.to_vec()).ok()
}

/// Parses one payload.
fn decode_payload(mut p: &[u8]) -> Option<(u8, String, String, u32, u64)> {
    let kind = *take(&mut p, 1)?.first()?;
    let group = take_str(&mut p)?;
    let topic = take_str(&mut p)?;
    let partition = take_u32(&mut p)?;
    let o = take(&mut p, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(o);
    if !p.is_empty() {
        return None;
    }
    Some((kind, group, topic, partition, u64::from_le_bytes(a)))
}

/// Replays the valid prefix of a commit log; returns the map and the number of valid entries.
fn replay(mut b: &[u8]) -> (HashMap<Key, u64>, usize) {
    let mut map = HashMap::new();
    let mut n = 0;
    while let Some(len) = take_u32(&mut b) {
        let Some(crc) = take_u32(&mut b) else { break };
        let Some(p) = take(&mut b, len as usize) else {
            break;
        };
        if crc32fast::hash(p) != crc {
            break;
        }
        let Some((kind, group, topic, partition, offset)) = decode_payload(p) else {
            break;
        };
        match kind {
            KIND_COMMIT => {
                map.insert((group, topic, partition), offset);
            }
            KIND_REMOVE_TOPIC => map.retain(|k: &Key, _| k.1 != topic),
            _ => break,
        }
        n += 1;
    }
    (map, n)
}

fn snapshot(map: &HashMap<Key, u64>) -> Vec<u8> {
    let mut keys: Vec<_> = map.iter().collect();
    keys.sort();
    let mut buf = Vec::new();
    for ((g, t, p), o) in keys {
        encode(&mut buf, KIND_COMMIT, g, t, *p, *o);
    }
    buf
}

fn write_compacted(path: &Path, map: &HashMap<Key, u64>) -> Result<File> {
    let tmp = path.with_extension("log.tmp");
    {
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(&snapshot(map)).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
    }
    fs::rename(&tmp, path).ctx("rename", path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .ctx("fsync directory", dir)?;
    }
    OpenOptions::new().append(true).open(path).ctx("open", path)
}

impl OffsetStore {
    /// Opens (creating) the store under `<data_dir>/offsets/`, replaying and compacting it.
    pub fn open(data_dir: &Path) -> Result<OffsetStore> {
        let dir = data_dir.join("offsets");
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let path = dir.join("commits.log");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(crate::LogError::io("read", &path, e)),
        };
        let (map, n) = replay(&bytes);
        if bytes.len() > snapshot(&map).len() {
            tracing::info!(path = %path.display(), entries = n, live = map.len(), "compacting committed offsets");
        }
        let file = write_compacted(&path, &map)?;
        let entries_in_file = map.len();
        Ok(OffsetStore {
            path,
            inner: Mutex::new(Inner {
                file,
                map,
                entries_in_file,
            }),
        })
    }

    fn append(&self, inner: &mut Inner, buf: &[u8]) -> Result<()> {
        inner.file.write_all(buf).ctx("write", &self.path)?;
        inner.file.sync_data().ctx("fsync", &self.path)?;
        inner.entries_in_file += 1;
        if inner.entries_in_file > 2 * inner.map.len() + 4096 {
            inner.file = write_compacted(&self.path, &inner.map)?;
            inner.entries_in_file = inner.map.len();
        }
        Ok(())
    }

    /// Durably records `offset` for (group, topic, partition): returns after an fsync.
    pub fn commit(&self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<()> {
        let mut buf = Vec::new();
        encode(&mut buf, KIND_COMMIT, group, topic, partition, offset);
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.map
            .insert((group.to_string(), topic.to_string(), partition), offset);
        let inner = &mut *g;
        self.append(inner, &buf)
    }

    /// The committed offset, if any.
    pub fn fetch(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.map
            .get(&(group.to_string(), topic.to_string(), partition))
            .copied()
    }

    /// Forgets every commit for `topic` (when the topic is deleted), durably.
    pub fn remove_topic(&self, topic: &str) -> Result<()> {
        let mut buf = Vec::new();
        encode(&mut buf, KIND_REMOVE_TOPIC, "", topic, 0, 0);
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.map.retain(|k, _| k.1 != topic);
        let inner = &mut *g;
        self.append(inner, &buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = OffsetStore::open(d.path()).unwrap();
            s.commit("g", "t", 0, 5).unwrap();
            s.commit("g", "t", 0, 7).unwrap();
            s.commit("g", "u", 1, 9).unwrap();
            s.commit("h", "t", 0, 1).unwrap();
            s.remove_topic("u").unwrap();
            assert_eq!(s.fetch("g", "t", 0), Some(7));
        }
        // A torn entry at the end is dropped.
        let p = d.path().join("offsets/commits.log");
        let mut b = fs::read(&p).unwrap();
        let mut extra = Vec::new();
        encode(&mut extra, KIND_COMMIT, "g", "t", 0, 100);
        b.extend_from_slice(&extra[..extra.len() - 3]);
        fs::write(&p, &b).unwrap();
        let s = OffsetStore::open(d.path()).unwrap();
        assert_eq!(s.fetch("g", "t", 0), Some(7));
        assert_eq!(s.fetch("g", "u", 1), None);
        assert_eq!(s.fetch("h", "t", 0), Some(1));
        assert_eq!(s.fetch("x", "t", 0), None);
        s.commit("g", "t", 0, 8).unwrap();
        drop(s);
        let s = OffsetStore::open(d.path()).unwrap();
        assert_eq!(s.fetch("g", "t", 0), Some(8));
    }

    #[test]
    fn replay_never_panics_on_garbage() {
        let mut x: u64 = 0x9E3779B97F4A7C15;
        for len in 0..300 {
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = replay(&b);
        }
    }
}
