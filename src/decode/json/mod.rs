//! JSON samples read without copies: names and label text borrow the message, and only text
//! with escapes (or a name made from a namespace) is made, in an [`Arena`]. deadair's own shape
//! (`{"name": .., "labels": {..}, "timestamp": .., "value": ..}`, one object or an array of
//! them) is read here, the other shapes in [`flexible`]. A message these readers do not take
//! whole goes to the owned readers of [`crate::codec`], which read every shape the same way and
//! judge everything else (and word the errors).

use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

mod fast;
mod flexible;

use super::arena::{Arena, At};
use super::{SampleView, SampleViews};
use crate::time::{epoch_to_ms, parse_timestamp};

/// Where a message's samples were read to, reused from message to message.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    arena: Arena,
    /// name, labels (a range of `labels`), timestamp (ms), value
    samples: Vec<(At, Range<usize>, i64, f64)>,
    labels: Vec<(At, At)>,
}

/// Reads `text` (a whole message, trimmed; an `array` or one object) into `buf`, in deadair's
/// own shape, or if `flexible` in the other shapes the owned flexible reader takes
/// ([`flexible`]). False if it is not all in that shape, or holds a sample the owned readers
/// must judge: for deadair's shape an empty name, a `__name__` label, a timestamp out of range,
/// a repeated key.
pub(crate) fn read(text: &str, array: bool, flexible: bool, buf: &mut Buffers) -> bool {
    buf.arena.clear();
    buf.samples.clear();
    buf.labels.clear();
    if !flexible && fast::read(text, array, buf) {
        return true;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let one = |buf| One {
        text,
        buf,
        flexible,
    };
    let read = match array {
        true => de.deserialize_seq(Many { one: one(buf) }),
        false => one(buf).deserialize(&mut de),
    };
    read.is_ok() && de.end().is_ok()
}

/// The samples [`read`] left in `buf`, as views of `text` (the same text) and of `buf`, in
/// `out` (empty; its allocations reused).
pub(crate) fn views<'a>(
    text: &'a str,
    buf: &'a Buffers,
    mut out: SampleViews<'a>,
) -> SampleViews<'a> {
    push_views(buf, &mut out, |at| Some(buf.arena.text(text, at)));
    out
}

/// Reads `text` (a whole message, trimmed) with the hand reader of [`fast`] alone and appends
/// its samples to `out` as views of `text` (that reader copies nothing, so they borrow no
/// buffer and can wait for the engine beside other messages' samples). False, and `out` as it
/// was, if that reader leaves the message.
pub(crate) fn append<'a>(
    text: &'a str,
    array: bool,
    buf: &mut Buffers,
    out: &mut SampleViews<'a>,
) -> bool {
    buf.samples.clear();
    buf.labels.clear();
    fast::read(text, array, buf)
        && push_views(buf, out, |at| match at {
            At::Msg(a, b) => text.get(a as usize..b as usize),
            At::Arena(..) => None,
        })
}

/// Appends the samples of `buf` to `out`, their text found by `text_of`; false, and `out` as it
/// was, if some text is not there.
fn push_views<'a>(
    buf: &Buffers,
    out: &mut SampleViews<'a>,
    text_of: impl Fn(At) -> Option<&'a str>,
) -> bool {
    let (samples, labels) = (out.samples.len(), out.labels.len());
    out.samples.reserve(buf.samples.len());
    out.labels.reserve(buf.labels.len());
    for (name, range, timestamp, value) in &buf.samples {
        let start = out.labels.len();
        for &(k, v) in &buf.labels[range.clone()] {
            let (Some(k), Some(v)) = (text_of(k), text_of(v)) else {
                out.samples.truncate(samples);
                out.labels.truncate(labels);
                return false;
            };
            out.labels.push((k, v));
        }
        out.normalise_labels(start);
        let Some(name) = text_of(*name) else {
            out.samples.truncate(samples);
            out.labels.truncate(labels);
            return false;
        };
        out.samples.push(SampleView {
            name,
            labels: start..out.labels.len(),
            timestamp: *timestamp,
            value: *value,
        });
    }
    true
}

/// Why a message was not read here (never shown: the owned readers word the error).
fn refuse<E: serde::de::Error>() -> E {
    E::custom("not deadair's own JSON shape")
}

/// An array of samples, each read as `one`.
struct Many<'b> {
    one: One<'b>,
}

impl<'de> Visitor<'de> for Many<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of samples")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let One {
            text,
            buf,
            flexible,
        } = self.one;
        while seq
            .next_element_seed(One {
                text,
                buf: &mut *buf,
                flexible,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One sample object, in deadair's shape or (`flexible`) in the others.
struct One<'b> {
    text: &'b str,
    buf: &'b mut Buffers,
    flexible: bool,
}

impl<'de> DeserializeSeed<'de> for One<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for One<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sample object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (text, buf) = (self.text, self.buf);
        if self.flexible {
            return flexible::sample(map, text, buf);
        }
        let start = buf.labels.len();
        let (mut name, mut labels, mut ts, mut value) = (None, false, None, None);
        while let Some(key) = map.next_key_seed(Str { text, arena: None })? {
            let key = match key {
                At::Msg(a, b) => &text[a as usize..b as usize],
                At::Arena(..) => return Err(refuse()), // an escaped key: not ours to judge
            };
            match key {
                "name" if name.is_none() => {
                    name = Some(map.next_value_seed(Str {
                        text,
                        arena: Some(&mut buf.arena),
                    })?)
                }
                "labels" if !labels => {
                    labels = true;
                    map.next_value_seed(Labels {
                        text,
                        buf: &mut *buf,
                        names: false,
                    })?
                }
                "timestamp" if ts.is_none() => ts = Some(map.next_value_seed(Time)?),
                "value" if value.is_none() => value = Some(map.next_value::<f64>()?),
                "name" | "labels" | "timestamp" | "value" => return Err(refuse()), // repeated
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let (Some(name), Some(timestamp), Some(value)) = (name, ts, value) else {
            return Err(refuse());
        };
        if name.is_empty() {
            return Err(refuse());
        }
        buf.samples
            .push((name, start..buf.labels.len(), timestamp, value));
        Ok(())
    }
}

/// A sample's labels: an object of text values, appended to `buf.labels`. A `__name__` label
/// is refused unless `names` (in deadair's shape it is the owned readers' to judge).
struct Labels<'b> {
    text: &'b str,
    buf: &'b mut Buffers,
    names: bool,
}

impl<'de> DeserializeSeed<'de> for Labels<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Labels<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of labels")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (text, buf) = (self.text, self.buf);
        while let Some(k) = map.next_key_seed(Str {
            text,
            arena: Some(&mut buf.arena),
        })? {
            if !self.names && buf.arena.text(text, k) == "__name__" {
                return Err(refuse());
            }
            let v = map.next_value_seed(Str {
                text,
                arena: Some(&mut buf.arena),
            })?;
            buf.labels.push((k, v));
        }
        Ok(())
    }
}

/// Text: where it is in the message, or (with escapes) in the arena; without an arena, text
/// with escapes is [`At::Arena`]`(0, 0)`.
struct Str<'b> {
    text: &'b str,
    arena: Option<&'b mut Arena>,
}

impl<'de> DeserializeSeed<'de> for Str<'_> {
    type Value = At;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<At, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Str<'_> {
    type Value = At;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<At, E> {
        // text without escapes is a slice of the message itself
        let at = (v.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
        match self.text.get(at..at.wrapping_add(v.len())) {
            Some(s) if s.as_ptr() == v.as_ptr() => Ok(At::Msg(at as u32, (at + v.len()) as u32)),
            _ => self.visit_str(v),
        }
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<At, E> {
        match self.arena {
            Some(arena) => Ok(arena.keep(v)),
            None => Ok(At::EMPTY),
        }
    }
}

/// A timestamp: epoch seconds or milliseconds, or text `parse_timestamp` reads.
struct Time;

impl<'de> DeserializeSeed<'de> for Time {
    type Value = i64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Time {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp")
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        epoch_to_ms(v).map_err(|_| refuse())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        self.visit_f64(v as f64)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
        parse_timestamp(v).map_err(|_| refuse())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{parse_json, JsonShape};
    use proptest::prelude::*;

    type Row = (String, Vec<(String, String)>, i64, u64);

    /// The samples [`read`] left in `buf`, as rows.
    fn rows(text: &str, buf: &Buffers) -> Vec<Row> {
        let v = views(text, buf, SampleViews::default());
        v.refs()
            .map(|r| {
                let labels = r.labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
                (
                    r.name.to_string(),
                    labels.collect(),
                    r.ts,
                    r.value.to_bits(),
                )
            })
            .collect()
    }

    /// What these readers make of `text` (deadair's shape first, as `decode_message` tries
    /// them): None if they leave it to the owned readers.
    fn zero_copy(text: &str) -> Option<Vec<Row>> {
        let mut buf = Buffers::default();
        let array = text.starts_with('[');
        (read(text, array, false, &mut buf) || read(text, array, true, &mut buf))
            .then(|| rows(text, &buf))
    }

    fn owned(text: &str) -> Vec<Row> {
        let mut out = Vec::new();
        parse_json(
            text,
            text.starts_with('['),
            &mut JsonShape::default(),
            |s| {
                let labels = s.labels.into_iter().collect();
                out.push((s.name, labels, s.timestamp, s.value.to_bits()))
            },
        )
        .unwrap();
        out
    }

    proptest! {
        /// What it reads, it reads as the owned readers do (escapes, any text, both forms).
        #[test]
        fn reads_as_the_owned_readers_do(
            samples in crate::decode::arb_samples("[a-z_\"\\\\é]{1,8}", "[ -~é\u{1F600}\n]{0,8}", 0..2_000_000_000_000),
            array in any::<bool>(),
            extra in any::<bool>(),
        ) {
            let objects: Vec<serde_json::Value> = samples
                .iter()
                .map(|s| {
                    let mut o = serde_json::json!({"name": s.name, "labels": s.labels, "timestamp": s.timestamp, "value": s.value});
                    if extra {
                        o["kind"] = serde_json::json!({"ignored": [1, 2]});
                    }
                    o
                })
                .collect();
            let texts: Vec<String> = match array {
                true => vec![serde_json::Value::Array(objects).to_string()],
                false => objects.iter().map(|o| o.to_string()).collect(),
            };
            for text in &texts {
                let read = zero_copy(text);
                prop_assert!(read.is_some(), "{}", text);
                prop_assert_eq!(read.unwrap(), owned(text));
            }
        }
    }

    proptest! {
        /// prometheus-kafka-adapter's and Vector's shapes (and mixtures of the keys either
        /// reader knows) read as the owned flexible reader reads them.
        #[test]
        fn other_shapes_read_as_the_owned_readers_do(
            samples in crate::decode::arb_samples("[a-z_é]{1,8}", "[ -~é\n]{0,6}", 0..2_000_000_000_000),
            keys in proptest::collection::vec(0usize..12, 1..7),
            array in any::<bool>(),
        ) {
            let rfc = |ms: i64| crate::time::format_rfc3339(ms);
            let objects: Vec<serde_json::Value> = samples
                .iter()
                .map(|s| {
                    let mut labels = s.labels.clone();
                    let mut o = serde_json::Map::new();
                    for &k in &keys {
                        let (key, v) = match k {
                            0 => ("name", serde_json::json!(s.name)),
                            1 => ("timestamp", serde_json::json!(rfc(s.timestamp))),
                            2 => ("value", serde_json::json!(s.value.to_string())),
                            3 => ("value", serde_json::json!(s.value)),
                            4 => {
                                labels.insert("__name__".into(), s.name.clone());
                                ("labels", serde_json::json!(labels))
                            }
                            5 => ("tags", serde_json::json!(s.labels)),
                            6 => ("namespace", serde_json::json!("ns")),
                            7 => ("gauge", serde_json::json!({"value": s.value})),
                            8 => ("counter", serde_json::json!({"value": s.value, "x": 1})),
                            9 => ("namespace", serde_json::Value::Null),
                            10 => ("kind", serde_json::json!("absolute")),
                            _ => ("timestamp", serde_json::json!(s.timestamp)),
                        };
                        o.insert(key.into(), v);
                    }
                    if keys.len() % 3 == 0 {
                        serde_json::json!({"metric": o})
                    } else {
                        serde_json::Value::Object(o)
                    }
                })
                .collect();
            let texts: Vec<String> = match array {
                true => vec![serde_json::Value::Array(objects).to_string()],
                false => objects.iter().map(|o| o.to_string()).collect(),
            };
            for text in &texts {
                let mut out = Vec::new();
                let owned = parse_json(text, array, &mut JsonShape::default(), |s| {
                    let labels = s.labels.into_iter().collect();
                    out.push((s.name, labels, s.timestamp, s.value.to_bits()))
                })
                .map(|()| out);
                if let Some(read) = zero_copy(text) {
                    prop_assert_eq!(Ok(read), owned.map_err(|_| ()), "{}", text);
                }
            }
        }
    }

    #[test]
    fn reads_the_adapter_and_vector_without_copies() {
        for text in [
            r#"{"timestamp":"2026-01-01T00:00:00Z","value":"9876543210","name":"up","labels":{"__name__":"up","job":"api"}}"#,
            r#"{"timestamp":"2026-01-01T00:00:01Z","value":"-Inf","labels":{"job":"api","__name__":"up"}}"#,
            r#"{"name":"seconds_total","namespace":"cpu","tags":{"mode":"idle"},"timestamp":"2026-01-01T00:00:00Z","kind":"absolute","counter":{"value":1234.5}}"#,
            r#"{"metric":{"name":"x","tags":{"a":"b"},"timestamp":"2026-01-01T00:00:00Z","gauge":{"value":4}}}"#,
        ] {
            let read = zero_copy(text);
            assert!(read.is_some(), "{text}");
            assert_eq!(read, Some(owned(text)), "{text}");
        }
        assert_eq!(
            zero_copy(
                r#"{"name":"seconds_total","namespace":"cpu","timestamp":1,"counter":{"value":2}}"#
            )
            .unwrap()[0]
                .0,
            "cpu_seconds_total"
        );
        // the owned readers word these
        for text in [
            r#"{"name":"a","labels":{"__name__":"b"},"timestamp":1,"value":"1"}"#,
            r#"{"timestamp":1,"value":"1"}"#,
            r#"{"name":"a","timestamp":1}"#,
            r#"{"name":"a","timestamp":1,"gauge":{"value":1,"value":2}}"#,
        ] {
            assert_eq!(zero_copy(text), None, "{text}");
        }
    }

    #[test]
    fn leaves_the_doubtful_samples_to_the_owned_readers() {
        let ours = r#"{"name":"c\"pu","labels":{"h\u00e9":"a\nb","z":"1","a":"2"},"timestamp":"2026-01-01T00:00:00Z","value":1.5,"x":[1]}"#;
        assert_eq!(zero_copy(ours), Some(owned(ours)));
        let row = &zero_copy(ours).unwrap()[0];
        assert_eq!(row.0, "c\"pu");
        assert_eq!(row.1[1], ("hé".to_string(), "a\nb".to_string()), "sorted");
        for text in [
            r#"{"name":"up","labels":{"__name__":"up"},"timestamp":1,"value":1}"#,
            r#"{"name":"","timestamp":1,"value":1}"#,
            r#"{"name":"a","name":"b","timestamp":1,"value":1}"#,
            r#"{"name":"a","timestamp":1e300,"value":1}"#,
            r#"{"n\u0061me":"a","timestamp":1,"value":1}"#,
            r#"[{"name":"a","timestamp":1,"value":1},{"name":"b","timestamp":2}]"#,
            r#"{"name":"a","timestamp":1,"value":1} trailing"#,
        ] {
            assert_eq!(zero_copy(text), None, "{text}");
        }
    }

    /// What the serde readers alone make of `text` (None: refused), without the hand reader.
    fn serde_only(text: &str, array: bool) -> Option<Vec<Row>> {
        let mut buf = Buffers::default();
        let mut de = serde_json::Deserializer::from_str(text);
        let one = One {
            text,
            buf: &mut buf,
            flexible: false,
        };
        let read = match array {
            true => de.deserialize_seq(Many { one }),
            false => one.deserialize(&mut de),
        };
        (read.is_ok() && de.end().is_ok()).then(|| rows(text, &buf))
    }

    #[test]
    fn the_hand_reader_takes_the_plain_shape_and_leaves_the_rest() {
        let plain = r#"{"name":"up","labels":{"job":"api","b":"é"},"timestamp":1700000000000,"value":-0.5}"#;
        let mut buf = Buffers::default();
        assert!(
            fast::read(plain, false, &mut buf),
            "the shape one-sample pipelines write"
        );
        assert_eq!(zero_copy(plain), Some(owned(plain)));
        let array = format!("[{plain}, {plain}]");
        let mut buf = Buffers::default();
        assert!(fast::read(&array, true, &mut buf), "an array of it");
        assert_eq!(rows(&array, &buf), owned(&array));
        assert_eq!(buf.samples.len(), 2);
        for text in [
            "[]".to_string(),
            format!("[{plain},]"),
            format!("[{plain}"),
            format!("[{plain}]]"),
            format!("[{plain} {plain}]"),
            format!("[{plain},{{\"name\":\"a\"}}]"), // the second incomplete
        ] {
            let mut buf = Buffers::default();
            assert!(!fast::read(&text, true, &mut buf), "{text}");
            assert!(buf.samples.is_empty() && buf.labels.is_empty(), "{text}");
        }
        for text in [
            r#"{"name":"a","timestamp":1,"value":1,"x":1}"#, // another key
            r#"{"name":"a\u0062","timestamp":1,"value":1}"#, // an escape
            r#"{"name":"a","timestamp":"2026-01-01T00:00:00Z","value":1}"#,
            r#"{"name":"a","timestamp":1,"value":"1"}"#,
            r#"{"name":"a","labels":null,"timestamp":1,"value":1}"#,
            r#"{"name":"a","timestamp":01,"value":1}"#,
            r#"{"name":"a","timestamp":1,"value":1.}"#,
            r#"{"name":"a","timestamp":1,"value":.5}"#,
            r#"{"name":"a","timestamp":1,"value":+1}"#,
            r#"{"name":"a","timestamp":1,"value":1e}"#,
            r#"{"name":"a","timestamp":1,"value":1,}"#,
            r#"{"name":"a","timestamp":1,"value":1}}"#,
            "{\"name\":\"a\u{1}b\",\"timestamp\":1,\"value\":1}",
            r#"{"name":"a","labels":{"k":1},"timestamp":1,"value":1}"#,
            r#"{"name":"a","labels":{"k":"v",},"timestamp":1,"value":1}"#,
        ] {
            let mut buf = Buffers::default();
            assert!(!fast::read(text, false, &mut buf), "{text}");
            assert!(
                buf.samples.is_empty() && buf.labels.is_empty(),
                "{text}: left as it was"
            );
        }
    }

    proptest! {
        /// Numbers, whitespace and key orders: the hand reader reads what the serde reader
        /// reads, to the bit, and refuses what it refuses.
        #[test]
        fn the_hand_reader_agrees_with_serde(
            ts in prop_oneof![
                Just("1700000000000".to_string()), Just("1700000000.5".to_string()),
                Just("-0".to_string()), Just("0".to_string()), Just("1e300".to_string()),
                Just("1E3".to_string()), Just("17e-1".to_string()), Just("00".to_string()),
                (0i64..4_000_000_000_000).prop_map(|v| v.to_string()),
                (0.0f64..4e12).prop_map(|v| format!("{v:e}")),
            ],
            value in prop_oneof![
                Just("-0".to_string()), Just("-0.0".to_string()), Just("5e-324".to_string()),
                Just("1e400".to_string()), Just("-1e-400".to_string()),
                Just("123456789012345678901234567890".to_string()),
                Just("18446744073709551616".to_string()), Just("-9223372036854775809".to_string()),
                Just("0.1000000000000000055511151231257827".to_string()),
                Just("2.2250738585072011e-308".to_string()), Just("1.".to_string()),
                Just("-".to_string()), Just("0x1".to_string()),
                any::<f64>().prop_map(|v| format!("{v}")),
                any::<f64>().prop_map(|v| format!("{v:e}")),
                "-?[0-9]{1,3}(\\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?",
                // decimals around 15 digits (the hand reader's own arithmetic ends there)
                "-?[0-9]{1,9}\\.[0-9]{1,8}",
                (-1e6f64..1e6, 0usize..12).prop_map(|(v, k)| format!("{v:.k$}")),
            ],
            ws in "[ \t\n\r]{0,2}",
            order in 0usize..6,
            wrap in 0usize..4,
            // plain text (read by hand) half the time, text that may need escapes (left) the other
            labels in proptest::collection::btree_map(
                "[a-z_]{0,12}",
                prop_oneof!["[a-z0-9 é.:-]{0,20}", "[ -~é\n]{0,20}"],
                0..3,
            ),
            name in prop_oneof!["[a-z_é]{1,20}", "[a-z_é\"\\\\]{1,20}"],
        ) {
            let labels = serde_json::to_string(&labels).unwrap();
            let name = serde_json::to_string(&name).unwrap();
            let mut parts = [
                format!("\"name\"{ws}:{ws}{name}"),
                format!("\"timestamp\":{ws}{ts}{ws}"),
                format!("{ws}\"value\":{value}"),
                format!("\"labels\":{ws}{labels}"),
            ];
            parts.rotate_left(order % 4);
            if order >= 4 {
                parts.swap(0, 2);
            }
            let object = format!("{ws}{{{ws}{}{ws}}}{ws}", parts.join(","));
            // one object, or an array of it once, twice, or of nothing
            let text = match wrap {
                0 => object,
                1 => format!("[{object}]"),
                2 => format!("[{object},{ws}{object}]"),
                _ => format!("[{ws}]"),
            };
            let text = text.trim();
            let array = wrap > 0;
            let mut buf = Buffers::default();
            let fast = fast::read(text, array, &mut buf).then(|| rows(text, &buf));
            let serde = serde_only(text, array);
            match fast {
                // what it reads, serde reads the same
                Some(rows) => prop_assert_eq!(Some(rows), serde, "{}", text),
                // what it leaves, serde may read (escapes) or refuse: the caller asks it
                None => prop_assert!(buf.samples.is_empty() && buf.labels.is_empty()),
            }
        }
    }
}
