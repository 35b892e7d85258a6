//! Series identity and the series table.
//!
//! A series is a metric name plus a label set. Its canonical form is the name followed by the
//! labels sorted by key, each written as `0xFF key 0xFE value` (bytes that never occur in UTF-8,
//! so the encoding is unambiguous). The series id is the XXH3-64 hash of that encoding: stable
//! across runs, machines and versions, which alert ids and checkpoints rely on.
//!
//! The table maps id -> dense index (`u32`) and stores each series' canonical form exactly once;
//! per-series engine state lives in a `Vec` indexed by the same dense index. Two different series
//! with the same 64-bit hash would share state: at one million series the chance of any such
//! collision is about 3e-8.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// 64-bit series identity (see the module docs).
pub type SeriesId = u64;

const LABEL_SEP: u8 = 0xFF;
const VALUE_SEP: u8 = 0xFE;

/// Anything that can list a label set in key order.
pub trait LabelSet {
    /// Calls `f(key, value)` for every label, in ascending key order.
    fn for_each_label(&self, f: impl FnMut(&str, &str));
}

impl LabelSet for std::collections::BTreeMap<String, String> {
    fn for_each_label(&self, mut f: impl FnMut(&str, &str)) {
        for (k, v) in self {
            f(k, v);
        }
    }
}

/// Slices must already be sorted by key (as produced by [`sort_labels`]).
impl<K: AsRef<str>, V: AsRef<str>> LabelSet for [(K, V)] {
    fn for_each_label(&self, mut f: impl FnMut(&str, &str)) {
        debug_assert!(self.windows(2).all(|w| w[0].0.as_ref() <= w[1].0.as_ref()));
        for (k, v) in self {
            f(k.as_ref(), v.as_ref());
        }
    }
}

impl<K: AsRef<str>, V: AsRef<str>> LabelSet for Vec<(K, V)> {
    fn for_each_label(&self, f: impl FnMut(&str, &str)) {
        self.as_slice().for_each_label(f)
    }
}

/// Arrays must already be sorted by key.
impl<K: AsRef<str>, V: AsRef<str>, const N: usize> LabelSet for [(K, V); N] {
    fn for_each_label(&self, f: impl FnMut(&str, &str)) {
        self.as_slice().for_each_label(f)
    }
}

/// Sorts a label list by key so it can be used as a [`LabelSet`].
pub fn sort_labels<K: AsRef<str>, V>(labels: &mut [(K, V)]) {
    labels.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
}

/// Writes the canonical encoding of `name` + `labels` into `buf` (cleared first).
pub fn encode_canonical<L: LabelSet + ?Sized>(name: &str, labels: &L, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(name.as_bytes());
    labels.for_each_label(|k, v| {
        buf.push(LABEL_SEP);
        buf.extend_from_slice(k.as_bytes());
        buf.push(VALUE_SEP);
        buf.extend_from_slice(v.as_bytes());
    });
}

/// The series id of a canonical encoding.
pub fn hash_canonical(canonical: &[u8]) -> SeriesId {
    xxhash_rust::xxh3::xxh3_64(canonical)
}

/// The series id of `name` + `labels`.
pub fn series_id<L: LabelSet + ?Sized>(name: &str, labels: &L) -> SeriesId {
    let mut buf = Vec::with_capacity(64);
    encode_canonical(name, labels, &mut buf);
    hash_canonical(&buf)
}

/// A borrowed view of one stored series: its name and labels.
#[derive(Clone, Copy)]
pub struct SeriesRef<'a> {
    canonical: &'a [u8],
}

impl<'a> SeriesRef<'a> {
    pub fn new(canonical: &'a [u8]) -> Self {
        Self { canonical }
    }

    /// The metric name.
    pub fn name(&self) -> &'a str {
        let end = self
            .canonical
            .iter()
            .position(|&b| b == LABEL_SEP)
            .unwrap_or(self.canonical.len());
        std::str::from_utf8(&self.canonical[..end]).unwrap_or("")
    }

    /// The labels, in key order.
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.canonical
            .split(|&b| b == LABEL_SEP)
            .skip(1)
            .map(|pair| {
                let mid = pair.iter().position(|&b| b == VALUE_SEP).unwrap_or(pair.len());
                let value = pair.get(mid + 1..).unwrap_or(&[]);
                (
                    std::str::from_utf8(&pair[..mid]).unwrap_or(""),
                    std::str::from_utf8(value).unwrap_or(""),
                )
            })
    }

    /// The value of one label, if present.
    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Prometheus-style text form: `name{k="v",...}`.
    pub fn display(&self) -> String {
        let mut s = String::from(self.name());
        let mut first = true;
        for (k, v) in self.labels() {
            s.push(if first { '{' } else { ',' });
            first = false;
            s.push_str(k);
            s.push_str("=\"");
            for c in v.chars() {
                match c {
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    '\n' => s.push_str("\\n"),
                    c => s.push(c),
                }
            }
            s.push('"');
        }
        if !first {
            s.push('}');
        }
        s
    }
}

/// Hasher for keys that already are well-mixed 64-bit hashes.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A `HashMap` keyed by series id without re-hashing.
pub type IdMap<V> = HashMap<SeriesId, V, BuildHasherDefault<IdHasher>>;

/// Series id -> dense index, with each series' canonical form stored once.
#[derive(Default)]
pub struct SeriesTable {
    index: IdMap<u32>,
    ids: Vec<SeriesId>,
    keys: Vec<Box<[u8]>>,
}

impl SeriesTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Dense index of a known series.
    #[inline]
    pub fn get(&self, id: SeriesId) -> Option<u32> {
        self.index.get(&id).copied()
    }

    /// Adds a series (its id must not be present) and returns its dense index.
    pub fn insert(&mut self, id: SeriesId, canonical: &[u8]) -> u32 {
        let idx = self.ids.len() as u32;
        self.index.insert(id, idx);
        self.ids.push(id);
        self.keys.push(canonical.into());
        idx
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn id(&self, idx: u32) -> SeriesId {
        self.ids[idx as usize]
    }

    pub fn series(&self, idx: u32) -> SeriesRef<'_> {
        SeriesRef::new(&self.keys[idx as usize])
    }

    /// Heap bytes used for identities: index, id list, and the label storage itself.
    pub fn label_bytes(&self) -> usize {
        let index = self.index.capacity() * (std::mem::size_of::<(SeriesId, u32)>() + 1);
        let ids = self.ids.capacity() * std::mem::size_of::<SeriesId>();
        let keys = self.keys.capacity() * std::mem::size_of::<Box<[u8]>>()
            + self.keys.iter().map(|k| k.len()).sum::<usize>();
        index + ids + keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn identity_ignores_label_order_and_separates_fields() {
        let mut a = vec![("job", "api"), ("host", "a")];
        sort_labels(&mut a);
        let b: BTreeMap<String, String> =
            [("host".to_string(), "a".to_string()), ("job".to_string(), "api".to_string())].into();
        assert_eq!(series_id("cpu", &a), series_id("cpu", &b));
        // "ab" + "c" must differ from "a" + "bc".
        assert_ne!(series_id("cpu", &[("ab", "c")]), series_id("cpu", &[("a", "bc")]));
        assert_ne!(series_id("cpu", &[("a", "b")]), series_id("cpua", &[("", "b")]));
    }

    #[test]
    fn ids_are_stable_across_versions() {
        // Alert ids and checkpoints depend on this exact value; changing it is a breaking change.
        assert_eq!(series_id("cpu", &[("host", "a")]), 0x0f22_159e_11ac_f9dc);
    }

    #[test]
    fn table_round_trips_names_and_labels() {
        let mut t = SeriesTable::new();
        let mut buf = Vec::new();
        encode_canonical("http_requests", &[("code", "200"), ("path", "/a\"b")], &mut buf);
        let id = hash_canonical(&buf);
        let idx = t.insert(id, &buf);
        assert_eq!(t.get(id), Some(idx));
        let s = t.series(idx);
        assert_eq!(s.name(), "http_requests");
        assert_eq!(s.labels().collect::<Vec<_>>(), vec![("code", "200"), ("path", "/a\"b")]);
        assert_eq!(s.label("code"), Some("200"));
        assert_eq!(s.display(), r#"http_requests{code="200",path="/a\"b"}"#);
        encode_canonical("up", &[] as &[(&str, &str)], &mut buf);
        let idx = t.insert(hash_canonical(&buf), &buf);
        assert_eq!(t.series(idx).display(), "up");
        assert_eq!(t.series(idx).labels().count(), 0);
    }
}
