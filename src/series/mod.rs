//! Series identity and the series table.
//!
//! A series is a metric name plus a label set. Its canonical form is the name followed by the
//! labels sorted by key, each written as `0xFF key 0xFE value` (bytes that never occur in UTF-8,
//! so the encoding is unambiguous). The series id is the XXH3-64 hash of that encoding: stable
//! across runs, machines and versions, which alert ids and checkpoints rely on.
//!
//! The table ([`SeriesTable`]) maps id -> dense index (`u32`) and stores each series' name and
//! labels once, as ids of interned names and `key=value` pairs; per-series engine state lives in
//! a `Vec` indexed by the same dense index. Two different series
//! with the same 64-bit hash would share state: at one million series the chance of any such
//! collision is about 3e-8.

/// Why a series table could not be rebuilt from a snapshot's keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("series {0} appears twice")]
    Duplicate(String),
    #[error("free slot {slot} beyond {slots} slots")]
    FreeSlot { slot: u32, slots: usize },
    #[error("series labels beyond 4 GiB in one engine")]
    Full,
}

/// 64-bit series identity (see the module docs).
/// One series as a person names it (`up{job="api",instance="a:9100"}`), before it is
/// interned: the metric name and the labels sorted by key. Expected-series inventories are
/// lists of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesKey {
    pub name: String,
    /// Sorted by label name, each name once.
    pub labels: Vec<(String, String)>,
}

pub type SeriesId = u64;

const LABEL_SEP: u8 = 0xFF;
const VALUE_SEP: u8 = 0xFE;

mod table;
pub use table::{CanonicalKeys, SeriesBuf, SeriesTable};

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
                let mid = pair
                    .iter()
                    .position(|&b| b == VALUE_SEP)
                    .unwrap_or(pair.len());
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

/// Open-addressing hash index from series id to dense index (linear probing, load <= 3/4).
///
/// Written for the hot path instead of `HashMap`: the key already is a well-mixed 64-bit hash
/// (no re-hashing), a slot is one 16-byte record (one cache line access per probe), and
/// [`IdIndex::prefetch`] lets a batch request a slot's cache line before it is needed, so a
/// batch of lookups overlaps its cache misses instead of paying them one after another.
#[derive(Default)]
pub struct IdIndex {
    slots: Vec<Slot>,
    len: usize,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    key: SeriesId,
    /// Dense index + 1; 0 marks an empty slot.
    idx1: u32,
}

impl IdIndex {
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Dense index of `id`.
    #[inline]
    pub fn get(&self, id: SeriesId) -> Option<u32> {
        self.find(id).map(|i| self.slots[i].idx1 - 1)
    }

    /// The slot holding `id`: its probe run from its home slot up to the first empty one.
    #[inline]
    fn find(&self, id: SeriesId) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = id as usize & mask;
        loop {
            let s = self.slots[i];
            if s.idx1 == 0 {
                return None;
            }
            if s.key == id {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts `id` (which must be absent) with dense index `idx`.
    pub fn insert(&mut self, id: SeriesId, idx: u32) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(id, idx + 1);
        self.len += 1;
    }

    /// Removes `id` (backward-shift deletion: no tombstones, so lookups stay as short as if
    /// it had never been inserted). Returns its dense index.
    pub fn remove(&mut self, id: SeriesId) -> Option<u32> {
        let i = self.find(id)?;
        let mask = self.mask();
        let removed = self.slots[i].idx1 - 1;
        // shift later members of the probe run back into the hole when their home allows it
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while self.slots[j].idx1 != 0 {
            let home = self.slots[j].key as usize & mask;
            // move j into the hole unless its home lies cyclically in (hole, j]
            let between = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !between {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
        Some(removed)
    }

    fn place(&mut self, id: SeriesId, idx1: u32) {
        let mask = self.mask();
        let mut i = id as usize & mask;
        while self.slots[i].idx1 != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = Slot { key: id, idx1 };
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); cap]);
        for s in old.into_iter().filter(|s| s.idx1 != 0) {
            self.place(s.key, s.idx1);
        }
    }

    /// Asks the CPU to load the slot where `id` would start probing.
    #[inline]
    pub fn prefetch(&self, id: SeriesId) {
        if let Some(slot) = self.slots.get(id as usize & self.mask()) {
            prefetch(slot);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

/// Hints the CPU to bring `*r`'s cache line into L1. Never faults; a no-op off x86-64.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults and has no effect on program state,
    // and the pointer comes from a valid reference anyway.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Hints the CPU to bring every cache line of `*r` into L1 (for values larger than a line,
/// whose fields are all read: a series' state). Never faults; a no-op off x86-64.
#[inline(always)]
pub fn prefetch_all<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = (r as *const T).cast::<u8>();
        let size = std::mem::size_of::<T>();
        // one hint per 64 bytes, and the last byte's line (a value need not start on a line)
        let offsets = (0..size).step_by(64).chain(size.checked_sub(1));
        for off in offsets {
            // SAFETY: a prefetch is only a hint; it never faults and has no effect on program
            // state, and every address hinted lies inside `*r`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(off).cast::<i8>()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn identity_ignores_label_order_and_separates_fields() {
        let mut a = vec![("job", "api"), ("host", "a")];
        sort_labels(&mut a);
        let b: BTreeMap<String, String> = [
            ("host".to_string(), "a".to_string()),
            ("job".to_string(), "api".to_string()),
        ]
        .into();
        assert_eq!(series_id("cpu", &a), series_id("cpu", &b));
        // "ab" + "c" must differ from "a" + "bc".
        assert_ne!(
            series_id("cpu", &[("ab", "c")]),
            series_id("cpu", &[("a", "bc")])
        );
        assert_ne!(
            series_id("cpu", &[("a", "b")]),
            series_id("cpua", &[("", "b")])
        );
    }

    #[test]
    fn ids_are_stable_across_versions() {
        // Alert ids and checkpoints depend on this exact value; changing it is a breaking change.
        assert_eq!(series_id("cpu", &[("host", "a")]), 0x0f22_159e_11ac_f9dc);
    }

    #[test]
    fn index_finds_every_key_across_growth() {
        let mut ix = IdIndex::default();
        let keys: Vec<u64> = (0..10_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(ix.get(k), None);
            ix.insert(k, i as u32);
        }
        // colliding low bits probe linearly
        ix.insert(1 << 40, 10_000);
        ix.insert(2 << 40, 10_001);
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(ix.get(k), Some(i as u32));
        }
        assert_eq!(
            (ix.get(1 << 40), ix.get(2 << 40), ix.get(3 << 40)),
            (Some(10_000), Some(10_001), None)
        );
        assert_eq!(ix.len(), 10_002);
        assert!(ix.heap_bytes() <= 32 * 10_002 * 16 / 10);
    }

    proptest::proptest! {
        /// Inserts and removals in any order: the index answers like a HashMap.
        #[test]
        fn index_removal_matches_a_map(
            ops in proptest::collection::vec((0u64..64, proptest::bool::ANY), 1..400)
        ) {
            let mut ix = IdIndex::default();
            let mut model = std::collections::HashMap::new();
            for (n, &(k, insert)) in ops.iter().enumerate() {
                // few distinct low bits: long probe runs that wrap around
                let key = (k << 32) | (k % 3);
                if insert && !model.contains_key(&key) {
                    ix.insert(key, n as u32);
                    model.insert(key, n as u32);
                } else if !insert {
                    proptest::prop_assert_eq!(ix.remove(key), model.remove(&key));
                }
                for (&mk, &mv) in &model {
                    proptest::prop_assert_eq!(ix.get(mk), Some(mv));
                }
                proptest::prop_assert_eq!(ix.len(), model.len());
            }
        }
    }
}
