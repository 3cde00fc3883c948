//! Committed consumer-group offsets, durable across restart.
//!
//! `<data_dir>/offsets/commits.log` is an append-only log of entries
//! `u32 LE payload_len, u32 LE crc32(payload), payload` with payload
//! `u8 kind, u32 group_len, group, u32 topic_len, topic, u32 partition, u64 offset`
//! (kind 1 = commit, kind 2 = remove every commit of `topic`). Each commit is fsynced before it
//! is acknowledged; concurrent commits share fsyncs (leader/follower group commit: whoever finds
//! no fsync running syncs everything written so far while the others wait). On open the valid prefix is replayed (a torn tail is dropped) and the file
//! is compacted to one entry per key through a temp file and a rename.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::error::{IoContext, LogError, Result};

const KIND_COMMIT: u8 = 1;
/// Compact at run time once the file holds more than 2 × live keys + this many entries.
#[cfg(not(test))]
const COMPACT_SLACK: usize = 4096;
/// Small in unit tests so compaction runs without thousands of fsyncs.
#[cfg(test)]
const COMPACT_SLACK: usize = 64;
const KIND_REMOVE_TOPIC: u8 = 2;

type Key = (String, String, u32);

struct Inner {
    file: Arc<File>,
    /// Bytes of valid entries in `file` (a failed write is cut back to this).
    len: u64,
    map: HashMap<Key, u64>,
    entries_in_file: usize,
    /// Sequence number of the last entry written.
    seq: u64,
    failed: Option<String>,
}

struct SyncState {
    /// Entries up to this sequence number are durable.
    durable: u64,
    syncing: bool,
    error: Option<String>,
}

/// Committed consumer-group offsets.
pub struct OffsetStore {
    path: PathBuf,
    inner: Mutex<Inner>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    fsyncs: std::sync::atomic::AtomicU64,
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

fn write_compacted(path: &Path, map: &HashMap<Key, u64>) -> Result<(File, u64)> {
    let tmp = path.with_extension("log.tmp");
    let bytes = snapshot(map);
    {
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(&bytes).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
    }
    fs::rename(&tmp, path).ctx("rename", path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .ctx("fsync directory", dir)?;
    }
    let f = OpenOptions::new()
        .append(true)
        .open(path)
        .ctx("open", path)?;
    Ok((f, bytes.len() as u64))
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
        let (file, len) = write_compacted(&path, &map)?;
        let entries_in_file = map.len();
        Ok(OffsetStore {
            path,
            inner: Mutex::new(Inner {
                file: Arc::new(file),
                len,
                map,
                entries_in_file,
                seq: 0,
                failed: None,
            }),
            sync: Mutex::new(SyncState {
                durable: 0,
                syncing: false,
                error: None,
            }),
            synced: Condvar::new(),
            fsyncs: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn failed(&self, reason: String) -> LogError {
        LogError::Failed {
            path: self.path.clone(),
            reason,
        }
    }

    /// Writes one entry (and applies it to the map), then waits until an fsync covers it.
    fn append(&self, buf: &[u8], apply: impl FnOnce(&mut HashMap<Key, u64>)) -> Result<()> {
        let seq = {
            let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(reason) = &g.failed {
                return Err(self.failed(reason.clone()));
            }
            if let Err(e) = (&*g.file).write_all(buf) {
                // Cut a partial entry so later entries are not hidden behind a torn one.
                if let Err(e2) = g.file.set_len(g.len) {
                    g.failed = Some(format!("write failed ({e}) and truncate failed ({e2})"));
                }
                return Err(LogError::io("write", &self.path, e));
            }
            g.len += buf.len() as u64;
            g.entries_in_file += 1;
            g.seq += 1;
            apply(&mut g.map);
            let seq = g.seq;
            if g.entries_in_file > 2 * g.map.len() + COMPACT_SLACK {
                // The compacted file is fsynced before it replaces the log: everything written
                // so far is durable.
                let (file, len) = write_compacted(&self.path, &g.map)?;
                g.file = Arc::new(file);
                g.len = len;
                g.entries_in_file = g.map.len();
                let mut s = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
                s.durable = s.durable.max(seq);
                drop(s);
                self.synced.notify_all();
            }
            seq
        };
        self.wait_synced(seq)
    }

    /// Leader/follower group commit: the first waiter that finds no fsync running syncs
    /// everything written so far; the others wait for it.
    fn wait_synced(&self, seq: u64) -> Result<()> {
        let mut s = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if s.durable >= seq {
                return Ok(());
            }
            if let Some(reason) = &s.error {
                return Err(self.failed(reason.clone()));
            }
            if s.syncing {
                s = self.synced.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            s.syncing = true;
            drop(s);
            let (target, file) = {
                let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
                (g.seq, g.file.clone())
            };
            let r = file.sync_data();
            self.fsyncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            s = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
            s.syncing = false;
            match r {
                Ok(()) => s.durable = s.durable.max(target),
                Err(e) => {
                    // The page cache may have dropped what failed to sync: stay failed.
                    s.error = Some(format!("fsync {}: {e}", self.path.display()));
                }
            }
            self.synced.notify_all();
        }
    }

    /// Durably records `offset` for (group, topic, partition): returns after an fsync covering
    /// it (shared with concurrent commits). A concurrent `fetch` may see the value slightly
    /// before it is durable.
    pub fn commit(&self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<()> {
        let mut buf = Vec::new();
        encode(&mut buf, KIND_COMMIT, group, topic, partition, offset);
        self.append(&buf, |m| {
            m.insert((group.to_string(), topic.to_string(), partition), offset);
        })
    }

    /// The committed offset, if any.
    pub fn fetch(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.map
            .get(&(group.to_string(), topic.to_string(), partition))
            .copied()
    }

    /// Every committed offset as ((group, topic, partition), offset), in no particular order: a
    /// snapshot for reporting (e.g. lag gauges), including groups with no live member.
    pub fn all(&self) -> Vec<((String, String, u32), u64)> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.map.iter().map(|(k, &v)| (k.clone(), v)).collect()
    }

    /// Forgets every commit for `topic` (when the topic is deleted), durably.
    pub fn remove_topic(&self, topic: &str) -> Result<()> {
        let mut buf = Vec::new();
        encode(&mut buf, KIND_REMOVE_TOPIC, "", topic, 0, 0);
        self.append(&buf, |m| m.retain(|k, _| k.1 != topic))
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
            let mut all = s.all();
            all.sort();
            assert_eq!(
                all,
                [
                    (("g".to_string(), "t".to_string(), 0), 7),
                    (("h".to_string(), "t".to_string(), 0), 1)
                ]
            );
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
    fn concurrent_commits_share_fsyncs_and_survive() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = std::sync::Arc::new(OffsetStore::open(d.path()).unwrap());
            let ts: Vec<_> = (0..8u32)
                .map(|t| {
                    let s = s.clone();
                    std::thread::spawn(move || {
                        for i in 0..50 {
                            s.commit("g", "t", t, i).unwrap();
                        }
                    })
                })
                .collect();
            for t in ts {
                t.join().unwrap();
            }
            for p in 0..8 {
                assert_eq!(s.fetch("g", "t", p), Some(49));
            }
            let fsyncs = s.fsyncs.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!("{fsyncs} fsyncs for 400 commits");
            assert!(fsyncs <= 400);
        }
        let s = OffsetStore::open(d.path()).unwrap();
        for p in 0..8 {
            assert_eq!(s.fetch("g", "t", p), Some(49));
        }
    }

    #[test]
    fn compaction_at_run_time_keeps_everything() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = OffsetStore::open(d.path()).unwrap();
            for i in 0..5000u64 {
                s.commit("g", "t", (i % 3) as u32, i).unwrap();
            }
            let len = fs::metadata(d.path().join("offsets/commits.log"))
                .unwrap()
                .len();
            assert!(len < 2000 * 40, "compacted at run time: {len} bytes");
        }
        let s = OffsetStore::open(d.path()).unwrap();
        assert_eq!(s.fetch("g", "t", 0), Some(4998));
        assert_eq!(s.fetch("g", "t", 1), Some(4999));
        assert_eq!(s.fetch("g", "t", 2), Some(4997));
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
