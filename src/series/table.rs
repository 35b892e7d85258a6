//! The series table: series id -> dense index, and every series' name and labels, stored
//! compactly.
//!
//! Label sets repeat: a fleet's series share their metric names and most of their `key=value`
//! pairs (`job="api"`, `region="eu-1"`) and differ in one or two (`instance`). The table
//! interns every metric name and every `key=value` pair once ([`Atoms`], reference-counted, so
//! a retired series' unique values are freed) and stores a series as the varint-coded ids of
//! its atoms, back to back in one arena: a name and 8 labels take about 12 bytes and an 8-byte
//! span, where their text (~130 bytes) in an allocation of its own took about 160. The
//! canonical form is rebuilt on demand ([`SeriesTable::series`]): for alerts, snapshots and
//! rule matching, never per sample.

use super::{hash_canonical, IdIndex, SeriesId, SeriesRef, TableError, LABEL_SEP};

/// Removed bytes an arena tolerates before it is compacted: at least this many, and at least
/// half of the arena.
const COMPACT_AT: usize = 4096;

/// Series id -> dense index, with each series' name and labels stored once (see the module
/// docs).
pub struct SeriesTable {
    /// Series id -> dense index. The ids themselves are not kept: [`SeriesTable::id`] hashes the
    /// rebuilt key (for alerts and retirement, not per sample).
    index: IdIndex,
    /// Each slot's coded key in `keys`: (offset, length); length 0 for a free slot.
    spans: Vec<(u32, u32)>,
    /// Coded keys: per series, varint elements (its name, then its labels in key order), each
    /// `2 × atom id`, or `2 × length + 1` followed by that many bytes of text (an element whose
    /// hash another atom already has: never in practice, but never wrong).
    keys: Vec<u8>,
    /// Bytes of `keys` no longer referenced (removed series).
    dead: usize,
    atoms: Atoms,
    /// Dense indexes of removed series, reused by the next inserts.
    free: Vec<u32>,
    /// Most bytes of coded keys (spans are `u32`; smaller in tests).
    max_keys: usize,
}

impl Default for SeriesTable {
    fn default() -> Self {
        Self {
            index: IdIndex::default(),
            spans: Vec::new(),
            keys: Vec::new(),
            dead: 0,
            atoms: Atoms::default(),
            free: Vec::new(),
            max_keys: u32::MAX as usize,
        }
    }
}

/// One stored series' canonical form, rebuilt from the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesBuf(Vec<u8>);

impl SeriesBuf {
    /// The series' name and labels.
    pub fn view(&self) -> SeriesRef<'_> {
        SeriesRef::new(&self.0)
    }

    /// Prometheus-style text form: `name{k="v",...}`.
    pub fn display(&self) -> String {
        self.view().display()
    }

    /// The series id (the hash of the canonical form).
    pub fn id(&self) -> SeriesId {
        hash_canonical(&self.0)
    }
}

/// Every slot's canonical key (empty for a free slot), serialised as a sequence of byte
/// sequences (as a `Vec<&[u8]>` is) without holding them all at once: for snapshots.
pub struct CanonicalKeys<'a>(&'a SeriesTable);

impl serde::Serialize for CanonicalKeys<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let t = self.0;
        let mut seq = s.serialize_seq(Some(t.spans.len()))?;
        let mut buf = Vec::with_capacity(128);
        for idx in 0..t.spans.len() {
            buf.clear();
            t.canonical_into(idx, &mut buf);
            seq.serialize_element(&buf[..])?;
        }
        seq.end()
    }
}

impl SeriesTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Dense index of a known series.
    #[inline]
    pub fn get(&self, id: SeriesId) -> Option<u32> {
        self.index.get(id)
    }

    /// Adds a series and returns its dense index: a removed series' index if one is free, else
    /// the next one. `id` must be `hash_canonical(canonical)` (the table recomputes it from the
    /// key when it removes the series) and not present yet. `None` when the coded keys would
    /// pass 4 GiB even after compaction (hundreds of millions of series: the engine refuses the
    /// series and counts it, rather than corrupt a key).
    pub fn insert(&mut self, id: SeriesId, canonical: &[u8]) -> Option<u32> {
        debug_assert_eq!(id, hash_canonical(canonical));
        let span = match self.code(canonical) {
            Some(span) => span,
            None if self.dead > 0 => {
                self.compact();
                self.code(canonical)?
            }
            None => return None,
        };
        if let Some(idx) = self.free.pop() {
            self.index.insert(id, idx);
            self.spans[idx as usize] = span;
            return Some(idx);
        }
        let idx = self.spans.len() as u32;
        self.index.insert(id, idx);
        self.spans.push(span);
        Some(idx)
    }

    /// Removes a series: its atoms are released and its index is reused by a later insert.
    pub fn remove(&mut self, idx: u32) {
        if self.spans.get(idx as usize).is_none_or(|s| s.1 == 0) {
            return; // free already
        }
        let id = self.id(idx);
        if self.index.get(id) != Some(idx) {
            return;
        }
        self.index.remove(id);
        let (off, len) = std::mem::take(&mut self.spans[idx as usize]);
        self.release_atoms(off as usize, off as usize + len as usize);
        self.dead += len as usize;
        self.free.push(idx);
        if self.dead >= COMPACT_AT && self.dead * 2 >= self.keys.len() {
            self.compact();
        }
    }

    /// Releases the atoms of the coded elements in `keys[at..end]`.
    fn release_atoms(&mut self, mut at: usize, end: usize) {
        while at < end {
            match read_element(&self.keys, &mut at) {
                Element::Atom(a) => self.atoms.release(a),
                Element::Text(_) => {}
            }
        }
    }

    /// Codes `canonical` into the arena (acquiring its atoms); returns its span, or `None` (and
    /// leaves the table as it was) when it would end beyond `u32::MAX`.
    fn code(&mut self, canonical: &[u8]) -> Option<(u32, u32)> {
        let start = self.keys.len();
        for part in canonical.split(|&b| b == LABEL_SEP) {
            match self.atoms.acquire(part) {
                Some(a) => write_varint(&mut self.keys, u64::from(a) << 1),
                None => {
                    write_varint(&mut self.keys, ((part.len() as u64) << 1) | 1);
                    self.keys.extend_from_slice(part);
                }
            }
        }
        if self.keys.len() > self.max_keys {
            self.release_atoms(start, self.keys.len());
            self.keys.truncate(start);
            return None;
        }
        // both fit in a u32: the end does
        Some((start as u32, (self.keys.len() - start) as u32))
    }

    /// Rewrites the key arena without the removed series' bytes.
    fn compact(&mut self) {
        let mut keys = Vec::with_capacity(self.keys.len() - self.dead);
        for span in self.spans.iter_mut().filter(|s| s.1 > 0) {
            let (off, len) = (span.0 as usize, span.1 as usize);
            span.0 = keys.len() as u32;
            keys.extend_from_slice(&self.keys[off..off + len]);
        }
        self.keys = keys;
        self.dead = 0;
    }

    /// Appends slot `idx`'s canonical form to `out` (nothing for a free slot).
    fn canonical_into(&self, idx: usize, out: &mut Vec<u8>) {
        let (off, len) = self.spans[idx];
        let mut at = off as usize;
        let end = at + len as usize;
        let mut first = true;
        while at < end {
            if !first {
                out.push(LABEL_SEP);
            }
            first = false;
            match read_element(&self.keys, &mut at) {
                Element::Atom(a) => out.extend_from_slice(self.atoms.get(a)),
                Element::Text(t) => out.extend_from_slice(t),
            }
        }
    }

    /// Every slot's canonical key, for snapshots (see [`CanonicalKeys`]), and the free list.
    pub fn raw(&self) -> (CanonicalKeys<'_>, Vec<u32>) {
        (CanonicalKeys(self), self.free.clone())
    }

    /// Rebuilds a table from a snapshot's keys (one per slot, empty for a free one) and free
    /// list: ids are recomputed from the keys.
    pub fn from_raw(keys: Vec<Vec<u8>>, free: &[u32]) -> Result<Self, TableError> {
        let mut t = SeriesTable::default();
        let is_free: std::collections::HashSet<u32> = free.iter().copied().collect();
        for (i, key) in keys.into_iter().enumerate() {
            let idx = i as u32;
            if is_free.contains(&idx) {
                t.spans.push((0, 0));
                continue;
            }
            let id = hash_canonical(&key);
            if t.index.get(id).is_some() {
                return Err(TableError::Duplicate(SeriesRef::new(&key).display()));
            }
            t.index.insert(id, idx);
            let span = t.code(&key).ok_or(TableError::Full)?;
            t.spans.push(span);
        }
        if let Some(&bad) = free.iter().find(|&&f| f as usize >= t.spans.len()) {
            return Err(TableError::FreeSlot {
                slot: bad,
                slots: t.spans.len(),
            });
        }
        t.free = free.to_vec();
        Ok(t)
    }

    /// Series currently in the table.
    pub fn len(&self) -> usize {
        self.spans.len() - self.free.len()
    }

    /// Dense indexes handed out so far (live or free): the length of per-series arrays.
    pub fn capacity_used(&self) -> usize {
        self.spans.len()
    }

    /// See [`IdIndex::prefetch`].
    #[inline]
    pub fn prefetch(&self, id: SeriesId) {
        self.index.prefetch(id);
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Series `idx`'s id: the hash of its rebuilt canonical form.
    pub fn id(&self, idx: u32) -> SeriesId {
        self.series(idx).id()
    }

    /// Series `idx`'s name and labels (rebuilt: an allocation and a copy of its text).
    pub fn series(&self, idx: u32) -> SeriesBuf {
        let mut buf = Vec::with_capacity(128);
        self.canonical_into(idx as usize, &mut buf);
        SeriesBuf(buf)
    }

    /// Heap bytes used for identities: index, coded keys and the interned atoms.
    pub fn label_bytes(&self) -> usize {
        self.index.heap_bytes()
            + self.spans.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.keys.capacity()
            + self.atoms.heap_bytes()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }
}

/// Interned byte strings (metric names and `key 0xFE value` pairs), reference-counted.
#[derive(Default)]
struct Atoms {
    /// XXH3 of an atom's bytes -> atom id.
    index: IdIndex,
    /// Each atom's bytes in `bytes`: (offset, length); length 0 and no references when free.
    spans: Vec<(usize, usize)>,
    refs: Vec<u32>,
    bytes: Vec<u8>,
    /// Bytes of `bytes` no longer referenced.
    dead: usize,
    free: Vec<u32>,
}

impl Atoms {
    /// The id of `s` with one more reference (interned now if new), or `None` when another
    /// atom has the same hash.
    fn acquire(&mut self, s: &[u8]) -> Option<u32> {
        let h = hash_canonical(s);
        if let Some(a) = self.index.get(h) {
            if self.get(a) != s {
                return None;
            }
            self.refs[a as usize] = self.refs[a as usize].saturating_add(1);
            return Some(a);
        }
        let span = (self.bytes.len(), s.len());
        self.bytes.extend_from_slice(s);
        let a = match self.free.pop() {
            Some(a) => {
                self.spans[a as usize] = span;
                self.refs[a as usize] = 1;
                a
            }
            None => {
                self.spans.push(span);
                self.refs.push(1);
                (self.spans.len() - 1) as u32
            }
        };
        self.index.insert(h, a);
        Some(a)
    }

    /// Drops one reference to atom `a`; the last one frees it.
    fn release(&mut self, a: u32) {
        let r = &mut self.refs[a as usize];
        *r = r.saturating_sub(1);
        if *r > 0 {
            return;
        }
        self.index.remove(hash_canonical(self.get(a)));
        let (_, len) = std::mem::take(&mut self.spans[a as usize]);
        self.dead += len;
        self.free.push(a);
        if self.dead >= COMPACT_AT && self.dead * 2 >= self.bytes.len() {
            let mut bytes = Vec::with_capacity(self.bytes.len() - self.dead);
            for (span, _) in self
                .spans
                .iter_mut()
                .zip(&self.refs)
                .filter(|(_, &r)| r > 0)
            {
                let (off, len) = *span;
                span.0 = bytes.len();
                bytes.extend_from_slice(&self.bytes[off..off + len]);
            }
            self.bytes = bytes;
            self.dead = 0;
        }
    }

    fn get(&self, a: u32) -> &[u8] {
        let (off, len) = self.spans[a as usize];
        &self.bytes[off..off + len]
    }

    fn heap_bytes(&self) -> usize {
        self.index.heap_bytes()
            + self.spans.capacity() * std::mem::size_of::<(usize, usize)>()
            + self.refs.capacity() * std::mem::size_of::<u32>()
            + self.bytes.capacity()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }
}

/// One element of a coded key.
enum Element<'a> {
    Atom(u32),
    Text(&'a [u8]),
}

/// Reads the element at `*at` of `keys` and moves `*at` past it.
#[inline]
fn read_element<'a>(keys: &'a [u8], at: &mut usize) -> Element<'a> {
    let v = read_varint(keys, at);
    if v & 1 == 0 {
        return Element::Atom((v >> 1) as u32);
    }
    let len = (v >> 1) as usize;
    let start = (*at).min(keys.len());
    let end = (start + len).min(keys.len());
    *at = start + len;
    Element::Text(&keys[start..end])
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn read_varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = buf.get(*at) {
        *at += 1;
        v |= u64::from(b & 0x7F) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::super::{encode_canonical, hash_canonical};
    use super::*;

    fn add(t: &mut SeriesTable, name: &str, labels: &[(&str, &str)]) -> (SeriesId, u32) {
        let mut buf = Vec::new();
        encode_canonical(name, labels, &mut buf);
        let id = hash_canonical(&buf);
        (id, t.insert(id, &buf).unwrap())
    }

    #[test]
    fn removed_series_free_their_index_for_reuse() {
        let mut t = SeriesTable::new();
        let (a, ia) = add(&mut t, "a", &[("job", "x")]);
        let (b, ib) = add(&mut t, "b", &[("job", "x")]);
        t.remove(ia);
        assert_eq!((t.len(), t.get(a), t.get(b)), (1, None, Some(ib)));
        let (c, ic) = add(&mut t, "c", &[("job", "x")]);
        assert_eq!(ic, ia, "index reused");
        assert_eq!(t.get(c), Some(ic));
        assert_eq!(t.series(ic).view().name(), "c");
        assert_eq!(t.series(ib).display(), r#"b{job="x"}"#);
        assert_eq!(t.capacity_used(), 2);
    }

    #[test]
    fn table_round_trips_names_and_labels() {
        let mut t = SeriesTable::new();
        let (id, idx) = add(
            &mut t,
            "http_requests",
            &[("code", "200"), ("path", "/a\"b")],
        );
        assert_eq!(t.get(id), Some(idx));
        let buf = t.series(idx);
        let s = buf.view();
        assert_eq!(s.name(), "http_requests");
        assert_eq!(
            s.labels().collect::<Vec<_>>(),
            vec![("code", "200"), ("path", "/a\"b")]
        );
        assert_eq!(s.label("code"), Some("200"));
        assert_eq!(s.display(), r#"http_requests{code="200",path="/a\"b"}"#);
        let (_, idx) = add(&mut t, "up", &[]);
        assert_eq!(t.series(idx).display(), "up");
        assert_eq!(t.series(idx).view().labels().count(), 0);
        // an empty name and an empty value survive
        let (_, idx) = add(&mut t, "", &[("a", ""), ("b", "c")]);
        assert_eq!(t.series(idx).display(), r#"{a="",b="c"}"#);
    }

    #[test]
    fn shared_labels_are_stored_once_and_freed_with_their_last_series() {
        let mut t = SeriesTable::new();
        let envs = ["prod", "dev"];
        let mut idxs = Vec::new();
        for i in 0..2000 {
            let host = format!("host-{i:05}");
            let labels = [("env", envs[i % 2]), ("instance", host.as_str())];
            idxs.push(add(&mut t, "node_cpu_seconds_total", &labels).1);
        }
        // name, 2 envs and 2000 hosts
        assert_eq!(t.atoms.index.len(), 2003);
        // a coded key: three varints (name, env, host: ids below 2^14), not ~50 bytes of text
        assert!(t.keys.len() <= 2000 * 5, "{}", t.keys.len());
        for (i, &idx) in idxs.iter().enumerate() {
            assert_eq!(
                t.series(idx).display(),
                format!(
                    r#"node_cpu_seconds_total{{env="{}",instance="host-{i:05}"}}"#,
                    envs[i % 2]
                )
            );
        }
        // removing every other series frees their hosts, keeps the shared atoms, and compacts
        for &idx in idxs.iter().step_by(2) {
            t.remove(idx);
        }
        assert_eq!(t.atoms.index.len(), 1 + 1 + 1000);
        for (i, &idx) in idxs.iter().enumerate().skip(1).step_by(2) {
            assert_eq!(
                t.series(idx).display(),
                format!(r#"node_cpu_seconds_total{{env="dev",instance="host-{i:05}"}}"#)
            );
        }
        for &idx in idxs.iter().skip(1).step_by(2) {
            t.remove(idx);
        }
        assert_eq!((t.len(), t.atoms.index.len()), (0, 0));
        assert!(t.keys.len() < COMPACT_AT && t.atoms.bytes.len() < COMPACT_AT);
    }

    #[test]
    fn a_fleet_of_realistic_label_sets_costs_under_80_bytes_a_series() {
        // a metric name and 8 labels, values repeated across a fleet (as `benches/state.rs`)
        let mut t = SeriesTable::new();
        let n = 100_000;
        for i in 0..n {
            let (name, host) = (
                format!("http_requests_{}", i % 50),
                format!("host-{:05}:9100", i / 50),
            );
            let (job, region) = (format!("job-{}", i % 7), format!("region-{}", i % 3));
            let (svc, zone) = (format!("svc-{}", (i / 7) % 20), format!("zone-{}", i % 6));
            let labels = [
                ("env", ["prod", "staging", "dev"][i % 3]),
                ("instance", host.as_str()),
                ("job", job.as_str()),
                ("method", ["GET", "POST", "PUT", "DELETE"][(i / 3) % 4]),
                ("region", region.as_str()),
                ("service", svc.as_str()),
                ("status", ["200", "404", "500"][(i / 11) % 3]),
                ("zone", zone.as_str()),
            ];
            add(&mut t, &name, &labels);
        }
        let per_series = t.label_bytes() as f64 / n as f64;
        // the index slot (16 B at under 3/4 load) and span (8 B) dominate; the text is ~130 B
        assert!(per_series < 80.0, "{per_series:.1} B per series");
        assert!(t.keys.len() < 16 * n, "{} B of coded keys", t.keys.len());
    }

    #[test]
    fn a_full_table_refuses_a_series_and_keeps_the_others() {
        let mut t = SeriesTable {
            max_keys: 6,
            ..SeriesTable::default()
        };
        let (a, ia) = add(&mut t, "a", &[("job", "x")]); // 2 bytes
        let (_, ib) = add(&mut t, "b", &[("job", "x")]); // 4
        let (_, _ic) = add(&mut t, "c", &[("job", "x")]); // 6
        let mut buf = Vec::new();
        encode_canonical("d", &[("job", "y")], &mut buf);
        assert_eq!(t.insert(hash_canonical(&buf), &buf), None);
        assert_eq!(
            (t.len(), t.atoms.index.len()),
            (3, 4),
            "d and job=y released"
        );
        // a removal frees room (by compaction) for the next one
        t.remove(ib);
        let (d, id) = add(&mut t, "d", &[("job", "y")]);
        assert_eq!((t.get(d), t.get(a)), (Some(id), Some(ia)));
        assert_eq!(t.series(ia).display(), r#"a{job="x"}"#);
        assert_eq!(t.series(id).display(), r#"d{job="y"}"#);
    }

    #[test]
    fn an_element_whose_hash_is_taken_is_stored_as_text() {
        let mut t = SeriesTable::new();
        // plant an atom under the hash of "job\u{FE}x" with other bytes
        let h = hash_canonical(b"job\xFEx");
        t.atoms.bytes.extend_from_slice(b"other");
        t.atoms.spans.push((0, 5));
        t.atoms.refs.push(1);
        t.atoms.index.insert(h, 0);
        let (_, idx) = add(&mut t, "a", &[("job", "x")]);
        assert_eq!(t.series(idx).display(), r#"a{job="x"}"#);
        t.remove(idx);
        assert_eq!(t.atoms.refs[0], 1, "the planted atom is untouched");
    }

    #[test]
    fn snapshot_keys_rebuild_the_same_table() {
        let mut t = SeriesTable::new();
        let (a, ia) = add(&mut t, "a", &[("job", "x")]);
        let (_, ib) = add(&mut t, "b", &[("job", "y")]);
        t.remove(ib);
        let (keys, free) = t.raw();
        let bytes = postcard::to_allocvec(&keys).unwrap();
        let owned: Vec<Vec<u8>> = postcard::from_bytes(&bytes).unwrap();
        // the same bytes as the plain list of keys the snapshot format was written with
        let mut ka = Vec::new();
        encode_canonical("a", &[("job", "x")], &mut ka);
        let plain: Vec<&[u8]> = vec![&ka, &[]];
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        let r = SeriesTable::from_raw(owned, &free).unwrap();
        assert_eq!((r.len(), r.get(a)), (1, Some(ia)));
        assert_eq!(r.series(ia).display(), r#"a{job="x"}"#);
    }
}
