//! Engine state in Kafka: checkpoints to a compacted topic, restored by a partition's next
//! owner.
//!
//! A checkpoint of input partition `topic/p` is an [`Engine::snapshot`] cut into chunks of at
//! most [`CHUNK`] bytes, written to partition `p` of the state topic, then a marker record:
//!
//! ```text
//! key  "{topic}/{p}/{set}/{i}"   value  chunk i of the snapshot        (set = a or b)
//! key  "{topic}/{p}/marker"      value  {"format":1,"set":"a","chunks":N,"bytes":B,
//!                                         "xxh3":H,"offset":O,"epoch":E}  (JSON, written last)
//! ```
//!
//! Consecutive checkpoints alternate between the chunk sets `a` and `b`, so a crash in the
//! middle of writing one leaves the previous one whole (compaction keeps the latest record per
//! key, and the marker naming it still points at the complete set). The marker's `offset` is
//! the last input offset the snapshot reflects; the group's committed offset is only ever
//! stored behind a checkpoint that the broker acknowledged (together with every alert up to
//! it), so a restarted or new owner restores the latest checkpoint and resumes consuming right
//! after it: nothing is lost, and replayed input re-emits the same alert transitions with the
//! same `alert_id` and `version`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use serde::{Deserialize, Serialize};

use rdkafka::error::KafkaError;

use crate::config::RunConfig;
use crate::engine::snapshot::SnapshotError;
use crate::engine::Engine;
use crate::model::Model;

/// Why a partition's checkpoint could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{topic}/{partition}: unreadable checkpoint marker: {source}")]
    Marker {
        topic: String,
        partition: i32,
        source: serde_json::Error,
    },
    #[error("{topic}/{partition}: checkpoint epoch {epoch} lacks chunk {key}")]
    MissingChunk {
        topic: String,
        partition: i32,
        epoch: u64,
        key: String,
    },
    #[error("{topic}/{partition}: checkpoint epoch {epoch} does not match its marker (size or checksum)")]
    Mismatch {
        topic: String,
        partition: i32,
        epoch: u64,
    },
    #[error("state reader: {0}")]
    Reader(KafkaError),
    #[error("state topic {topic}/{partition}: {source}")]
    StateTopic {
        topic: String,
        partition: i32,
        source: KafkaError,
    },
    #[error("state topic {topic}/{partition}: not read to its end within 300 s")]
    Timeout { topic: String, partition: i32 },
    #[error("state reader failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("{topic}/{partition}: {source}")]
    Snapshot {
        topic: String,
        partition: i32,
        source: SnapshotError,
    },
}

/// Largest chunk, bytes (below librdkafka's default 1 MB message limit).
pub const CHUNK: usize = 512 * 1024;

/// The marker record of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub format: u16,
    pub set: String,
    pub chunks: usize,
    pub bytes: usize,
    pub xxh3: u64,
    /// Last input offset the snapshot reflects.
    pub offset: i64,
    pub epoch: u64,
}

/// The records of one checkpoint, in write order (chunks, then the marker), as (key, value).
pub fn records(
    topic: &str,
    partition: i32,
    epoch: u64,
    offset: i64,
    snapshot: &[u8],
) -> Vec<(String, Vec<u8>)> {
    let set = if epoch % 2 == 0 { "a" } else { "b" };
    let mut out: Vec<(String, Vec<u8>)> = snapshot
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| (format!("{topic}/{partition}/{set}/{i}"), c.to_vec()))
        .collect();
    let marker = Marker {
        format: crate::engine::snapshot::FORMAT,
        set: set.into(),
        chunks: out.len(),
        bytes: snapshot.len(),
        xxh3: xxhash_rust::xxh3::xxh3_64(snapshot),
        offset,
        epoch,
    };
    let value = serde_json::to_vec(&marker).unwrap_or_default();
    out.push((format!("{topic}/{partition}/marker"), value));
    out
}

/// A checkpoint read back: the snapshot and its marker.
pub struct Restored {
    pub marker: Marker,
    pub snapshot: Vec<u8>,
}

/// Assembles the latest complete checkpoint of `topic/partition` from the state records read
/// (latest value per key wins, as after compaction).
pub fn assemble(
    topic: &str,
    partition: i32,
    latest: &HashMap<String, Vec<u8>>,
) -> Result<Option<Restored>, CheckpointError> {
    let Some(m) = latest.get(&format!("{topic}/{partition}/marker")) else {
        return Ok(None);
    };
    let marker: Marker = serde_json::from_slice(m).map_err(|source| CheckpointError::Marker {
        topic: topic.into(),
        partition,
        source,
    })?;
    let mut snapshot = Vec::with_capacity(marker.bytes);
    for i in 0..marker.chunks {
        let key = format!("{topic}/{partition}/{}/{i}", marker.set);
        let Some(chunk) = latest.get(&key) else {
            return Err(CheckpointError::MissingChunk {
                topic: topic.into(),
                partition,
                epoch: marker.epoch,
                key,
            });
        };
        snapshot.extend_from_slice(chunk);
    }
    if snapshot.len() != marker.bytes || xxhash_rust::xxh3::xxh3_64(&snapshot) != marker.xxh3 {
        return Err(CheckpointError::Mismatch {
            topic: topic.into(),
            partition,
            epoch: marker.epoch,
        });
    }
    Ok(Some(Restored { marker, snapshot }))
}

/// Reads partition `partition` of the state topic up to its end (blocking; run it off the
/// async threads) and returns the latest checkpoint of `topic/partition`, if any.
pub fn read(
    cfg: &RunConfig,
    state_topic: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<Restored>, CheckpointError> {
    let state_error = |source| CheckpointError::StateTopic {
        topic: state_topic.into(),
        partition,
        source,
    };
    let consumer: BaseConsumer = super::client::client_config(cfg)
        .set("group.id", format!("{}-state-reader", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(CheckpointError::Reader)?;
    let (low, high) = consumer
        .fetch_watermarks(state_topic, partition, Duration::from_secs(30))
        .map_err(state_error)?;
    let mut latest: HashMap<String, Vec<u8>> = HashMap::new();
    if high > low {
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(state_topic, partition, rdkafka::Offset::Beginning)
            .map_err(state_error)?;
        consumer.assign(&tpl).map_err(state_error)?;
        let prefix = format!("{topic}/{partition}/");
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        loop {
            if std::time::Instant::now() > deadline {
                return Err(CheckpointError::Timeout {
                    topic: state_topic.into(),
                    partition,
                });
            }
            let Some(m) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let m = m.map_err(state_error)?;
            let offset = m.offset();
            if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                if key.starts_with(&prefix) {
                    match m.payload() {
                        Some(v) if !v.is_empty() => {
                            latest.insert(key.to_string(), v.to_vec());
                        }
                        _ => {
                            latest.remove(key);
                        }
                    }
                }
            }
            if offset + 1 >= high {
                break;
            }
        }
        // whatever arrives right behind the watermark read at the start (a checkpoint being
        // written as we read): take it too
        while let Some(m) = consumer.poll(Duration::from_millis(300)) {
            let Ok(m) = m else { break };
            if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                if key.starts_with(&format!("{topic}/{partition}/")) {
                    match m.payload() {
                        Some(v) if !v.is_empty() => {
                            latest.insert(key.to_string(), v.to_vec());
                        }
                        _ => {
                            latest.remove(key);
                        }
                    }
                }
            }
        }
    }
    assemble(topic, partition, &latest)
}

/// Restores the engine of `topic/partition` from the state topic, or a fresh one when there is
/// no checkpoint. Returns the engine and the checkpoint's epoch and offset.
pub async fn restore(
    cfg: &RunConfig,
    model: &Arc<Model>,
    topic: &str,
    partition: i32,
) -> Result<(Engine, Option<Marker>), CheckpointError> {
    let Some(state) = &cfg.state else {
        return Ok((Engine::new(model.clone()), None));
    };
    let (c, st, t) = (cfg.clone(), state.topic.clone(), topic.to_string());
    let restored = tokio::task::spawn_blocking(move || read(&c, &st, &t, partition)).await??;
    match restored {
        None => Ok((Engine::new(model.clone()), None)),
        Some(r) => {
            let engine = Engine::restore(model.clone(), &r.snapshot).map_err(|source| {
                CheckpointError::Snapshot {
                    topic: topic.into(),
                    partition,
                    source,
                }
            })?;
            Ok((engine, Some(r.marker)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_alternate_sets_and_a_torn_one_leaves_the_previous_whole() {
        let big: Vec<u8> = (0..CHUNK * 2 + 100).map(|i| (i % 251) as u8).collect();
        let mut latest = HashMap::new();
        for (k, v) in records("m", 3, 0, 41, &big) {
            latest.insert(k, v);
        }
        let r = assemble("m", 3, &latest).unwrap().unwrap();
        assert_eq!(
            (r.marker.set.as_str(), r.marker.chunks, r.marker.offset),
            ("a", 3, 41)
        );
        assert_eq!(r.snapshot, big);
        // epoch 1 goes to set b; a crash after its first chunk, before its marker
        let small = vec![7u8; 10];
        let torn = records("m", 3, 1, 99, &small);
        latest.insert(torn[0].0.clone(), torn[0].1.clone());
        let r = assemble("m", 3, &latest).unwrap().unwrap();
        assert_eq!(
            (r.marker.epoch, r.snapshot.len()),
            (0, big.len()),
            "epoch 0 still whole"
        );
        // epoch 1 completes
        for (k, v) in torn {
            latest.insert(k, v);
        }
        let r = assemble("m", 3, &latest).unwrap().unwrap();
        assert_eq!(
            (r.marker.epoch, r.marker.offset, r.snapshot),
            (1, 99, small)
        );
        // another partition's checkpoint is not this one's
        assert!(assemble("m", 4, &latest).unwrap().is_none());
        // a chunk lost to a bad record is refused clearly
        latest.remove("m/3/b/0");
        let e = assemble("m", 3, &latest).err().unwrap().to_string();
        assert!(e.contains("lacks chunk m/3/b/0"), "{e}");
    }
}
